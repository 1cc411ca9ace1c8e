//! Compiled components kept on disk, keyed by the module's content hash and
//! the engine's compilation settings, so a restart does not recompile.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use wasmtime::component::Component;

use super::TransformEngine;

/// Where compiled modules are kept: `$FVHOST_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/fvhost/modules`, else `~/.cache/fvhost/modules`.
pub fn default_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("FVHOST_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("fvhost").join("modules"))
}

/// An on-disk cache of compiled components.
#[derive(Debug, Clone)]
pub struct ModuleCache {
    dir: Option<PathBuf>,
    /// Hashes being compiled now, so a module deployed twice in a row is
    /// compiled once: the second caller waits for the first's result.
    compiling: Arc<(Mutex<HashSet<String>>, Condvar)>,
}

impl ModuleCache {
    /// A cache in `dir`; `None` disables caching.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self {
            dir,
            compiling: Arc::default(),
        }
    }

    /// The optimized compile of `bytes`: from the cache if it is there or
    /// another thread is compiling it right now (waiting for that one),
    /// else compiled here and stored.
    pub fn load_or_compile(
        &self,
        engine: &TransformEngine,
        hash: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<Component> {
        let (compiling, done) = &*self.compiling;
        {
            let mut in_flight = compiling.lock().unwrap_or_else(|p| p.into_inner());
            while in_flight.contains(hash) {
                in_flight = done.wait(in_flight).unwrap_or_else(|p| p.into_inner());
            }
            if let Some(component) = self.load(engine, hash) {
                return Ok(component);
            }
            in_flight.insert(hash.to_string());
        }
        let compiled = self.compile_and_store(engine, hash, bytes);
        compiling
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(hash);
        done.notify_all();
        compiled
    }

    /// The cached optimized compile of the module whose SHA-256 is `hash`, if
    /// there is a usable one. An unreadable entry is skipped with a warning.
    pub fn load(&self, engine: &TransformEngine, hash: &str) -> Option<Component> {
        let path = self.path_for(engine, hash)?;
        if !path.is_file() {
            return None;
        }
        // SAFETY: the file was written by `Component::serialize` of an engine
        // with the same compatibility key (part of its name), into a folder
        // only fvhost writes; wasmtime re-checks version and settings on load.
        match unsafe { Component::deserialize_file(engine.engine(), &path) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unusable cached module: {e:#}");
                None
            }
        }
    }

    /// Compiles `bytes` on the optimized tier and stores the result. A cache
    /// that cannot be written is skipped with a warning; it never fails the compile.
    fn compile_and_store(
        &self,
        engine: &TransformEngine,
        hash: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<Component> {
        let component = Component::from_binary(engine.engine(), bytes)?;
        if let Some(path) = self.path_for(engine, hash)
            && let Err(e) = store(&path, &component)
        {
            tracing::warn!(path = %path.display(), "cannot cache compiled module: {e:#}");
        }
        Ok(component)
    }

    fn path_for(&self, engine: &TransformEngine, hash: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{hash}-{}.cwasm", engine.compatibility_key())))
    }
}

/// Writes atomically: a temporary file in the same folder, then a rename.
fn store(path: &Path, component: &Component) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let bytes = component.serialize()?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        std::process::id(),
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("module")
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
