//! Batch input cast to what its views declare, before any transform: a
//! CSV's inferred Float64 becomes a declared Float32, an Int64 column a
//! declared Float64, timestamp text a timestamp. `push` and `materialize`
//! read their rows through it, so both take the same inputs. A value that
//! does not fit (text that is no number, a number too large for Float32)
//! refuses the batch naming its row and column: never a silent null.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};

use super::view::ViewPipeline;
use crate::transform::schema_check::to_utc_micros;

/// Why a batch does not conform to its views' declared types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConformError {
    #[error("column `{column}` ({found}) cannot become {declared}: {reason}")]
    Column {
        column: String,
        found: DataType,
        declared: DataType,
        reason: String,
    },
    #[error(
        "row {row}: column `{column}`: the value does not fit {declared} (unreadable or out of range)"
    )]
    Value {
        row: usize,
        column: String,
        declared: DataType,
    },
    #[error("{0}")]
    Arrow(String),
}

/// The type each of `views` declares for an input column: timestamps, join
/// keys, and the features (or aggregated columns) of views without a transform.
pub fn declared_types(views: &[ViewPipeline]) -> HashMap<&str, DataType> {
    let mut wanted: HashMap<&str, DataType> = HashMap::new();
    for view in views {
        let schema = &view.schema;
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        wanted.insert(&schema.timestamp_field, utc.clone());
        if let Some(created) = &schema.created_timestamp_column {
            wanted.insert(created, utc);
        }
        for key in &schema.join_keys {
            wanted
                .entry(&key.name)
                .or_insert(key.value_type.arrow_type());
        }
        if view.transformer.is_none() {
            for feature in &schema.features {
                wanted
                    .entry(&feature.name)
                    .or_insert(feature.dtype.arrow_type());
            }
        }
    }
    wanted
}

/// `batch` with each column named in `wanted` cast to its type. Columns
/// no view declares are left as they are.
pub fn conform<K: std::borrow::Borrow<str> + std::hash::Hash + Eq>(
    batch: RecordBatch,
    wanted: &HashMap<K, DataType>,
) -> Result<RecordBatch, ConformError> {
    let schema = batch.schema();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        match wanted.get(field.name().as_str()) {
            Some(to) if to != field.data_type() => {
                columns.push(cast_column(field.name(), column, to)?);
                fields.push(Field::new(field.name(), to.clone(), true));
            }
            _ => {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| ConformError::Arrow(e.to_string()))
}

fn cast_column(name: &str, column: &ArrayRef, to: &DataType) -> Result<ArrayRef, ConformError> {
    let failed = |reason: String| ConformError::Column {
        column: name.to_string(),
        found: column.data_type().clone(),
        declared: to.clone(),
        reason,
    };
    let numeric = |t: &DataType| t.is_numeric();
    if (column.data_type() == &DataType::Boolean && numeric(to))
        || (to == &DataType::Boolean && numeric(column.data_type()))
    {
        return Err(failed("booleans and numbers do not convert".into()));
    }
    let cast = if matches!(to, DataType::Timestamp(..)) {
        match epoch_seconds(column) {
            Some(micros) => micros,
            None => to_utc_micros(column).ok_or_else(|| failed("not a timestamp".into()))?,
        }
    } else {
        // Values that do not convert become nulls here, and are then
        // refused naming their row (below).
        arrow_cast::cast(column, to).map_err(|e| failed(e.to_string()))?
    };
    if let Some(row) = first_lossy_row(column, &cast) {
        return Err(ConformError::Value {
            row,
            column: name.to_string(),
            declared: to.clone(),
        });
    }
    Ok(cast)
}

/// A numeric column for a timestamp, read as seconds since the epoch (the
/// form Feast's feature server takes for a UnixTimestamp), as UTC
/// microseconds; `None` for other columns. A value out of range becomes a
/// null, which the caller reports as a value that does not fit.
fn epoch_seconds(column: &ArrayRef) -> Option<ArrayRef> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float64Type;
    if !column.data_type().is_numeric() {
        return None;
    }
    let seconds = arrow_cast::cast(column, &DataType::Float64).ok()?;
    let micros: arrow_array::TimestampMicrosecondArray = seconds
        .as_primitive::<Float64Type>()
        .iter()
        .map(|s| {
            s.map(|s| s * 1e6)
                .filter(|m| m.is_finite() && m.abs() < 9.2e18)
                .map(|m| m.round() as i64)
        })
        .collect();
    Some(Arc::new(micros.with_timezone("UTC")))
}

/// The first row whose value a cast lost: a value that became null (text
/// that is not a timestamp), or a finite number that became infinite (1e300
/// as a Float32).
fn first_lossy_row(input: &ArrayRef, output: &ArrayRef) -> Option<usize> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float32Type, Float64Type};
    let became_null = (0..input.len()).find(|&row| input.is_valid(row) && output.is_null(row));
    if became_null.is_some() || output.data_type() != &DataType::Float32 {
        return became_null;
    }
    let input = arrow_cast::cast(input, &DataType::Float64).ok()?;
    let (before, after) = (
        input.as_primitive::<Float64Type>(),
        output.as_primitive::<Float32Type>(),
    );
    (0..input.len()).find(|&row| {
        after.is_valid(row) && before.value(row).is_finite() && !after.value(row).is_finite()
    })
}

#[cfg(test)]
mod tests {
    use arrow_array::{Int64Array, StringArray};

    use super::*;

    fn batch(column: ArrayRef) -> RecordBatch {
        RecordBatch::try_from_iter([("rate", column)]).unwrap()
    }

    #[test]
    fn integers_become_declared_floats_and_text_that_is_no_number_names_its_row() {
        let wanted = HashMap::from([("rate", DataType::Float64)]);
        let cast = conform(batch(Arc::new(Int64Array::from(vec![1, 2]))), &wanted).unwrap();
        assert_eq!(cast.column(0).data_type(), &DataType::Float64);
        let refused = conform(
            batch(Arc::new(StringArray::from(vec!["0.5", "seven"]))),
            &wanted,
        )
        .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "row 1: column `rate`: the value does not fit Float64 (unreadable or out of range)"
        );
    }

    #[test]
    fn numbers_for_a_timestamp_are_epoch_seconds() {
        let utc = DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("UTC".into()));
        let wanted = HashMap::from([("rate", utc)]);
        let cast = conform(
            batch(Arc::new(Int64Array::from(vec![1_657_184_400]))),
            &wanted,
        )
        .unwrap();
        let micros = cast
            .column(0)
            .as_any()
            .downcast_ref::<arrow_array::TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(micros.value(0), 1_657_184_400_000_000);
        let refused = conform(
            batch(Arc::new(arrow_array::Float64Array::from(vec![1e300]))),
            &wanted,
        )
        .unwrap_err();
        assert!(
            matches!(refused, ConformError::Value { row: 0, .. }),
            "{refused}"
        );
    }

    #[test]
    fn a_number_too_large_for_float32_is_refused_naming_the_row() {
        let wanted = HashMap::from([("rate".to_string(), DataType::Float32)]);
        let input: ArrayRef = Arc::new(arrow_array::Float64Array::from(vec![1.0, 1e300]));
        let refused = conform(batch(input), &wanted).unwrap_err();
        assert_eq!(
            refused,
            ConformError::Value {
                row: 1,
                column: "rate".into(),
                declared: DataType::Float32
            }
        );
    }
}
