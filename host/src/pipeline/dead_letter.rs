//! Events that cannot be applied: never dropped silently.
//!
//! Each one is logged with its view, origin (topic, partition, offset) and
//! reason, and counted in the view's metrics under its kind.

use crate::source::EventOrigin;

/// Why an event was set aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterKind {
    /// The message did not decode by the declared schema.
    Decode,
    /// Older than the view's watermark.
    Late,
    /// The transform rejected the row.
    Rejected,
}

impl DeadLetterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterKind::Decode => "decode_error",
            DeadLetterKind::Late => "late_event",
            DeadLetterKind::Rejected => "rejected_by_transform",
        }
    }
}

/// Records one dead-lettered event.
pub fn dead_letter(
    view: &str,
    kind: DeadLetterKind,
    origin: &EventOrigin,
    reason: &str,
    payload: Option<&[u8]>,
) {
    let preview = payload.map(preview).unwrap_or_default();
    tracing::warn!(
        target: "fvhost::dead_letter",
        view,
        kind = kind.as_str(),
        topic = %origin.topic,
        partition = origin.partition,
        offset = origin.offset,
        payload = %preview,
        "{reason}"
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
