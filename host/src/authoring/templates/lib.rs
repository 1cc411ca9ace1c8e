//! The `{{name}}` transform: one function over a batch of the view's input
//! rows, returning the rows the view writes (its join keys, event time and
//! declared features). Build it with `fvhost build {{name}}`.

use std::sync::Arc;

use fvhost_guest::arrow_array::{Array, ArrayRef, Float64Array};
use fvhost_guest::arrow_schema::{DataType, Field, Schema};
use fvhost_guest::{Config, RecordBatch, Rejections, Transform};

pub struct Scale {
    /// `factor` in the view's transform config.
    factor: f64,
}

impl Transform for Scale {
    fn init(config: &Config) -> Result<Self, String> {
        Ok(Self {
            factor: config.parse_or("factor", 1.0)?,
        })
    }

    fn transform(&mut self, input: RecordBatch, rejected: &mut Rejections) -> Result<RecordBatch, String> {
        let values = input
            .column_by_name("value")
            .and_then(|c| c.as_any().downcast_ref::<Float64Array>())
            .ok_or("input has no Float64 column `value`")?;
        let mut keep = Vec::new();
        for row in 0..values.len() {
            if values.is_valid(row) && values.value(row) < 0.0 {
                rejected.reject(row, format!("value {} is negative", values.value(row)));
            } else {
                keep.push(row as u32);
            }
        }
        let scaled: Float64Array = values.iter().map(|v| v.map(|v| v * self.factor)).collect();
        let mut fields: Vec<Field> = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for (field, column) in input.schema().fields().iter().zip(input.columns()) {
            if field.name() != "value" {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
        }
        fields.push(Field::new("value_scaled", DataType::Float64, true));
        columns.push(Arc::new(scaled));
        let all = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| e.to_string())?;
        let indices = fvhost_guest::arrow_array::UInt32Array::from(keep);
        fvhost_guest::arrow_select::take::take_record_batch(&all, &indices).map_err(|e| e.to_string())
    }
}

fvhost_guest::export_transform!(Scale);

#[cfg(test)]
mod tests {
    use super::*;
    use fvhost_guest::arrow_array::Int64Array;

    #[test]
    fn values_are_scaled_and_negative_ones_rejected() {
        let input = RecordBatch::try_from_iter([
            ("entity_id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
            ("value", Arc::new(Float64Array::from(vec![Some(0.5), None, Some(-1.0)]))),
        ])
        .unwrap();
        let out = fvhost_guest::testing::run::<Scale>(&[("factor", "10")], &input).unwrap();
        let scaled = out.batch.column_by_name("value_scaled").unwrap();
        let scaled = scaled.as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(scaled.len(), 2);
        assert_eq!(scaled.value(0), 5.0);
        assert!(scaled.is_null(1));
        assert_eq!(out.rejected.len(), 1);
    }
}
