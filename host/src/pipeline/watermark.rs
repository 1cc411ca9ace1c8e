//! The watermark: how late an event may arrive and still be applied.
//!
//! Each partition has its own watermark, trailing the newest event time seen
//! on it by `delay`; the view's watermark is the lowest of them, as stream
//! processors keep it. An event older than the view's watermark is too late,
//! and is counted and dead-lettered rather than written. One partition that
//! runs ahead (a producer with a fast clock, a burst of new events) moves
//! only its own watermark, so it cannot make the other partitions' events
//! late. A partition assigned to the view that has delivered no event yet
//! holds the watermark back entirely: reading a backlog, the consumer may
//! hand over one partition's events long before another's, and those must
//! not be late for it. (An assigned partition that stays empty keeps the
//! watermark from advancing: events are then never refused as late.)
//! Without a delay every event is admitted.
//!
//! Event times far in the future never get here: they are dead-lettered as
//! `future_event` first (see [`super::event_time`]), so one bad timestamp
//! cannot move a watermark at all.

use std::collections::HashMap;
use std::time::Duration;

/// Tracks the newest event time of each partition of one view's stream.
#[derive(Debug, Clone)]
pub struct Watermark {
    delay_micros: Option<i64>,
    newest: HashMap<i32, i64>,
    /// The partitions the view reads now.
    assigned: Vec<i32>,
}

impl Watermark {
    pub fn new(delay: Option<Duration>) -> Self {
        Self {
            delay_micros: delay.map(|d| d.as_micros().min(i64::MAX as u128) as i64),
            newest: HashMap::new(),
            assigned: Vec::new(),
        }
    }

    /// The partitions the view reads now (after each rebalance).
    pub fn set_assigned(&mut self, partitions: Vec<i32>) {
        self.assigned = partitions;
    }

    /// Whether an event at `micros` from `partition` is on time; on-time
    /// events advance their partition's watermark.
    pub fn admit(&mut self, partition: i32, micros: i64) -> bool {
        if self.current().is_some_and(|watermark| micros < watermark) {
            return false;
        }
        let newest = self.newest.entry(partition).or_insert(micros);
        *newest = (*newest).max(micros);
        true
    }

    /// The view's watermark in microseconds (the lowest partition's), if
    /// there is a delay and some event was seen.
    pub fn current(&self) -> Option<i64> {
        let delay = self.delay_micros?;
        if self.assigned.iter().any(|p| !self.newest.contains_key(p)) {
            return None;
        }
        let lowest = self.newest.values().min()?;
        Some(lowest.saturating_sub(delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000_000;

    #[test]
    fn late_events_are_refused_and_do_not_move_the_watermark() {
        let mut w = Watermark::new(Some(Duration::from_secs(300)));
        assert!(w.admit(0, 10 * MINUTE));
        assert!(w.admit(0, 6 * MINUTE), "4 minutes late is within 5");
        assert!(!w.admit(0, 4 * MINUTE), "6 minutes late is too late");
        assert!(w.admit(0, 20 * MINUTE));
        assert_eq!(w.current(), Some(15 * MINUTE));
        assert!(!w.admit(0, 14 * MINUTE));
    }

    #[test]
    fn an_assigned_partition_not_seen_yet_holds_the_watermark_back() {
        let mut w = Watermark::new(Some(Duration::from_secs(300)));
        w.set_assigned(vec![0, 1]);
        assert!(
            w.admit(0, 600 * MINUTE),
            "partition 0's backlog comes first"
        );
        assert_eq!(w.current(), None);
        assert!(
            w.admit(1, 10 * MINUTE),
            "partition 1's early events are not late"
        );
        assert_eq!(w.current(), Some(5 * MINUTE));
        assert!(!w.admit(1, 4 * MINUTE));
    }

    #[test]
    fn one_partition_running_ahead_does_not_make_the_others_late() {
        let mut w = Watermark::new(Some(Duration::from_secs(300)));
        assert!(w.admit(0, 10 * MINUTE));
        assert!(w.admit(1, 11 * MINUTE));
        assert!(
            w.admit(1, 600 * MINUTE),
            "partition 1 jumps ten hours ahead"
        );
        assert_eq!(w.current(), Some(5 * MINUTE), "the lowest partition rules");
        assert!(
            w.admit(0, 9 * MINUTE),
            "partition 0's events are still on time"
        );
        assert!(
            w.admit(1, 8 * MINUTE),
            "and so are partition 1's within the view's watermark"
        );
        assert!(!w.admit(0, 4 * MINUTE), "too late for every partition");
    }

    #[test]
    fn no_delay_admits_everything() {
        let mut w = Watermark::new(None);
        assert!(w.admit(0, 100));
        assert!(w.admit(0, 0));
        assert_eq!(w.current(), None);
    }
}
