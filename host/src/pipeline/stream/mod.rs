//! The stream loop of one view, in two stages that overlap: while the
//! [`output`] writes batch N (dead letters, online rows newer-wins, the
//! offline log) and commits its offsets, the [`intake`] consumes batch N+1,
//! decodes it, applies the watermark, transforms it and encodes its rows.
//! At most one batch is ahead of the output, so memory stays flat, and
//! offsets are committed in batch order, each only after its batch is
//! written.
//!
//! - [`intake`]: polling, pausing a failing view, picking up new versions;
//! - [`decode`]: messages into an Arrow batch, watermark;
//! - [`transform`]: slots, retries, narrowing a failing batch down;
//! - [`encode`]: online rows (or a windowed view's events) built for the output;
//! - [`output`]: dead letters, writes with retries, the offline log, commits.

mod decode;
mod encode;
mod intake;
mod output;
mod transform;
mod write;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::sync::watch;

use super::dead_letter::{DeadLetter, DeadLetterSink};
use super::fairness::TransformSlots;
use super::metrics::{Stage, ViewMetrics};
use super::processor::Piece;
use super::version::ViewVersion;
use super::view::ViewPipeline;
use crate::offline::OfflineError;
use crate::offline::log::OfflineLog;
use crate::online::OnlineStore;
use crate::repo::KafkaSource;
use crate::source::kafka::TopicConsumer;
use encode::{BatchRows, BatchSpan};
use intake::Intake;
use output::Output;

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

/// Where a view's events come from and where they go.
pub struct ViewEnds {
    pub kafka: KafkaSource,
    pub consumer: TopicConsumer,
    pub store: Arc<dyn OnlineStore>,
    pub dead_letters: DeadLetterSink,
}

/// A batch decoded, transformed and encoded by the intake, for the output
/// to write.
struct Prepared {
    /// Where its events lie in the topic.
    span: BatchSpan,
    /// The version that transformed it: its counters count the batch.
    version: Arc<ViewVersion>,
    letters: Vec<DeadLetter>,
    /// The transform's output, for the offline log.
    pieces: Vec<Piece>,
    /// What goes to the online store.
    rows: BatchRows,
}

/// A view's counters and those of the version handling a batch: every
/// batch counter is counted on both.
struct Counters<'a> {
    view: &'a ViewMetrics,
    version: &'a ViewMetrics,
}

impl Counters<'_> {
    fn add(&self, counter: fn(&ViewMetrics) -> &AtomicU64, n: u64) {
        ViewMetrics::add(counter(self.view), n);
        ViewMetrics::add(counter(self.version), n);
    }

    /// Times `stage` from `since`: the view's counter and histogram, the version's counter.
    fn time(&self, stage: Stage, since: std::time::Instant) {
        let elapsed = since.elapsed();
        self.view.time_stage(stage, elapsed);
        ViewMetrics::add_time(stage.micros(self.version), elapsed);
    }
}

/// One view's running loop.
pub struct StreamLoop {
    intake: Intake,
    output: Output,
    consumer: TopicConsumer,
}

impl StreamLoop {
    pub fn new(
        versions: watch::Receiver<Arc<ViewVersion>>,
        ends: ViewEnds,
        metrics: Arc<ViewMetrics>,
        settings: StreamSettings,
        slots: TransformSlots,
    ) -> Self {
        let ViewEnds {
            kafka,
            consumer,
            store,
            dead_letters,
        } = ends;
        let intake = Intake::new(versions, kafka, Arc::clone(&metrics), settings, slots);
        let output = Output::new(
            &intake.pipeline().view.name,
            store,
            dead_letters,
            metrics,
            settings,
        );
        Self {
            intake,
            output,
            consumer,
        }
    }

    /// Also appends every written row to `log`; offsets are then committed
    /// only when the log's files are complete and durable.
    pub fn with_offline_log(mut self, log: OfflineLog) -> Self {
        self.output.offline = Some(std::sync::Mutex::new(log));
        self
    }

    /// The pipeline of the active version.
    pub fn pipeline(&self) -> &ViewPipeline {
        self.intake.pipeline()
    }

    /// Runs until `shutdown` turns true (after writing the batches in hand)
    /// or the view fails. The output runs as its own task, so a batch's
    /// write and the next batch's decode and transform use two cores.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Result<(), ViewStopped> {
        let Self {
            mut intake,
            output,
            consumer,
        } = self;
        let view = intake.pipeline().view.name.clone();
        tracing::info!(view, topic = %intake.kafka.topic, version = intake.pipeline().version(), "stream view started");
        let consumer = Arc::new(consumer);
        // One slot: the intake reserves it before it consumes a batch, so
        // it is never more than one batch ahead of the output.
        let (to_output, batches) = tokio::sync::mpsc::channel(1);
        let output = tokio::spawn(output.run(batches, Arc::clone(&consumer), shutdown.clone()));
        let read = intake.run(&consumer, to_output, shutdown).await;
        let written = match output.await {
            Ok(written) => written,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("the output stage of view `{view}` was cancelled: {e}"),
        };
        read.and(written)?;
        tracing::info!(view, "stream view drained and stopped");
        Ok(())
    }
}
