//! Windowed aggregations (Feast's `aggregations` on a stream feature view),
//! computed by the host: a guest is stateless, a window is not.
//!
//! Each entity keeps one tile per hop (`tiling_hop_size`) holding every
//! aggregation's partial over that hop's events ([`partial`]: count, sums,
//! moments, min, max, last, distinct values); a window's value merges the
//! tiles of the hops it spans. The tiles, the entity's newest event time
//! and the highest offset applied per source partition form the entity's
//! [`state::EntityState`], stored beside its features and replaced with them
//! in one atomic step: an event whose offset is already applied is skipped,
//! so a replay after a crash or a rebalance counts nothing twice.
//!
//! - [`scalar`]: a column value as aggregations see it;
//! - [`partial`]: one aggregation's state over some events, merged, finished, encoded;
//! - [`plan`]: a view's aggregations resolved (column types, windows in hops);
//! - [`state`]: one entity's tiles, newest time and applied offsets;
//! - [`values`]: window values as Feast `Value` bytes;
//! - [`write`]: a batch's events applied to the store, read-fold-swap per entity;
//! - [`batch`]: a batch source's tiles recomputed whole hops at a time (materialize).

pub mod batch;
pub mod partial;
pub mod plan;
pub mod scalar;
pub mod state;
pub mod values;
pub mod write;

pub use batch::RecomputedTiles;
pub use partial::{CorruptTile, Partial, WindowValue};
pub use plan::WindowPlan;
pub use scalar::Scalar;
pub use state::{Applied, EntityState, SourceOffset};
pub use write::{
    EntityEvent, WindowStats, WindowWriteError, apply_events, replace_hops, state_field,
};

#[cfg(test)]
mod tests;
