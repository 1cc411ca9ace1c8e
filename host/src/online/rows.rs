//! Checked output batches turned into online rows: Redis key, event time and
//! encoded feature values, with the newest row kept per entity.

use crate::event_time::FutureLimit;
use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef};

use super::entity_key::{KeyBuilder, KeyValue};
use super::timestamp::EventTime;
use super::value::encode_cell;
use crate::transform::schema_check::key_overflowed;
use crate::transform::{CheckedBatch, ViewSchema};
use crate::types::ScalarType;

/// One entity's newest values for one view.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineRow {
    /// Serialized entity key followed by the project.
    pub key: Vec<u8>,
    pub event_time: EventTime,
    pub created: Option<EventTime>,
    /// Encoded `feast.types.Value` per feature, in the view's feature order.
    pub values: Vec<Vec<u8>>,
    /// The row's index in the output batch it came from.
    pub batch_row: usize,
}

/// An output row that cannot be written, with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct RowFailure {
    pub batch_row: usize,
    pub reason: String,
}

/// Builds one online row per output row; rows with a null or out-of-range
/// join key, a null timestamp or an unencodable value are failures.
pub fn build_rows(
    checked: &CheckedBatch,
    view: &ViewSchema,
    keys: &KeyBuilder,
) -> (Vec<OnlineRow>, Vec<RowFailure>) {
    let mut rows = Vec::with_capacity(checked.rows);
    let mut failures = Vec::new();
    let mut key = Vec::new();
    let future = FutureLimit::now(view.max_future_skew);
    for row in 0..checked.rows {
        key.clear();
        let built = row_key(checked, view, keys, &future, row, &mut key).and_then(
            |(event_time, created)| {
                let mut values = Vec::with_capacity(view.features.len());
                encode_values(checked, view, row, &mut values)?;
                Ok(OnlineRow {
                    key: key.clone(),
                    event_time,
                    created,
                    values,
                    batch_row: row,
                })
            },
        );
        match built {
            Ok(online) => rows.push(online),
            Err(reason) => failures.push(RowFailure {
                batch_row: row,
                reason,
            }),
        }
    }
    (rows, failures)
}

/// Folds the rows of `checked` into `newest`, one row per entity with the
/// greatest (event time, created time); on a full tie the row already kept
/// stays, as Feast's writer does. Values are encoded only for rows that win,
/// and keys are allocated only for entities seen first: the hot path of
/// materialization. Returns the rows that cannot be written.
pub fn fold_newest(
    checked: &CheckedBatch,
    view: &ViewSchema,
    keys: &KeyBuilder,
    newest: &mut HashMap<Vec<u8>, OnlineRow>,
) -> Vec<RowFailure> {
    let mut failures = Vec::new();
    let mut key = Vec::new();
    let future = FutureLimit::now(view.max_future_skew);
    for row in 0..checked.rows {
        key.clear();
        let (event_time, created) = match row_key(checked, view, keys, &future, row, &mut key) {
            Ok(times) => times,
            Err(reason) => {
                failures.push(RowFailure {
                    batch_row: row,
                    reason,
                });
                continue;
            }
        };
        let result = match newest.get_mut(key.as_slice()) {
            Some(kept) if (event_time, created) <= (kept.event_time, kept.created) => Ok(()),
            Some(kept) => {
                let mut values = std::mem::take(&mut kept.values);
                values.clear();
                let encoded = encode_values(checked, view, row, &mut values);
                if encoded.is_ok() {
                    *kept = OnlineRow {
                        key: std::mem::take(&mut kept.key),
                        event_time,
                        created,
                        values,
                        batch_row: row,
                    };
                }
                encoded
            }
            None => {
                let mut values = Vec::with_capacity(view.features.len());
                encode_values(checked, view, row, &mut values).map(|()| {
                    newest.insert(
                        key.clone(),
                        OnlineRow {
                            key: key.clone(),
                            event_time,
                            created,
                            values,
                            batch_row: row,
                        },
                    );
                })
            }
        };
        if let Err(reason) = result {
            failures.push(RowFailure {
                batch_row: row,
                reason,
            });
        }
    }
    failures
}

/// Writes the row's Redis key into `key` and returns its event and created
/// times; a row whose event time is too far ahead (`future`) is refused.
fn row_key(
    checked: &CheckedBatch,
    view: &ViewSchema,
    keys: &KeyBuilder,
    future: &FutureLimit,
    row: usize,
    key: &mut Vec<u8>,
) -> Result<(EventTime, Option<EventTime>), String> {
    let mut key_values = Vec::with_capacity(view.join_keys.len());
    for (i, join_key) in view.join_keys.iter().enumerate() {
        if key_overflowed(checked, i, row) {
            return Err(format!(
                "join key `{}` does not fit its declared type {}",
                join_key.name, join_key.value_type
            ));
        }
        let value = key_value(&checked.join_keys[i], join_key.value_type, row)
            .ok_or_else(|| format!("join key `{}` is null", join_key.name))?;
        key_values.push(value);
    }
    if checked.event_time.is_null(row) {
        return Err(format!("timestamp `{}` is null", view.timestamp_field));
    }
    let micros = checked.event_time.value(row);
    if !future.admits(micros) {
        return Err(format!(
            "timestamp `{}`: {}",
            view.timestamp_field,
            future.reason(micros)
        ));
    }
    keys.redis_key_into(&key_values, key);
    let event_time = EventTime::from_micros(checked.event_time.value(row));
    let created = checked
        .created
        .as_ref()
        .filter(|c| !c.is_null(row))
        .map(|c| EventTime::from_micros(c.value(row)));
    Ok((event_time, created))
}

/// Appends the encoded value of every feature at `row` to `values`.
fn encode_values(
    checked: &CheckedBatch,
    view: &ViewSchema,
    row: usize,
    values: &mut Vec<Vec<u8>>,
) -> Result<(), String> {
    for (feature, column) in view.features.iter().zip(&checked.features) {
        let mut encoded = Vec::with_capacity(12);
        encode_cell(column.as_ref(), feature.dtype, row, &mut encoded)
            .map_err(|e| format!("feature `{}`: {e}", feature.name))?;
        values.push(encoded);
    }
    Ok(())
}

/// The value of a canonical join-key column at `row`, or `None` when null.
fn key_value(column: &ArrayRef, value_type: ScalarType, row: usize) -> Option<KeyValue<'_>> {
    if column.is_null(row) {
        return None;
    }
    Some(match value_type {
        ScalarType::Int32 => KeyValue::Int32(column.as_primitive::<Int32Type>().value(row)),
        ScalarType::Int64 => KeyValue::Int64(column.as_primitive::<Int64Type>().value(row)),
        ScalarType::String => KeyValue::String(column.as_string::<i32>().value(row)),
        ScalarType::Bytes => KeyValue::Bytes(column.as_binary::<i32>().value(row)),
        ScalarType::UnixTimestamp => {
            let micros = column.as_primitive::<TimestampMicrosecondType>().value(row);
            KeyValue::UnixTimestamp(micros.div_euclid(1_000_000))
        }
        ScalarType::Float32 | ScalarType::Float64 | ScalarType::Bool => return None,
    })
}

/// Keeps the newest row per entity: the greatest (event time, created time);
/// on a full tie the first row stays, as Feast's writer does.
pub fn newest_per_entity(rows: Vec<OnlineRow>) -> Vec<OnlineRow> {
    let mut index: HashMap<Vec<u8>, usize> = HashMap::with_capacity(rows.len());
    let mut newest: Vec<OnlineRow> = Vec::with_capacity(rows.len());
    for row in rows {
        match index.get(&row.key) {
            Some(&i) => {
                if (row.event_time, row.created) > (newest[i].event_time, newest[i].created) {
                    newest[i] = row;
                }
            }
            None => {
                index.insert(row.key.clone(), newest.len());
                newest.push(row);
            }
        }
    }
    newest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: u8, micros: i64, created: Option<i64>, value: u8) -> OnlineRow {
        OnlineRow {
            key: vec![key],
            event_time: EventTime::from_micros(micros),
            created: created.map(EventTime::from_micros),
            values: vec![vec![value]],
            batch_row: 0,
        }
    }

    #[test]
    fn newest_wins_ties_go_to_created_then_first() {
        let rows = vec![
            row(1, 10, None, 1),
            row(1, 30, None, 2),
            row(1, 20, None, 3),
            row(2, 5, Some(1), 4),
            row(2, 5, Some(2), 5),
            row(3, 7, None, 6),
            row(3, 7, None, 7),
        ];
        let newest = newest_per_entity(rows);
        let values: Vec<u8> = newest.iter().map(|r| r.values[0][0]).collect();
        assert_eq!(values, [2, 5, 6]);
    }
}
