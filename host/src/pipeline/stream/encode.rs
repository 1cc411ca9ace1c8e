//! The intake's last step: a transformed batch becomes what the output
//! writes (one newest row per entity, or a windowed view's events for its
//! entities' windows) and where it lies in the topic. Done here, beside
//! the next poll, so the output's turn holds little but the store's round
//! trips: the store is the stream's bound, and it idles while the output
//! works on its own.

use std::sync::Arc;
use std::time::Instant;

use super::intake::Intake;
use super::{Counters, Prepared};
use crate::aggregate::{EntityEvent, SourceOffset};
use crate::online::{OnlineRow, RowFailure};
use crate::pipeline::dead_letter::{DeadLetter, DeadLetterKind};
use crate::pipeline::metrics::Stage;
use crate::pipeline::processor::Piece;
use crate::pipeline::version::ViewVersion;
use crate::pipeline::windows::entity_events;
use crate::source::EventOrigin;
use crate::source::kafka::{Event, Positions, next_offsets};

/// One transformed piece's online rows and the rows that cannot be written.
pub(super) struct PieceRows {
    pub(super) rows: Vec<OnlineRow>,
    pub(super) failures: Vec<RowFailure>,
}

/// What a batch writes: one newest row per entity, or (a windowed view)
/// every event for its entity's windows; and per piece the unwritable rows.
pub(super) enum BatchRows {
    Entities(Vec<PieceRows>),
    Windows {
        events: Vec<EntityEvent>,
        failures: Vec<Vec<RowFailure>>,
    },
}

impl BatchRows {
    /// Per piece, the output rows that cannot be written.
    pub(super) fn failures(&self) -> Vec<&[RowFailure]> {
        match self {
            Self::Entities(pieces) => pieces.iter().map(|p| p.failures.as_slice()).collect(),
            Self::Windows { failures, .. } => failures.iter().map(Vec::as_slice).collect(),
        }
    }
}

/// Where a batch's events lie in the topic: what the output logs and
/// commits once the batch is written (the events themselves stay with the
/// intake).
pub(super) struct BatchSpan {
    pub(super) first: EventOrigin,
    pub(super) last: EventOrigin,
    pub(super) events: usize,
    /// Per partition, the offset after the batch's last event there.
    pub(super) next_offsets: Positions,
}

impl BatchSpan {
    /// The span of `events` (not empty: a batch has at least one event).
    fn of(events: &[Event]) -> Self {
        Self {
            first: events[0].origin.clone(),
            last: events[events.len() - 1].origin.clone(),
            events: events.len(),
            next_offsets: next_offsets(events),
        }
    }
}

/// What the transform made of a batch, before it is encoded.
pub(super) struct Transformed {
    pub(super) version: Arc<ViewVersion>,
    pub(super) letters: Vec<DeadLetter>,
    pub(super) pieces: Vec<Piece>,
    /// Per input row of the transform, the index of its event.
    pub(super) input_events: Vec<usize>,
    /// Input rows the transform rejected or failed on, in order.
    pub(super) refused_rows: Vec<usize>,
}

impl Intake {
    /// Encodes a transformed batch of `events` for the output; output rows
    /// that cannot become online rows are logged and counted here.
    pub(super) fn encode(&self, transformed: Transformed, events: &[Event]) -> Prepared {
        let encoding = Instant::now();
        let Transformed {
            version,
            letters,
            pieces,
            input_events,
            refused_rows,
        } = transformed;
        let pipeline = &version.pipeline;
        let rows = match &pipeline.window {
            Some(plan) => {
                let (events, failures) =
                    entity_events(pipeline, plan, &pieces, &refused_rows, |row| {
                        let origin = &events[input_events[row]].origin;
                        Some(SourceOffset {
                            partition: origin.partition,
                            offset: origin.offset,
                        })
                    });
                BatchRows::Windows { events, failures }
            }
            None => BatchRows::Entities(
                pieces
                    .iter()
                    .map(|piece| {
                        let (rows, failures) = pipeline.online_rows(&piece.transformed.checked);
                        PieceRows { rows, failures }
                    })
                    .collect(),
            ),
        };
        let prepared = Prepared {
            span: BatchSpan::of(events),
            version,
            letters,
            pieces,
            rows,
        };
        let counters = self.counters();
        report_unwritable(&counters, &prepared);
        counters.time(Stage::Encode, encoding);
        prepared
    }
}

/// Output rows that cannot become online rows are logged with their
/// batch and counted: which input event produced an output row is the
/// transform's business, so they cannot be dead-lettered as events.
fn report_unwritable(counters: &Counters<'_>, batch: &Prepared) {
    for failures in batch.rows.failures() {
        for failure in failures {
            tracing::warn!(
                target: "fvhost::dead_letter",
                view = %batch.version.pipeline.view.name,
                kind = DeadLetterKind::Unwritable.as_str(),
                batch_first = %batch.span.first,
                batch_last = %batch.span.last,
                output_row = failure.batch_row,
                "{}", failure.reason
            );
        }
        counters.add(|m| &m.unwritable_rows, failures.len() as u64);
    }
}
