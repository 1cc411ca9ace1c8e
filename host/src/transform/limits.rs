//! What one transform call may use. Every limit is enforced by the engine
//! (epoch interruption, the store's resource limiter, a host-side size check),
//! never by trusting the guest.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which limit a call or a module ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitName {
    Memory,
    Time,
    Fuel,
    OutputBytes,
    OutputRows,
    ModuleBytes,
}

/// A limit that was exceeded: which, its value, and what was asked for or
/// found when the engine knows it. Its message names all three, once:
/// "memory limit of 32 MiB exceeded (the guest asked for 40 MiB)".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct LimitExceeded {
    pub name: LimitName,
    /// In the limit's unit: bytes, milliseconds, fuel units, rows.
    pub limit: u64,
    /// What was asked for or found, in the same unit, if known.
    pub value: Option<u64>,
}

impl LimitExceeded {
    pub fn new(name: LimitName, limit: u64, value: Option<u64>) -> Self {
        Self { name, limit, value }
    }

    /// The time and fuel limits: the failures that are expensive to repeat,
    /// so a failing batch is not narrowed down row by row on them.
    pub fn is_compute(&self) -> bool {
        matches!(self.name, LimitName::Time | LimitName::Fuel)
    }

    fn describe(&self) -> String {
        let (limit, value) = (self.limit, self.value);
        match self.name {
            LimitName::Memory => {
                let asked = value.map(|v| format!(" (the guest asked for {} MiB)", v >> 20));
                format!(
                    "memory limit of {} MiB exceeded{}",
                    limit >> 20,
                    asked.unwrap_or_default()
                )
            }
            LimitName::Time => format!("time limit of {limit} ms per batch exceeded"),
            LimitName::Fuel => format!("fuel limit of {limit} per batch exceeded"),
            LimitName::OutputBytes => format!(
                "output size limit of {limit} bytes exceeded{}",
                value
                    .map(|v| format!(": the batch is {v} bytes"))
                    .unwrap_or_default()
            ),
            LimitName::OutputRows => format!(
                "output row limit of {limit} exceeded{}",
                value
                    .map(|v| format!(": the batch has {v} rows"))
                    .unwrap_or_default()
            ),
            LimitName::ModuleBytes => format!(
                "module size limit of {limit} bytes exceeded{}",
                value
                    .map(|v| format!(": the module is {v} bytes"))
                    .unwrap_or_else(|| ": the module is larger".into())
            ),
        }
    }
}

/// What a tenant's transforms may use. Per call, except `log_rate`, which
/// clones of one `Limits` share: a tenant's views draw on one log budget.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Linear memory one instance may grow to.
    pub memory_bytes: usize,
    /// Wall time one call (init plus transform) may take.
    pub time_per_batch: Duration,
    /// Size of the Arrow IPC output of one call.
    pub output_bytes: usize,
    /// Rows in the output of one call. Bytes alone do not bound the work
    /// after a call: a one-byte key column casts to eight bytes a row, and
    /// every row becomes a Redis write.
    pub output_rows: usize,
    /// Size of the module file.
    pub module_bytes: usize,
    /// Guest log lines kept per call; the rest are counted.
    pub log_lines_per_batch: u32,
    /// Guest log lines kept per second across all calls sharing these limits.
    pub log_rate: LogRate,
    /// Transform calls of one tenant running at once (the host adds its own
    /// cap of one per core, shared by all tenants).
    pub instances_in_flight: usize,
    /// Fuel per call (wasmtime's instruction-count metering), for accounting
    /// that does not depend on the machine's speed; `None` meters by time only.
    pub fuel_per_batch: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 256 << 20,
            time_per_batch: Duration::from_secs(10),
            output_bytes: 64 << 20,
            output_rows: 1 << 20,
            module_bytes: 64 << 20,
            log_lines_per_batch: 50,
            log_rate: LogRate::per_second(100),
            instances_in_flight: cores(),
            fuel_per_batch: None,
        }
    }
}

/// The machine's cores (2 if unknown): the default of `instances_in_flight`
/// and the host's number of transform slots.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// A token bucket of guest log lines: `per_second` lines a second, bursts
/// of up to one second's worth. Clones share the bucket.
#[derive(Debug, Clone)]
pub struct LogRate {
    per_second: u32,
    bucket: Arc<Mutex<(f64, Instant)>>,
}

impl LogRate {
    pub fn per_second(per_second: u32) -> Self {
        Self {
            per_second,
            bucket: Arc::new(Mutex::new((f64::from(per_second), Instant::now()))),
        }
    }

    pub fn lines_per_second(&self) -> u32 {
        self.per_second
    }

    /// Takes one line from the bucket; `false` when it is empty.
    pub fn take(&self) -> bool {
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = &mut *bucket;
        let now = Instant::now();
        let capacity = f64::from(self.per_second);
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * capacity).min(capacity);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The store's resource limiter: caps memory and remembers that it did,
/// so the trap that follows is reported as the limit, not as a crash.
#[derive(Debug)]
pub(crate) struct GuestLimiter {
    memory_bytes: usize,
    pub(crate) memory_exceeded: Option<usize>,
    /// The most linear memory the guest was allowed to grow to.
    pub(crate) memory_peak: usize,
}

impl GuestLimiter {
    pub(crate) fn new(memory_bytes: usize) -> Self {
        Self {
            memory_bytes,
            memory_exceeded: None,
            memory_peak: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_exceeded = Some(desired);
            return Ok(false);
        }
        self.memory_peak = self.memory_peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_of_limits_share_one_log_budget() {
        let tenant = Limits {
            log_rate: LogRate::per_second(3),
            ..Limits::default()
        };
        let (view_a, view_b) = (tenant.clone(), tenant.clone());
        let taken = [&view_a, &view_b, &view_a, &view_b]
            .iter()
            .filter(|limits| limits.log_rate.take())
            .count();
        assert_eq!(taken, 3, "three lines a second between both views");
        assert!(
            Limits::default().log_rate.take(),
            "another tenant's budget is its own"
        );
    }
}
