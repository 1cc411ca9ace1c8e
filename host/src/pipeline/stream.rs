//! The stream loop of one view: consume a batch, decode, apply the watermark,
//! transform, write newest-wins, and only then commit the batch's offsets.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Array, BooleanArray, RecordBatch};
use tokio::sync::watch;

use super::dead_letter::{DeadLetterKind, dead_letter};
use super::metrics::ViewMetrics;
use super::registry::ViewVersion;
use super::view::{TransformedBatch, ViewPipeline};
use super::watermark::Watermark;
use crate::format::JsonBatchBuilder;
use crate::offline::OfflineError;
use crate::offline::log::OfflineLog;
use crate::online::OnlineWriter;
use crate::repo::{KafkaSource, MessageFormat};
use crate::source::EventOrigin;
use crate::source::kafka::{Event, Positions, TopicConsumer, advance};
use crate::transform::TransformError;

/// Batching and retry settings of a stream loop.
#[derive(Debug, Clone, Copy)]
pub struct StreamSettings {
    /// Most messages in one batch.
    pub max_batch: usize,
    /// How long a batch waits for more messages after its first.
    pub linger: Duration,
    /// Attempts at transforming one batch before the view stops.
    pub transform_attempts: u32,
    /// Wait between attempts at a failed Redis write (doubles, up to 30 s).
    pub write_backoff: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            max_batch: 8192,
            linger: Duration::from_millis(100),
            transform_attempts: 3,
            write_backoff: Duration::from_millis(200),
        }
    }
}

/// Why a view's loop stopped before shutdown.
#[derive(Debug, thiserror::Error)]
pub enum ViewStopped {
    #[error("batch at {first} failed after {attempts} attempts: {error}")]
    Transform {
        first: EventOrigin,
        attempts: u32,
        error: Box<TransformError>,
    },
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("offline log: {0}")]
    Offline(#[from] OfflineError),
}

/// One view's running loop.
pub struct StreamLoop {
    /// The version transforming the batch in hand.
    current: Arc<ViewVersion>,
    /// Where newly activated versions arrive (see [`super::registry`]).
    versions: watch::Receiver<Arc<ViewVersion>>,
    pub kafka: KafkaSource,
    pub consumer: TopicConsumer,
    pub writer: OnlineWriter,
    pub metrics: Arc<ViewMetrics>,
    pub settings: StreamSettings,
    watermark: Watermark,
    /// The view's offline log, when it keeps one (behind a lock only so the
    /// loop stays `Sync`; the loop is its one user).
    offline: Option<std::sync::Mutex<OfflineLog>>,
    /// Positions written but not yet committed (waiting for the offline log).
    pending: Positions,
    /// When the consumer lag was last asked for.
    lag_checked: Option<std::time::Instant>,
}

/// How often the consumer-lag gauge is refreshed.
const LAG_INTERVAL: Duration = Duration::from_secs(5);

impl StreamLoop {
    pub fn new(
        mut versions: watch::Receiver<Arc<ViewVersion>>,
        kafka: KafkaSource,
        consumer: TopicConsumer,
        writer: OnlineWriter,
        metrics: Arc<ViewMetrics>,
        settings: StreamSettings,
    ) -> Self {
        let watermark = Watermark::new(kafka.watermark_delay);
        let current = versions.borrow_and_update().clone();
        Self {
            current,
            versions,
            kafka,
            consumer,
            writer,
            metrics,
            settings,
            watermark,
            offline: None,
            pending: Positions::new(),
            lag_checked: None,
        }
    }

    /// Also appends every written row to `log`; offsets are then committed
    /// only when the log's files are complete and durable.
    pub fn with_offline_log(mut self, log: OfflineLog) -> Self {
        self.offline = Some(std::sync::Mutex::new(log));
        self
    }

    /// The pipeline of the active version.
    pub fn pipeline(&self) -> &ViewPipeline {
        &self.current.pipeline
    }

    /// Switches to a newly activated version, between two batches: the batch
    /// about to be processed is the first one it transforms.
    fn take_new_version(&mut self, events: &[Event]) {
        if !self.versions.has_changed().unwrap_or(false) {
            return;
        }
        let next = self.versions.borrow_and_update().clone();
        tracing::info!(
            view = %self.current.pipeline.view.name,
            from = self.current.id(),
            to = next.id(),
            first = %events[0].origin,
            "new version active from this batch on"
        );
        self.current = next;
    }

    /// Runs until `shutdown` turns true (after finishing the batch in hand) or the view fails.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), ViewStopped> {
        let view = self.current.pipeline.view.name.clone();
        tracing::info!(view, topic = %self.kafka.topic, version = self.current.pipeline.version(), "stream view started");
        loop {
            let events = self
                .consumer
                .next_batch(self.settings.max_batch, self.settings.linger, &mut shutdown)
                .await?;
            if events.is_empty() {
                break;
            }
            self.take_new_version(&events);
            if !self.process(&events, &mut shutdown).await? {
                break;
            }
            advance(&mut self.pending, &events);
            self.commit_written(false)?;
            self.refresh_lag();
        }
        self.commit_written(true)?;
        tracing::info!(view, "stream view drained and stopped");
        Ok(())
    }

    /// Updates the consumer-lag gauge, at most every few seconds (it asks the broker).
    fn refresh_lag(&mut self) {
        if self.lag_checked.is_some_and(|t| t.elapsed() < LAG_INTERVAL) {
            return;
        }
        self.lag_checked = Some(std::time::Instant::now());
        if let Some(lag) = tokio::task::block_in_place(|| self.consumer.lag()) {
            self.metrics
                .consumer_lag
                .store(lag.max(0) as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Commits what is written everywhere it must be: at once without an
    /// offline log; with one, when its files rotate (or `closing`).
    fn commit_written(&mut self, closing: bool) -> Result<(), ViewStopped> {
        if let Some(log) = &self.offline {
            let mut log = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if !(closing || log.should_rotate()) {
                return Ok(());
            }
            let files = tokio::task::block_in_place(|| log.rotate())?;
            for file in &files {
                tracing::debug!(view = %self.current.pipeline.view.name, file = %file.display(), "offline log file complete");
            }
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        self.consumer.commit(&self.pending)?;
        self.pending.clear();
        ViewMetrics::add(&self.metrics.commits, 1);
        Ok(())
    }

    /// Handles one batch end to end. `Ok(false)`: shutdown came while the
    /// write was being retried, so nothing may be committed.
    async fn process(
        &mut self,
        events: &[Event],
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<bool, ViewStopped> {
        let metrics = self.metrics.clone();
        ViewMetrics::add(&metrics.messages, events.len() as u64);
        ViewMetrics::add(&metrics.batches, 1);
        let (input, origins) = self.decode(events);
        let transformed = self.transform_with_retries(input, events).await?;
        for rejected in &transformed.rejected {
            if let Some(&index) = origins.get(rejected.row) {
                let event = &events[index];
                dead_letter(
                    &self.current.pipeline.view.name,
                    DeadLetterKind::Rejected,
                    &event.origin,
                    &rejected.reason,
                    event.payload.as_deref(),
                );
            }
        }
        ViewMetrics::add(
            &metrics.rejected_by_transform,
            transformed.rejected.len() as u64,
        );
        ViewMetrics::add(&metrics.rows_out, transformed.checked.rows as u64);

        let (rows, failures) = self.current.pipeline.online_rows(&transformed.checked);
        for failure in &failures {
            tracing::warn!(
                target: "fvhost::dead_letter",
                view = %self.current.pipeline.view.name,
                kind = "unwritable_row",
                batch_first = %events[0].origin,
                batch_last = %events[events.len() - 1].origin,
                output_row = failure.batch_row,
                "{}", failure.reason
            );
        }
        ViewMetrics::add(&metrics.unwritable_rows, failures.len() as u64);

        let mut backoff = self.settings.write_backoff;
        loop {
            match self
                .writer
                .write(&self.current.pipeline.fields, &rows)
                .await
            {
                Ok(stats) => {
                    if let Some(log) = &self.offline {
                        let mut log = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                        let skip: Vec<usize> = failures.iter().map(|f| f.batch_row).collect();
                        tokio::task::block_in_place(|| log.append(&transformed.checked, &skip))?;
                    }
                    ViewMetrics::add(&metrics.keys_written, stats.written);
                    ViewMetrics::add(&metrics.keys_skipped_older, stats.skipped_older);
                    tracing::debug!(
                        view = %self.current.pipeline.view.name,
                        version = self.current.id(),
                        events = events.len(),
                        first = %events[0].origin,
                        last = %events[events.len() - 1].origin,
                        written = stats.written,
                        skipped = stats.skipped_older,
                        "batch written"
                    );
                    return Ok(true);
                }
                Err(e) => {
                    tracing::error!(view = %self.current.pipeline.view.name, retry_in_ms = backoff.as_millis() as u64, "{e}; nothing committed, retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return Ok(false),
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Decodes messages into one batch; bad ones are dead-lettered, late ones
    /// too. Returns the batch and, per row, the index of its event.
    fn decode(&mut self, events: &[Event]) -> (RecordBatch, Vec<usize>) {
        let view = self.current.pipeline.view.name.clone();
        let MessageFormat::Json { schema } = &self.kafka.format;
        let required: Vec<String> = self
            .current
            .pipeline
            .schema
            .join_keys
            .iter()
            .map(|k| k.name.clone())
            .chain(std::iter::once(
                self.current.pipeline.source.timestamp_field.clone(),
            ))
            .collect();
        let mut builder = JsonBatchBuilder::new(
            schema,
            &self.current.pipeline.source.field_mapping,
            &required,
        );
        let mut origins = Vec::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            let result = match &event.payload {
                Some(payload) => builder.append(payload),
                None => Err(crate::format::RowError {
                    field: None,
                    reason: "message has no payload".into(),
                }),
            };
            match result {
                Ok(()) => origins.push(index),
                Err(e) => {
                    ViewMetrics::add(&self.metrics.decode_errors, 1);
                    dead_letter(
                        &view,
                        DeadLetterKind::Decode,
                        &event.origin,
                        &e.to_string(),
                        event.payload.as_deref(),
                    );
                }
            }
        }
        let batch = match builder.finish() {
            Ok(batch) => batch,
            Err(e) => {
                // Every cell was type-checked on append, so this is a bug, not bad input.
                tracing::error!(view, "cannot assemble the decoded batch: {e}");
                RecordBatch::new_empty(builder.schema().clone())
            }
        };
        self.apply_watermark(batch, origins, events)
    }

    fn apply_watermark(
        &mut self,
        batch: RecordBatch,
        origins: Vec<usize>,
        events: &[Event],
    ) -> (RecordBatch, Vec<usize>) {
        let Some(times) = batch
            .column_by_name(&self.current.pipeline.source.timestamp_field)
            .and_then(|c| {
                c.as_any()
                    .downcast_ref::<arrow_array::TimestampMicrosecondArray>()
            })
        else {
            return (batch, origins);
        };
        let keep: Vec<bool> = (0..batch.num_rows())
            .map(|row| times.is_null(row) || self.watermark.admit(times.value(row)))
            .collect();
        if keep.iter().all(|k| *k) {
            return (batch, origins);
        }
        let mut kept_origins = Vec::with_capacity(origins.len());
        for (row, &index) in origins.iter().enumerate() {
            if keep[row] {
                kept_origins.push(index);
            } else {
                ViewMetrics::add(&self.metrics.late_events, 1);
                let event = &events[index];
                let reason = format!(
                    "event time is behind the watermark (delay {:?})",
                    self.kafka.watermark_delay.unwrap_or_default()
                );
                dead_letter(
                    &self.current.pipeline.view.name,
                    DeadLetterKind::Late,
                    &event.origin,
                    &reason,
                    event.payload.as_deref(),
                );
            }
        }
        match arrow_select::filter::filter_record_batch(&batch, &BooleanArray::from(keep)) {
            Ok(filtered) => (filtered, kept_origins),
            Err(e) => {
                tracing::error!(view = %self.current.pipeline.view.name, "cannot filter late events: {e}");
                (batch, origins)
            }
        }
    }

    async fn transform_with_retries(
        &self,
        input: RecordBatch,
        events: &[Event],
    ) -> Result<TransformedBatch, ViewStopped> {
        let attempts = self.settings.transform_attempts.max(1);
        let mut last_error = None;
        for attempt in 1..=attempts {
            let pipeline = self.current.pipeline.clone();
            let batch = input.clone();
            let result = tokio::task::spawn_blocking(move || pipeline.transform(&batch))
                .await
                .unwrap_or_else(|e| {
                    Err(TransformError::Trap(format!(
                        "transform thread panicked: {e}"
                    )))
                });
            match result {
                Ok(transformed) => return Ok(transformed),
                Err(e) => {
                    ViewMetrics::add(&self.metrics.batch_failures, 1);
                    tracing::error!(
                        view = %self.current.pipeline.view.name,
                        version = self.current.pipeline.version(),
                        attempt,
                        of = attempts,
                        first = %events[0].origin,
                        last = %events[events.len() - 1].origin,
                        "batch failed: {e}"
                    );
                    last_error = Some(e);
                }
            }
        }
        Err(ViewStopped::Transform {
            first: events[0].origin.clone(),
            attempts,
            error: Box::new(
                last_error.unwrap_or_else(|| TransformError::Trap("no attempt ran".into())),
            ),
        })
    }
}
