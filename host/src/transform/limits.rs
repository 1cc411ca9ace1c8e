//! What one transform call may use. Every limit is enforced by the engine
//! (epoch interruption, the store's resource limiter, a host-side size check),
//! never by trusting the guest.

use std::time::Duration;

/// Per-batch limits of a transform.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Linear memory one instance may grow to.
    pub memory_bytes: usize,
    /// Wall time one call (init plus transform) may take.
    pub time_per_batch: Duration,
    /// Size of the Arrow IPC output of one call.
    pub output_bytes: usize,
    /// Size of the module file.
    pub module_bytes: usize,
    /// Guest log lines kept per call; the rest are counted.
    pub log_lines_per_batch: u32,
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
            module_bytes: 64 << 20,
            log_lines_per_batch: 50,
            instances_in_flight: 2,
            fuel_per_batch: None,
        }
    }
}

/// The store's resource limiter: caps memory and remembers that it did,
/// so the trap that follows is reported as the limit, not as a crash.
#[derive(Debug)]
pub(crate) struct GuestLimiter {
    memory_bytes: usize,
    pub(crate) memory_exceeded: Option<usize>,
}

impl GuestLimiter {
    pub(crate) fn new(memory_bytes: usize) -> Self {
        Self {
            memory_bytes,
            memory_exceeded: None,
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
