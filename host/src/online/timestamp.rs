//! Event timestamps as Feast stores them in `_ts:<view>`: a serialized
//! `google.protobuf.Timestamp`.

use super::proto::{self, Field, Reader};

/// An instant with microsecond precision, the unit fvhost carries event times in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventTime {
    /// Microseconds since the Unix epoch, UTC.
    pub micros: i64,
}

impl EventTime {
    pub const EPOCH: EventTime = EventTime { micros: 0 };

    pub fn from_micros(micros: i64) -> Self {
        Self { micros }
    }

    /// Whole seconds, rounded down (so nanos are never negative).
    pub fn seconds(self) -> i64 {
        self.micros.div_euclid(1_000_000)
    }

    /// The sub-second part in nanoseconds, 0..1e9.
    pub fn nanos(self) -> i32 {
        (self.micros.rem_euclid(1_000_000) * 1000) as i32
    }

    /// RFC 3339 text in UTC with a `Z` suffix, as Feast's feature server prints it.
    pub fn to_rfc3339(self) -> String {
        match chrono::DateTime::from_timestamp_micros(self.micros) {
            Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            None => format!("{}us", self.micros),
        }
    }
}

/// Serializes `time` as a `google.protobuf.Timestamp` (zero fields omitted, as proto3 does).
pub fn encode(time: EventTime) -> Vec<u8> {
    let mut out = Vec::with_capacity(12);
    let (seconds, nanos) = (time.seconds(), time.nanos());
    if seconds != 0 {
        proto::put_tag(&mut out, 1, proto::VARINT);
        proto::put_varint(&mut out, seconds as u64);
    }
    if nanos != 0 {
        proto::put_tag(&mut out, 2, proto::VARINT);
        proto::put_varint(&mut out, nanos as u64);
    }
    out
}

/// Reads a serialized `google.protobuf.Timestamp`; unknown fields are skipped.
pub fn decode(bytes: &[u8]) -> Result<EventTime, proto::DecodeError> {
    let (mut seconds, mut nanos) = (0i64, 0i64);
    let mut reader = Reader::new(bytes);
    while let Some((number, field)) = reader.next_field()? {
        match (number, field) {
            (1, Field::Varint(v)) => seconds = v as i64,
            (2, Field::Varint(v)) => nanos = i64::from(v as i32),
            _ => {}
        }
    }
    Ok(EventTime::from_micros(
        seconds
            .saturating_mul(1_000_000)
            .saturating_add(nanos / 1000),
    ))
}
