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

/// Decodes an IPC stream that must hold exactly one batch.
pub fn decode_one(bytes: &[u8]) -> Result<RecordBatch, String> {
    let mut reader = StreamReader::try_new(bytes, None).map_err(|e| e.to_string())?;
    let batch = match reader.next() {
        Some(batch) => batch.map_err(|e| e.to_string())?,
        None => return Err("the stream holds no record batch".into()),
    };
    if reader.next().is_some() {
        return Err("the stream holds more than one record batch".into());
    }
    Ok(batch)
}
