//! Event times too far ahead of the host's clock.
//!
//! A timestamp in milliseconds where seconds are expected reads as the year
//! 58877; written, it would stay the entity's value for ever (newer-wins has
//! no upper bound) and move the watermark so far that every later event is
//! late. So an event whose time is more than the source's
//! `max_future_skew` (default [`DEFAULT_MAX_FUTURE_SKEW`]) ahead of the
//! host's clock is set aside as a `future_event` before it reaches the
//! watermark or Redis, on the stream, in push and in materialize, and a
//! transform's output row with such a time is not written.

use std::time::Duration;

/// How far ahead of the host's clock an event time may be: 5 minutes, room
/// for producers whose clocks run a little fast.
pub const DEFAULT_MAX_FUTURE_SKEW: Duration = Duration::from_secs(300);

/// The latest event time accepted now.
#[derive(Debug, Clone, Copy)]
pub struct FutureLimit {
    now_micros: i64,
    skew: Duration,
}

impl FutureLimit {
    /// The limit at this moment for a source allowing `skew`.
    pub fn now(skew: Duration) -> Self {
        Self {
            now_micros: chrono::Utc::now().timestamp_micros(),
            skew,
        }
    }

    /// The limit as it would be at `now_micros` (for tests).
    pub fn at(now_micros: i64, skew: Duration) -> Self {
        Self { now_micros, skew }
    }

    fn latest_micros(&self) -> i64 {
        let skew = i64::try_from(self.skew.as_micros()).unwrap_or(i64::MAX);
        self.now_micros.saturating_add(skew)
    }

    /// Whether an event at `micros` is not too far ahead.
    pub fn admits(&self, micros: i64) -> bool {
        micros <= self.latest_micros()
    }

    /// Why an event at `micros` is refused.
    pub fn reason(&self, micros: i64) -> String {
        format!(
            "event time {} is more than {} ahead of the host's clock ({}): a timestamp in the wrong unit?",
            show(micros),
            crate::repo::duration::show_duration(self.skew),
            show(self.now_micros)
        )
    }
}

fn show(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| format!("{micros} µs after 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_460_800_000_000; // 2025-11-30T00:00:00Z

    #[test]
    fn times_up_to_the_skew_ahead_are_admitted() {
        let limit = FutureLimit::at(NOW, Duration::from_secs(300));
        assert!(limit.admits(NOW));
        assert!(limit.admits(NOW - 86_400_000_000));
        assert!(limit.admits(NOW + 300_000_000));
        assert!(!limit.admits(NOW + 300_000_001));
    }

    #[test]
    fn milliseconds_read_as_seconds_are_refused_with_a_hint() {
        let limit = FutureLimit::at(NOW, Duration::from_secs(300));
        let millis_as_seconds = 1_795_825_097_000 * 1_000_000;
        assert!(!limit.admits(millis_as_seconds));
        let reason = limit.reason(millis_as_seconds);
        assert!(
            reason.starts_with("event time +58877-06-06T16:43:20Z is more than 5m ahead"),
            "{reason}"
        );
        assert!(
            reason.contains("more than 5m ahead of the host's clock (2025-11-30T00:00:00Z)"),
            "{reason}"
        );
    }
}
