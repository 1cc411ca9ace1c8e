//! The stream's transform stage: the shared [`Processor`] with calls that
//! take a transform slot and a blocking thread, and its refused rows
//! turned into dead letters of the events behind them.

use arrow_array::RecordBatch;
use tokio::sync::watch;

use super::intake::Intake;
use crate::pipeline::dead_letter::{DeadLetter, DeadLetterKind};
use crate::pipeline::fairness::TransformSlots;
use crate::pipeline::processor::{Piece, Processor, ProcessorSettings, TransformCall};
use crate::pipeline::view::{TransformedBatch, ViewPipeline};
use crate::source::kafka::Event;
use crate::transform::TransformError;

/// One call of the active version's transform on a blocking thread, once a
/// transform slot is free.
struct SlotCall<'a> {
    slots: &'a TransformSlots,
    pipeline: &'a ViewPipeline,
}

#[async_trait::async_trait]
impl TransformCall for SlotCall<'_> {
    async fn call(&self, input: RecordBatch) -> Result<TransformedBatch, TransformError> {
        let _slot = self.slots.acquire().await;
        let pipeline = self.pipeline.clone();
        tokio::task::spawn_blocking(move || pipeline.transform(&input))
            .await
            .unwrap_or_else(|e| {
                Err(TransformError::Trap(format!(
                    "transform thread panicked: {e}"
                )))
            })
    }
}

impl Intake {
    /// Transforms the batch (see [`Processor::process`]); the events whose
    /// rows were rejected or could not be transformed become dead letters.
    /// Returns the pieces and the input rows refused.
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
    ) -> Option<(Vec<Piece>, Vec<usize>)> {
        let call = SlotCall {
            slots: &self.slots,
            pipeline: &self.current.pipeline,
        };
        let processor = Processor {
            view: &self.current.pipeline.view.name,
            version: self.current.id(),
            call: &call,
            settings: ProcessorSettings {
                attempts: self.settings.transform_attempts,
                narrowing_calls: self.settings.narrowing_calls,
            },
        };
        let from = format!("{}..{}", events[0].origin, events[events.len() - 1].origin);
        let processed = processor
            .process(input, &from, &|| *shutdown.borrow())
            .await?;
        self.counters()
            .add(|m| &m.batch_failures, u64::from(processed.failed_attempts));
        for refused in &processed.refused {
            let Some(&index) = origins.get(refused.row) else {
                continue;
            };
            if refused.kind == DeadLetterKind::Rejected {
                self.counters().add(|m| &m.rejected_by_transform, 1);
            }
            letters.push(
                self.letters()
                    .letter(refused.kind, &events[index], &refused.reason),
            );
        }
        match processed.last_failure {
            Some(failure) => {
                self.failed_streak += 1;
                self.last_failure = Some(failure);
            }
            None => self.failed_streak = 0,
        }
        let refused_rows = processed.refused.iter().map(|r| r.row).collect();
        Some((processed.pieces, refused_rows))
    }
}
