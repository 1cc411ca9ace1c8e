//! JSON messages decoded by a declared schema into an Arrow batch.
//!
//! Types are strict: a number is not a string, `1.5` is not an integer, and
//! an integer out of range is an error, each naming the field. Timestamps
//! are RFC 3339 strings (a naive one is UTC) or numbers of epoch seconds.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder, Int8Builder,
    Int16Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use base64::Engine as _;
use chrono::{NaiveDate, NaiveDateTime};
use serde_json::Value;

use super::json_fields::{KeyIndex, ObjectError, read_fields};

/// Why one message became no row.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", match .field { Some(f) => format!("field `{f}`: {}", .reason), None => .reason.clone() })]
pub struct RowError {
    /// The field at fault, if one is.
    pub field: Option<String>,
    pub reason: String,
}

impl RowError {
    fn message(reason: impl Into<String>) -> Self {
        Self {
            field: None,
            reason: reason.into(),
        }
    }

    fn field(field: &str, reason: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_string()),
            reason: reason.into(),
        }
    }
}

/// One decoded value, staged until the whole row is known to be good.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    /// Microseconds since the epoch.
    Time(i64),
    /// Days since the epoch.
    Date(i32),
    List(Vec<Cell>),
}

/// Accumulates decoded JSON messages into one Arrow batch.
pub struct JsonBatchBuilder {
    /// The schema rows come out in (after field mapping).
    schema: SchemaRef,
    /// The JSON key each column is read from (the name before field mapping).
    json_keys: KeyIndex,
    /// The values of one message's declared fields, reused from row to row.
    found: Vec<Option<Value>>,
    /// Columns that must be present and non-null (entity keys, timestamp).
    required: Vec<bool>,
    columns: Vec<Vec<Cell>>,
    rows: usize,
}

impl JsonBatchBuilder {
    /// `schema` holds the JSON key names; `field_mapping` renames columns for the
    /// output; `required` lists output names that every row must carry.
    pub fn new(schema: &Schema, field_mapping: &[(String, String)], required: &[String]) -> Self {
        let mapped = super::mapped_schema(schema, field_mapping);
        let required = mapped
            .fields()
            .iter()
            .map(|f| required.iter().any(|r| r == f.name()) || !f.is_nullable())
            .collect();
        Self {
            json_keys: KeyIndex::new(schema.fields().iter().map(|f| f.name().clone()).collect()),
            found: vec![None; schema.fields().len()],
            columns: vec![Vec::new(); mapped.fields().len()],
            schema: Arc::new(mapped),
            required,
            rows: 0,
        }
    }

    /// The schema of the batches this builder makes.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows appended since the last [`JsonBatchBuilder::finish`].
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Decodes one message and appends it as a row, or explains why not.
    /// On error nothing is appended.
    pub fn append(&mut self, message: &[u8]) -> Result<(), RowError> {
        read_fields(message, &self.json_keys, &mut self.found).map_err(|e| match e {
            ObjectError::NotJson(e) => RowError::message(format!("not valid JSON: {e}")),
            ObjectError::NotAnObject => RowError::message("message is not a JSON object"),
        })?;
        let mut row = Vec::with_capacity(self.columns.len());
        for (((field, found), key), required) in self
            .schema
            .fields()
            .iter()
            .zip(&self.found)
            .zip(self.json_keys.keys())
            .zip(&self.required)
        {
            let cell = match found {
                None | Some(Value::Null) if *required => {
                    return Err(RowError::field(
                        key,
                        "missing (required: entity key or timestamp)",
                    ));
                }
                None | Some(Value::Null) => Cell::Null,
                Some(value) => {
                    convert(value, field.data_type()).map_err(|e| RowError::field(key, e))?
                }
            };
            row.push(cell);
        }
        for (column, cell) in self.columns.iter_mut().zip(row) {
            column.push(cell);
        }
        self.rows += 1;
        Ok(())
    }

    /// Builds the batch of every row appended so far and starts a new one.
    pub fn finish(&mut self) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let columns: Vec<ArrayRef> = self
            .schema
            .fields()
            .iter()
            .zip(self.columns.iter_mut())
            .map(|(field, cells)| build_array(field.data_type(), &std::mem::take(cells)))
            .collect();
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), columns)
    }
}

fn convert(value: &Value, data_type: &DataType) -> Result<Cell, String> {
    let found = || {
        format!(
            "expected {}, found {}",
            type_word(data_type),
            json_word(value)
        )
    };
    match data_type {
        DataType::Boolean => value.as_bool().map(Cell::Bool).ok_or_else(found),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            let v = value.as_i64().ok_or_else(found)?;
            let (min, max) = int_range(data_type);
            if v < min || v > max {
                return Err(format!("{v} is out of range for {}", type_word(data_type)));
            }
            Ok(Cell::Int(v))
        }
        DataType::Float32 | DataType::Float64 => value.as_f64().map(Cell::Float).ok_or_else(found),
        DataType::Utf8 => value
            .as_str()
            .map(|s| Cell::Text(s.to_string()))
            .ok_or_else(found),
        DataType::Binary => {
            let text = value.as_str().ok_or_else(found)?;
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map(Cell::Bytes)
                .map_err(|e| format!("binary values are base64 text: {e}"))
        }
        DataType::Timestamp(..) => parse_timestamp(value).map(Cell::Time),
        DataType::Date32 => {
            let text = value.as_str().ok_or_else(found)?;
            let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|e| format!("`{text}` is not a YYYY-MM-DD date: {e}"))?;
            Ok(Cell::Date((date - NaiveDate::default()).num_days() as i32))
        }
        DataType::List(item) => {
            let items = value.as_array().ok_or_else(found)?;
            items
                .iter()
                .map(|v| match v {
                    Value::Null => Ok(Cell::Null),
                    v => convert(v, item.data_type()),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Cell::List)
        }
        other => Err(format!("type {other} is not supported in JSON messages")),
    }
}

fn int_range(data_type: &DataType) -> (i64, i64) {
    match data_type {
        DataType::Int8 => (i8::MIN.into(), i8::MAX.into()),
        DataType::Int16 => (i16::MIN.into(), i16::MAX.into()),
        DataType::Int32 => (i32::MIN.into(), i32::MAX.into()),
        _ => (i64::MIN, i64::MAX),
    }
}

/// RFC 3339 (`2026-11-26T10:00:00Z`), naive (`2026-11-26 10:00:00[.ffffff]`, UTC),
/// or a number of epoch seconds.
fn parse_timestamp(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(n) => {
            let seconds = n.as_f64().ok_or("timestamp number out of range")?;
            let micros = seconds * 1e6;
            if !micros.is_finite() || micros.abs() > 9.2e18 {
                return Err(format!("timestamp {n} is out of range"));
            }
            Ok(micros.round() as i64)
        }
        Value::String(text) => {
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
                return Ok(t.timestamp_micros());
            }
            for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
                if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
                    return Ok(t.and_utc().timestamp_micros());
                }
            }
            Err(format!("`{text}` is not an RFC 3339 timestamp"))
        }
        other => Err(format!("expected a timestamp, found {}", json_word(other))),
    }
}

fn type_word(data_type: &DataType) -> String {
    match data_type {
        DataType::Boolean => "a boolean".into(),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            format!("an integer ({data_type})")
        }
        DataType::Float32 | DataType::Float64 => "a number".into(),
        DataType::Utf8 => "a string".into(),
        DataType::Binary => "base64 text".into(),
        DataType::Date32 => "a date string".into(),
        DataType::List(_) => "an array".into(),
        other => other.to_string(),
    }
}

fn json_word(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.len() <= 40 => format!("string {s:?}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn build_array(data_type: &DataType, cells: &[Cell]) -> ArrayRef {
    macro_rules! primitive {
        ($builder:ty, $pat:pat => $value:expr) => {{
            let mut builder = <$builder>::new();
            for cell in cells {
                match cell {
                    $pat => builder.append_value($value),
                    _ => builder.append_null(),
                }
            }
            Arc::new(builder.finish()) as ArrayRef
        }};
    }
    match data_type {
        DataType::Boolean => primitive!(BooleanBuilder, Cell::Bool(v) => *v),
        DataType::Int8 => primitive!(Int8Builder, Cell::Int(v) => *v as i8),
        DataType::Int16 => primitive!(Int16Builder, Cell::Int(v) => *v as i16),
        DataType::Int32 => primitive!(Int32Builder, Cell::Int(v) => *v as i32),
        DataType::Int64 => primitive!(Int64Builder, Cell::Int(v) => *v),
        DataType::Float32 => primitive!(Float32Builder, Cell::Float(v) => *v as f32),
        DataType::Float64 => primitive!(Float64Builder, Cell::Float(v) => *v),
        DataType::Utf8 => primitive!(StringBuilder, Cell::Text(v) => v),
        DataType::Binary => primitive!(BinaryBuilder, Cell::Bytes(v) => v),
        DataType::Date32 => primitive!(Date32Builder, Cell::Date(v) => *v),
        DataType::Timestamp(_, tz) => {
            let array = primitive!(TimestampMicrosecondBuilder, Cell::Time(v) => *v);
            let array = arrow_array::cast::AsArray::as_primitive::<
                arrow_array::types::TimestampMicrosecondType,
            >(array.as_ref())
            .clone()
            .with_timezone_opt(tz.clone());
            Arc::new(array)
        }
        DataType::List(item) => build_list(item, cells),
        // `convert` rejects every other type, so no cell of one is ever staged.
        other => arrow_array::new_null_array(other, cells.len()),
    }
}

fn build_list(item: &Arc<Field>, cells: &[Cell]) -> ArrayRef {
    let mut offsets = Vec::with_capacity(cells.len() + 1);
    let mut values = Vec::new();
    let mut validity = Vec::with_capacity(cells.len());
    offsets.push(0i32);
    for cell in cells {
        if let Cell::List(items) = cell {
            values.extend(items.iter().cloned());
            validity.push(true);
        } else {
            validity.push(false);
        }
        offsets.push(values.len() as i32);
    }
    let values = build_array(item.data_type(), &values);
    let list = arrow_array::ListArray::new(
        item.clone(),
        arrow_buffer::OffsetBuffer::new(offsets.into()),
        values,
        Some(validity.into()),
    );
    Arc::new(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::parse_ddl;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int32Type, TimestampMicrosecondType};

    fn builder() -> JsonBatchBuilder {
        let schema = parse_ddl(
            "driver_id integer, event_timestamp timestamp, conv_rate double, tags array<string>",
        )
        .unwrap();
        JsonBatchBuilder::new(
            &schema,
            &[],
            &["driver_id".into(), "event_timestamp".into()],
        )
    }

    #[test]
    fn good_rows_decode_by_schema() {
        let mut b = builder();
        b.append(br#"{"driver_id": 1001, "event_timestamp": "2022-07-07T09:00:00Z", "conv_rate": 0.5, "tags": ["a"]}"#).unwrap();
        b.append(br#"{"driver_id": 1002, "event_timestamp": 1657184400, "conv_rate": null}"#)
            .unwrap();
        let batch = b.finish().unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column(0).as_primitive::<Int32Type>().value(1), 1002);
        let ts = batch.column(1).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 1_657_184_400_000_000);
        assert_eq!(ts.value(0), ts.value(1));
        assert!(batch.column(2).is_null(1));
        assert_eq!(batch.column(2).as_primitive::<Float64Type>().value(0), 0.5);
        assert_eq!(batch.column(3).as_list::<i32>().value(0).len(), 1);
        assert!(batch.column(3).is_null(1));
    }

    #[test]
    fn bad_rows_are_rejected_alone_with_the_field_named() {
        let mut b = builder();
        let cases: [(&[u8], &str); 5] = [
            (b"{not json", "not valid JSON"),
            (b"[1,2]", "not a JSON object"),
            (
                br#"{"event_timestamp": "2022-07-07T09:00:00Z"}"#,
                "field `driver_id`: missing",
            ),
            (
                br#"{"driver_id": "x", "event_timestamp": "2022-07-07T09:00:00Z"}"#,
                "field `driver_id`: expected an integer",
            ),
            (
                br#"{"driver_id": 1, "event_timestamp": "yesterday"}"#,
                "field `event_timestamp`",
            ),
        ];
        for (message, expected) in cases {
            let err = b.append(message).unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should contain {expected}");
        }
        assert!(
            b.append(br#"{"driver_id": 3000000000, "event_timestamp": 0}"#)
                .unwrap_err()
                .to_string()
                .contains("out of range")
        );
        b.append(br#"{"driver_id": 7, "event_timestamp": 0}"#)
            .unwrap();
        assert_eq!(b.finish().unwrap().num_rows(), 1);
    }

    #[test]
    fn only_declared_keys_are_read_escaped_or_not_and_the_last_duplicate_wins() {
        let mut b = builder();
        // An escaped key is the same key; undeclared fields of any shape are skipped.
        b.append(br#"{"driver\u005fid": 1, "event_timestamp": 0, "extra": {"deep": [1, {"x": null}]}, "more": "text"}"#)
            .unwrap();
        // A key given twice keeps its last value, as a parsed JSON object does.
        b.append(br#"{"driver_id": 1, "driver_id": 2, "event_timestamp": 0}"#)
            .unwrap();
        let batch = b.finish().unwrap();
        let ids = batch.column(0).as_primitive::<Int32Type>();
        assert_eq!((ids.value(0), ids.value(1)), (1, 2));
        for (message, expected) in [
            (
                &br#"{"driver_id": 1, "event_timestamp": 0} trailing"#[..],
                "not valid JSON",
            ),
            (
                br#"{"driver_id": 1, "event_timestamp": 0, "extra": [}"#,
                "not valid JSON",
            ),
            (br#""a string""#, "not a JSON object"),
            (b"42", "not a JSON object"),
            (b"null", "not a JSON object"),
            (b"", "not valid JSON"),
        ] {
            let err = b.append(message).unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should contain {expected}");
        }
        assert!(b.is_empty(), "refused messages append nothing");
    }

    #[test]
    fn field_mapping_renames_output_columns() {
        let schema = parse_ddl("id bigint, ts timestamp").unwrap();
        let mapping = vec![("id".to_string(), "driver_id".to_string())];
        let mut b = JsonBatchBuilder::new(&schema, &mapping, &["driver_id".into()]);
        assert!(b.append(br#"{"ts": 0}"#).is_err());
        b.append(br#"{"id": 5, "ts": 0}"#).unwrap();
        assert_eq!(b.finish().unwrap().schema().field(0).name(), "driver_id");
    }

    /// Mangled messages (bytes flipped, cut, replaced) are each accepted or
    /// refused with a reason, never a panic, and a batch of the accepted ones
    /// always assembles: one bad message cannot take its neighbours down.
    #[test]
    fn mangled_messages_are_accepted_or_refused_never_a_panic() {
        let valid = br#"{"driver_id": 1001, "event_timestamp": "2022-07-07T09:00:00Z", "conv_rate": 0.5, "tags": ["a", "b"]}"#;
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut b = builder();
        for case in 0..20_000 {
            let mut bytes = valid.to_vec();
            match next() % 3 {
                0 => bytes.truncate((next() as usize) % valid.len()),
                1 => {
                    let at = (next() as usize) % bytes.len();
                    bytes[at] ^= 1 << (next() % 8);
                }
                _ => {
                    let at = (next() as usize) % bytes.len();
                    bytes[at] = next() as u8;
                }
            }
            if let Err(e) = b.append(&bytes) {
                assert!(!e.reason.is_empty(), "case {case}: a refusal says why");
            }
            if case % 1000 == 999 {
                b.finish()
                    .unwrap_or_else(|e| panic!("case {case}: batch did not assemble: {e}"));
            }
        }
    }
}
