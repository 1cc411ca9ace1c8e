//! A transform module loaded and checked against the contract, ready to
//! instantiate cheaply for every batch.

use std::path::Path;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::bindings::FeatureTransformPre;
use super::cache::ModuleCache;
use super::guest::GuestState;
use super::{Limits, TransformEngine, TransformError};

/// A compiled, linked transform component.
pub struct TransformModule {
    /// SHA-256 of the module bytes, hex: the module's version identity.
    pub hash: String,
    /// Where it was loaded from, for messages.
    pub path: String,
    pub(crate) pre: FeatureTransformPre<GuestState>,
    /// Whether the compiled code came from the on-disk cache.
    pub from_cache: bool,
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
        let size = std::fs::metadata(path)
            .map_err(|e| load_error(e.to_string()))?
            .len();
        if size > limits.module_bytes as u64 {
            return Err(TransformError::Limit(format!(
                "module size limit of {} bytes exceeded: {display} is {size} bytes",
                limits.module_bytes
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| load_error(e.to_string()))?;
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
        let (component, from_cache) = cache
            .load_or_compile(engine, &hash, bytes)
            .map_err(|e| load_error(format!("{e:#}")))?;
        let instance_pre = engine
            .linker()
            .instantiate_pre(&component)
            .map_err(|e| TransformError::Contract(format!("{e:#}")))?;
        let pre = FeatureTransformPre::new(instance_pre)
            .map_err(|e| TransformError::Contract(format!("{e:#}")))?;
        tracing::debug!(
            module = origin,
            hash = &hash[..12],
            from_cache,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "transform module ready"
        );
        Ok(Self {
            hash,
            path: origin.to_string(),
            pre,
            from_cache,
        })
    }

    /// The first 12 hex digits of the hash, as shown in logs and status.
    pub fn short_hash(&self) -> &str {
        &self.hash[..12]
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
