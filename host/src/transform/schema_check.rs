//! A transform's output checked against the view's declared schema.
//!
//! The check names the column, its role and both types, and hands back the
//! columns converted to one canonical Arrow type per Feast type, so the
//! encoders downstream never guess.

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, ArrayRef, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{DataType, TimeUnit};

use crate::repo::{Feature, JoinKey};
use crate::types::{FeatureType, ScalarType};

/// The columns a view's output must carry.
#[derive(Debug, Clone)]
pub struct ViewSchema {
    pub view: String,
    pub join_keys: Vec<JoinKey>,
    pub timestamp_field: String,
    pub created_timestamp_column: Option<String>,
    pub features: Vec<Feature>,
    /// Output rows whose event time is further ahead of the host's clock
    /// are not written (see [`crate::event_time`]).
    pub max_future_skew: std::time::Duration,
}

/// Why an output batch does not fit the view.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OutputSchemaError {
    #[error("{role} column `{column}` is missing")]
    Missing { role: &'static str, column: String },
    #[error("{role} column `{column}` is {found}, but the view declares {declared}")]
    WrongType {
        role: &'static str,
        column: String,
        declared: String,
        found: DataType,
    },
}

/// An output batch that fits the view, in canonical column types.
#[derive(Debug, Clone)]
pub struct CheckedBatch {
    pub rows: usize,
    /// One column per join key, cast to the declared key type; a value that
    /// did not fit became null and is reported per row (see `key_sources`).
    pub join_keys: Vec<ArrayRef>,
    /// The join-key columns as the transform returned them.
    pub key_sources: Vec<ArrayRef>,
    pub event_time: TimestampMicrosecondArray,
    pub created: Option<TimestampMicrosecondArray>,
    pub features: Vec<ArrayRef>,
}

impl ViewSchema {
    /// The rows `view`, fed by `source`, writes.
    pub fn for_view(view: &crate::repo::FeatureView, source: &crate::repo::Source) -> Self {
        Self {
            view: view.name.clone(),
            join_keys: view.join_keys.clone(),
            timestamp_field: source.timestamp_field.clone(),
            created_timestamp_column: source.created_timestamp_column.clone(),
            features: view.row_columns().to_vec(),
            max_future_skew: source.max_future_skew,
        }
    }

    /// Checks `batch` and converts its columns.
    pub fn check(&self, batch: &RecordBatch) -> Result<CheckedBatch, OutputSchemaError> {
        let mut join_keys = Vec::with_capacity(self.join_keys.len());
        let mut key_sources = Vec::with_capacity(self.join_keys.len());
        for key in &self.join_keys {
            let column = column(batch, "join key", &key.name)?;
            join_keys.push(key_column(column, key)?);
            key_sources.push(column.clone());
        }
        let event_time = timestamp_column(
            column(batch, "timestamp", &self.timestamp_field)?,
            &self.timestamp_field,
            "timestamp",
        )?;
        let created = match &self.created_timestamp_column {
            Some(name) => match batch.column_by_name(name) {
                Some(c) => Some(timestamp_column(c, name, "created timestamp")?),
                None => None,
            },
            None => None,
        };
        let features = self
            .features
            .iter()
            .map(|feature| feature_column(column(batch, "feature", &feature.name)?, feature))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CheckedBatch {
            rows: batch.num_rows(),
            join_keys,
            key_sources,
            event_time,
            created,
            features,
        })
    }
}

fn column<'a>(
    batch: &'a RecordBatch,
    role: &'static str,
    name: &str,
) -> Result<&'a ArrayRef, OutputSchemaError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| OutputSchemaError::Missing {
            role,
            column: name.to_string(),
        })
}

fn cast(array: &ArrayRef, to: &DataType) -> Option<ArrayRef> {
    if array.data_type() == to {
        return Some(array.clone());
    }
    arrow_cast::cast(array, to).ok()
}

fn key_column(array: &ArrayRef, key: &JoinKey) -> Result<ArrayRef, OutputSchemaError> {
    let found = array.data_type();
    let fits = match key.value_type {
        ScalarType::Int32 | ScalarType::Int64 => found.is_integer(),
        ScalarType::String => matches!(
            found,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ),
        ScalarType::Bytes => matches!(
            found,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView
        ),
        ScalarType::UnixTimestamp => matches!(found, DataType::Timestamp(..)),
        _ => false,
    };
    let wrong = || OutputSchemaError::WrongType {
        role: "join key",
        column: key.name.clone(),
        declared: key.value_type.to_string(),
        found: found.clone(),
    };
    if !fits {
        return Err(wrong());
    }
    if key.value_type == ScalarType::UnixTimestamp {
        return to_utc_micros(array).ok_or_else(wrong);
    }
    cast(array, &key.value_type.arrow_type()).ok_or_else(wrong)
}

fn timestamp_column(
    array: &ArrayRef,
    name: &str,
    role: &'static str,
) -> Result<TimestampMicrosecondArray, OutputSchemaError> {
    let wrong = || OutputSchemaError::WrongType {
        role,
        column: name.to_string(),
        declared: "a timestamp".into(),
        found: array.data_type().clone(),
    };
    if !matches!(array.data_type(), DataType::Timestamp(..)) {
        return Err(wrong());
    }
    let micros = timestamp_micros(array).ok_or_else(wrong)?;
    Ok(micros
        .as_primitive::<TimestampMicrosecondType>()
        .clone()
        .with_timezone_opt(None::<String>))
}

/// Converts any timestamp unit to microseconds without touching the instant:
/// Arrow timestamps are UTC epoch values whatever their time zone label.
fn timestamp_micros(array: &ArrayRef) -> Option<ArrayRef> {
    let DataType::Timestamp(_, tz) = array.data_type() else {
        return None;
    };
    cast(
        array,
        &DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
    )
}

/// A timestamp column (any unit or zone) or timestamp text (RFC 3339; naive
/// text is UTC) as microseconds labelled UTC, the canonical form.
pub fn to_utc_micros(array: &ArrayRef) -> Option<ArrayRef> {
    let micros = match array.data_type() {
        DataType::Timestamp(..) => timestamp_micros(array)?,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None))?
        }
        _ => return None,
    };
    let values = micros.as_primitive::<TimestampMicrosecondType>().clone();
    Some(std::sync::Arc::new(values.with_timezone("UTC")))
}

fn feature_column(array: &ArrayRef, feature: &Feature) -> Result<ArrayRef, OutputSchemaError> {
    let target = feature.dtype.arrow_type();
    let wrong = || OutputSchemaError::WrongType {
        role: "feature",
        column: feature.name.clone(),
        declared: feature.dtype.to_string(),
        found: array.data_type().clone(),
    };
    if !same_feast_type(array.data_type(), feature.dtype) {
        return Err(wrong());
    }
    if feature.dtype == FeatureType::Scalar(ScalarType::UnixTimestamp) {
        let micros = timestamp_micros(array).ok_or_else(wrong)?;
        let values = micros.as_primitive::<TimestampMicrosecondType>().clone();
        return Ok(std::sync::Arc::new(values.with_timezone("UTC")));
    }
    cast(array, &target).ok_or_else(wrong)
}

/// Whether `found` is a representation of `dtype` (string flavours, timestamp
/// units, list flavours), as opposed to a different type that would need a
/// lossy or surprising conversion.
fn same_feast_type(found: &DataType, dtype: FeatureType) -> bool {
    match dtype {
        FeatureType::Scalar(scalar) => same_scalar(found, scalar),
        FeatureType::List(item) => match found {
            DataType::List(f)
            | DataType::LargeList(f)
            | DataType::ListView(f)
            | DataType::LargeListView(f) => same_scalar(f.data_type(), item),
            _ => false,
        },
    }
}

fn same_scalar(found: &DataType, scalar: ScalarType) -> bool {
    match scalar {
        ScalarType::String => matches!(
            found,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ),
        ScalarType::Bytes => matches!(
            found,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView
        ),
        ScalarType::UnixTimestamp => matches!(found, DataType::Timestamp(..)),
        other => found == &other.arrow_type(),
    }
}

/// Whether a join-key value that did not fit its declared type was turned to null.
pub fn key_overflowed(checked: &CheckedBatch, key: usize, row: usize) -> bool {
    checked.join_keys[key].is_null(row) && !checked.key_sources[key].is_null(row)
}
