//! Messages into one Arrow batch: decoding by the source's schema, events
//! too far in the future, the watermark; each refused event becoming a dead letter.

use arrow_array::{Array, BooleanArray, RecordBatch};

use super::intake::Intake;
use crate::event_time::FutureLimit;
use crate::pipeline::dead_letter::{DeadLetter, DeadLetterKind};
use crate::source::kafka::Event;

impl Intake {
    /// Decodes messages into one batch; bad ones become dead letters, late
    /// ones too. Returns the batch and, per row, the index of its event.
    pub(super) fn decode(
        &mut self,
        events: &[Event],
        letters: &mut Vec<DeadLetter>,
    ) -> (RecordBatch, Vec<usize>) {
        let view = self.current.pipeline.view.name.clone();
        let required = self.current.pipeline.required_columns();
        let mut builder = self
            .kafka
            .format
            .decoder(&self.current.pipeline.source.field_mapping, &required);
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
                    self.counters().add(|m| &m.decode_errors, 1);
                    letters.push(self.letters().letter(
                        DeadLetterKind::Decode,
                        event,
                        &e.to_string(),
                    ));
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
        self.apply_watermark(batch, origins, events, letters)
    }

    /// Sets aside events too far ahead of the host's clock, then events
    /// behind the watermark; only the events kept move the watermark.
    fn apply_watermark(
        &mut self,
        batch: RecordBatch,
        origins: Vec<usize>,
        events: &[Event],
        letters: &mut Vec<DeadLetter>,
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
        let future = FutureLimit::now(self.current.pipeline.source.max_future_skew);
        let late_reason = format!(
            "event time is behind the watermark (delay {:?})",
            self.kafka.watermark_delay.unwrap_or_default()
        );
        let mut keep = Vec::with_capacity(origins.len());
        let mut kept_origins = Vec::with_capacity(origins.len());
        for (row, &index) in origins.iter().enumerate() {
            let event = &events[index];
            let refused = if times.is_null(row) {
                None
            } else if !future.admits(times.value(row)) {
                self.counters().add(|m| &m.future_events, 1);
                Some((DeadLetterKind::Future, future.reason(times.value(row))))
            } else if !self
                .watermark
                .admit(event.origin.partition, times.value(row))
            {
                self.counters().add(|m| &m.late_events, 1);
                Some((DeadLetterKind::Late, late_reason.clone()))
            } else {
                None
            };
            keep.push(refused.is_none());
            match refused {
                Some((kind, reason)) => letters.push(self.letters().letter(kind, event, &reason)),
                None => kept_origins.push(index),
            }
        }
        if kept_origins.len() == origins.len() {
            return (batch, origins);
        }
        match arrow_select::filter::filter_record_batch(&batch, &BooleanArray::from(keep)) {
            Ok(filtered) => (filtered, kept_origins),
            Err(e) => {
                tracing::error!(view = %self.current.pipeline.view.name, "cannot filter refused events: {e}");
                (batch, origins)
            }
        }
    }
}
