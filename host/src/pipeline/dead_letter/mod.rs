//! Events that cannot be applied: never dropped silently.
//!
//! Every dead letter is logged with its view, origin (topic, partition,
//! offset) and reason, counted in the view's metrics under its kind, and sent
//! to the view's destination ([`sink`]): a Kafka topic, a Redis stream in the
//! tenant's key space, or the log alone. The batch's offsets are committed
//! only after its dead letters are stored.

pub mod replay;
pub mod sink;

pub use sink::{DeadLetterSink, DeadLetterSinkError};

use crate::source::EventOrigin;
use crate::source::kafka::Event;

/// Why an event was set aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterKind {
    /// The message did not decode by the declared schema.
    Decode,
    /// Older than the view's watermark.
    Late,
    /// Further ahead of the host's clock than the source allows.
    Future,
    /// The transform rejected the row.
    Rejected,
    /// The transform failed on the batch (trap, limit, bad output) after its
    /// retries, and the failure could not be narrowed to fewer events.
    BatchFailed,
    /// The transform's output row for this event cannot be written (a key
    /// that does not fit the entity's type, a missing timestamp).
    Unwritable,
}

impl DeadLetterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterKind::Decode => "decode_error",
            DeadLetterKind::Late => "late_event",
            DeadLetterKind::Future => "future_event",
            DeadLetterKind::Rejected => "rejected_by_transform",
            DeadLetterKind::BatchFailed => "batch_failed",
            DeadLetterKind::Unwritable => "unwritable_row",
        }
    }
}

/// One event set aside, with everything needed to replay or debug it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub project: String,
    pub view: String,
    /// The view version that handled it (see `ViewPipeline::version`).
    pub version: String,
    /// The SHA-256 of the transform module of that version, if it has one.
    pub module: Option<String>,
    pub kind: DeadLetterKind,
    pub reason: String,
    pub origin: LetterOrigin,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
}

/// Where a dead letter's row came from.
#[derive(Debug, Clone, PartialEq)]
pub enum LetterOrigin {
    /// A Kafka message: replayable to its topic.
    Event(EventOrigin),
    /// A row of a batch input: `source` names it (`materialize FILE`, `push
    /// SOURCE`), `row` is its position there (for materialize, among the rows
    /// the run read from that file). Its payload is the row as JSON; fixed,
    /// it is applied again by running materialize or push again.
    Row { source: String, row: u64 },
}

/// What the stream loop knows when it sets events aside.
pub struct DeadLetterContext<'a> {
    pub project: &'a str,
    pub view: &'a str,
    pub version: &'a str,
    pub module: Option<&'a str>,
}

impl DeadLetterContext<'_> {
    /// The dead letter of `event`, logged on the way.
    pub fn letter(&self, kind: DeadLetterKind, event: &Event, reason: &str) -> DeadLetter {
        let origin = LetterOrigin::Event(event.origin.clone());
        self.logged(
            kind,
            reason,
            origin,
            event.key.clone(),
            event.payload.clone(),
        )
    }

    /// The dead letter of a batch input's row (its JSON in `payload`), logged on the way.
    pub fn row_letter(
        &self,
        kind: DeadLetterKind,
        source: &str,
        row: u64,
        payload: Vec<u8>,
        reason: &str,
    ) -> DeadLetter {
        let origin = LetterOrigin::Row {
            source: source.to_string(),
            row,
        };
        self.logged(kind, reason, origin, None, Some(payload))
    }

    fn logged(
        &self,
        kind: DeadLetterKind,
        reason: &str,
        origin: LetterOrigin,
        key: Option<Vec<u8>>,
        payload: Option<Vec<u8>>,
    ) -> DeadLetter {
        let letter = DeadLetter {
            project: self.project.to_string(),
            view: self.view.to_string(),
            version: self.version.to_string(),
            module: self.module.map(str::to_string),
            kind,
            reason: reason.to_string(),
            origin,
            key,
            payload,
        };
        log(&letter);
        letter
    }
}

/// A batch row as one JSON object: the payload of its dead letter.
/// Timestamps are written in RFC 3339 with a `+00:00` offset.
pub fn row_payload(batch: &arrow_array::RecordBatch, row: usize) -> Vec<u8> {
    let row_batch = with_offset_timezones(&batch.slice(row, 1));
    let mut writer = arrow_json::LineDelimitedWriter::new(Vec::new());
    let written = row_batch
        .map_err(|e| e.to_string())
        .and_then(|b| writer.write(&b).map_err(|e| e.to_string()))
        .and_then(|()| writer.finish().map_err(|e| e.to_string()));
    match written {
        Ok(()) => {
            let mut bytes = writer.into_inner();
            if bytes.last() == Some(&b'\n') {
                bytes.pop();
            }
            bytes
        }
        Err(e) => serde_json::json!({ "error": format!("row {row} cannot be shown as JSON: {e}") })
            .to_string()
            .into_bytes(),
    }
}

/// `batch` with named time zones ("UTC") relabelled as the offset the JSON
/// writer can print without a time-zone database; the instants are unchanged.
fn with_offset_timezones(
    batch: &arrow_array::RecordBatch,
) -> Result<arrow_array::RecordBatch, arrow_schema::ArrowError> {
    use arrow_schema::{DataType, Field, Schema};
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        match field.data_type() {
            DataType::Timestamp(unit, Some(_)) => {
                let relabelled = DataType::Timestamp(*unit, Some("+00:00".into()));
                let data = column
                    .to_data()
                    .into_builder()
                    .data_type(relabelled.clone())
                    .build()?;
                fields.push(Field::new(field.name(), relabelled, field.is_nullable()));
                columns.push(arrow_array::make_array(data));
            }
            _ => {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
        }
    }
    arrow_array::RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns)
}

fn log(letter: &DeadLetter) {
    let preview = letter.payload.as_deref().map(preview).unwrap_or_default();
    match &letter.origin {
        LetterOrigin::Event(origin) => tracing::warn!(
            target: "fvhost::dead_letter",
            view = %letter.view,
            version = %letter.version,
            kind = letter.kind.as_str(),
            topic = %origin.topic,
            partition = origin.partition,
            offset = origin.offset,
            payload = %preview,
            "{}", letter.reason
        ),
        LetterOrigin::Row { source, row } => tracing::warn!(
            target: "fvhost::dead_letter",
            view = %letter.view,
            version = %letter.version,
            kind = letter.kind.as_str(),
            source = %source,
            row,
            payload = %preview,
            "{}", letter.reason
        ),
    }
}

/// The first bytes of a payload, printable.
fn preview(payload: &[u8]) -> String {
    const MAX: usize = 120;
    let text = String::from_utf8_lossy(&payload[..payload.len().min(MAX)]).into_owned();
    if payload.len() > MAX {
        format!("{text}…")
    } else {
        text
    }
}
