//! A second version of the driver-stats transform for the hot-swap tests:
//! same output schema, rates multiplied by 1000 instead of the configured factor.

use std::sync::Arc;

use fvhost_guest::arrow_array::cast::AsArray;
use fvhost_guest::arrow_array::types::Float64Type;
use fvhost_guest::arrow_array::{ArrayRef, Float32Array};
use fvhost_guest::arrow_schema::{DataType, Field, Schema};
use fvhost_guest::{Config, RecordBatch, Rejections, Transform};

struct RatesX1000;

impl Transform for RatesX1000 {
    fn init(_config: &Config) -> Result<Self, String> {
        Ok(Self)
    }

    fn transform(&mut self, input: RecordBatch, _: &mut Rejections) -> Result<RecordBatch, String> {
        let mut fields: Vec<Field> = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for (field, column) in input.schema().fields().iter().zip(input.columns()) {
            if field.name() != "conv_rate" && field.name() != "acc_rate" {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
        }
        for (rate, feature) in [("conv_rate", "conv_percentage"), ("acc_rate", "acc_percentage")] {
            let values = input.column_by_name(rate).ok_or_else(|| format!("no `{rate}`"))?.as_primitive::<Float64Type>();
            let scaled: Float32Array = values.iter().map(|v| v.map(|v| (v * 1000.0) as f32)).collect();
            fields.push(Field::new(feature, DataType::Float32, true));
            columns.push(Arc::new(scaled));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| e.to_string())
    }
}

fvhost_guest::export_transform!(RatesX1000);
