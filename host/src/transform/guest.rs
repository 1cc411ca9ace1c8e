//! The state a transform instance runs with: an empty WASI context (no files,
//! network, environment or arguments; clocks frozen at the call's start, to
//! the second), the resource limiter, and logging.

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{Level, fvhost};
use super::limits::{GuestLimiter, LogRate};

/// Store data of one transform call.
pub(crate) struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: GuestLimiter,
    log: GuestLog,
}

/// Guest log lines, tagged with the view, capped per call.
pub(crate) struct GuestLog {
    pub(crate) view: String,
    pub(crate) budget: u32,
    /// The tenant's budget across calls.
    pub(crate) rate: LogRate,
    pub(crate) dropped: u32,
    /// The last error-level line, kept to explain a trap (the SDK logs panics).
    pub(crate) last_error: Option<String>,
}

impl GuestState {
    pub(crate) fn new(view: &str, memory_bytes: usize, log_lines: u32, rate: LogRate) -> Self {
        Self {
            wasi: sandbox_wasi(),
            table: ResourceTable::new(),
            limiter: GuestLimiter::new(memory_bytes),
            log: GuestLog {
                view: view.to_string(),
                budget: log_lines,
                rate,
                dropped: 0,
                last_error: None,
            },
        }
    }

    pub(crate) fn dropped_log_lines(&self) -> u32 {
        self.log.dropped
    }

    pub(crate) fn last_error_line(&self) -> Option<&str> {
        self.log.last_error.as_deref()
    }
}

/// WASI with nothing in it: no preopened directory, environment or
/// arguments, every network use refused, and clocks that do not move (the
/// contract gives each event its time; a ticking clock would only serve to
/// time the host).
fn sandbox_wasi() -> WasiCtx {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    WasiCtx::builder()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .wall_clock(FrozenWallClock(std::time::Duration::from_secs(
            now.as_secs(),
        )))
        .monotonic_clock(FrozenMonotonicClock)
        .build()
}

/// The wall clock a guest sees: the call's start, whole seconds.
struct FrozenWallClock(std::time::Duration);

impl wasmtime_wasi::HostWallClock for FrozenWallClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }

    fn now(&self) -> std::time::Duration {
        self.0
    }
}

/// The monotonic clock a guest sees: it never advances.
struct FrozenMonotonicClock;

impl wasmtime_wasi::HostMonotonicClock for FrozenMonotonicClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }

    fn now(&self) -> u64 {
        0
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl fvhost::transform::host::Host for GuestState {
    fn log(&mut self, level: Level, message: String) {
        let message: String = message.chars().take(1000).collect();
        if matches!(level, Level::Error) {
            self.log.last_error = Some(message.clone());
        }
        if self.log.budget == 0 || !self.log.rate.take() {
            self.log.dropped += 1;
            return;
        }
        self.log.budget -= 1;
        let view = &self.log.view;
        match level {
            Level::Debug => tracing::debug!(target: "fvhost::guest", view, "{message}"),
            Level::Info => tracing::info!(target: "fvhost::guest", view, "{message}"),
            Level::Warn => tracing::warn!(target: "fvhost::guest", view, "{message}"),
            Level::Error => tracing::error!(target: "fvhost::guest", view, "{message}"),
        }
    }
}

impl fvhost::transform::types::Host for GuestState {}
