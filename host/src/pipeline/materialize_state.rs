//! Where the last successful materialization of each view ended, kept in the
//! repo (`.fvhost/materialize_state.json`) so `materialize-incremental`
//! continues with no gap and no overlap. Written atomically, and only after a
//! view's run succeeded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file, relative to the repo root.
pub const STATE_FILE: &str = ".fvhost/materialize_state.json";

/// Per view, the inclusive end of its last successful run (microseconds).
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct MaterializeState {
    pub views: BTreeMap<String, ViewState>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ViewState {
    pub end_micros: i64,
    /// The same instant, readable.
    pub end: String,
}

impl MaterializeState {
    fn path(root: &Path) -> PathBuf {
        root.join(STATE_FILE)
    }

    /// Reads the state; a repo never materialized has an empty one.
    pub fn load(root: &Path) -> anyhow::Result<Self> {
        let path = Self::path(root);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
        }
    }

    /// Records that `view` is materialized up to `end_micros` and saves atomically.
    pub fn record(root: &Path, view: &str, end_micros: i64) -> anyhow::Result<()> {
        let mut state = Self::load(root)?;
        let end = crate::online::EventTime::from_micros(end_micros).to_rfc3339();
        state
            .views
            .insert(view.to_string(), ViewState { end_micros, end });
        let path = Self::path(root);
        let dir = path.parent().unwrap_or(root);
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".materialize_state.{}.tmp", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec_pretty(&state)?)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }
}
