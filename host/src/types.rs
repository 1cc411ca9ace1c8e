//! Feast's value types: what entity join keys and features are declared as.
//!
//! The declared type, not the incoming data, decides how a value is encoded
//! in Redis, so it is resolved once from the feature repo and carried along.

use std::fmt;
use std::str::FromStr;

use arrow_schema::{DataType, TimeUnit};

/// A Feast scalar type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScalarType {
    Bytes,
    String,
    Int32,
    Int64,
    Float64,
    Float32,
    Bool,
    UnixTimestamp,
}

/// A feature's declared type: a scalar or `Array(scalar)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeatureType {
    Scalar(ScalarType),
    List(ScalarType),
}

impl ScalarType {
    /// Feast's `ValueType` enum number, used in entity keys.
    pub fn value_type_number(self) -> u32 {
        match self {
            ScalarType::Bytes => 1,
            ScalarType::String => 2,
            ScalarType::Int32 => 3,
            ScalarType::Int64 => 4,
            ScalarType::Float64 => 5,
            ScalarType::Float32 => 6,
            ScalarType::Bool => 7,
            ScalarType::UnixTimestamp => 8,
        }
    }

    /// Whether values of this type are whole numbers (Int32, Int64, UnixTimestamp).
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            ScalarType::Int32 | ScalarType::Int64 | ScalarType::UnixTimestamp
        )
    }

    /// Whether Feast accepts this type for an entity join key.
    pub fn is_join_key_type(self) -> bool {
        !matches!(
            self,
            ScalarType::Float32 | ScalarType::Float64 | ScalarType::Bool
        )
    }

    /// The Arrow type a column of this feature must have.
    pub fn arrow_type(self) -> DataType {
        match self {
            ScalarType::Bytes => DataType::Binary,
            ScalarType::String => DataType::Utf8,
            ScalarType::Int32 => DataType::Int32,
            ScalarType::Int64 => DataType::Int64,
            ScalarType::Float64 => DataType::Float64,
            ScalarType::Float32 => DataType::Float32,
            ScalarType::Bool => DataType::Boolean,
            ScalarType::UnixTimestamp => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
        }
    }

    /// Feast's Python name for this type (`Float32`, `UnixTimestamp`...).
    pub fn dtype_name(self) -> &'static str {
        match self {
            ScalarType::Bytes => "Bytes",
            ScalarType::String => "String",
            ScalarType::Int32 => "Int32",
            ScalarType::Int64 => "Int64",
            ScalarType::Float64 => "Float64",
            ScalarType::Float32 => "Float32",
            ScalarType::Bool => "Bool",
            ScalarType::UnixTimestamp => "UnixTimestamp",
        }
    }

    /// Parses a Feast dtype name (`Int64`) or `ValueType` name (`INT64`).
    fn parse_name(name: &str) -> Option<Self> {
        let scalar = match name.trim() {
            "Bytes" | "BYTES" => ScalarType::Bytes,
            "String" | "STRING" => ScalarType::String,
            "Int32" | "INT32" => ScalarType::Int32,
            "Int64" | "INT64" => ScalarType::Int64,
            "Float64" | "DOUBLE" => ScalarType::Float64,
            "Float32" | "FLOAT" => ScalarType::Float32,
            "Bool" | "BOOL" => ScalarType::Bool,
            "UnixTimestamp" | "UNIX_TIMESTAMP" => ScalarType::UnixTimestamp,
            _ => return None,
        };
        Some(scalar)
    }
}

impl FeatureType {
    /// Feast's `ValueType` number for this type (lists are scalar + 10).
    pub fn value_type_number(self) -> u32 {
        match self {
            FeatureType::Scalar(s) => s.value_type_number(),
            FeatureType::List(s) => s.value_type_number() + 10,
        }
    }

    /// The Arrow type a column holding this feature must have.
    pub fn arrow_type(self) -> DataType {
        match self {
            FeatureType::Scalar(s) => s.arrow_type(),
            FeatureType::List(s) => DataType::new_list(s.arrow_type(), true),
        }
    }
}

/// A type name that is not one of Feast's.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "unknown type `{0}` (expected one of Bytes, String, Int32, Int64, Float32, Float64, Bool, UnixTimestamp, or Array(<one of those>))"
)]
pub struct UnknownType(pub String);

impl FromStr for ScalarType {
    type Err = UnknownType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ScalarType::parse_name(s).ok_or_else(|| UnknownType(s.to_string()))
    }
}

impl FromStr for FeatureType {
    type Err = UnknownType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let list_item = text
            .strip_prefix("Array(")
            .and_then(|rest| rest.strip_suffix(')'))
            .or_else(|| text.strip_suffix("_LIST"));
        let parsed = match list_item {
            Some(item) => ScalarType::parse_name(item).map(FeatureType::List),
            None => ScalarType::parse_name(text).map(FeatureType::Scalar),
        };
        parsed.ok_or_else(|| UnknownType(s.to_string()))
    }
}

impl fmt::Display for ScalarType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dtype_name())
    }
}

impl fmt::Display for FeatureType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeatureType::Scalar(s) => write!(f, "{s}"),
            FeatureType::List(s) => write!(f, "Array({s})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_feast_and_value_type_names() {
        assert_eq!("Int64".parse::<ScalarType>().unwrap(), ScalarType::Int64);
        assert_eq!("INT64".parse::<ScalarType>().unwrap(), ScalarType::Int64);
        assert_eq!(
            "Array(Float32)".parse::<FeatureType>().unwrap(),
            FeatureType::List(ScalarType::Float32)
        );
        assert_eq!(
            "FLOAT_LIST".parse::<FeatureType>().unwrap(),
            FeatureType::List(ScalarType::Float32)
        );
        assert!("Float128".parse::<FeatureType>().is_err());
    }

    #[test]
    fn list_numbers_are_scalar_plus_ten() {
        assert_eq!(FeatureType::List(ScalarType::Int64).value_type_number(), 14);
        assert_eq!(
            FeatureType::Scalar(ScalarType::Float32).value_type_number(),
            6
        );
    }
}

/// Feast's `entity_key_serialization_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyVersion {
    V2,
    V3,
}

impl KeyVersion {
    /// The version for a `feature_store.yaml` value; only 2 and 3 exist in Feast today.
    pub fn from_number(number: u32) -> Option<Self> {
        match number {
            2 => Some(KeyVersion::V2),
            3 => Some(KeyVersion::V3),
            _ => None,
        }
    }
}
