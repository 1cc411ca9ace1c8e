//! Per-view counters: what came in, what was refused and why, what was written.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Live counters of one view, shared between its loop and whoever reports.
#[derive(Debug, Default)]
pub struct ViewMetrics {
    pub messages: AtomicU64,
    pub decode_errors: AtomicU64,
    pub late_events: AtomicU64,
    /// Events whose time was too far ahead of the host's clock.
    pub future_events: AtomicU64,
    pub rejected_by_transform: AtomicU64,
    pub unwritable_rows: AtomicU64,
    pub rows_out: AtomicU64,
    pub keys_written: AtomicU64,
    pub keys_skipped_older: AtomicU64,
    pub batches: AtomicU64,
    pub batch_failures: AtomicU64,
    /// Events sent to the view's dead-letter destination, all kinds together.
    pub dead_letters: AtomicU64,
    pub commits: AtomicU64,
    /// Commits the broker refused (during a rebalance, say); the batches were written.
    pub commit_failures: AtomicU64,
    /// Messages behind the end of the view's partitions, as of the last check.
    pub consumer_lag: AtomicU64,
    /// Set while the view is paused after failing batch after batch.
    pub pause: Mutex<Option<Pause>>,
}

/// Why and until when a view is paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pause {
    /// RFC 3339.
    pub until: String,
    pub consecutive_failed_batches: u32,
    pub last_error: String,
}

/// A point-in-time copy of [`ViewMetrics`], printed as JSON.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub messages: u64,
    pub decode_errors: u64,
    pub late_events: u64,
    pub future_events: u64,
    pub rejected_by_transform: u64,
    pub unwritable_rows: u64,
    pub rows_out: u64,
    pub keys_written: u64,
    pub keys_skipped_older: u64,
    pub batches: u64,
    pub batch_failures: u64,
    pub dead_letters: u64,
    pub commits: u64,
    pub commit_failures: u64,
    pub consumer_lag: u64,
    /// `running`, or `paused` (with `pause`).
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause: Option<Pause>,
}

impl ViewMetrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Marks the view paused (`Some`) or running again (`None`).
    pub fn set_pause(&self, pause: Option<Pause>) {
        *self.pause.lock().unwrap_or_else(|p| p.into_inner()) = pause;
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let pause = self.pause.lock().unwrap_or_else(|p| p.into_inner()).clone();
        MetricsSnapshot {
            messages: get(&self.messages),
            decode_errors: get(&self.decode_errors),
            late_events: get(&self.late_events),
            future_events: get(&self.future_events),
            rejected_by_transform: get(&self.rejected_by_transform),
            unwritable_rows: get(&self.unwritable_rows),
            rows_out: get(&self.rows_out),
            keys_written: get(&self.keys_written),
            keys_skipped_older: get(&self.keys_skipped_older),
            batches: get(&self.batches),
            batch_failures: get(&self.batch_failures),
            dead_letters: get(&self.dead_letters),
            commits: get(&self.commits),
            commit_failures: get(&self.commit_failures),
            consumer_lag: get(&self.consumer_lag),
            state: if pause.is_some() { "paused" } else { "running" }.to_string(),
            pause,
        }
    }
}
