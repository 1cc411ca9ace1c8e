//! Arrow IPC stream bytes <-> one RecordBatch.

use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;

pub(crate) fn decode(bytes: &[u8]) -> Result<RecordBatch, String> {
    let mut reader = StreamReader::try_new(bytes, None)
        .map_err(|e| format!("input is not an Arrow IPC stream: {e}"))?;
    match reader.next() {
        Some(batch) => batch.map_err(|e| format!("input batch does not decode: {e}")),
        None => Ok(RecordBatch::new_empty(reader.schema())),
    }
}

pub(crate) fn encode(batch: &RecordBatch) -> Result<Vec<u8>, String> {
    let mut writer = StreamWriter::try_new(Vec::new(), &batch.schema())
        .map_err(|e| format!("cannot start the output stream: {e}"))?;
    writer
        .write(batch)
        .map_err(|e| format!("cannot encode the output batch: {e}"))?;
    writer
        .into_inner()
        .map_err(|e| format!("cannot finish the output stream: {e}"))
}
