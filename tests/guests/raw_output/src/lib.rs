//! Implements the contract's exports by hand, bypassing the SDK's encoder,
//! and answers every batch with bytes that are not an Arrow IPC stream, plus
//! a rejection of a row that does not exist.

use fvhost_guest::bindings::exports::fvhost::transform::transformer::Guest;
use fvhost_guest::bindings::fvhost::transform::types::{Output, RejectedRow};

struct RawOutput;

impl Guest for RawOutput {
    fn init(_config: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }

    fn transform(_batch: Vec<u8>) -> Result<Output, String> {
        Ok(Output {
            batch: b"\xff\xff\xff\xffthis is not arrow".to_vec(),
            rejected: vec![RejectedRow { row: u32::MAX, reason: "no such row".into() }],
        })
    }
}

fvhost_guest::bindings::__export_feature_transform!(RawOutput with_types_in fvhost_guest::bindings);
