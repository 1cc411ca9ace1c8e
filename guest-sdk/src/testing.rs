//! Run a transform natively, the way the host would, for unit tests.
//!
//! The batch goes through the same Arrow IPC encode/decode as in the host,
//! so a transform that passes here sees the same bytes inside fvhost.

use arrow_array::RecordBatch;

use crate::{Config, Transform, ipc, runtime};

/// What one native call returned.
#[derive(Debug)]
pub struct Outcome {
    /// The output batch, decoded.
    pub batch: RecordBatch,
    /// Rejected input rows with their reasons.
    pub rejected: Vec<(u32, String)>,
}

/// Builds `T` from `config` and transforms `input` once.
pub fn run<T: Transform>(config: &[(&str, &str)], input: &RecordBatch) -> Result<Outcome, String> {
    let config = Config::new(
        config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    let mut transform = T::init(&config)?;
    let bytes = ipc::encode(input)?;
    let (output, rejected) = runtime::run(&mut transform, &bytes)?;
    Ok(Outcome {
        batch: ipc::decode(&output)?,
        rejected,
    })
}
