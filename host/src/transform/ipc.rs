//! Arrow IPC stream bytes: how batches cross into and out of a transform.

use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;

/// Encodes one batch as an IPC stream (schema message, batch, end marker).
pub fn encode(batch: &RecordBatch) -> Result<Vec<u8>, arrow_schema::ArrowError> {
    let mut writer = StreamWriter::try_new(
        Vec::with_capacity(batch.get_array_memory_size() + 1024),
        &batch.schema(),
    )?;
    writer.write(batch)?;
    writer.into_inner()
}

/// Why bytes a transform returned are not one Arrow IPC batch.
#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    #[error(transparent)]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("the Arrow decoder gave up on it: {0}")]
    DecoderPanicked(String),
    #[error("the stream holds no record batch")]
    NoBatch,
    #[error("the stream holds more than one record batch")]
    SeveralBatches,
}

/// Decodes an IPC stream that must hold exactly one batch.
///
/// The bytes come from an untrusted transform, and arrow-ipc can panic on
/// some malformed streams (a buffer sliced past its end) instead of
/// returning an error; such a panic is caught here and reported as what it
/// is, malformed output, so it fails the batch and nothing else.
pub fn decode_one(bytes: &[u8]) -> Result<RecordBatch, IpcError> {
    std::panic::catch_unwind(|| decode_one_unguarded(bytes)).unwrap_or_else(|panic| {
        let detail = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no detail");
        Err(IpcError::DecoderPanicked(detail.to_string()))
    })
}

fn decode_one_unguarded(bytes: &[u8]) -> Result<RecordBatch, IpcError> {
    let mut reader = StreamReader::try_new(bytes, None)?;
    let batch = reader.next().ok_or(IpcError::NoBatch)??;
    if reader.next().is_some() {
        return Err(IpcError::SeveralBatches);
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Float32Array, Int64Array, StringArray};

    use super::*;

    fn sample() -> Vec<u8> {
        let batch = RecordBatch::try_from_iter([
            (
                "driver_id",
                Arc::new(Int64Array::from(vec![1, 2, 3])) as arrow_array::ArrayRef,
            ),
            (
                "conv",
                Arc::new(Float32Array::from(vec![0.5, 0.25, 1.0])) as _,
            ),
            (
                "note",
                Arc::new(StringArray::from(vec!["a", "bb", "ccc"])) as _,
            ),
        ])
        .unwrap();
        encode(&batch).unwrap()
    }

    /// A small deterministic generator, so a failure names its case.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// Whatever bytes a transform returns, decoding them answers Ok or an
    /// error: it never panics (a guest's output is untrusted input).
    #[test]
    fn mangled_output_is_an_error_or_a_batch_never_a_panic() {
        let valid = sample();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for case in 0..20_000 {
            let mut bytes = valid.clone();
            match next(&mut state) % 3 {
                0 => bytes.truncate((next(&mut state) as usize) % valid.len()),
                1 => {
                    for _ in 0..1 + next(&mut state) % 4 {
                        let at = (next(&mut state) as usize) % bytes.len();
                        bytes[at] ^= 1 << (next(&mut state) % 8);
                    }
                }
                _ => {
                    let at = (next(&mut state) as usize) % bytes.len();
                    bytes[at] = next(&mut state) as u8;
                }
            }
            let outcome = std::panic::catch_unwind(|| decode_one(&bytes).map(|b| b.num_rows()));
            assert!(outcome.is_ok(), "case {case}: decoding panicked");
            if let Ok(Err(reason)) = &outcome {
                assert!(
                    !reason.to_string().is_empty(),
                    "case {case}: an error says why"
                );
            }
        }
    }
}
