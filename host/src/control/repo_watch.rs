//! `fvhost run --watch`: applies a tenant's repo when its files change, the
//! way `fvhost apply --live` does, so editing a definition or rebuilding a
//! module is enough. [`ChangeDetector`] is shared with `serve`, which
//! reloads the repo it answers from the same way.
//!
//! The watcher polls (no platform file-notification API needed): every
//! interval it fingerprints the repo's YAML files and the modules its views
//! name (path, size, modification time), and applies once a change has held
//! still for one interval, so a file caught half-written is not applied.
//! A rejected apply is logged with its reason and changes nothing; the next
//! change is tried again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::Deployer;
use crate::repo::FeatureRepo;

/// How often a watched repo is looked at.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// What the watcher compares: each file's size and modification time.
type Fingerprint = BTreeMap<PathBuf, (u64, Option<SystemTime>)>;

/// Tells when a repo's files have changed and held still: looked at every
/// [`WATCH_INTERVAL`], a change counts once two looks in a row agree, so a
/// file caught half-written is not loaded. `run --watch` and `serve` share it.
pub struct ChangeDetector {
    handled: Fingerprint,
    pending: Option<Fingerprint>,
    /// The files as they were when the last change settled, before the
    /// repo was loaded from them.
    settled: Option<Fingerprint>,
}

impl ChangeDetector {
    /// Starts from the files of `repo` as they are now.
    pub fn new(repo: &FeatureRepo) -> Self {
        Self {
            handled: fingerprint(repo),
            pending: None,
            settled: None,
        }
    }

    /// Looks at the files of `repo` now: true when they differ from the
    /// last handled state and are the same as at the previous look.
    pub fn settled_change(&mut self, repo: &FeatureRepo) -> bool {
        let now = fingerprint(repo);
        if now == self.handled {
            self.pending = None;
            return false;
        }
        if self.pending.as_ref() != Some(&now) {
            // Changed since the last look: wait for it to hold still.
            self.pending = Some(now);
            return false;
        }
        self.pending = None;
        self.settled = Some(now);
        true
    }

    /// Marks the settled change as handled, loaded or refused; `repo` is
    /// the repo now in use, whose files are watched from here on (it may
    /// name other modules). Each file keeps the stamp it had when the
    /// change settled, before loading: a file edited while the repo was
    /// being loaded differs at the next look and is loaded again.
    pub fn handled(&mut self, repo: &FeatureRepo) {
        let settled = self.settled.take().unwrap_or_default();
        self.handled = fingerprint(repo)
            .into_iter()
            .map(|(path, now)| {
                let before = settled.get(&path).copied().unwrap_or(now);
                (path, before)
            })
            .collect();
    }
}

/// Watches `deployer`'s repo until `shutdown` turns true.
pub fn spawn(deployer: Arc<Deployer>, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut changes = ChangeDetector::new(&deployer.repo());
        loop {
            tokio::select! {
                _ = tokio::time::sleep(WATCH_INTERVAL) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            if changes.settled_change(&deployer.repo()) {
                apply(&deployer).await;
                changes.handled(&deployer.repo());
            }
        }
    });
}

async fn apply(deployer: &Arc<Deployer>) {
    let tenant = deployer.tenant().to_string();
    let worker = Arc::clone(deployer);
    match tokio::task::spawn_blocking(move || worker.apply("watch")).await {
        Ok(Ok(applied)) => tracing::info!(
            tenant,
            changed = ?applied.changed,
            added = ?applied.added,
            removed = ?applied.removed,
            "repo changed on disk and applied"
        ),
        Ok(Err(e)) => {
            tracing::warn!(
                tenant,
                "repo changed on disk but was not applied: {e}; the running views are unchanged"
            )
        }
        Err(e) => tracing::error!(tenant, "applying the changed repo panicked: {e}"),
    }
}

/// The repo's YAML files (or Feast registry) and the modules its views name.
fn fingerprint(repo: &FeatureRepo) -> Fingerprint {
    let yaml = std::fs::read_dir(&repo.root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml" || e == "yml"));
    let modules = repo
        .views
        .iter()
        .filter_map(|view| view.transform.as_ref().map(|t| t.module.clone()));
    yaml.chain(repo.registry.clone())
        .chain(modules)
        .map(|path| {
            let stamp = stamp(&path);
            (path, stamp)
        })
        .collect()
}

fn stamp(path: &Path) -> (u64, Option<SystemTime>) {
    match std::fs::metadata(path) {
        Ok(meta) => (meta.len(), meta.modified().ok()),
        Err(_) => (0, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORE: &str = "project: watched\nprovider: local\nonline_store:\n  type: redis\n  connection_string: \"127.0.0.1:6379\"\n";

    fn entity(name: &str) -> String {
        format!("entities:\n  - name: {name}\n    join_keys: [id]\n    value_type: Int64\n")
    }

    /// An edit that lands while the settled change is being loaded is not
    /// lost: it is seen at the next looks, and loaded then.
    #[test]
    fn an_edit_during_a_load_is_loaded_afterwards() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("feature_store.yaml"), STORE).unwrap();
        let definitions = dir.path().join("definitions.yaml");
        std::fs::write(&definitions, entity("first")).unwrap();
        let repo = crate::repo::load(dir.path()).unwrap();
        let mut changes = ChangeDetector::new(&repo);
        assert!(!changes.settled_change(&repo), "nothing changed yet");

        std::fs::write(&definitions, entity("second_entity")).unwrap();
        assert!(
            !changes.settled_change(&repo),
            "a change must hold still first"
        );
        assert!(changes.settled_change(&repo), "the change held still");
        // The repo is loaded; meanwhile the file changes again.
        let loaded = crate::repo::load(dir.path()).unwrap();
        std::fs::write(&definitions, entity("the_third_one")).unwrap();
        changes.handled(&loaded);

        assert!(!changes.settled_change(&loaded));
        assert!(
            changes.settled_change(&loaded),
            "the edit made during the load is loaded next"
        );
        changes.handled(&crate::repo::load(dir.path()).unwrap());
        assert!(!changes.settled_change(&loaded), "and then all is quiet");
        assert!(!changes.settled_change(&loaded));
    }
}
