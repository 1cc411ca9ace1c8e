//! Window values as the features Feast reads: one `Value` protobuf per
//! aggregation, typed by the aggregation's output type.

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int32Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};

use super::partial::WindowValue;
use super::plan::WindowPlan;
use super::scalar::Scalar;
use crate::online::value::{CellError, encode_column};
use crate::types::{FeatureType, ScalarType};

/// `rows[e][i]` is entity e's value of aggregation i; returns, per entity,
/// the encoded `Value` of each aggregation, in the view's aggregation order.
pub fn encode_rows(
    plan: &WindowPlan,
    rows: &[Vec<WindowValue>],
) -> Result<Vec<Vec<Vec<u8>>>, CellError> {
    let mut encoded: Vec<Vec<Vec<u8>>> = vec![Vec::new(); rows.len()];
    for (i, aggregation) in plan.aggregations().iter().enumerate() {
        let column = column(aggregation.output_type, rows.iter().map(|row| &row[i]));
        let values = encode_column(&column, FeatureType::Scalar(aggregation.output_type))?;
        for (entity, value) in encoded.iter_mut().zip(values) {
            entity.push(value);
        }
    }
    Ok(encoded)
}

/// One aggregation's values over the entities, as an Arrow array of `output`.
fn column<'a>(output: ScalarType, values: impl Iterator<Item = &'a WindowValue>) -> ArrayRef {
    let scalars = values.map(|v| match v {
        WindowValue::Null => None,
        WindowValue::Value(s) => Some(s),
    });
    let int = |s: &Scalar| match s {
        Scalar::Int(v) => Some(*v),
        _ => None,
    };
    match output {
        ScalarType::Int64 => {
            let mut b = Int64Builder::new();
            scalars.for_each(|s| b.append_option(s.and_then(int)));
            Arc::new(b.finish())
        }
        ScalarType::Int32 => {
            let mut b = Int32Builder::new();
            scalars
                .for_each(|s| b.append_option(s.and_then(int).and_then(|v| i32::try_from(v).ok())));
            Arc::new(b.finish())
        }
        ScalarType::UnixTimestamp => {
            let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
            scalars.for_each(|s| b.append_option(s.and_then(int)));
            Arc::new(b.finish())
        }
        ScalarType::Float64 => {
            let mut b = Float64Builder::new();
            scalars.for_each(|s| b.append_option(s.map(Scalar::as_f64)));
            Arc::new(b.finish())
        }
        ScalarType::Float32 => {
            let mut b = Float32Builder::new();
            scalars.for_each(|s| b.append_option(s.map(|s| s.as_f64() as f32)));
            Arc::new(b.finish())
        }
        ScalarType::Bool => {
            let mut b = BooleanBuilder::new();
            scalars.for_each(|s| {
                b.append_option(s.and_then(|s| match s {
                    Scalar::Bool(v) => Some(*v),
                    _ => None,
                }))
            });
            Arc::new(b.finish())
        }
        ScalarType::String => {
            let mut b = StringBuilder::new();
            scalars.for_each(|s| {
                b.append_option(s.and_then(|s| match s {
                    Scalar::Bytes(v) => std::str::from_utf8(v).ok(),
                    _ => None,
                }))
            });
            Arc::new(b.finish())
        }
        ScalarType::Bytes => {
            let mut b = BinaryBuilder::new();
            scalars.for_each(|s| {
                b.append_option(s.and_then(|s| match s {
                    Scalar::Bytes(v) => Some(v.as_slice()),
                    _ => None,
                }))
            });
            Arc::new(b.finish())
        }
    }
}
