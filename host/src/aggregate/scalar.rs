//! One value of an aggregated column, read from a checked batch.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{Array, ArrayRef};

use crate::types::ScalarType;

/// A column value, as aggregations see it: integers (and timestamps, in
/// microseconds) exact, floats as f64, text and bytes as bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A string's UTF-8 bytes, or bytes.
    Bytes(Vec<u8>),
}

impl Scalar {
    /// The value of `array[row]`, an array of `dtype`'s canonical Arrow type
    /// (the schema check guarantees it); `None` for a null, and for a
    /// float NaN, which every aggregation skips like a null (as pandas does).
    pub fn read(array: &ArrayRef, dtype: ScalarType, row: usize) -> Option<Self> {
        if array.is_null(row) {
            return None;
        }
        let value = Self::read_valid(array, dtype, row);
        match value {
            Self::Float(v) if v.is_nan() => None,
            value => Some(value),
        }
    }

    fn read_valid(array: &ArrayRef, dtype: ScalarType, row: usize) -> Self {
        match dtype {
            ScalarType::Int32 => Self::Int(array.as_primitive::<Int32Type>().value(row).into()),
            ScalarType::Int64 => Self::Int(array.as_primitive::<Int64Type>().value(row)),
            ScalarType::UnixTimestamp => {
                Self::Int(array.as_primitive::<TimestampMicrosecondType>().value(row))
            }
            ScalarType::Float32 => {
                Self::Float(array.as_primitive::<Float32Type>().value(row).into())
            }
            ScalarType::Float64 => Self::Float(array.as_primitive::<Float64Type>().value(row)),
            ScalarType::Bool => Self::Bool(array.as_boolean().value(row)),
            ScalarType::String => {
                Self::Bytes(array.as_string::<i32>().value(row).as_bytes().to_vec())
            }
            ScalarType::Bytes => Self::Bytes(array.as_binary::<i32>().value(row).to_vec()),
        }
    }

    /// The value as a float, for sums and moments of numeric columns.
    pub fn as_f64(&self) -> f64 {
        match self {
            Self::Int(v) => *v as f64,
            Self::Float(v) => *v,
            Self::Bool(v) => f64::from(u8::from(*v)),
            Self::Bytes(_) => f64::NAN,
        }
    }

    /// Orders two values of one column (ints, floats, bools, bytes each among themselves).
    pub fn less_than(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Int(a), Self::Int(b)) => a < b,
            (Self::Float(a), Self::Float(b)) => a.total_cmp(b).is_lt(),
            (Self::Bool(a), Self::Bool(b)) => a < b,
            (Self::Bytes(a), Self::Bytes(b)) => a < b,
            (a, b) => a.as_f64() < b.as_f64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::Float64Array;

    use super::*;

    #[test]
    fn a_nan_is_skipped_like_a_null_and_infinities_are_values() {
        let array: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(f64::NAN),
            None,
            Some(f64::INFINITY),
            Some(0.5),
        ]));
        let read = |row| Scalar::read(&array, ScalarType::Float64, row);
        assert_eq!(read(0), None);
        assert_eq!(read(1), None);
        assert_eq!(read(2), Some(Scalar::Float(f64::INFINITY)));
        assert_eq!(read(3), Some(Scalar::Float(0.5)));
    }
}
