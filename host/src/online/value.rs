//! Feature values as serialized `feast.types.Value` protobufs.
//!
//! A value is a protobuf with one `oneof` field whose number is its
//! `ValueType` (lists are wrapped in a message with `repeated T val = 1`).
//! A null is an empty message: zero bytes; except a null timestamp, which
//! Feast writes as NaT (the smallest int64), and so does fvhost.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{Array, ArrayRef};
use base64::Engine as _;

use super::proto::{self, Field, Reader};
use crate::types::{FeatureType, ScalarType};

/// The seconds Feast stores for a null timestamp (pandas' NaT).
pub const NULL_TIMESTAMP: i64 = i64::MIN;

/// Why one cell could not be encoded.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum CellError {
    #[error("list holds a null element, which Feast cannot store")]
    NullListElement,
}

/// Appends the `Value` for `array[row]`, declared as `dtype`, to `out`.
///
/// The array must already have the canonical Arrow type of `dtype`
/// (see [`crate::transform::schema_check`]), which the caller guarantees.
pub fn encode_cell(
    array: &dyn Array,
    dtype: FeatureType,
    row: usize,
    out: &mut Vec<u8>,
) -> Result<(), CellError> {
    if array.is_null(row) {
        if dtype == FeatureType::Scalar(ScalarType::UnixTimestamp) {
            // Feast writes a null event time as pandas' NaT: the smallest
            // int64 (its readers, and fvhost's, read it back as null).
            put_varint_field(out, dtype.value_type_number(), NULL_TIMESTAMP as u64);
        }
        return Ok(());
    }
    match dtype {
        FeatureType::Scalar(scalar) => {
            encode_scalar(array, scalar, row, out);
            Ok(())
        }
        FeatureType::List(item) => {
            let list = array.as_list::<i32>();
            let values = list.value(row);
            if values.null_count() > 0 {
                return Err(CellError::NullListElement);
            }
            proto::put_len_field(out, dtype.value_type_number(), |inner| {
                encode_list_body(values.as_ref(), item, inner)
            });
            Ok(())
        }
    }
}

fn encode_scalar(array: &dyn Array, scalar: ScalarType, row: usize, out: &mut Vec<u8>) {
    let number = scalar.value_type_number();
    match scalar {
        ScalarType::Bytes => put_bytes(out, number, array.as_binary::<i32>().value(row)),
        ScalarType::String => {
            put_bytes(out, number, array.as_string::<i32>().value(row).as_bytes())
        }
        ScalarType::Int32 => {
            let v = array.as_primitive::<Int32Type>().value(row);
            put_varint_field(out, number, i64::from(v) as u64);
        }
        ScalarType::Int64 => {
            let v = array.as_primitive::<Int64Type>().value(row);
            put_varint_field(out, number, v as u64);
        }
        ScalarType::Float64 => {
            proto::put_tag(out, number, proto::FIXED64);
            let v = array.as_primitive::<Float64Type>().value(row);
            out.extend_from_slice(&v.to_le_bytes());
        }
        ScalarType::Float32 => {
            proto::put_tag(out, number, proto::FIXED32);
            let v = array.as_primitive::<Float32Type>().value(row);
            out.extend_from_slice(&v.to_le_bytes());
        }
        ScalarType::Bool => {
            let v = array.as_boolean().value(row);
            put_varint_field(out, number, u64::from(v));
        }
        ScalarType::UnixTimestamp => {
            let micros = array.as_primitive::<TimestampMicrosecondType>().value(row);
            put_varint_field(out, number, unix_seconds(micros) as u64);
        }
    }
}

/// Feast stores timestamps as whole seconds, truncated like Python's `int()`.
fn unix_seconds(micros: i64) -> i64 {
    micros / 1_000_000
}

fn put_bytes(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    proto::put_tag(out, number, proto::LEN);
    proto::put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_varint_field(out: &mut Vec<u8>, number: u32, value: u64) {
    proto::put_tag(out, number, proto::VARINT);
    proto::put_varint(out, value);
}

/// The body of a `*List` message: `repeated T val = 1`, numeric types packed.
fn encode_list_body(values: &dyn Array, item: ScalarType, out: &mut Vec<u8>) {
    let len = values.len();
    match item {
        ScalarType::Bytes => {
            let array = values.as_binary::<i32>();
            (0..len).for_each(|i| put_bytes(out, 1, array.value(i)));
        }
        ScalarType::String => {
            let array = values.as_string::<i32>();
            (0..len).for_each(|i| put_bytes(out, 1, array.value(i).as_bytes()));
        }
        _ if len == 0 => {}
        ScalarType::Int32 => put_packed(out, |body| {
            for v in values.as_primitive::<Int32Type>().values() {
                proto::put_varint(body, i64::from(*v) as u64);
            }
        }),
        ScalarType::Int64 => put_packed(out, |body| {
            for v in values.as_primitive::<Int64Type>().values() {
                proto::put_varint(body, *v as u64);
            }
        }),
        ScalarType::UnixTimestamp => put_packed(out, |body| {
            for v in values.as_primitive::<TimestampMicrosecondType>().values() {
                proto::put_varint(body, unix_seconds(*v) as u64);
            }
        }),
        ScalarType::Bool => put_packed(out, |body| {
            for v in values.as_boolean().values().iter() {
                proto::put_varint(body, u64::from(v));
            }
        }),
        ScalarType::Float64 => put_packed(out, |body| {
            for v in values.as_primitive::<Float64Type>().values() {
                body.extend_from_slice(&v.to_le_bytes());
            }
        }),
        ScalarType::Float32 => put_packed(out, |body| {
            for v in values.as_primitive::<Float32Type>().values() {
                body.extend_from_slice(&v.to_le_bytes());
            }
        }),
    }
}

fn put_packed(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    proto::put_len_field(out, 1, body);
}

/// Encodes a whole column; handy in tests and for one-off values.
pub fn encode_column(array: &ArrayRef, dtype: FeatureType) -> Result<Vec<Vec<u8>>, CellError> {
    (0..array.len())
        .map(|row| {
            let mut out = Vec::new();
            encode_cell(array.as_ref(), dtype, row, &mut out).map(|()| out)
        })
        .collect()
}

/// Why stored bytes are not a `feast.types.Value`.
#[derive(Debug, thiserror::Error)]
pub enum ValueDecodeError {
    #[error(transparent)]
    Proto(#[from] proto::DecodeError),
    #[error("field {0} is not a feast.types.Value field")]
    UnknownField(u32),
    #[error("string value is not UTF-8")]
    Utf8,
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Decodes a stored `Value` into JSON, as Feast's feature server returns it.
/// An empty message (Feast's null) is JSON `null`, and so is Feast's
/// not-a-time timestamp. [`write_json`] writes the same JSON as text.
pub fn decode_to_json(bytes: &[u8]) -> Result<serde_json::Value, ValueDecodeError> {
    let mut text = Vec::with_capacity(bytes.len() * 2 + 4);
    write_json(bytes, &mut text)?;
    Ok(serde_json::from_slice(&text)?)
}

/// Whether [`write_json`] wrote a value or `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Value,
    Null,
}

/// Appends a stored `Value` to `out` as JSON text, as Feast's feature server
/// returns it (`null` for Feast's null, its not-a-time timestamp, and a
/// float that is not finite). Answers are written with it straight from the
/// stored bytes, without building JSON values in between. On an error,
/// `out` is left as it was.
pub fn write_json(bytes: &[u8], out: &mut Vec<u8>) -> Result<Written, ValueDecodeError> {
    let start = out.len();
    let written = write_value(bytes, out);
    if written.is_err() {
        out.truncate(start);
    }
    written
}

fn write_value(bytes: &[u8], out: &mut Vec<u8>) -> Result<Written, ValueDecodeError> {
    let mut reader = Reader::new(bytes);
    let Some((number, field)) = reader.next_field()? else {
        return Ok(write_null(out));
    };
    match (number, field) {
        (11..=18, Field::Bytes(body)) => {
            write_list(number - 10, body, out).map(|()| Written::Value)
        }
        (19, _) => Ok(write_null(out)),
        // Feast writes a null event time it read through pandas (NaT) as
        // the smallest int64; its readers, and fvhost's, read that as null.
        (8, Field::Varint(v)) if v as i64 == NULL_TIMESTAMP => Ok(write_null(out)),
        (n, field) => write_scalar(n, field, out),
    }
}

fn write_null(out: &mut Vec<u8>) -> Written {
    out.extend_from_slice(b"null");
    Written::Null
}

fn write_scalar(
    number: u32,
    field: Field<'_>,
    out: &mut Vec<u8>,
) -> Result<Written, ValueDecodeError> {
    match (number, field) {
        (1, Field::Bytes(b)) => {
            // The base64 alphabet needs no JSON escapes.
            out.push(b'"');
            out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(b)
                    .as_bytes(),
            );
            out.push(b'"');
        }
        (2, Field::Bytes(b)) => {
            let text = std::str::from_utf8(b).map_err(|_| ValueDecodeError::Utf8)?;
            serde_json::to_writer(&mut *out, text)?;
        }
        (3, Field::Varint(v)) => serde_json::to_writer(&mut *out, &(v as i32))?,
        (4 | 8, Field::Varint(v)) => serde_json::to_writer(&mut *out, &(v as i64))?,
        (5, Field::Fixed64(b)) => return write_float(f64::from_le_bytes(b), out),
        (6, Field::Fixed32(b)) => return write_float(f64::from(f32::from_le_bytes(b)), out),
        (7, Field::Varint(v)) => out.extend_from_slice(if v != 0 { b"true" } else { b"false" }),
        (n, _) => return Err(ValueDecodeError::UnknownField(n)),
    }
    Ok(Written::Value)
}

/// A float as serde_json prints it; `null` when it is not finite (JSON has
/// no NaN or infinity).
fn write_float(v: f64, out: &mut Vec<u8>) -> Result<Written, ValueDecodeError> {
    if !v.is_finite() {
        return Ok(write_null(out));
    }
    serde_json::to_writer(&mut *out, &v)?;
    Ok(Written::Value)
}

fn write_list(item: u32, body: &[u8], out: &mut Vec<u8>) -> Result<(), ValueDecodeError> {
    out.push(b'[');
    let first = out.len();
    let next = |out: &mut Vec<u8>, field| {
        if out.len() > first {
            out.push(b',');
        }
        write_scalar(item, field, out).map(|_| ())
    };
    let mut reader = Reader::new(body);
    while let Some((_, field)) = reader.next_field()? {
        match (item, field) {
            (3 | 4 | 7 | 8, Field::Bytes(packed)) => {
                let mut packed = Reader::new(packed);
                while !packed.is_empty() {
                    next(out, Field::Varint(packed.varint()?))?;
                }
            }
            (5, Field::Bytes(packed)) => {
                for chunk in packed.chunks_exact(8) {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(chunk);
                    next(out, Field::Fixed64(b))?;
                }
            }
            (6, Field::Bytes(packed)) => {
                for chunk in packed.chunks_exact(4) {
                    let b = [chunk[0], chunk[1], chunk[2], chunk[3]];
                    next(out, Field::Fixed32(b))?;
                }
            }
            (_, field) => next(out, field)?,
        }
    }
    out.push(b']');
    Ok(())
}
