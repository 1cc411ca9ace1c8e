//! The wasmtime engine every transform runs on, and the epoch ticker that
//! turns wall-time limits into traps.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, OptLevel};

use super::bindings::FeatureTransform;
use super::guest::GuestState;

/// How often the epoch advances; the granularity of time limits.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Guest stack size: deep recursion traps instead of crashing the host.
const MAX_WASM_STACK: usize = 1 << 20;

/// A configured engine plus the linker holding the host's side of the contract.
#[derive(Clone)]
pub struct TransformEngine {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<GuestState>,
}

impl TransformEngine {
    /// Builds the engine and starts its epoch ticker (a thread that ends with the engine).
    pub fn new() -> anyhow::Result<Self> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .cranelift_opt_level(OptLevel::Speed)
            .max_wasm_stack(MAX_WASM_STACK);
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        FeatureTransform::add_to_linker::<GuestState, wasmtime::component::HasSelf<GuestState>>(
            &mut linker,
            |state| state,
        )?;
        start_epoch_ticker(&engine);
        Ok(Self {
            inner: Arc::new(Inner { engine, linker }),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn linker(&self) -> &Linker<GuestState> {
        &self.inner.linker
    }

    /// A short stable text identifying this engine's compilation settings,
    /// part of the module cache key.
    pub fn compatibility_key(&self) -> String {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.inner
            .engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }

    /// Epoch ticks that make up `duration` (at least one).
    pub fn ticks_for(duration: Duration) -> u64 {
        (duration.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
    }
}

fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("fvhost-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch ticker thread");
}
