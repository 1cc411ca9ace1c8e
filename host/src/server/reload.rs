//! `serve` answers from the repo as it is on disk: when the repo's files
//! (its YAML, or Feast's registry, and the modules its views name) change
//! and hold still, the repo is loaded again and served from the next
//! request on, as Feast's feature server refreshes its registry. A repo
//! that does not load, or whose push targets do not build, is logged and
//! the one served so far stays.

use std::path::PathBuf;
use std::sync::Arc;

use super::ServerState;
use crate::control::repo_watch::{ChangeDetector, WATCH_INTERVAL};

/// Watches the served repo's folder until the returned task is aborted.
pub fn spawn_repo_watch(state: Arc<ServerState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let root = state.served().repo.root.clone();
        let mut changes = ChangeDetector::new(&state.served().repo);
        loop {
            tokio::time::sleep(WATCH_INTERVAL).await;
            if !changes.settled_change(&state.served().repo) {
                continue;
            }
            reload(&state, root.clone()).await;
            changes.handled(&state.served().repo);
        }
    })
}

/// Loads the repo at `root` and serves it (loading reads files and may
/// compile modules: off the request threads).
async fn reload(state: &Arc<ServerState>, root: PathBuf) {
    let worker = Arc::clone(state);
    let shown = root.display().to_string();
    let outcome = tokio::task::spawn_blocking(move || {
        let repo = crate::repo::load(&root).map_err(|e| anyhow::anyhow!("{e}"))?;
        let counts = (repo.views.len(), repo.feature_services.len());
        worker.reload(repo).map(|()| counts)
    })
    .await;
    match outcome {
        Ok(Ok((views, services))) => tracing::info!(
            repo = %shown,
            views,
            feature_services = services,
            "the repo changed on disk; serving it from the next request"
        ),
        Ok(Err(e)) => tracing::warn!(
            repo = %shown,
            "the repo changed on disk but does not load: {e:#}; still serving the repo loaded before"
        ),
        Err(e) => tracing::error!(repo = %shown, "reloading the repo panicked: {e}"),
    }
}
