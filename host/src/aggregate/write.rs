//! Applying a batch's events to their entities' windows in the online
//! store: read each entity's state, fold in the events not applied before,
//! and write the new state, `_ts:<view>` and the window values in one
//! compare-and-set per entity. An entity another writer changed in between
//! is read and folded again, so nothing is lost or counted twice.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use super::partial::CorruptTile;
use super::plan::WindowPlan;
use super::scalar::Scalar;
use super::state::{Applied, EntityState, SourceOffset};
use super::values::encode_rows;
use crate::online::value::CellError;
use crate::online::{GuardedUpdate, HashRead, OnlineStore, StoreError, ViewFields, timestamp};

/// Rounds of read-fold-swap before a batch's write fails (each round only
/// retries the entities another writer changed).
const SWAP_ROUNDS: usize = 16;

/// One event of one entity.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityEvent {
    /// The entity's hash key (Feast's layout).
    pub key: Vec<u8>,
    pub micros: i64,
    /// The value of each aggregation's column, in the plan's order.
    pub values: Vec<Option<Scalar>>,
    /// Where the event came from; `None` for events without offsets (a push).
    pub origin: Option<SourceOffset>,
}

/// What one batch did to the windows.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WindowStats {
    pub events_added: u64,
    /// Events already applied (a replay), skipped.
    pub events_replayed: u64,
    /// Events older than any window their entity will report again.
    pub events_expired: u64,
    /// Entities whose state and values were written.
    pub keys_written: u64,
    /// Entities whose stored state was not fvhost's and was started afresh.
    pub corrupt_states: u64,
}

/// Why a windowed write failed; nothing may be committed after it.
#[derive(Debug, thiserror::Error)]
pub enum WindowWriteError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot encode a window value: {0}")]
    Value(#[from] CellError),
    #[error("entities kept changing under the write after {SWAP_ROUNDS} rounds")]
    Contended,
}

/// The hash field an entity's window state for `view` is kept in.
pub fn state_field(view: &str) -> Vec<u8> {
    format!("_fv_state:{view}").into_bytes()
}

/// Applies `events` (in the order given, which keeps each partition's
/// offset order) for the view whose aggregation features are `fields`.
pub async fn apply_events(
    store: &dyn OnlineStore,
    plan: &WindowPlan,
    fields: &ViewFields,
    state_field: &[u8],
    events: &[EntityEvent],
) -> Result<WindowStats, WindowWriteError> {
    let mut by_key: Vec<(&[u8], Vec<&EntityEvent>)> = Vec::new();
    let mut index: HashMap<&[u8], usize> = HashMap::new();
    for event in events {
        let at = *index.entry(&event.key).or_insert_with(|| {
            by_key.push((&event.key, Vec::new()));
            by_key.len() - 1
        });
        by_key[at].1.push(event);
    }
    let keys: Vec<&[u8]> = by_key.iter().map(|(key, _)| *key).collect();
    let target = SwapTarget {
        store,
        plan,
        fields,
        state_field,
    };
    target
        .swap_each(&keys, |i, before| fold(plan, keys[i], before, &by_key[i].1))
        .await
}

/// Replaces, for each entity of `recomputed`, its tiles of `hops` with the
/// recomputed ones (see [`EntityState::replace_hops`]) and writes its
/// window values: a batch source's materialization. Entities the batch did
/// not see are left as they are.
pub async fn replace_hops(
    store: &dyn OnlineStore,
    plan: &WindowPlan,
    fields: &ViewFields,
    state_field: &[u8],
    hops: RangeInclusive<i64>,
    recomputed: &[(Vec<u8>, EntityState)],
) -> Result<WindowStats, WindowWriteError> {
    let keys: Vec<&[u8]> = recomputed.iter().map(|(key, _)| key.as_slice()).collect();
    let target = SwapTarget {
        store,
        plan,
        fields,
        state_field,
    };
    target
        .swap_each(&keys, |i, before| {
            let (mut state, corrupt) = stored_state(plan, keys[i], before.as_deref());
            state.replace_hops(plan, hops.clone(), &recomputed[i].1);
            let window = state.window_values(plan);
            state.next_generation();
            Folded {
                before,
                state,
                window,
                added: 0,
                replayed: 0,
                expired: 0,
                corrupt,
            }
        })
        .await
}

/// Where a view's entity states are swapped.
struct SwapTarget<'a> {
    store: &'a dyn OnlineStore,
    plan: &'a WindowPlan,
    fields: &'a ViewFields,
    state_field: &'a [u8],
}

impl SwapTarget<'_> {
    /// For each of `keys`: reads its stored state, folds it with `fold(i,
    /// stored)`, and writes the result guarded by what was read. An entity
    /// another writer changed in between is read and folded again.
    async fn swap_each(
        &self,
        keys: &[&[u8]],
        fold: impl Fn(usize, Option<Vec<u8>>) -> Folded,
    ) -> Result<WindowStats, WindowWriteError> {
        let mut stats = WindowStats::default();
        let mut pending: Vec<usize> = (0..keys.len()).collect();
        for _ in 0..SWAP_ROUNDS {
            if pending.is_empty() {
                return Ok(stats);
            }
            let reads: Vec<HashRead> = pending
                .iter()
                .map(|&i| HashRead {
                    key: keys[i].to_vec(),
                    fields: vec![self.state_field.to_vec()].into(),
                })
                .collect();
            let stored = self.store.read(&reads).await?;
            let mut folded = Vec::new();
            for (&i, stored) in pending.iter().zip(stored) {
                let entity = fold(i, stored.into_iter().next().flatten());
                if entity.window.is_some() {
                    folded.push((i, entity));
                } else {
                    // Nothing new for this entity (all replayed or expired): no write.
                    stats.add(&entity);
                }
            }
            let windows: Vec<_> = folded
                .iter()
                .filter_map(|(_, e)| e.window.clone())
                .collect();
            let encoded = encode_rows(self.plan, &windows)?;
            let updates: Vec<GuardedUpdate> = folded
                .iter()
                .zip(encoded)
                .map(|((i, entity), features)| {
                    entity.update(keys[*i], self.fields, self.state_field, features)
                })
                .collect();
            let applied = self.store.compare_and_set(&updates).await?;
            pending = Vec::new();
            for ((i, entity), swapped) in folded.iter().zip(applied) {
                if swapped {
                    stats.add(entity);
                    stats.keys_written += 1;
                } else {
                    // Another writer changed the entity since it was read: fold again.
                    pending.push(*i);
                }
            }
        }
        if pending.is_empty() {
            Ok(stats)
        } else {
            Err(WindowWriteError::Contended)
        }
    }
}

/// One entity's new state and what it took.
struct Folded {
    before: Option<Vec<u8>>,
    state: EntityState,
    /// The window values, when the state changed.
    window: Option<Vec<super::partial::WindowValue>>,
    added: u64,
    replayed: u64,
    expired: u64,
    corrupt: bool,
}

/// The state stored for `key`, or a fresh one (`true`: what was stored is not fvhost's).
fn stored_state(plan: &WindowPlan, key: &[u8], before: Option<&[u8]>) -> (EntityState, bool) {
    match before.map(|b| EntityState::decode(b, plan)) {
        None => (EntityState::for_plan(plan), false),
        Some(Ok(state)) => (state, false),
        Some(Err(CorruptTile(why))) => {
            tracing::error!(key = ?key, "window state not fvhost's ({why}): started afresh");
            (EntityState::for_plan(plan), true)
        }
    }
}

fn fold(plan: &WindowPlan, key: &[u8], before: Option<Vec<u8>>, events: &[&EntityEvent]) -> Folded {
    let (mut state, corrupt) = stored_state(plan, key, before.as_deref());
    let (mut added, mut replayed, mut expired) = (0, 0, 0);
    for event in events {
        match state.apply(plan, event.micros, &event.values, event.origin) {
            Applied::Added => added += 1,
            Applied::Replayed => replayed += 1,
            Applied::Expired => expired += 1,
        }
    }
    // An expired event still advances the applied offsets; the state is
    // written whenever anything was applied.
    let window = (added + expired > 0)
        .then(|| state.window_values(plan))
        .flatten();
    if window.is_some() {
        state.next_generation();
    }
    Folded {
        before,
        state,
        window,
        added,
        replayed,
        expired,
        corrupt,
    }
}

impl Folded {
    fn update(
        &self,
        key: &[u8],
        fields: &ViewFields,
        state_field: &[u8],
        features: Vec<Vec<u8>>,
    ) -> GuardedUpdate {
        let newest = self.state.newest_micros().unwrap_or_default();
        let mut set = vec![
            (state_field.to_vec(), self.state.encode()),
            (
                fields.timestamp.clone(),
                timestamp::encode(timestamp::EventTime::from_micros(newest)),
            ),
        ];
        set.extend(fields.features.iter().map(|f| f.to_vec()).zip(features));
        GuardedUpdate {
            key: key.to_vec(),
            guard: state_field.to_vec(),
            expected_prefix: self.before.as_deref().map(EntityState::guard_prefix),
            set,
        }
    }
}

impl WindowStats {
    fn add(&mut self, entity: &Folded) {
        self.events_added += entity.added;
        self.events_replayed += entity.replayed;
        self.events_expired += entity.expired;
        self.corrupt_states += u64::from(entity.corrupt);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::online::MemoryStore;
    use crate::repo::aggregation::{AggregateFunction, Aggregation};
    use crate::repo::{Feature, Windowing};
    use crate::types::{FeatureType, ScalarType};

    fn plan() -> WindowPlan {
        let window = Duration::from_secs(3600);
        WindowPlan::new(&Windowing {
            aggregations: vec![Aggregation {
                column: "v".into(),
                function: AggregateFunction::Sum,
                function_name: "sum".into(),
                time_window: window,
                slide_interval: window,
                name: "sum_v_3600s".into(),
                output_type: ScalarType::Int64,
                max_distinct: 1000,
            }],
            hop: Duration::from_secs(300),
            columns: vec![Feature {
                name: "v".into(),
                dtype: FeatureType::Scalar(ScalarType::Int64),
            }],
        })
        .unwrap()
    }

    fn fields() -> ViewFields {
        ViewFields {
            timestamp: b"_ts:w".to_vec(),
            features: vec![*b"sum0"],
        }
    }

    fn events(offsets: std::ops::Range<i64>) -> Vec<EntityEvent> {
        offsets
            .map(|offset| EntityEvent {
                key: format!("entity-{}", offset % 3).into_bytes(),
                micros: 1_767_225_600_000_000 + offset * 1_000_000,
                values: vec![Some(Scalar::Int(offset))],
                origin: Some(SourceOffset {
                    partition: 0,
                    offset,
                }),
            })
            .collect()
    }

    fn sum_of(store: &dyn OnlineStore, key: &str) -> Vec<u8> {
        let read = HashRead {
            key: key.as_bytes().to_vec(),
            fields: vec![b"sum0".to_vec()].into(),
        };
        futures::executor::block_on(store.read(&[read])).unwrap()[0][0]
            .clone()
            .unwrap()
    }

    fn apply(store: &dyn OnlineStore, events: &[EntityEvent]) -> WindowStats {
        futures::executor::block_on(apply_events(
            store,
            &plan(),
            &fields(),
            &state_field("w"),
            events,
        ))
        .unwrap()
    }

    #[test]
    fn a_replayed_batch_changes_nothing_and_a_longer_one_adds_only_the_new_events() {
        let store = MemoryStore::new();
        let stats = apply(&store, &events(0..30));
        assert_eq!((stats.events_added, stats.keys_written), (30, 3));
        let once = store.contents();
        let again = apply(&store, &events(0..30));
        assert_eq!((again.events_replayed, again.keys_written), (30, 0));
        assert_eq!(store.contents(), once);
        let more = apply(&store, &events(20..36));
        assert_eq!((more.events_replayed, more.events_added), (10, 6));
        // entity-0 holds offsets 0, 3, ..., 33: sum 198, a Feast Int64 Value.
        assert_eq!(sum_of(&store, "entity-0"), vec![0x20, 198, 1]);
    }

    #[test]
    fn recomputed_hops_replace_tiles_and_keep_the_streams_offsets() {
        let store = MemoryStore::new();
        let plan = plan();
        apply(&store, &events(0..30));
        let streamed = store.contents();
        let mut recomputed = crate::aggregate::RecomputedTiles::default();
        for event in events(0..30) {
            recomputed.add(&plan, &event);
        }
        let hops = plan.hop_of(events(0..1)[0].micros)..=plan.hop_of(events(29..30)[0].micros);
        let entities = recomputed.into_entities();
        for _ in 0..2 {
            let stats = futures::executor::block_on(replace_hops(
                &store,
                &plan,
                &fields(),
                &state_field("w"),
                hops.clone(),
                &entities,
            ))
            .unwrap();
            assert_eq!(stats.keys_written, 3);
            assert_eq!(sum_of(&store, "entity-0"), sum_of_streamed(&streamed));
        }
        let replay = apply(&store, &events(0..30));
        assert_eq!(
            replay.events_replayed, 30,
            "the stream's offsets survive a replacement"
        );
    }

    fn sum_of_streamed(contents: &HashMap<Vec<u8>, crate::online::memory::Hash>) -> Vec<u8> {
        contents[b"entity-0".as_slice()][b"sum0".as_slice()].clone()
    }

    /// A store whose first swap finds every entity changed by another writer.
    struct RacedOnce {
        inner: MemoryStore,
        raced: AtomicBool,
    }

    #[async_trait::async_trait]
    impl OnlineStore for RacedOnce {
        async fn write(
            &self,
            fields: &ViewFields,
            rows: &[crate::online::OnlineRow],
        ) -> Result<crate::online::WriteStats, StoreError> {
            self.inner.write(fields, rows).await
        }

        async fn read(&self, reads: &[HashRead]) -> Result<Vec<Vec<Option<Vec<u8>>>>, StoreError> {
            self.inner.read(reads).await
        }

        async fn compare_and_set(
            &self,
            updates: &[GuardedUpdate],
        ) -> Result<Vec<bool>, StoreError> {
            if self.raced.swap(true, Ordering::Relaxed) {
                return self.inner.compare_and_set(updates).await;
            }
            // The other writer applied the same events first.
            self.inner.compare_and_set(updates).await?;
            Ok(vec![false; updates.len()])
        }
    }

    #[test]
    fn an_entity_changed_under_the_write_is_folded_again_without_counting_twice() {
        let raced = RacedOnce {
            inner: MemoryStore::new(),
            raced: AtomicBool::new(false),
        };
        let stats = apply(&raced, &events(0..30));
        assert_eq!(
            stats.events_replayed, 30,
            "the second round finds them applied"
        );
        let alone = MemoryStore::new();
        apply(&alone, &events(0..30));
        assert_eq!(raced.inner.contents(), alone.contents());
    }
}
