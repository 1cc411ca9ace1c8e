//! A transform module loaded and checked against the contract, ready to
//! instantiate cheaply for every batch.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::bindings::FeatureTransformPre;
use super::cache::ModuleCache;
use super::engine::Tier;
use super::guest::GuestState;
use super::{Limits, TransformEngine, TransformError};

/// A compiled, linked transform component.
///
/// Its code may change tier underneath (baseline, then optimized) but never
/// its identity: every tier runs the same bytes, so a batch's version is the
/// module's hash whichever tier ran it.
pub struct TransformModule {
    /// SHA-256 of the module bytes, hex: the module's version identity.
    pub hash: String,
    /// Where it was loaded from, for messages.
    pub path: String,
    code: Arc<RwLock<Arc<Code>>>,
    /// Whether the compiled code came from the on-disk cache.
    pub from_cache: bool,
}

/// A module's code on one tier, linked and ready to instantiate.
pub(crate) struct Code {
    pub(crate) tier: Tier,
    pub(crate) engine: wasmtime::Engine,
    /// Whether the engine meters fuel (every store then needs some).
    pub(crate) metered: bool,
    pub(crate) pre: FeatureTransformPre<GuestState>,
}

impl std::fmt::Debug for TransformModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransformModule")
            .field("hash", &self.hash)
            .field("path", &self.path)
            .finish()
    }
}

impl TransformModule {
    /// Reads, compiles (or loads from `cache`) and links the module at `path`.
    pub fn load(
        engine: &TransformEngine,
        cache: &ModuleCache,
        path: &Path,
        limits: &Limits,
    ) -> Result<Self, TransformError> {
        let display = path.display().to_string();
        let load_error = |reason: String| TransformError::Load {
            path: display.clone(),
            reason,
        };
        let bytes = match crate::bounded_file::read(path, limits.module_bytes as u64, "a module") {
            Ok(bytes) => bytes,
            Err(crate::bounded_file::FileReadError::TooLarge { .. }) => {
                let limit = super::LimitExceeded::new(
                    super::LimitName::ModuleBytes,
                    limits.module_bytes as u64,
                    None,
                );
                return Err(TransformError::Load {
                    path: display.clone(),
                    reason: limit.to_string(),
                });
            }
            Err(e) => return Err(load_error(e.to_string())),
        };
        Self::from_bytes(engine, cache, &bytes, &display)
    }

    /// Compiles and links module bytes; `origin` names them in messages.
    pub fn from_bytes(
        engine: &TransformEngine,
        cache: &ModuleCache,
        bytes: &[u8],
        origin: &str,
    ) -> Result<Self, TransformError> {
        let load_error = |reason: String| TransformError::Load {
            path: origin.to_string(),
            reason,
        };
        if !bytes.starts_with(b"\0asm") {
            return Err(load_error(
                "not a WebAssembly file (no \\0asm header)".into(),
            ));
        }
        let hash = hex(&Sha256::digest(bytes));
        let started = Instant::now();
        let (code, from_cache) = match cache.load(engine, &hash) {
            Some(component) => (link(engine, Tier::Optimized, &component)?, true),
            None => {
                let component = wasmtime::component::Component::from_binary(
                    &engine.tier(Tier::Baseline).engine,
                    bytes,
                )
                .map_err(|e| load_error(format!("{e:#}")))?;
                (link(engine, Tier::Baseline, &component)?, false)
            }
        };
        tracing::debug!(
            module = origin,
            hash = &hash[..12],
            from_cache,
            tier = code.tier.as_str(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "transform module ready"
        );
        let module = Self {
            hash,
            path: origin.to_string(),
            code: Arc::new(RwLock::new(Arc::new(code))),
            from_cache,
        };
        if !from_cache {
            module.optimize_in_background(engine, cache, bytes);
        }
        Ok(module)
    }

    /// Compiles the optimized tier on its own thread, stores it in the cache
    /// and switches the module to it; batches already running finish on the
    /// code they started with. A failure leaves the module on the baseline tier.
    fn optimize_in_background(&self, engine: &TransformEngine, cache: &ModuleCache, bytes: &[u8]) {
        let (engine, cache, bytes) = (engine.clone(), cache.clone(), bytes.to_vec());
        let (slot, hash, origin) = (Arc::clone(&self.code), self.hash.clone(), self.path.clone());
        let spawned = std::thread::Builder::new()
            .name("fvhost-optimize".into())
            .spawn(move || {
                let started = Instant::now();
                let optimized = cache
                    .load_or_compile(&engine, &hash, &bytes)
                    .map_err(|e| TransformError::Load {
                        path: origin.clone(),
                        reason: format!("{e:#}"),
                    })
                    .and_then(|component| link(&engine, Tier::Optimized, &component));
                match optimized {
                    Ok(code) => {
                        *slot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(code);
                        tracing::debug!(
                            module = origin,
                            hash = &hash[..12],
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            "transform module now runs optimized code"
                        );
                    }
                    Err(e) => tracing::warn!(
                        module = origin,
                        "optimized compile failed, the module stays on baseline code: {e}"
                    ),
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(module = %self.path, "cannot start the optimized compile: {e}");
        }
    }

    /// The code batches run on now.
    pub(crate) fn code(&self) -> Arc<Code> {
        Arc::clone(&self.code.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The tier of the code batches run on now.
    pub fn tier(&self) -> Tier {
        self.code().tier
    }

    /// Waits up to `timeout` for the optimized tier; tells whether it is active.
    /// For benchmarks and tools that want steady-state figures.
    pub fn wait_until_optimized(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.tier() != Tier::Optimized {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// The first 12 hex digits of the hash, as shown in logs and status.
    pub fn short_hash(&self) -> &str {
        &self.hash[..12]
    }
}

/// Links a compiled component against the host's side of the contract.
fn link(
    engine: &TransformEngine,
    tier: Tier,
    component: &wasmtime::component::Component,
) -> Result<Code, TransformError> {
    let tier_engine = engine.tier(tier);
    super::contract::check(&tier_engine.engine, component).map_err(TransformError::Contract)?;
    let instance_pre = tier_engine
        .linker
        .instantiate_pre(component)
        .map_err(|e| TransformError::Contract(format!("{e:#}")))?;
    let pre = FeatureTransformPre::new(instance_pre)
        .map_err(|e| TransformError::Contract(format!("{e:#}")))?;
    Ok(Code {
        tier,
        engine: tier_engine.engine.clone(),
        metered: tier_engine.metered,
        pre,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
