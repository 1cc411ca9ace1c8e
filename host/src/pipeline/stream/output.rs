//! The output stage: each batch's writes started in order (see [`write`]),
//! two on the wire at a time where they may overlap, and as each batch's
//! writes finish, in batch order, its rows appended to the offline log and
//! only then its offsets committed.
//!
//! [`write`]: super::write

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::write::{BatchWriter, Writing};
use super::{Counters, Prepared, StreamSettings, ViewStopped};
use crate::offline::log::OfflineLog;
use crate::online::{OnlineStore, WriteStats};
use crate::pipeline::dead_letter::DeadLetterSink;
use crate::pipeline::metrics::{Stage, ViewMetrics};
use crate::source::kafka::{Positions, TopicConsumer, advance};

/// How often the consumer-lag gauge is refreshed.
const LAG_INTERVAL: Duration = Duration::from_secs(5);

/// Most batches whose writes are on the wire at once. Two keep the store
/// busy: while one batch's replies come back and it is committed, the
/// next one's writes are already queued at the server.
const WRITES_IN_FLIGHT: usize = 2;

/// The output's state: where batches are written, what is uncommitted.
pub(super) struct Output {
    /// The view's name, for the log.
    view: String,
    writer: BatchWriter,
    /// The view's offline log, when it keeps one (behind a lock only so the
    /// loop stays `Sync`; the output is its one user).
    pub(super) offline: Option<Mutex<OfflineLog>>,
    /// Positions written but not yet committed (waiting for the offline log).
    pending: Positions,
    /// Every partition's next offset to write, as far as this member wrote:
    /// what the lag is measured from.
    written: Positions,
    metrics: Arc<ViewMetrics>,
    /// When the consumer lag was last asked for.
    lag_checked: Option<Instant>,
}

impl Output {
    pub(super) fn new(
        view: &str,
        store: Arc<dyn OnlineStore>,
        dead_letters: DeadLetterSink,
        metrics: Arc<ViewMetrics>,
        settings: StreamSettings,
    ) -> Self {
        Self {
            view: view.to_string(),
            writer: BatchWriter::new(view, store, dead_letters, Arc::clone(&metrics), settings),
            offline: None,
            pending: Positions::new(),
            written: Positions::new(),
            metrics,
            lag_checked: None,
        }
    }

    /// Writes the intake's batches in order until it stops sending them (or
    /// shutdown interrupts a write), then commits what is written.
    pub(super) async fn run(
        mut self,
        mut batches: mpsc::Receiver<Prepared>,
        consumer: Arc<TopicConsumer>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), ViewStopped> {
        let mut in_flight = VecDeque::new();
        let ended = self
            .write_in_order(&mut batches, &mut in_flight, &consumer, &shutdown)
            .await;
        batches.close();
        // Writes still on the wire end on their own (shutdown stops their
        // retries); after a failure they are stopped. Neither is committed.
        for writing in in_flight {
            if ended.is_err() {
                writing.task.abort();
            }
            let _ = writing.task.await;
        }
        ended?;
        self.commit_written(&consumer, true)
    }

    /// Starts each batch's writes as soon as the ones before it allow and
    /// finishes batches in order as their writes complete.
    async fn write_in_order(
        &mut self,
        batches: &mut mpsc::Receiver<Prepared>,
        in_flight: &mut VecDeque<Writing>,
        consumer: &TopicConsumer,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<(), ViewStopped> {
        // A batch received but not yet started: it waits for room.
        let mut next: Option<Prepared> = None;
        let mut open = true;
        loop {
            if let Some(batch) = next.take_if(|batch| has_room(in_flight, batch)) {
                in_flight.push_back(self.writer.start(batch, shutdown.clone()));
                continue;
            }
            if !open && next.is_none() && in_flight.is_empty() {
                // The intake sent its last batch, and every batch is written.
                return Ok(());
            }
            tokio::select! {
                biased;
                done = async { (&mut in_flight.front_mut().expect("not empty").task).await },
                    if !in_flight.is_empty() =>
                {
                    let writing = in_flight.pop_front().expect("not empty");
                    let written = match done {
                        Ok(Some(written)) => written,
                        // Shutdown came while a write was retried: that batch and
                        // the ones after it are read again after a restart.
                        Ok(None) => return Ok(()),
                        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                        Err(e) => panic!("a write task of view `{}` was cancelled: {e}", self.view),
                    };
                    self.finish(&writing.batch, written, consumer)?;
                }
                batch = batches.recv(), if open && next.is_none() => match batch {
                    Some(batch) => next = Some(batch),
                    None => open = false,
                },
                // While no batch comes (the view has caught up), the lag is
                // still refreshed, so it falls to 0 instead of keeping its
                // last value, and an offline log's files still rotate when
                // due, so what is written gets committed.
                _ = tokio::time::sleep(LAG_INTERVAL), if in_flight.is_empty() => {
                    self.commit_written(consumer, false)?;
                    self.refresh_lag(consumer);
                }
            }
        }
    }

    /// After `batch` is written: its rows appended to the offline log, its
    /// offsets committed (see [`Self::commit_written`]).
    fn finish(
        &mut self,
        batch: &Prepared,
        written: WriteStats,
        consumer: &TopicConsumer,
    ) -> Result<(), ViewStopped> {
        let metrics = Arc::clone(&self.metrics);
        let counters = Counters {
            view: &metrics,
            version: &batch.version.metrics,
        };
        let committing = Instant::now();
        if let Some(log) = &self.offline {
            let mut log = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for (piece, failures) in batch.pieces.iter().zip(batch.rows.failures()) {
                let skip: Vec<usize> = failures.iter().map(|f| f.batch_row).collect();
                tokio::task::block_in_place(|| log.append(&piece.transformed.checked, &skip))?;
            }
        }
        tracing::debug!(
            view = %batch.version.pipeline.view.name,
            version = batch.version.id(),
            events = batch.span.events,
            first = %batch.span.first,
            last = %batch.span.last,
            written = written.written,
            skipped = written.skipped_older,
            dead_letters = batch.letters.len(),
            "batch written"
        );
        advance(&mut self.pending, &batch.span.next_offsets);
        advance(&mut self.written, &batch.span.next_offsets);
        if let Some(newest) = batch
            .pieces
            .iter()
            .filter_map(|p| p.transformed.checked.event_time.iter().flatten().max())
            .max()
        {
            self.metrics.written_up_to(newest);
        }
        self.commit_written(consumer, false)?;
        counters.time(Stage::Commit, committing);
        self.refresh_lag(consumer);
        Ok(())
    }

    /// Commits what is written everywhere it must be: at once without an
    /// offline log; with one, when its files rotate (or `closing`).
    fn commit_written(
        &mut self,
        consumer: &TopicConsumer,
        closing: bool,
    ) -> Result<(), ViewStopped> {
        if let Some(log) = &self.offline {
            let mut log = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if !(closing || log.should_rotate()) {
                return Ok(());
            }
            let files = tokio::task::block_in_place(|| log.rotate())?;
            for file in &files {
                tracing::debug!(view = %self.view, file = %file.display(), "offline log file complete");
            }
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        match consumer.commit(&self.pending) {
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
                    view = %self.view,
                    "offsets not committed ({e}); the batch is written and a later commit covers its partitions"
                );
            }
        }
        self.pending.clear();
        Ok(())
    }

    /// Updates the consumer-lag gauge, at most every few seconds (it asks the broker).
    fn refresh_lag(&mut self, consumer: &TopicConsumer) {
        if self.lag_checked.is_some_and(|t| t.elapsed() < LAG_INTERVAL) {
            return;
        }
        self.lag_checked = Some(Instant::now());
        if let Some(lag) = tokio::task::block_in_place(|| consumer.lag(&self.written)) {
            self.metrics.set_lag(lag);
        }
    }
}

/// Whether `batch`'s writes may start now: nothing is on the wire, or
/// there is room and it and every batch on the wire may overlap.
fn has_room(in_flight: &VecDeque<Writing>, batch: &Prepared) -> bool {
    in_flight.is_empty()
        || (in_flight.len() < WRITES_IN_FLIGHT
            && batch.may_overlap()
            && in_flight.iter().all(|w| w.batch.may_overlap()))
}
