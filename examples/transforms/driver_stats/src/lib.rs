//! The `driver_hourly_stats_stream` transform of the driver-ranking example.
//!
//! Turns `conv_rate` and `acc_rate` (fractions, Float64 from the stream's
//! JSON) into `conv_percentage` and `acc_percentage` (Float32 features) and
//! drops the inputs. Every other column (the join key, the timestamps)
//! passes through untouched.

use std::sync::Arc;

use fvhost_guest::arrow_array::{Array, ArrayRef, Float32Array, Float64Array};
use fvhost_guest::arrow_schema::{DataType, Field, Schema};
use fvhost_guest::{Config, RecordBatch, Rejections, Transform};

/// Inputs turned into percentages, and the feature each one becomes.
const RATES: [(&str, &str); 2] = [
    ("conv_rate", "conv_percentage"),
    ("acc_rate", "acc_percentage"),
];

pub struct DriverStats {
    /// What a rate is multiplied by; `factor` in the view's transform config.
    factor: f64,
}

impl Transform for DriverStats {
    fn init(config: &Config) -> Result<Self, String> {
        Ok(Self {
            factor: config.parse_or("factor", 100.0)?,
        })
    }

    fn transform(&mut self, input: RecordBatch, _: &mut Rejections) -> Result<RecordBatch, String> {
        let schema = input.schema();
        let mut fields: Vec<Field> = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for (field, column) in schema.fields().iter().zip(input.columns()) {
            if !RATES.iter().any(|(rate, _)| rate == field.name()) {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
        }
        for (rate, feature) in RATES {
            fields.push(Field::new(feature, DataType::Float32, true));
            columns.push(Arc::new(self.percentage(&input, rate)?));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| e.to_string())
    }
}

impl DriverStats {
    fn percentage(&self, input: &RecordBatch, rate: &str) -> Result<Float32Array, String> {
        let column = input
            .column_by_name(rate)
            .ok_or_else(|| format!("input has no `{rate}` column"))?;
        let values = column
            .as_any()
            .downcast_ref::<Float64Array>()
            .ok_or_else(|| format!("`{rate}` is {}, expected Float64", column.data_type()))?;
        Ok(values
            .iter()
            .map(|v| v.map(|v| (v * self.factor) as f32))
            .collect())
    }
}

fvhost_guest::export_transform!(DriverStats);

#[cfg(test)]
mod tests {
    use super::*;
    use fvhost_guest::arrow_array::Int64Array;

    fn input() -> RecordBatch {
        RecordBatch::try_from_iter([
            ("driver_id", Arc::new(Int64Array::from(vec![1001, 1002])) as ArrayRef),
            ("conv_rate", Arc::new(Float64Array::from(vec![Some(0.5), None]))),
            ("acc_rate", Arc::new(Float64Array::from(vec![Some(0.25), Some(1.0)]))),
        ])
        .unwrap()
    }

    #[test]
    fn rates_become_percentages_and_inputs_are_dropped() {
        let out = fvhost_guest::testing::run::<DriverStats>(&[], &input()).unwrap();
        let names: Vec<_> = out.batch.schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["driver_id", "conv_percentage", "acc_percentage"]);
        let conv = out.batch.column(1).as_any().downcast_ref::<Float32Array>().unwrap();
        assert_eq!(conv.value(0), 50.0);
        assert!(conv.is_null(1));
    }

    #[test]
    fn factor_comes_from_config() {
        let out = fvhost_guest::testing::run::<DriverStats>(&[("factor", "10")], &input()).unwrap();
        let acc = out.batch.column(2).as_any().downcast_ref::<Float32Array>().unwrap();
        assert_eq!(acc.value(1), 10.0);
    }
}
