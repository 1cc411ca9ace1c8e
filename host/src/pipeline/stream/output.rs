//! The output stage: a transformed batch's dead letters stored, its online
//! rows written newer-wins (retried until the store takes them), its rows
//! appended to the offline log, and only then its offsets committed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::encode::BatchRows;
use super::{Counters, Prepared, StreamSettings, ViewStopped};
use crate::aggregate::{EntityEvent, WindowStats, apply_events, state_field};
use crate::offline::log::OfflineLog;
use crate::online::{OnlineRow, OnlineStore, WriteStats};
use crate::pipeline::dead_letter::{DeadLetter, DeadLetterSink};
use crate::pipeline::metrics::{Stage, ViewMetrics};
use crate::source::kafka::{Positions, TopicConsumer, advance};

/// How often the consumer-lag gauge is refreshed.
const LAG_INTERVAL: Duration = Duration::from_secs(5);

/// The output's state: where rows and dead letters go, what is uncommitted.
pub(super) struct Output {
    /// The view's name, for the log.
    view: String,
    store: Arc<dyn OnlineStore>,
    /// Where events the view cannot apply go.
    dead_letters: DeadLetterSink,
    /// The view's offline log, when it keeps one (behind a lock only so the
    /// loop stays `Sync`; the output is its one user).
    pub(super) offline: Option<Mutex<OfflineLog>>,
    /// Positions written but not yet committed (waiting for the offline log).
    pending: Positions,
    /// Every partition's next offset to write, as far as this member wrote:
    /// what the lag is measured from.
    written: Positions,
    metrics: Arc<ViewMetrics>,
    settings: StreamSettings,
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
            store,
            dead_letters,
            offline: None,
            pending: Positions::new(),
            written: Positions::new(),
            metrics,
            settings,
            lag_checked: None,
        }
    }

    /// Writes the intake's batches in order until it stops sending them (or
    /// shutdown interrupts a write), then commits what is written.
    pub(super) async fn run(
        mut self,
        mut batches: mpsc::Receiver<Prepared>,
        consumer: Arc<TopicConsumer>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), ViewStopped> {
        loop {
            // While no batch comes (the view has caught up), the lag is still
            // refreshed, so it falls to 0 instead of keeping its last value.
            let batch = tokio::select! {
                batch = batches.recv() => batch,
                _ = tokio::time::sleep(LAG_INTERVAL) => {
                    self.refresh_lag(&consumer);
                    continue;
                }
            };
            let Some(batch) = batch else { break };
            if !self.write(batch, &consumer, &mut shutdown).await? {
                // Nothing more is written or committed: the batches in hand
                // are read again after a restart.
                break;
            }
        }
        batches.close();
        self.commit_written(&consumer, true)
    }

    /// Writes `batch` everywhere it goes, then commits what is written.
    /// `Ok(false)`: shutdown came while a write was retried, so nothing was committed.
    async fn write(
        &mut self,
        batch: Prepared,
        consumer: &TopicConsumer,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<bool, ViewStopped> {
        let metrics = Arc::clone(&self.metrics);
        let counters = Counters {
            view: &metrics,
            version: &batch.version.metrics,
        };
        let writing = Instant::now();
        if !self
            .store_dead_letters(&counters, &batch.letters, shutdown)
            .await
        {
            return Ok(false);
        }
        let mut written = WriteStats::default();
        match &batch.rows {
            BatchRows::Entities(pieces) => {
                for piece in pieces {
                    let Some(stats) = self.write_rows(&batch, &piece.rows, shutdown).await else {
                        return Ok(false);
                    };
                    written += stats;
                }
            }
            BatchRows::Windows { events, .. } => {
                let Some(stats) = self.write_windows(&batch, events, shutdown).await else {
                    return Ok(false);
                };
                counters.add(|m| &m.window_events_replayed, stats.events_replayed);
                counters.add(|m| &m.window_events_expired, stats.events_expired);
                written.written += stats.keys_written;
            }
        }
        if let Some(log) = &self.offline {
            let mut log = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for (piece, failures) in batch.pieces.iter().zip(batch.rows.failures()) {
                let skip: Vec<usize> = failures.iter().map(|f| f.batch_row).collect();
                tokio::task::block_in_place(|| log.append(&piece.transformed.checked, &skip))?;
            }
        }
        counters.add(|m| &m.keys_written, written.written);
        counters.add(|m| &m.keys_skipped_older, written.skipped_older);
        counters.time(Stage::Write, writing);
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
        let committing = Instant::now();
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
        Ok(true)
    }

    /// Writes one piece's rows, retrying until the store takes them;
    /// `None` if shutdown came first.
    async fn write_rows(
        &self,
        batch: &Prepared,
        rows: &[OnlineRow],
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<WriteStats> {
        let fields = &batch.version.pipeline.fields;
        self.retry(shutdown, || self.store.write(fields, rows))
            .await
    }

    /// Applies a windowed view's events, retrying until the store takes
    /// them; `None` if shutdown came first.
    async fn write_windows(
        &self,
        batch: &Prepared,
        events: &[EntityEvent],
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<WindowStats> {
        let pipeline = &batch.version.pipeline;
        let plan = pipeline.window.as_ref()?;
        let state_field = state_field(&pipeline.view.name);
        let store = self.store.as_ref();
        self.retry(shutdown, || {
            apply_events(store, plan, &pipeline.fields, &state_field, events)
        })
        .await
    }

    /// Sends the batch's dead letters to the view's destination, retrying
    /// until it takes them; `false` if shutdown came first (nothing is committed then).
    async fn store_dead_letters(
        &self,
        counters: &Counters<'_>,
        letters: &[DeadLetter],
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let sent = self
            .retry(shutdown, || self.dead_letters.send(letters))
            .await;
        if sent.is_some() {
            counters.add(|m| &m.dead_letters, letters.len() as u64);
        }
        sent.is_some()
    }

    /// Runs `attempt` until it succeeds, waiting between failures (the
    /// settings' backoff, doubling up to 30 s); nothing is committed
    /// meanwhile. `None` if shutdown came first.
    async fn retry<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
        &self,
        shutdown: &mut watch::Receiver<bool>,
        mut attempt: impl FnMut() -> F,
    ) -> Option<T> {
        let mut backoff = self.settings.write_backoff;
        loop {
            match attempt().await {
                Ok(value) => return Some(value),
                Err(e) => {
                    ViewMetrics::add(&self.metrics.store_write_errors, 1);
                    ViewMetrics::add_time(&self.metrics.store_retry_micros, backoff);
                    tracing::error!(view = %self.view, retry_in_ms = backoff.as_millis() as u64, "{e}; nothing committed, retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return None,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
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
