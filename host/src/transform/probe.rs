//! The probe: a small synthetic batch of a view's input schema, run through
//! a module before it is accepted, so a module that cannot produce the
//! declared output is rejected up front rather than on live events.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Float32Array, Float64Array, Int8Array,
    Int16Array, Int32Array, Int64Array, ListArray, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Schema};

use super::{CheckedBatch, TransformError, Transformer, ViewSchema};

/// Rows in a probe batch.
pub const PROBE_ROWS: usize = 4;

/// A batch of `schema` with `PROBE_ROWS` plausible non-null rows.
pub fn probe_batch(schema: &Arc<Schema>) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| sample_array(f.data_type(), PROBE_ROWS))
        .collect();
    RecordBatch::try_new(schema.clone(), columns)
}

/// Runs the probe batch through `transformer` and checks the output.
pub fn probe(
    transformer: &Transformer,
    input_schema: &Arc<Schema>,
    view: &ViewSchema,
) -> Result<CheckedBatch, TransformError> {
    let input = probe_batch(input_schema).map_err(|e| TransformError::Input(e.to_string()))?;
    let output = transformer.run(&input)?;
    Ok(view.check(&output.batch)?)
}

fn sample_array(data_type: &DataType, rows: usize) -> ArrayRef {
    let ints = 1..=rows as i64;
    let now = chrono::Utc::now().timestamp_micros();
    match data_type {
        DataType::Boolean => Arc::new(BooleanArray::from_iter(ints.map(|i| Some(i % 2 == 0)))),
        DataType::Int8 => Arc::new(Int8Array::from_iter_values(ints.map(|i| i as i8))),
        DataType::Int16 => Arc::new(Int16Array::from_iter_values(ints.map(|i| i as i16))),
        DataType::Int32 => Arc::new(Int32Array::from_iter_values(ints.map(|i| i as i32))),
        DataType::Int64 => Arc::new(Int64Array::from_iter_values(ints)),
        DataType::Float32 => Arc::new(Float32Array::from_iter_values(ints.map(|i| i as f32 / 8.0))),
        DataType::Float64 => Arc::new(Float64Array::from_iter_values(ints.map(|i| i as f64 / 8.0))),
        DataType::Utf8 => Arc::new(StringArray::from_iter_values(
            ints.map(|i| format!("probe-{i}")),
        )),
        DataType::Binary => Arc::new(BinaryArray::from_iter_values(ints.map(|i| i.to_le_bytes()))),
        DataType::Date32 => Arc::new(Date32Array::from_iter_values(
            ints.map(|i| 20_000 + i as i32),
        )),
        DataType::Timestamp(_, tz) => Arc::new(
            TimestampMicrosecondArray::from_iter_values(ints.map(|i| now - i * 1_000_000))
                .with_timezone_opt(tz.clone()),
        ),
        DataType::List(item) => {
            let values = sample_array(item.data_type(), rows);
            let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(1, rows));
            Arc::new(ListArray::new(item.clone(), offsets, values, None))
        }
        other => arrow_array::new_null_array(other, rows),
    }
}
