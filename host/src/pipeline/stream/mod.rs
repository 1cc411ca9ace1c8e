//! The stream loop of one view: consume a batch, decode, apply the watermark,
//! transform, write newest-wins, store the dead letters, and only then commit
//! the batch's offsets.
//!
//! - [`decode`]: messages into an Arrow batch, watermark;
//! - [`transform`]: slots, retries, narrowing a failing batch down.

mod decode;
mod transform;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::dead_letter::{DeadLetter, DeadLetterContext, DeadLetterKind, DeadLetterSink};
use super::fairness::TransformSlots;
use super::metrics::{Pause, ViewMetrics};
use super::version::ViewVersion;
use super::view::ViewPipeline;
use super::watermark::Watermark;
use crate::offline::OfflineError;
use crate::offline::log::OfflineLog;
use crate::online::OnlineWriter;
use crate::repo::KafkaSource;
use crate::source::kafka::{Event, Positions, TopicConsumer, advance};

/// Batching and retry settings of a stream loop.
#[derive(Debug, Clone, Copy)]
pub struct StreamSettings {
    /// Most messages in one batch.
    pub max_batch: usize,
    /// How long a batch waits for more messages after its first.
    pub linger: Duration,
    /// Attempts at transforming one batch before its failure is narrowed
    /// down and its events are dead-lettered.
    pub transform_attempts: u32,
    /// Most extra transform calls spent narrowing a failed batch down to the
    /// events that cause the failure (a single bad event in 8192 takes 26).
    pub narrowing_calls: u32,
    /// Wait between attempts at a failed Redis or dead-letter write (doubles, up to 30 s).
    pub write_backoff: Duration,
    /// Batches in a row with dead-lettered failures before the view pauses.
    pub pause_after_failed_batches: u32,
    /// First pause; doubles with each further failed batch, up to `max_pause`.
    pub pause: Duration,
    pub max_pause: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            max_batch: 8192,
            linger: Duration::from_millis(100),
            transform_attempts: 3,
            narrowing_calls: 32,
            write_backoff: Duration::from_millis(200),
            pause_after_failed_batches: 3,
            pause: Duration::from_secs(5),
            // Below librdkafka's max.poll.interval.ms (300 s), so a paused
            // view keeps its partitions.
            max_pause: Duration::from_secs(120),
        }
    }
}

/// Why a view's loop stopped before shutdown.
#[derive(Debug, thiserror::Error)]
pub enum ViewStopped {
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
    /// Where events the view cannot apply go.
    dead_letters: DeadLetterSink,
    /// Transform calls in flight, shared fairly with the tenant's and the host's other views.
    slots: TransformSlots,
    /// Batches in a row that had to dead-letter a transform failure.
    failed_streak: u32,
    /// The last of those failures, for the pause's status.
    last_failure: Option<String>,
    /// When the consumer lag was last asked for.
    lag_checked: Option<std::time::Instant>,
}

/// How often the consumer-lag gauge is refreshed.
const LAG_INTERVAL: Duration = Duration::from_secs(5);

/// Where a view's events come from and where they go.
pub struct ViewEnds {
    pub kafka: KafkaSource,
    pub consumer: TopicConsumer,
    pub writer: OnlineWriter,
    pub dead_letters: DeadLetterSink,
}

impl StreamLoop {
    pub fn new(
        mut versions: watch::Receiver<Arc<ViewVersion>>,
        ends: ViewEnds,
        metrics: Arc<ViewMetrics>,
        settings: StreamSettings,
        slots: TransformSlots,
    ) -> Self {
        let ViewEnds {
            kafka,
            consumer,
            writer,
            dead_letters,
        } = ends;
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
            dead_letters,
            slots,
            failed_streak: 0,
            last_failure: None,
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
            if !self.pause_if_failing(&mut shutdown).await {
                break;
            }
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
        match self.consumer.commit(&self.pending) {
            Ok(()) => ViewMetrics::add(&self.metrics.commits, 1),
            // The batch is written; only its offsets are not recorded. They
            // are not retried either: after a rebalance they may belong to
            // another member, and a later batch's commit covers the partitions
            // this member still reads. Events of a lost commit are read again
            // after a restart or rebalance and rewritten, which newer-wins
            // writes make harmless.
            Err(e) => {
                ViewMetrics::add(&self.metrics.commit_failures, 1);
                tracing::warn!(
                    view = %self.current.pipeline.view.name,
                    "offsets not committed ({e}); the batch is written and a later commit covers its partitions"
                );
            }
        }
        self.pending.clear();
        Ok(())
    }

    /// Counts `n` on the view and on the version handling the batch.
    fn count(&self, counter: fn(&ViewMetrics) -> &std::sync::atomic::AtomicU64, n: u64) {
        ViewMetrics::add(counter(&self.metrics), n);
        ViewMetrics::add(counter(&self.current.metrics), n);
    }

    fn letters(&self) -> DeadLetterContext<'_> {
        self.current.pipeline.dead_letter_context()
    }

    /// Handles one batch end to end. `Ok(false)`: shutdown came while the
    /// transform or a write was being retried, so nothing may be committed.
    async fn process(
        &mut self,
        events: &[Event],
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<bool, ViewStopped> {
        self.count(|m| &m.messages, events.len() as u64);
        self.count(|m| &m.batches, 1);
        let mut letters = Vec::new();
        let (input, origins) = self.decode(events, &mut letters);
        let Some(pieces) = self
            .transform(input, &origins, events, &mut letters, shutdown)
            .await
        else {
            tracing::info!(view = %self.current.pipeline.view.name, first = %events[0].origin, "shutdown during the batch's transform: left uncommitted, to be read again");
            return Ok(false);
        };
        let mut rows = Vec::new();
        for piece in &pieces {
            self.count(|m| &m.rows_out, piece.transformed.checked.rows as u64);
            let (piece_rows, failures) = self
                .current
                .pipeline
                .online_rows(&piece.transformed.checked);
            self.report_unwritable(events, &failures);
            rows.push((piece_rows, failures));
        }

        if !self.store_dead_letters(&letters, shutdown).await {
            return Ok(false);
        }
        let mut backoff = self.settings.write_backoff;
        let mut written = crate::online::WriteStats::default();
        for (piece, (piece_rows, failures)) in pieces.iter().zip(&rows) {
            loop {
                match self
                    .writer
                    .write(&self.current.pipeline.fields, piece_rows)
                    .await
                {
                    Ok(stats) => {
                        written.written += stats.written;
                        written.skipped_older += stats.skipped_older;
                        break;
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
            if let Some(log) = &self.offline {
                let mut log = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let skip: Vec<usize> = failures.iter().map(|f| f.batch_row).collect();
                tokio::task::block_in_place(|| log.append(&piece.transformed.checked, &skip))?;
            }
        }
        self.count(|m| &m.keys_written, written.written);
        self.count(|m| &m.keys_skipped_older, written.skipped_older);
        tracing::debug!(
            view = %self.current.pipeline.view.name,
            version = self.current.id(),
            events = events.len(),
            first = %events[0].origin,
            last = %events[events.len() - 1].origin,
            written = written.written,
            skipped = written.skipped_older,
            dead_letters = letters.len(),
            "batch written"
        );
        Ok(true)
    }

    /// Output rows that cannot become online rows are logged with their
    /// batch and counted: which input event produced an output row is the
    /// transform's business, so they cannot be dead-lettered as events.
    fn report_unwritable(&self, events: &[Event], failures: &[crate::online::RowFailure]) {
        for failure in failures {
            tracing::warn!(
                target: "fvhost::dead_letter",
                view = %self.current.pipeline.view.name,
                kind = DeadLetterKind::Unwritable.as_str(),
                batch_first = %events[0].origin,
                batch_last = %events[events.len() - 1].origin,
                output_row = failure.batch_row,
                "{}", failure.reason
            );
        }
        self.count(|m| &m.unwritable_rows, failures.len() as u64);
    }

    /// Sends the batch's dead letters to the view's destination, retrying
    /// until it takes them; `false` if shutdown came first (nothing is committed then).
    async fn store_dead_letters(
        &self,
        letters: &[DeadLetter],
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let mut backoff = self.settings.write_backoff;
        loop {
            match self.dead_letters.send(letters).await {
                Ok(()) => {
                    self.count(|m| &m.dead_letters, letters.len() as u64);
                    return true;
                }
                Err(e) => {
                    tracing::error!(view = %self.current.pipeline.view.name, retry_in_ms = backoff.as_millis() as u64, "{e}; nothing committed, retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return false,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// After a batch whose transform failures were dead-lettered: once that
    /// happened `pause_after_failed_batches` times in a row, waits (doubling
    /// each time, up to `max_pause`) before the next batch, and shows the
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
