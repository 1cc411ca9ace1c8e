//! Feast's `GetOnlineFeaturesResponse` written as JSON text, column by
//! column, straight from the stored bytes.
//!
//! An answer of 1000 entities holds thousands of values; building a
//! `serde_json::Value` and a timestamp `String` for each, then serializing
//! them, cost more than Redis's own work for the read (docs/architecture.md,
//! "Online reads against Feast"). Each column keeps its three JSON arrays
//! as text instead, filled entity by entity, and the answer is their
//! concatenation.

use super::value::{Written, write_json};

/// One answered column: its values, statuses and event times as the
/// comma-separated insides of three JSON arrays.
#[derive(Debug, Default)]
pub struct ColumnText {
    values: Vec<u8>,
    statuses: Vec<u8>,
    event_timestamps: Vec<u8>,
    rows: usize,
}

impl ColumnText {
    /// A column expected to hold `rows` values of about `value_bytes` each.
    pub fn with_capacity(rows: usize, value_bytes: usize) -> Self {
        Self {
            values: Vec::with_capacity(rows * (value_bytes + 1)),
            statuses: Vec::with_capacity(rows * 11),
            event_timestamps: Vec::with_capacity(rows * 24),
            rows: 0,
        }
    }

    /// Appends one row: `write_value` writes its JSON value and returns
    /// its status (one of Feast's status names, which need no escapes);
    /// `timestamp` is already quoted JSON text.
    pub fn push(
        &mut self,
        write_value: impl FnOnce(&mut Vec<u8>) -> &'static str,
        timestamp: &[u8],
    ) {
        if self.rows > 0 {
            self.values.push(b',');
            self.statuses.push(b',');
            self.event_timestamps.push(b',');
        }
        let status = write_value(&mut self.values);
        self.statuses.push(b'"');
        self.statuses.extend_from_slice(status.as_bytes());
        self.statuses.push(b'"');
        self.event_timestamps.extend_from_slice(timestamp);
        self.rows += 1;
    }

    /// Appends a stored feature value (see [`write_json`]) with the status
    /// `statuses` gives: present, a stored null, or bytes that are no
    /// value (answered as `null`).
    pub fn push_stored(&mut self, stored: &[u8], statuses: StoredStatuses, timestamp: &[u8]) {
        self.push(
            |out| match write_json(stored, out) {
                Ok(Written::Value) => statuses.present,
                Ok(Written::Null) => statuses.null,
                Err(_) => {
                    out.extend_from_slice(b"null");
                    statuses.invalid
                }
            },
            timestamp,
        );
    }

    fn text_len(&self) -> usize {
        self.values.len() + self.statuses.len() + self.event_timestamps.len() + 64
    }
}

/// The statuses a stored value is reported with.
#[derive(Debug, Clone, Copy)]
pub struct StoredStatuses {
    pub present: &'static str,
    pub null: &'static str,
    pub invalid: &'static str,
}

/// The whole answer: `{"metadata":{"feature_names":[...]},"results":[...]}`.
pub fn finish(names: &[String], columns: &[ColumnText]) -> Vec<u8> {
    let size = names.iter().map(|n| n.len() + 3).sum::<usize>()
        + columns.iter().map(ColumnText::text_len).sum::<usize>()
        + 64;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(br#"{"metadata":{"feature_names":["#);
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_json_str(&mut out, name);
    }
    out.extend_from_slice(br#"]},"results":["#);
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"values":["#);
        out.extend_from_slice(&column.values);
        out.extend_from_slice(br#"],"statuses":["#);
        out.extend_from_slice(&column.statuses);
        out.extend_from_slice(br#"],"event_timestamps":["#);
        out.extend_from_slice(&column.event_timestamps);
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"]}");
    out
}

/// Appends `text` as a JSON string, escaped as serde_json escapes it.
pub fn push_json_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut plain_from = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => {
                out.extend_from_slice(&bytes[plain_from..i]);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 0xf)]);
                plain_from = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[plain_from..i]);
        out.extend_from_slice(escape);
        plain_from = i + 1;
    }
    out.extend_from_slice(&bytes[plain_from..]);
    out.push(b'"');
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut every_ascii: String = (0u8..128).map(char::from).collect();
        every_ascii.push_str("é ✓ 𝄞");
        for text in [every_ascii.as_str(), "", "plain", "a\"b\\c", "\u{7f}"] {
            let mut ours = Vec::new();
            push_json_str(&mut ours, text);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(text).unwrap()
            );
        }
    }

    #[test]
    fn columns_are_joined_into_feasts_response_shape() {
        let mut key = ColumnText::default();
        for id in [b"1001", b"1002"] {
            key.push(
                |out| {
                    out.extend_from_slice(id);
                    "PRESENT"
                },
                b"\"1970-01-01T00:00:00Z\"",
            );
        }
        let mut rate = ColumnText::default();
        let statuses = StoredStatuses {
            present: "PRESENT",
            null: "NULL_VALUE",
            invalid: "INVALID",
        };
        // a stored double 0.5, then bytes that are no value
        rate.push_stored(&[0x29, 0, 0, 0, 0, 0, 0, 0xe0, 0x3f], statuses, b"\"t1\"");
        rate.push_stored(&[0x0a, 0x05], statuses, b"\"t2\"");
        let json = finish(&["driver_id".into(), "conv \"rate\"".into()], &[key, rate]);
        let parsed: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({
                "metadata": {"feature_names": ["driver_id", "conv \"rate\""]},
                "results": [
                    {"values": [1001, 1002], "statuses": ["PRESENT", "PRESENT"],
                     "event_timestamps": ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]},
                    {"values": [0.5, null], "statuses": ["PRESENT", "INVALID"],
                     "event_timestamps": ["t1", "t2"]}
                ]
            })
        );
    }
}
