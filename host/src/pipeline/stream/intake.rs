//! The intake stage: waits out a failing view's pause, consumes the next
//! batch, picks up a newly activated version at that boundary, decodes the
//! batch, transforms it and encodes what the output writes.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use super::encode::Transformed;
use super::{Counters, Prepared, StreamSettings, ViewStopped};
use crate::pipeline::dead_letter::DeadLetterContext;
use crate::pipeline::fairness::TransformSlots;
use crate::pipeline::metrics::{Pause, Stage, ViewMetrics};
use crate::pipeline::version::ViewVersion;
use crate::pipeline::view::ViewPipeline;
use crate::pipeline::watermark::Watermark;
use crate::repo::KafkaSource;
use crate::source::kafka::{Event, TopicConsumer};

/// What the intake hands on.
enum Next {
    Batch(Box<Prepared>),
    /// Shutdown: nothing consumed, or a batch left unfinished (and uncommitted).
    Stop,
}

/// The intake's state: the active version, the watermark, the pause.
pub(super) struct Intake {
    /// The version transforming the batch in hand.
    pub(super) current: Arc<ViewVersion>,
    /// Where newly activated versions arrive (see [`crate::control::registry`]).
    versions: watch::Receiver<Arc<ViewVersion>>,
    pub(super) kafka: KafkaSource,
    pub(super) metrics: Arc<ViewMetrics>,
    pub(super) settings: StreamSettings,
    pub(super) watermark: Watermark,
    /// Transform calls in flight, shared fairly with the tenant's and the host's other views.
    pub(super) slots: TransformSlots,
    /// Batches in a row that had to dead-letter a transform failure.
    pub(super) failed_streak: u32,
    /// The last of those failures, for the pause's status.
    pub(super) last_failure: Option<String>,
}

impl Intake {
    pub(super) fn new(
        mut versions: watch::Receiver<Arc<ViewVersion>>,
        kafka: KafkaSource,
        metrics: Arc<ViewMetrics>,
        settings: StreamSettings,
        slots: TransformSlots,
    ) -> Self {
        let current = versions.borrow_and_update().clone();
        Self {
            current,
            versions,
            watermark: Watermark::new(kafka.watermark_delay),
            kafka,
            metrics,
            settings,
            slots,
            failed_streak: 0,
            last_failure: None,
        }
    }

    /// The pipeline of the active version.
    pub(super) fn pipeline(&self) -> &ViewPipeline {
        &self.current.pipeline
    }

    pub(super) fn counters(&self) -> Counters<'_> {
        Counters {
            view: &self.metrics,
            version: &self.current.metrics,
        }
    }

    pub(super) fn letters(&self) -> DeadLetterContext<'_> {
        self.current.pipeline.dead_letter_context()
    }

    /// Hands batch after batch to the output until shutdown (or until the
    /// output stops taking them).
    pub(super) async fn run(
        &mut self,
        consumer: &TopicConsumer,
        to_output: mpsc::Sender<Prepared>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), ViewStopped> {
        loop {
            let Ok(slot) = to_output.reserve().await else {
                return Ok(());
            };
            let next = tokio::select! {
                next = self.next(consumer, &mut shutdown) => next?,
                // The output stopped (shutdown during a write, or a failure).
                _ = to_output.closed() => return Ok(()),
            };
            match next {
                Next::Batch(batch) => slot.send(*batch),
                Next::Stop => return Ok(()),
            }
        }
    }

    /// The next batch, decoded, transformed and encoded.
    async fn next(
        &mut self,
        consumer: &TopicConsumer,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Next, ViewStopped> {
        if !self.pause_if_failing(shutdown).await {
            return Ok(Next::Stop);
        }
        let polling = Instant::now();
        let events = consumer
            .next_batch(self.settings.max_batch, self.settings.linger, shutdown)
            .await?;
        if events.is_empty() {
            return Ok(Next::Stop);
        }
        self.take_new_version(&events);
        self.watermark.set_assigned(consumer.assigned_partitions());
        let counters = self.counters();
        counters.time(Stage::Poll, polling);
        counters.add(|m| &m.messages, events.len() as u64);
        counters.add(|m| &m.batches, 1);

        let decoding = Instant::now();
        let mut letters = Vec::new();
        let (input, origins) = self.decode(&events, &mut letters);
        self.counters().time(Stage::Decode, decoding);

        let transforming = Instant::now();
        let pieces = self
            .transform(input, &origins, &events, &mut letters, shutdown)
            .await;
        self.counters().time(Stage::Transform, transforming);
        let Some((pieces, refused_rows)) = pieces else {
            tracing::info!(view = %self.current.pipeline.view.name, first = %events[0].origin, "shutdown during the batch's transform: left uncommitted, to be read again");
            return Ok(Next::Stop);
        };
        for piece in &pieces {
            self.counters()
                .add(|m| &m.rows_out, piece.transformed.checked.rows as u64);
        }
        let transformed = Transformed {
            version: Arc::clone(&self.current),
            letters,
            pieces,
            input_events: origins,
            refused_rows,
        };
        Ok(Next::Batch(Box::new(self.encode(transformed, &events))))
    }

    /// Switches to a newly activated version, between two batches: the batch
    /// about to be processed is the first one it transforms.
    fn take_new_version(&mut self, events: &[Event]) {
        let next = self.versions.borrow_and_update().clone();
        if Arc::ptr_eq(&next, &self.current) {
            return;
        }
        tracing::info!(
            view = %self.current.pipeline.view.name,
            from = self.current.id(),
            to = next.id(),
            first = %events[0].origin,
            "new version active from this batch on"
        );
        self.current = next;
    }

    /// Before the next batch, after batches whose transform failures were
    /// dead-lettered: once that happened `pause_after_failed_batches` times
    /// in a row, waits (doubling each time, up to `max_pause`) and shows the
    /// pause in status. `false` if shutdown came during the pause.
    async fn pause_if_failing(&mut self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let threshold = self.settings.pause_after_failed_batches.max(1);
        if self.failed_streak < threshold {
            self.metrics.set_pause(None);
            return true;
        }
        let doublings = (self.failed_streak - threshold).min(16);
        let pause = (self.settings.pause * 2u32.pow(doublings)).min(self.settings.max_pause);
        let until = chrono::Utc::now() + pause;
        let last_error = self
            .last_failure
            .clone()
            .unwrap_or_else(|| "transform failures".into());
        tracing::warn!(
            view = %self.current.pipeline.view.name,
            version = self.current.id(),
            failed_batches = self.failed_streak,
            pause_ms = pause.as_millis() as u64,
            "view paused: {last_error}"
        );
        self.metrics.set_pause(Some(Pause {
            until: until.to_rfc3339(),
            consecutive_failed_batches: self.failed_streak,
            last_error,
        }));
        let resumed = tokio::select! {
            _ = tokio::time::sleep(pause) => true,
            _ = self.versions.changed() => {
                // A deploy or rollback ends the pause: the next batch tries the new version.
                self.failed_streak = 0;
                true
            }
            _ = shutdown.changed() => false,
        };
        self.metrics.set_pause(None);
        resumed
    }
}
