//! A view version: what one batch is processed with, from the stream
//! loop's point of view. The control path ([`crate::control::registry`])
//! publishes versions; the loop picks up the newest at a batch boundary.

use std::sync::Arc;

use super::metrics::ViewMetrics;
use super::view::ViewPipeline;

/// One deployable version of a view.
pub struct ViewVersion {
    pub pipeline: ViewPipeline,
    /// When it was activated first (RFC 3339).
    pub deployed_at: String,
    /// Who deployed it (the admin request's `by`, or `repo` at start).
    pub deployed_by: String,
    /// What this version did while active (the view's counters cover all versions).
    pub metrics: Arc<ViewMetrics>,
}

impl ViewVersion {
    pub fn new(pipeline: ViewPipeline, deployed_by: &str) -> Self {
        Self {
            pipeline,
            deployed_at: crate::online::EventTime::from_micros(
                chrono::Utc::now().timestamp_micros(),
            )
            .to_rfc3339(),
            deployed_by: deployed_by.to_string(),
            metrics: Arc::default(),
        }
    }

    /// The version's id (see [`ViewPipeline::version`]).
    pub fn id(&self) -> &str {
        self.pipeline.version()
    }
}
