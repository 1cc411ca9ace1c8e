//! The watermark: how late an event may arrive and still be applied.
//!
//! The watermark trails the newest event time seen by `delay`; an event
//! older than it is too late, and is counted and dead-lettered rather than
//! written. Without a delay every event is admitted.

use std::time::Duration;

/// Tracks the newest event time of one view's stream.
#[derive(Debug, Clone)]
pub struct Watermark {
    delay_micros: Option<i64>,
    newest: Option<i64>,
}

impl Watermark {
    pub fn new(delay: Option<Duration>) -> Self {
        Self {
            delay_micros: delay.map(|d| d.as_micros().min(i64::MAX as u128) as i64),
            newest: None,
        }
    }

    /// Whether an event at `micros` is on time; on-time events advance the watermark.
    pub fn admit(&mut self, micros: i64) -> bool {
        if let (Some(delay), Some(newest)) = (self.delay_micros, self.newest)
            && micros < newest.saturating_sub(delay)
        {
            return false;
        }
        self.newest = Some(self.newest.map_or(micros, |n| n.max(micros)));
        true
    }

    /// The current watermark in microseconds, if one is set.
    pub fn current(&self) -> Option<i64> {
        Some(self.newest?.saturating_sub(self.delay_micros?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_events_are_refused_and_do_not_move_the_watermark() {
        let mut w = Watermark::new(Some(Duration::from_secs(300)));
        let minute = 60_000_000;
        assert!(w.admit(10 * minute));
        assert!(w.admit(6 * minute), "4 minutes late is within 5");
        assert!(!w.admit(4 * minute), "6 minutes late is too late");
        assert!(w.admit(20 * minute));
        assert_eq!(w.current(), Some(15 * minute));
        assert!(!w.admit(14 * minute));
    }

    #[test]
    fn no_delay_admits_everything() {
        let mut w = Watermark::new(None);
        assert!(w.admit(100));
        assert!(w.admit(0));
    }
}
