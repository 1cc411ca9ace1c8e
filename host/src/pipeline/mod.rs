//! The data path: a view's rows from where they come from to the stores.
//!
//! - [`stream`]: the per-view Kafka loop: an intake (consume, decode, watermark,
//!   transform) and an output (dead letters, write, commit) that overlap;
//! - [`processor`]: a view version's transform stage (retries, narrowing,
//!   rejections, schema check), shared by the stream, materialize and push;
//! - [`materialize`] (+ [`materialize_state`]), [`push`]: the batch side, their input
//!   cast to the declared types by [`conform`];
//! - [`windows`]: a windowed view's transformed rows as entity events, for all three;
//! - [`view`]: a view's processing independent of its source; [`version`]: a
//!   view version as the loop sees it;
//! - [`watermark`], [`dead_letter`], [`metrics`], [`fairness`]: what the loops keep track of.
//!
//! The control path (registry, deploys, starting views, the host) is
//! [`crate::control`]; nothing here depends on it.

pub mod conform;
pub mod dead_letter;
pub mod fairness;
pub mod materialize;
pub mod materialize_state;
pub mod metrics;
pub mod processor;
pub mod push;
pub mod stream;
pub mod version;
pub mod view;
pub mod watermark;
pub mod windows;

pub use metrics::{MetricsSnapshot, ViewMetrics};
pub use stream::{StreamLoop, StreamSettings, ViewStopped};
pub use view::ViewPipeline;
