//! One batch's writes, on a task of their own so the output can put the
//! next batch's on the wire while this one's replies are still coming
//! back: the dead letters stored, then the online rows written newer-wins
//! (or a windowed view's window states updated), each retried until its
//! destination takes it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::encode::BatchRows;
use super::{Counters, Prepared, StreamSettings};
use crate::aggregate::{EntityEvent, WindowStats, apply_events, state_field};
use crate::online::{OnlineRow, OnlineStore, WriteStats};
use crate::pipeline::dead_letter::{DeadLetter, DeadLetterSink};
use crate::pipeline::metrics::{Stage, ViewMetrics};

/// Where a view's batches are written; cloned into each batch's task.
#[derive(Clone)]
pub(super) struct BatchWriter {
    /// The view's name, for the log.
    view: Arc<str>,
    store: Arc<dyn OnlineStore>,
    /// Where events the view cannot apply go.
    dead_letters: DeadLetterSink,
    metrics: Arc<ViewMetrics>,
    settings: StreamSettings,
}

/// A batch being written: `None` from the task if shutdown came first.
pub(super) struct Writing {
    pub(super) batch: Arc<Prepared>,
    pub(super) task: JoinHandle<Option<WriteStats>>,
}

impl BatchWriter {
    pub(super) fn new(
        view: &str,
        store: Arc<dyn OnlineStore>,
        dead_letters: DeadLetterSink,
        metrics: Arc<ViewMetrics>,
        settings: StreamSettings,
    ) -> Self {
        Self {
            view: view.into(),
            store,
            dead_letters,
            metrics,
            settings,
        }
    }

    /// Starts writing `batch` on a task of its own.
    pub(super) fn start(&self, batch: Prepared, shutdown: watch::Receiver<bool>) -> Writing {
        let batch = Arc::new(batch);
        let writer = self.clone();
        let task = tokio::spawn({
            let batch = Arc::clone(&batch);
            async move { writer.write(&batch, shutdown).await }
        });
        Writing { batch, task }
    }

    /// Writes `batch` everywhere it goes and counts it; `None` if shutdown
    /// came while a write was retried (then nothing of it is committed).
    async fn write(
        &self,
        batch: &Prepared,
        mut shutdown: watch::Receiver<bool>,
    ) -> Option<WriteStats> {
        let counters = Counters {
            view: &self.metrics,
            version: &batch.version.metrics,
        };
        let writing = Instant::now();
        self.store_dead_letters(&counters, &batch.letters, &mut shutdown)
            .await?;
        let mut written = WriteStats::default();
        match &batch.rows {
            BatchRows::Entities(pieces) => {
                for piece in pieces {
                    written += self.write_rows(batch, &piece.rows, &mut shutdown).await?;
                }
            }
            BatchRows::Windows { events, .. } => {
                let stats = self.write_windows(batch, events, &mut shutdown).await?;
                counters.add(|m| &m.window_events_replayed, stats.events_replayed);
                counters.add(|m| &m.window_events_expired, stats.events_expired);
                written.written += stats.keys_written;
            }
        }
        counters.add(|m| &m.keys_written, written.written);
        counters.add(|m| &m.keys_skipped_older, written.skipped_older);
        counters.time(Stage::Write, writing);
        Some(written)
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
    /// until it takes them; `None` if shutdown came first.
    async fn store_dead_letters(
        &self,
        counters: &Counters<'_>,
        letters: &[DeadLetter],
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<()> {
        self.retry(shutdown, || self.dead_letters.send(letters))
            .await?;
        counters.add(|m| &m.dead_letters, letters.len() as u64);
        Some(())
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
}

impl Prepared {
    /// Whether this batch's writes may be on the wire beside another
    /// batch's. Newest rows may: each store call is a newer-wins write of
    /// whole keys. A windowed view's may not: its updates read the window
    /// states the batch before it writes.
    pub(super) fn may_overlap(&self) -> bool {
        matches!(self.rows, BatchRows::Entities(_))
    }
}
