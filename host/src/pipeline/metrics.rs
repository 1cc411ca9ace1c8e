//! Per-view counters: what came in, what was refused and why, what was
//! written, and where the time went.
//!
//! The counters are declared once, in [`view_counters!`]'s invocation below:
//! the live atomics, the snapshot `fvhost status` prints, and the list an
//! exporter walks ([`ViewMetrics::counters`]) all come from that one list.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use serde::Serialize;

/// Declares the counters: each becomes an `AtomicU64` field of
/// [`ViewMetrics`], a `u64` field of [`MetricsSnapshot`] (same name, so
/// status JSON names them the same), and an entry of [`ViewMetrics::counters`].
macro_rules! view_counters {
    ($($(#[doc = $doc:literal])+ $name:ident,)+) => {
        /// Live counters of one view (or one version), shared between its
        /// loop and whoever reports.
        #[derive(Debug, Default)]
        pub struct ViewMetrics {
            $($(#[doc = $doc])+ pub $name: AtomicU64,)+
            /// Messages behind the end of the view's partitions, as of the last check.
            pub consumer_lag: AtomicU64,
            /// Per assigned partition, messages not yet written: the end of
            /// the partition minus the next offset to write.
            pub partition_lag: Mutex<BTreeMap<i32, i64>>,
            /// The newest event time written, in microseconds (0: none yet).
            pub newest_event_micros: AtomicI64,
            /// Set while the view is paused after failing batch after batch.
            pub pause: Mutex<Option<Pause>>,
            /// How long each stage of a batch took.
            pub stage_seconds: StageHistograms,
        }

        /// A point-in-time copy of [`ViewMetrics`], printed as JSON.
        #[derive(Debug, Clone, Default, Serialize, PartialEq)]
        pub struct MetricsSnapshot {
            $($(#[doc = $doc])+ pub $name: u64,)+
            pub consumer_lag: u64,
            /// Per assigned partition, messages not yet written (empty until first measured).
            pub partition_lag: BTreeMap<i32, i64>,
            /// Now minus the newest event time written, in seconds (none before the first write).
            pub freshness_seconds: Option<f64>,
            /// `running`, or `paused` (with `pause`).
            pub state: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub pause: Option<Pause>,
        }

        impl ViewMetrics {
            /// Every counter: name, help text (its doc comment) and value.
            pub fn counters(&self) -> Vec<Counter> {
                vec![$(Counter {
                    name: stringify!($name),
                    help: concat!($($doc),+).trim_ascii(),
                    value: self.$name.load(Ordering::Relaxed),
                },)+]
            }

            pub fn snapshot(&self) -> MetricsSnapshot {
                let pause = self.pause.lock().unwrap_or_else(|p| p.into_inner()).clone();
                MetricsSnapshot {
                    $($name: self.$name.load(Ordering::Relaxed),)+
                    consumer_lag: self.consumer_lag.load(Ordering::Relaxed),
                    partition_lag: self.partition_lag.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                    freshness_seconds: self.freshness_seconds(chrono::Utc::now().timestamp_micros()),
                    state: if pause.is_some() { "paused" } else { "running" }.to_string(),
                    pause,
                }
            }
        }
    };
}

view_counters! {
    /// Kafka messages consumed.
    messages,
    /// Messages that could not be decoded (dead-lettered).
    decode_errors,
    /// Events behind the watermark (dead-lettered).
    late_events,
    /// Events whose time was too far ahead of the host's clock (dead-lettered).
    future_events,
    /// Input rows the transform rejected (dead-lettered).
    rejected_by_transform,
    /// Output rows that could not become online rows (logged).
    unwritable_rows,
    /// Rows the transform produced.
    rows_out,
    /// Entity keys written to the online store.
    keys_written,
    /// Entity keys left alone because the store held an equal or newer event.
    keys_skipped_older,
    /// Batches processed.
    batches,
    /// Transform attempts on a whole batch that failed.
    batch_failures,
    /// Events sent to the view's dead-letter destination, all kinds together.
    dead_letters,
    /// Offset commits.
    commits,
    /// Commits the broker refused (during a rebalance, say); the batches were written.
    commit_failures,
    /// Writes to the online store or the dead-letter destination that failed and were retried.
    store_write_errors,
    /// Microseconds spent waiting before retrying a failed write (the backoff).
    store_retry_micros,
    /// Events of a windowed view applied before (a replay), skipped.
    window_events_replayed,
    /// Events of a windowed view older than any window their entity reports again.
    window_events_expired,
    /// Microseconds spent waiting for the broker to fill a batch.
    poll_micros,
    /// Microseconds spent decoding messages and applying the watermark.
    decode_micros,
    /// Microseconds spent in transform calls, including their retries.
    transform_micros,
    /// Microseconds spent building online rows (keys, encoded values, newest per entity).
    encode_micros,
    /// Microseconds batches spent being written (dead letters, then online rows), each from
    /// its first call to its last reply; two batches' writes may overlap.
    write_micros,
    /// Microseconds spent appending written batches to the offline log and committing offsets.
    commit_micros,
}

/// The timed stages of a stream batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for the broker to fill a batch.
    Poll,
    /// Decoding messages and applying the watermark.
    Decode,
    /// Transform calls, retries included.
    Transform,
    /// Building online rows: keys, encoded values, newest per entity.
    Encode,
    /// Writing a batch's dead letters and online rows (two batches' writes may overlap).
    Write,
    /// Appending a written batch to the offline log and committing its offsets.
    Commit,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Poll,
        Stage::Decode,
        Stage::Transform,
        Stage::Encode,
        Stage::Write,
        Stage::Commit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Poll => "poll",
            Stage::Decode => "decode",
            Stage::Transform => "transform",
            Stage::Encode => "encode",
            Stage::Write => "write",
            Stage::Commit => "commit",
        }
    }

    /// The counter of microseconds spent in the stage.
    pub fn micros(self, metrics: &ViewMetrics) -> &AtomicU64 {
        match self {
            Stage::Poll => &metrics.poll_micros,
            Stage::Decode => &metrics.decode_micros,
            Stage::Transform => &metrics.transform_micros,
            Stage::Encode => &metrics.encode_micros,
            Stage::Write => &metrics.write_micros,
            Stage::Commit => &metrics.commit_micros,
        }
    }
}

/// One latency histogram per [`Stage`]: 0.1 ms to about 3 min, doubling.
#[derive(Debug)]
pub struct StageHistograms([Histogram; Stage::ALL.len()]);

impl Default for StageHistograms {
    fn default() -> Self {
        Self(std::array::from_fn(|_| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 22))
        }))
    }
}

impl StageHistograms {
    pub fn of(&self, stage: Stage) -> &Histogram {
        &self.0[stage as usize]
    }
}

/// One counter, for exporters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub name: &'static str,
    pub help: &'static str,
    pub value: u64,
}

/// Why and until when a view is paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pause {
    /// RFC 3339.
    pub until: String,
    pub consecutive_failed_batches: u32,
    pub last_error: String,
}

impl ViewMetrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds `elapsed` to a microseconds counter.
    pub fn add_time(counter: &AtomicU64, elapsed: Duration) {
        Self::add(counter, elapsed.as_micros().try_into().unwrap_or(u64::MAX));
    }

    /// Counts `elapsed` in `stage`: its microseconds counter and its histogram.
    pub fn time_stage(&self, stage: Stage, elapsed: Duration) {
        Self::add_time(stage.micros(self), elapsed);
        self.stage_seconds.of(stage).observe(elapsed.as_secs_f64());
    }

    /// Records that events up to `micros` (event time) are written.
    pub fn written_up_to(&self, micros: i64) {
        self.newest_event_micros
            .fetch_max(micros, Ordering::Relaxed);
    }

    /// Seconds between `now_micros` and the newest event time written, if any.
    pub fn freshness_seconds(&self, now_micros: i64) -> Option<f64> {
        let newest = self.newest_event_micros.load(Ordering::Relaxed);
        (newest > 0).then(|| (now_micros - newest).max(0) as f64 / 1e6)
    }

    /// Replaces the per-partition lag, and the total status shows.
    pub fn set_lag(&self, lag: BTreeMap<i32, i64>) {
        let total: i64 = lag.values().map(|l| (*l).max(0)).sum();
        self.consumer_lag.store(total as u64, Ordering::Relaxed);
        *self.partition_lag.lock().unwrap_or_else(|p| p.into_inner()) = lag;
    }

    /// Marks the view paused (`Some`) or running again (`None`).
    pub fn set_pause(&self, pause: Option<Pause>) {
        *self.pause.lock().unwrap_or_else(|p| p.into_inner()) = pause;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_listed_once_with_its_help_and_snapshotted() {
        let metrics = ViewMetrics::default();
        ViewMetrics::add(&metrics.messages, 7);
        ViewMetrics::add_time(&metrics.write_micros, Duration::from_millis(3));
        let counters = metrics.counters();
        let mut names: Vec<_> = counters.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), counters.len());
        assert!(counters.iter().all(|c| !c.help.is_empty()));
        let messages = counters.iter().find(|c| c.name == "messages").unwrap();
        assert_eq!(
            (messages.value, messages.help),
            (7, "Kafka messages consumed.")
        );
        let snapshot = metrics.snapshot();
        assert_eq!((snapshot.messages, snapshot.write_micros), (7, 3000));
        let json = serde_json::to_value(&snapshot).unwrap();
        assert_eq!(json["messages"], 7);
        assert_eq!(json["state"], "running");
    }
}
