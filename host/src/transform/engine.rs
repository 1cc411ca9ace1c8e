//! The wasmtime engines every transform runs on, and the epoch ticker that
//! turns wall-time limits into traps.
//!
//! Two compilation tiers share one configuration otherwise:
//! - [`Tier::Baseline`] (Winch): compiles a 2 MB component in about 0.2 s, so a
//!   cold deploy is live well under a second;
//! - [`Tier::Optimized`] (Cranelift, `OptLevel::Speed`): about 1.1 s to compile,
//!   the code every module ends up running and the only tier kept in the
//!   on-disk cache.
//!
//! A module not in the cache starts on the baseline tier and is upgraded in
//! place when its optimized compile finishes (see [`super::module`]).

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, OptLevel, Strategy};

use super::bindings::FeatureTransform;
use super::clocks::link_instant_monotonic_clock;
use super::guest::GuestState;

/// How often the epoch advances; the granularity of time limits.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Guest stack size: deep recursion traps instead of crashing the host.
const MAX_WASM_STACK: usize = 1 << 20;

/// Which compiler produced a module's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Quick to compile, slower to run: what a cold module starts on.
    Baseline,
    /// Slow to compile, fast to run: cached on disk, what modules settle on.
    Optimized,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Baseline => "baseline",
            Tier::Optimized => "optimized",
        }
    }
}

/// The engines of both tiers plus their linkers holding the host's side of the contract.
#[derive(Clone)]
pub struct TransformEngine {
    inner: Arc<Inner>,
}

struct Inner {
    optimized: TierEngine,
    baseline: TierEngine,
}

/// One tier's engine and linker.
pub(crate) struct TierEngine {
    pub(crate) engine: Engine,
    pub(crate) metered: bool,
    pub(crate) linker: Linker<GuestState>,
}

impl TransformEngine {
    /// Builds both engines and starts the epoch ticker (a thread that ends with them).
    pub fn new() -> anyhow::Result<Self> {
        Self::build(false)
    }

    /// Engines that also meter fuel, for hosts where some tenant has a fuel
    /// limit. Metering costs every call some speed, so it is opt-in.
    pub fn with_fuel_metering() -> anyhow::Result<Self> {
        Self::build(true)
    }

    fn build(fuel: bool) -> anyhow::Result<Self> {
        let optimized = TierEngine::new(Strategy::Cranelift, fuel)?;
        let baseline = TierEngine::new(Strategy::Winch, fuel)?;
        start_epoch_ticker(&[&optimized.engine, &baseline.engine]);
        Ok(Self {
            inner: Arc::new(Inner {
                optimized,
                baseline,
            }),
        })
    }

    /// The engine of the optimized tier, whose compiled modules are cached.
    pub fn engine(&self) -> &Engine {
        &self.inner.optimized.engine
    }

    pub(crate) fn tier(&self, tier: Tier) -> &TierEngine {
        match tier {
            Tier::Baseline => &self.inner.baseline,
            Tier::Optimized => &self.inner.optimized,
        }
    }

    /// A short stable text identifying the optimized tier's compilation
    /// settings, part of the module cache key.
    pub fn compatibility_key(&self) -> String {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.engine()
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }

    /// Epoch ticks that make up `duration` (at least one).
    pub fn ticks_for(duration: Duration) -> u64 {
        (duration.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
    }
}

impl TierEngine {
    fn new(strategy: Strategy, fuel: bool) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .consume_fuel(fuel)
            .strategy(strategy)
            .max_wasm_stack(MAX_WASM_STACK);
        if matches!(strategy, Strategy::Cranelift) {
            config.cranelift_opt_level(OptLevel::Speed);
        }
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        link_instant_monotonic_clock(&mut linker)?;
        FeatureTransform::add_to_linker::<GuestState, wasmtime::component::HasSelf<GuestState>>(
            &mut linker,
            |state| state,
        )?;
        Ok(Self {
            engine,
            metered: fuel,
            linker,
        })
    }
}

fn start_epoch_ticker(engines: &[&Engine]) {
    let weak: Vec<_> = engines.iter().map(|engine| engine.weak()).collect();
    std::thread::Builder::new()
        .name("fvhost-epoch".into())
        .spawn(move || {
            loop {
                let live: Vec<Engine> = weak.iter().filter_map(|w| w.upgrade()).collect();
                if live.is_empty() {
                    return;
                }
                live.iter().for_each(Engine::increment_epoch);
                drop(live);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch ticker thread");
}
