//! A windowed view's transformed batch as entity events: each output row
//! with its entity key, event time, the values its aggregations read, and
//! where the event came from (a partition and offset on the stream, which
//! makes replays harmless; nothing on the batch side, see
//! [`crate::aggregate::batch`]). The stream, materialize and push all read
//! their events here.
//!
//! An aggregating view's transform runs per event: its output rows are
//! the input rows it kept, in order. A piece whose output does not line up
//! with its input cannot be attributed to events, so its rows are reported
//! unwritable rather than guessed at.

use super::processor::Piece;
use super::view::ViewPipeline;
use crate::aggregate::{EntityEvent, Scalar, SourceOffset, WindowPlan};
use crate::online::{RowFailure, build_rows};

/// The events of `pieces` (the transform's output of one input batch), in
/// batch order, and per piece the output rows that cannot become one.
/// `refused_rows` are the input rows the transform refused, in order;
/// `origin_of(input_row)` says where an input row came from.
pub fn entity_events(
    pipeline: &ViewPipeline,
    plan: &WindowPlan,
    pieces: &[Piece],
    refused_rows: &[usize],
    origin_of: impl Fn(usize) -> Option<SourceOffset>,
) -> (Vec<EntityEvent>, Vec<Vec<RowFailure>>) {
    let columns: Vec<Option<usize>> = plan
        .aggregations()
        .iter()
        .map(|a| {
            pipeline
                .schema
                .features
                .iter()
                .position(|f| f.name == a.column)
        })
        .collect();
    let mut events = Vec::new();
    let mut failures = Vec::new();
    for piece in pieces {
        let mut piece_failures = Vec::new();
        let checked = &piece.transformed.checked;
        let kept: Vec<usize> = (piece.first_row..piece.first_row + piece.input_rows)
            .filter(|row| refused_rows.binary_search(row).is_err())
            .collect();
        if kept.len() != checked.rows {
            piece_failures.extend((0..checked.rows).map(|row| RowFailure {
                batch_row: row,
                reason: format!(
                    "an aggregating view's transform returns one row per event it keeps: {} rows for {} events",
                    checked.rows,
                    kept.len()
                ),
            }));
            failures.push(piece_failures);
            continue;
        }
        let (rows, unwritable) = build_rows(checked, &pipeline.schema, &pipeline.keys);
        piece_failures.extend(unwritable);
        for row in rows {
            let values: Vec<Option<Scalar>> = columns
                .iter()
                .enumerate()
                .map(|(i, column)| {
                    column.and_then(|c| {
                        Scalar::read(&checked.features[c], plan.column_type(i), row.batch_row)
                    })
                })
                .collect();
            if let Some(reason) = plan.refuse_values(&values) {
                piece_failures.push(RowFailure {
                    batch_row: row.batch_row,
                    reason,
                });
                continue;
            }
            events.push(EntityEvent {
                key: row.key,
                micros: row.event_time.micros,
                values,
                origin: origin_of(kept[row.batch_row]),
            });
        }
        failures.push(piece_failures);
    }
    (events, failures)
}
