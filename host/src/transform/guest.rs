//! The state a transform instance runs with: an empty WASI context (no files,
//! network, environment or arguments; frozen clocks), the resource limiter,
//! and logging (lines cut and escaped, see [`super::guest_text`]).

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{Level, fvhost};
use super::clocks::{FrozenMonotonicClock, FrozenWallClock};
use super::guest_text;
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

    /// The resources the guest holds handles to (WASI's, and the clock's).
    pub(crate) fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

/// WASI with nothing in it: no preopened directory, environment or
/// arguments, every network use refused, and frozen clocks (see
/// [`super::clocks`], which also makes every clock subscription ready at once).
fn sandbox_wasi() -> WasiCtx {
    WasiCtx::builder()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .wall_clock(FrozenWallClock::starting_now())
        .monotonic_clock(FrozenMonotonicClock)
        .build()
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
        let message = guest_text::sanitize(&message, guest_text::MAX_LOG_LINE_BYTES);
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
