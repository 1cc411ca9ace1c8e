//! Passes every batch through untouched, except that a batch holding the
//! driver id in config key `trap_on` makes it panic, which traps the instance.
//! Rows whose `conv_rate` is negative are rejected, to exercise row rejection.

use fvhost_guest::arrow_array::cast::AsArray;
use fvhost_guest::arrow_array::types::{Float64Type, Int32Type};
use fvhost_guest::arrow_array::Array;
use fvhost_guest::{Config, RecordBatch, Rejections, Transform};

struct TrapOnDriver {
    trap_on: i32,
}

impl Transform for TrapOnDriver {
    fn init(config: &Config) -> Result<Self, String> {
        Ok(Self { trap_on: config.parse_or("trap_on", -1)? })
    }

    fn transform(&mut self, input: RecordBatch, rejected: &mut Rejections) -> Result<RecordBatch, String> {
        let ids = input.column_by_name("driver_id").ok_or("no driver_id column")?.as_primitive::<Int32Type>();
        if ids.iter().flatten().any(|id| id == self.trap_on) {
            panic!("driver {} is poison", self.trap_on);
        }
        let rates = input.column_by_name("conv_rate").ok_or("no conv_rate column")?.as_primitive::<Float64Type>();
        let keep: Vec<bool> = (0..input.num_rows()).map(|row| rates.is_null(row) || rates.value(row) >= 0.0).collect();
        for (row, kept) in keep.iter().enumerate() {
            if !kept {
                rejected.reject(row, "conv_rate is negative");
            }
        }
        fvhost_guest::keep_rows(&input, &keep)
    }
}

fvhost_guest::export_transform!(TrapOnDriver);
