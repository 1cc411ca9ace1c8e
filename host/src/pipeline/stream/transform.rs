//! Transforming a batch: a slot, a blocking thread, retries, and narrowing
//! a failing batch down to the events that make it fail.

use arrow_array::RecordBatch;
use tokio::sync::watch;

use super::StreamLoop;
use crate::pipeline::dead_letter::{DeadLetter, DeadLetterKind};
use crate::pipeline::view::TransformedBatch;
use crate::source::kafka::Event;
use crate::transform::TransformError;

impl StreamLoop {
    /// One call of the active version's transform on a blocking thread,
    /// once a transform slot is free.
    async fn transform_once(&self, input: RecordBatch) -> Result<TransformedBatch, TransformError> {
        let _slot = self.slots.acquire().await;
        let pipeline = self.current.pipeline.clone();
        tokio::task::spawn_blocking(move || pipeline.transform(&input))
            .await
            .unwrap_or_else(|e| {
                Err(TransformError::Trap(format!(
                    "transform thread panicked: {e}"
                )))
            })
    }

    /// Transforms the batch. A failing batch is retried; if it still fails,
    /// it is split in halves and each half tried again (within
    /// `narrowing_calls`), so events beside a bad one are still written. The
    /// events whose rows could not be transformed become dead letters.
    /// `None`: shutdown came before the batch was done, so it is left
    /// uncommitted rather than retried (a call in flight ends within its
    /// time limit; none is started after shutdown).
    pub(super) async fn transform(
        &mut self,
        input: RecordBatch,
        origins: &[usize],
        events: &[Event],
        letters: &mut Vec<DeadLetter>,
        shutdown: &watch::Receiver<bool>,
    ) -> Option<Vec<Piece>> {
        if input.num_rows() == 0 {
            // Every message was set aside already: nothing to transform.
            return Some(Vec::new());
        }
        let attempts = self.settings.transform_attempts.max(1);
        let mut error = None;
        for attempt in 1..=attempts {
            if *shutdown.borrow() {
                return None;
            }
            match self.transform_once(input.clone()).await {
                Ok(transformed) => {
                    self.failed_streak = 0;
                    return Some(vec![Piece {
                        first_row: 0,
                        transformed,
                    }]);
                }
                Err(e) => {
                    self.count(|m| &m.batch_failures, 1);
                    tracing::error!(
                        view = %self.current.pipeline.view.name,
                        version = self.current.id(),
                        attempt,
                        of = attempts,
                        first = %events[0].origin,
                        last = %events[events.len() - 1].origin,
                        "batch failed: {e}"
                    );
                    error = Some(e);
                }
            }
        }
        let error = error.unwrap_or_else(|| TransformError::Trap("no attempt ran".into()));
        let (pieces, failed) = self.narrow(&input, error, shutdown).await?;
        let mut failed_rows = 0;
        for (rows, reason) in &failed {
            for row in rows.clone() {
                if let Some(&index) = origins.get(row) {
                    letters.push(self.letters().letter(
                        DeadLetterKind::BatchFailed,
                        &events[index],
                        reason,
                    ));
                    failed_rows += 1;
                }
            }
        }
        tracing::warn!(
            view = %self.current.pipeline.view.name,
            version = self.current.id(),
            failed_rows,
            transformed_rows = input.num_rows() - failed_rows,
            "failed batch narrowed down; the failing rows' events are dead-lettered"
        );
        self.failed_streak += 1;
        self.last_failure = failed.last().map(|(_, reason)| reason.clone());
        Some(pieces)
    }

    /// Splits a failing batch until the failure is pinned to single rows, or
    /// the narrowing budget is spent, or the failure is one not worth
    /// repeating (the time limit). Returns the transformed pieces and the
    /// row ranges that failed, with why.
    async fn narrow(
        &self,
        input: &RecordBatch,
        error: TransformError,
        shutdown: &watch::Receiver<bool>,
    ) -> Option<(Vec<Piece>, Vec<Failed>)> {
        let rows = input.num_rows();
        if rows <= 1 || !error.worth_narrowing() {
            return Some((Vec::new(), vec![(0..rows, error.to_string())]));
        }
        let untried =
            format!("{error} (this part was not narrowed down further: narrowing budget spent)");
        let mut budget = self.settings.narrowing_calls;
        let (mut pieces, mut failed) = (Vec::new(), Vec::new());
        let half = rows / 2;
        let mut todo = vec![(half, rows - half), (0, half)];
        while let Some((start, len)) = todo.pop() {
            if budget == 0 {
                failed.push((start..start + len, untried.clone()));
                continue;
            }
            budget -= 1;
            if *shutdown.borrow() {
                return None;
            }
            match self.transform_once(input.slice(start, len)).await {
                Ok(transformed) => pieces.push(Piece {
                    first_row: start,
                    transformed,
                }),
                Err(error) if len == 1 || !error.worth_narrowing() => {
                    failed.push((start..start + len, error.to_string()))
                }
                Err(_) => {
                    let half = len / 2;
                    todo.push((start + half, len - half));
                    todo.push((start, half));
                }
            }
        }
        pieces.sort_by_key(|p| p.first_row);
        Some((pieces, failed))
    }
}

/// Rows of a batch that could not be transformed, and why.
type Failed = (std::ops::Range<usize>, String);

/// Part of a batch that transformed, and where it starts in the batch.
pub(super) struct Piece {
    pub(super) first_row: usize,
    pub(super) transformed: TransformedBatch,
}
