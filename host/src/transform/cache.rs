//! Compiled components kept on disk, keyed by the module's content hash and
//! the engine's compilation settings, so a restart does not recompile.
//!
//! Every new module version deployed or reloaded adds a file (a few MiB);
//! after each store the folder is pruned back under its budget, least
//! recently used files first (see [`prune`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

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

/// Bytes of compiled modules kept unless `$FVHOST_CACHE_MAX_BYTES` says
/// otherwise: 1 GiB, some 150 module versions.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

/// The cache's budget: `$FVHOST_CACHE_MAX_BYTES` when it is a number, else
/// [`DEFAULT_MAX_BYTES`].
fn max_bytes_from_env() -> u64 {
    match std::env::var("FVHOST_CACHE_MAX_BYTES") {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| {
            tracing::warn!(
                value = %text,
                "FVHOST_CACHE_MAX_BYTES is not a number of bytes; keeping {DEFAULT_MAX_BYTES}"
            );
            DEFAULT_MAX_BYTES
        }),
        Err(_) => DEFAULT_MAX_BYTES,
    }
}

/// An on-disk cache of compiled components.
#[derive(Debug, Clone)]
pub struct ModuleCache {
    dir: Option<PathBuf>,
    /// Bytes of compiled modules the folder keeps (see [`prune`]).
    max_bytes: u64,
    /// Hashes being compiled now, so a module deployed twice in a row is
    /// compiled once: the second caller waits for the first's result.
    compiling: Arc<(Mutex<HashSet<String>>, Condvar)>,
}

impl ModuleCache {
    /// A cache in `dir`; `None` disables caching.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self {
            dir,
            max_bytes: max_bytes_from_env(),
            compiling: Arc::default(),
        }
    }

    /// This cache, keeping at most `max_bytes` of compiled modules.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
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
            Ok(component) => {
                mark_used(&path);
                Some(component)
            }
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
        if let Some(path) = self.path_for(engine, hash) {
            match store(&path, &component) {
                Ok(()) => prune(&path, self.max_bytes),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "cannot cache compiled module: {e:#}")
                }
            }
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

/// A cached file's modification time is its last use: [`prune`] keeps the
/// most recently used. Best effort: a file that cannot be touched is only
/// pruned sooner.
fn mark_used(path: &Path) {
    if let Ok(file) = std::fs::File::options().write(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// Temporary files older than this were left by a process that died while
/// storing: removed by [`prune`].
const ABANDONED_AFTER: Duration = Duration::from_secs(3600);

/// Removes compiled modules from `just_stored`'s folder, least recently
/// used first, until those left take at most `max_bytes` (`just_stored`
/// always stays), and temporary files abandoned by a crash. Only regular
/// files fvhost names are touched (`*.cwasm`, `.*.tmp`); a file another
/// process has loaded stays valid for it (its mapping outlives the name),
/// and one it is about to load is compiled again. Failures are logged,
/// never raised: the cache is an optimization.
pub fn prune(just_stored: &Path, max_bytes: u64) {
    let Some(dir) = just_stored.parent() else {
        return;
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), "cannot list the module cache to prune it: {e}");
            return;
        }
    };
    let now = SystemTime::now();
    let mut modules = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(metadata) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !metadata.is_file() {
            continue;
        }
        let used = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") {
            if now
                .duration_since(used)
                .is_ok_and(|age| age > ABANDONED_AFTER)
            {
                remove(&path);
            }
        } else if name.ends_with(".cwasm") && path != just_stored {
            modules.push((used, metadata.len(), path));
        }
    }
    let kept = std::fs::metadata(just_stored).map_or(0, |m| m.len());
    let mut total: u64 = kept + modules.iter().map(|(_, len, _)| len).sum::<u64>();
    modules.sort_by_key(|(used, _, _)| *used);
    for (_, len, path) in modules {
        if total <= max_bytes {
            break;
        }
        remove(&path);
        total = total.saturating_sub(len);
    }
}

fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => tracing::debug!(path = %path.display(), "pruned from the module cache"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), "cannot prune the module cache: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, bytes: usize, age: Duration) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, vec![0u8; bytes]).unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
        path
    }

    #[test]
    fn pruning_removes_the_least_recently_used_modules_down_to_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let hour = Duration::from_secs(3600);
        let oldest = file(dir.path(), "a-k.cwasm", 100, 5 * hour);
        let older = file(dir.path(), "b-k.cwasm", 100, 4 * hour);
        let recent = file(dir.path(), "c-k.cwasm", 100, hour);
        let new = file(dir.path(), "d-k.cwasm", 100, Duration::ZERO);
        let abandoned = file(dir.path(), ".7.e-k.cwasm.tmp", 10, 2 * hour);
        let in_progress = file(dir.path(), ".8.f-k.cwasm.tmp", 10, Duration::ZERO);
        let other = file(dir.path(), "notes.txt", 1000, 9 * hour);
        std::os::unix::fs::symlink(&recent, dir.path().join("z-k.cwasm")).unwrap();

        prune(&new, 250);

        for (path, kept) in [
            (&oldest, false),
            (&older, false),
            (&recent, true),
            (&new, true),
            (&abandoned, false),
            (&in_progress, true),
            (&other, true),
        ] {
            assert_eq!(path.exists(), kept, "{}", path.display());
        }
        assert!(
            std::fs::symlink_metadata(dir.path().join("z-k.cwasm")).is_ok(),
            "a link is not fvhost's to remove"
        );
    }

    #[test]
    fn the_module_just_stored_stays_even_over_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let older = file(dir.path(), "a-k.cwasm", 100, Duration::from_secs(60));
        let new = file(dir.path(), "b-k.cwasm", 500, Duration::ZERO);
        prune(&new, 200);
        assert!(new.exists());
        assert!(!older.exists());
    }

    #[test]
    fn a_loaded_module_counts_as_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), "a-k.cwasm", 10, Duration::from_secs(7200));
        mark_used(&path);
        let age = SystemTime::now()
            .duration_since(std::fs::metadata(&path).unwrap().modified().unwrap())
            .unwrap_or_default();
        assert!(age < Duration::from_secs(60), "{age:?}");
    }
}
