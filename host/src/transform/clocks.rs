//! The clocks a guest sees, and why it can never wait on them.
//!
//! The contract gives each event its time, so a transform has no use for a
//! clock that moves: a ticking clock would only help a guest time the host.
//! Both clocks are frozen for the call (the wall clock reads the call's start
//! to the second, the monotonic clock never advances), and every monotonic
//! clock subscription (what `std::thread::sleep` and poll timeouts become on
//! wasip2) is ready at once: WASI's own implementation would park the
//! calling thread on a real timer, out of reach of epoch interruption, for
//! as long as the guest asks. A guest that sleeps in a loop is a guest that
//! spins, and the time limit ends it.

use std::time::Duration;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

use super::guest::GuestState;

/// The wall clock a guest sees: the call's start, whole seconds.
pub(crate) struct FrozenWallClock(Duration);

impl FrozenWallClock {
    /// The clock for a call starting now.
    pub(crate) fn starting_now() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self(Duration::from_secs(now.as_secs()))
    }
}

impl wasmtime_wasi::HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        self.0
    }
}

/// The monotonic clock a guest sees: it never advances.
pub(crate) struct FrozenMonotonicClock;

impl FrozenMonotonicClock {
    const NOW: u64 = 0;
    const RESOLUTION: u64 = 1_000_000_000;
}

impl wasmtime_wasi::HostMonotonicClock for FrozenMonotonicClock {
    fn resolution(&self) -> u64 {
        Self::RESOLUTION
    }

    fn now(&self) -> u64 {
        Self::NOW
    }
}

/// Replaces WASI's `monotonic-clock` in `linker` (which must already hold
/// WASI) with the frozen one whose subscriptions are ready at once.
pub(crate) fn link_instant_monotonic_clock(linker: &mut Linker<GuestState>) -> anyhow::Result<()> {
    linker.allow_shadowing(true);
    let linked = monotonic_clock::add_to_linker::<GuestState, InstantClock>(linker, |state| {
        InstantClockView {
            table: state.table(),
        }
    });
    linker.allow_shadowing(false);
    linked.map_err(|e| anyhow::anyhow!("{e:#}"))
}

/// The host side of `wasi:clocks/monotonic-clock` for guests.
struct InstantClock;

impl HasData for InstantClock {
    type Data<'a> = InstantClockView<'a>;
}

struct InstantClockView<'a> {
    table: &'a mut ResourceTable,
}

impl monotonic_clock::Host for InstantClockView<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(FrozenMonotonicClock::NOW)
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        Ok(FrozenMonotonicClock::RESOLUTION)
    }

    fn subscribe_instant(
        &mut self,
        _when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.ready_now()
    }

    fn subscribe_duration(
        &mut self,
        _duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.ready_now()
    }
}

impl InstantClockView<'_> {
    fn ready_now(&mut self) -> wasmtime::Result<Resource<DynPollable>> {
        let ready = self.table.push(ReadyNow)?;
        subscribe(self.table, ready)
    }
}

/// A subscription that is ready when asked.
struct ReadyNow;

#[async_trait::async_trait]
impl Pollable for ReadyNow {
    async fn ready(&mut self) {}
}
