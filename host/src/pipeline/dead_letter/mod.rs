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
    pub origin: EventOrigin,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
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
        let letter = DeadLetter {
            project: self.project.to_string(),
            view: self.view.to_string(),
            version: self.version.to_string(),
            module: self.module.map(str::to_string),
            kind,
            reason: reason.to_string(),
            origin: event.origin.clone(),
            key: event.key.clone(),
            payload: event.payload.clone(),
        };
        log(&letter);
        letter
    }
}

fn log(letter: &DeadLetter) {
    let preview = letter.payload.as_deref().map(preview).unwrap_or_default();
    tracing::warn!(
        target: "fvhost::dead_letter",
        view = %letter.view,
        version = %letter.version,
        kind = letter.kind.as_str(),
        topic = %letter.origin.topic,
        partition = letter.origin.partition,
        offset = letter.origin.offset,
        payload = %preview,
        "{}", letter.reason
    );
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
