//! A batch source's events folded into tiles in memory, entity by entity,
//! to replace the stored tiles of the hops the batch spans
//! ([`super::write::replace_hops`]): how `materialize` computes windows
//! with the stream's own tiles and partials.
//!
//! A batch covers whole hops (its time range is widened to hop edges), so
//! each recomputed tile holds every event of its hop and replaces the
//! stored one instead of adding to it: materializing twice, or over events
//! the stream already applied, counts nothing twice. Memory follows the
//! number of entities times the longest window's hops: tiles an entity's
//! windows can no longer hold are dropped as the scan goes.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use super::plan::WindowPlan;
use super::state::{Applied, EntityState};
use super::write::EntityEvent;

/// Tiles recomputed from a batch of events.
#[derive(Debug, Default)]
pub struct RecomputedTiles {
    states: HashMap<Vec<u8>, EntityState>,
    /// Events folded into a tile.
    pub events_added: u64,
    /// Events older than any window their entity reports (after newer ones).
    pub events_expired: u64,
}

impl RecomputedTiles {
    /// Folds one event into its entity's tile (its origin is not used: the
    /// tile is replaced whole, not added to).
    pub fn add(&mut self, plan: &WindowPlan, event: &EntityEvent) {
        let state = self
            .states
            .entry(event.key.clone())
            .or_insert_with(|| EntityState::for_plan(plan));
        match state.apply(plan, event.micros, &event.values, None) {
            Applied::Expired => self.events_expired += 1,
            Applied::Added | Applied::Replayed => self.events_added += 1,
        }
    }

    /// Entities with events so far.
    pub fn entities(&self) -> usize {
        self.states.len()
    }

    /// Each entity's key and recomputed tiles.
    pub fn into_entities(self) -> Vec<(Vec<u8>, EntityState)> {
        self.states.into_iter().collect()
    }
}

/// The hops a time range touches (`start` and `end` inclusive, in microseconds).
pub fn hops_touched(plan: &WindowPlan, start_micros: i64, end_micros: i64) -> RangeInclusive<i64> {
    plan.hop_of(start_micros)..=plan.hop_of(end_micros)
}

/// The time range (inclusive, in microseconds) of `hops` whole: what a
/// batch reads to recompute them.
pub fn whole_hops(plan: &WindowPlan, hops: &RangeInclusive<i64>) -> (i64, i64) {
    let hop = plan.hop_micros();
    let start = hops.start().saturating_mul(hop);
    let end = hops
        .end()
        .saturating_add(1)
        .saturating_mul(hop)
        .saturating_sub(1);
    (start, end)
}
