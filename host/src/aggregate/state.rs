//! One entity's windowed state for one view: its tiles (one per hop with
//! events, the aggregations' partials), its newest event time, and the
//! highest offset applied per source partition. Kept as one hash field
//! (`_fv_state:<view>`) beside the entity's features, and replaced in the
//! same atomic step that writes them, so the tiles, the offsets and the
//! values Feast reads never disagree.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use super::partial::{CorruptTile, Partial, WindowValue};
use super::plan::WindowPlan;
use super::scalar::Scalar;

/// Where an event came from, for exactly-once application: a source
/// partition and the event's offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceOffset {
    pub partition: i32,
    pub offset: i64,
}

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Folded into its tile.
    Added,
    /// Its offset was applied before (a replay after a crash or a rebalance).
    Replayed,
    /// Older than any window this entity will report again.
    Expired,
}

/// An entity's tiles, newest event time and applied offsets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntityState {
    /// Hop index (event time / hop) → one partial per aggregation.
    tiles: BTreeMap<i64, Vec<Partial>>,
    newest_micros: Option<i64>,
    /// Partition → highest offset applied.
    applied: BTreeMap<i32, i64>,
    /// Counts the writes of this state: with the format version, the
    /// prefix a compare-and-set checks (see [`EntityState::guard_prefix`]).
    generation: u64,
    /// The plan and the source the tiles and offsets were kept for.
    plan: u64,
    source: u64,
}

const STATE_VERSION: u8 = 3;

/// Bytes at the front of a stored state that change with every write.
pub const GUARD_PREFIX_BYTES: usize = 9;

impl EntityState {
    /// A state before any event, kept for `plan`.
    pub fn for_plan(plan: &WindowPlan) -> Self {
        Self {
            plan: plan.fingerprint(),
            source: plan.source_fingerprint(),
            ..Self::default()
        }
    }

    /// The newest event time applied, in microseconds.
    pub fn newest_micros(&self) -> Option<i64> {
        self.newest_micros
    }

    /// Hops that hold a tile, oldest first.
    pub fn hops(&self) -> impl Iterator<Item = i64> + '_ {
        self.tiles.keys().copied()
    }

    /// Applies one event: `values[i]` is the value of aggregation i's column.
    pub fn apply(
        &mut self,
        plan: &WindowPlan,
        event_micros: i64,
        values: &[Option<Scalar>],
        origin: Option<SourceOffset>,
    ) -> Applied {
        if let Some(origin) = origin {
            if self
                .applied
                .get(&origin.partition)
                .is_some_and(|&applied| origin.offset <= applied)
            {
                return Applied::Replayed;
            }
            self.applied.insert(origin.partition, origin.offset);
        }
        let hop = plan.hop_of(event_micros);
        let newest = self
            .newest_micros
            .map_or(event_micros, |n| n.max(event_micros));
        if hop < plan.first_retained_hop(plan.hop_of(newest)) {
            return Applied::Expired;
        }
        self.newest_micros = Some(newest);
        let tile = self.tiles.entry(hop).or_insert_with(|| plan.empty_tile());
        for (partial, value) in tile.iter_mut().zip(values) {
            partial.add(value.as_ref(), event_micros);
        }
        self.expire(plan);
        Applied::Added
    }

    /// Replaces the tiles of `hops` with `recomputed`'s: a batch source's
    /// tiles over those whole hops, computed from every event in them. The
    /// applied offsets stay (they are the stream's), and the newest event
    /// time never goes back. Replacing rather than adding is what makes a
    /// materialization idempotent, and harmless over events the stream
    /// already applied.
    pub fn replace_hops(
        &mut self,
        plan: &WindowPlan,
        hops: RangeInclusive<i64>,
        recomputed: &EntityState,
    ) {
        self.tiles.retain(|hop, _| !hops.contains(hop));
        for (hop, tile) in recomputed.tiles.range(hops) {
            self.tiles.insert(*hop, tile.clone());
        }
        self.newest_micros = match (self.newest_micros, recomputed.newest_micros) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.expire(plan);
    }

    /// Drops the tiles no window ending at or after the newest event's hop can hold.
    fn expire(&mut self, plan: &WindowPlan) {
        if let Some(newest) = self.newest_micros {
            let first = plan.first_retained_hop(plan.hop_of(newest));
            self.tiles = self.tiles.split_off(&first);
        }
    }

    /// Each aggregation's value over its window ending with the newest
    /// event's hop; `None` before any event.
    pub fn window_values(&self, plan: &WindowPlan) -> Option<Vec<WindowValue>> {
        let newest_hop = plan.hop_of(self.newest_micros?);
        Some(
            plan.aggregations()
                .iter()
                .enumerate()
                .map(|(i, aggregation)| {
                    let first = newest_hop - plan.window_hops(i) + 1;
                    let mut total = plan.empty_partial(i);
                    for tile in self.tiles.range(first..=newest_hop).map(|(_, t)| t) {
                        if let Some(partial) = tile.get(i) {
                            total.merge(partial);
                        }
                    }
                    total.finish(aggregation.function)
                })
                .collect(),
        )
    }

    /// The state as written next: its generation one past the stored one.
    pub fn next_generation(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    /// The front of stored `bytes` that a compare-and-set checks: the format
    /// version and the generation, which every write changes.
    pub fn guard_prefix(bytes: &[u8]) -> Vec<u8> {
        bytes[..bytes.len().min(GUARD_PREFIX_BYTES)].to_vec()
    }

    /// The state's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![STATE_VERSION];
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&self.plan.to_le_bytes());
        out.extend_from_slice(&self.source.to_le_bytes());
        match self.newest_micros {
            None => out.push(0),
            Some(newest) => {
                out.push(1);
                out.extend_from_slice(&newest.to_le_bytes());
            }
        }
        out.extend_from_slice(&(self.applied.len() as u32).to_le_bytes());
        for (partition, offset) in &self.applied {
            out.extend_from_slice(&partition.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
        }
        out.extend_from_slice(&(self.tiles.len() as u32).to_le_bytes());
        for (hop, tile) in &self.tiles {
            out.extend_from_slice(&hop.to_le_bytes());
            out.extend_from_slice(&(tile.len() as u32).to_le_bytes());
            for partial in tile {
                partial.encode(&mut out);
            }
        }
        out
    }

    /// Reads a state `encode` wrote for the same aggregations.
    pub fn decode(mut bytes: &[u8], plan: &WindowPlan) -> Result<Self, CorruptTile> {
        let bytes = &mut bytes;
        let [version] = take::<1>(bytes)?;
        if version != STATE_VERSION {
            return Err(CorruptTile("unknown state version"));
        }
        let generation = u64::from_le_bytes(take(bytes)?);
        let stored_plan = u64::from_le_bytes(take(bytes)?);
        let stored_source = u64::from_le_bytes(take(bytes)?);
        let newest_micros = match take::<1>(bytes)? {
            [0] => None,
            _ => Some(i64::from_le_bytes(take(bytes)?)),
        };
        let mut applied = BTreeMap::new();
        for _ in 0..u32::from_le_bytes(take(bytes)?) {
            let partition = i32::from_le_bytes(take(bytes)?);
            applied.insert(partition, i64::from_le_bytes(take(bytes)?));
        }
        if stored_source != plan.source_fingerprint() {
            // Offsets of another topic say nothing about this one's events.
            tracing::warn!("window state kept for another source: its applied offsets are dropped");
            applied.clear();
        }
        if stored_plan != plan.fingerprint() {
            // The view's aggregations or hop changed: the tiles mean something else now.
            tracing::warn!("window state kept for other aggregations: its tiles start afresh");
            return Ok(Self {
                applied,
                generation,
                ..Self::for_plan(plan)
            });
        }
        let mut tiles = BTreeMap::new();
        let tile_count = u32::from_le_bytes(take(bytes)?);
        if tile_count as usize > plan.most_tiles() {
            return Err(CorruptTile("more tiles than the windows keep"));
        }
        for _ in 0..tile_count {
            let hop = i64::from_le_bytes(take(bytes)?);
            let partials = u32::from_le_bytes(take(bytes)?) as usize;
            if partials != plan.aggregations().len() {
                return Err(CorruptTile("tile of other aggregations"));
            }
            let tile = (0..partials)
                .map(|i| Partial::decode(bytes, plan.aggregations()[i].max_distinct))
                .collect::<Result<Vec<_>, _>>()?;
            tiles.insert(hop, tile);
        }
        if !bytes.is_empty() {
            return Err(CorruptTile("trailing bytes"));
        }
        Ok(Self {
            tiles,
            newest_micros,
            applied,
            generation,
            plan: stored_plan,
            source: plan.source_fingerprint(),
        })
    }
}

fn take<const N: usize>(bytes: &mut &[u8]) -> Result<[u8; N], CorruptTile> {
    let (head, rest) = bytes
        .split_first_chunk::<N>()
        .ok_or(CorruptTile("cut short"))?;
    *bytes = rest;
    Ok(*head)
}
