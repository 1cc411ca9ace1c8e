//! Running from Feast's own registry: the `registry.db` that `feast apply`
//! writes from a user's Python definitions.
//!
//! A Feast repo holds `feature_store.yaml`, Python definitions and the
//! registry; fvhost reads the registry (never the Python), turns each object
//! into the definition a YAML repo would hold ([`convert`]) and checks it
//! like one. The only fvhost settings, such as which Wasm module a stream
//! feature view runs, come from tags named in [`convert`].

mod convert;
mod messages;

use std::path::{Path, PathBuf};

use prost::Message;

pub use convert::{
    TAG_CONFIG_PREFIX, TAG_DEAD_LETTER, TAG_MAX_DISTINCT_PREFIX, TAG_MAX_FUTURE_SKEW, TAG_MODULE,
    TAG_OFFLINE,
};

use super::definitions::DefinitionsFile;
use super::store_config::{RegistrySetting, StoreConfig};

/// The largest registry file read: 16 MiB, as for YAML files. Feast's
/// registries are kilobytes to a few megabytes; decoded, a registry of tiny
/// objects takes about 30 times its size in memory.
pub const MAX_REGISTRY_BYTES: u64 = 16 << 20;

/// The local registry file `feature_store.yaml` names (Feast's `registry:`
/// key: a path, or a mapping with `path` and `registry_type`), relative to
/// the repo folder. `None` when the key is absent.
pub fn registry_file(root: &Path, config: &StoreConfig) -> Result<Option<PathBuf>, String> {
    let (path, registry_type) = match &config.registry {
        None => return Ok(None),
        Some(RegistrySetting::Path(path)) => (path.as_str(), None),
        Some(RegistrySetting::Config {
            path,
            registry_type,
        }) => (path.as_str(), registry_type.as_deref()),
    };
    if let Some(kind) = registry_type.filter(|kind| *kind != "file") {
        return Err(format!(
            "registry type `{kind}` is not read by fvhost; it reads a local file registry (registry_type: file)"
        ));
    }
    let local = path.strip_prefix("file://").unwrap_or(path);
    if local.contains("://") {
        return Err(format!(
            "`{path}` is not a local file; fvhost reads a registry from the repo's machine (copy it locally, or use YAML definitions)"
        ));
    }
    Ok(Some(root.join(local)))
}

/// The definitions of `project` in the registry file at `path`, with the
/// objects fvhost cannot represent listed as errors.
pub fn read(path: &Path, project: &str) -> Result<(DefinitionsFile, Vec<String>), String> {
    let bytes = crate::bounded_file::read(path, MAX_REGISTRY_BYTES, "a Feast registry")
        .map_err(|e| e.to_string())?;
    let registry = messages::Registry::decode(bytes.as_slice()).map_err(|e| {
        format!(
            "{}: not a Feast registry (a serialized RegistryProto, as `feast apply` writes): {e}",
            path.display()
        )
    })?;
    let (definitions, problems) = convert::definitions(&registry, project);
    let empty = definitions.entities.is_empty()
        && definitions.sources.is_empty()
        && definitions.feature_views.is_empty()
        && definitions.stream_feature_views.is_empty();
    if empty {
        // An empty or cut-short file decodes as an empty registry: refused
        // rather than taken for a repo whose views were all removed.
        return Err(format!(
            "{}: holds no views or sources of project `{project}`{}; run `feast apply` (a file cut short, or another project's registry?)",
            path.display(),
            other_projects(&registry, project)
        ));
    }
    Ok((definitions, problems))
}

/// `" (it holds projects a, b)"` when the registry holds other projects' objects.
fn other_projects(registry: &messages::Registry, project: &str) -> String {
    let mut projects: Vec<&str> = registry
        .entities
        .iter()
        .filter_map(|e| e.spec.as_ref().map(|s| s.project.as_str()))
        .chain(registry.data_sources.iter().map(|s| s.project.as_str()))
        .filter(|p| !p.is_empty() && *p != project)
        .collect();
    projects.sort_unstable();
    projects.dedup();
    match projects.is_empty() {
        true => String::new(),
        false => format!(" (it holds project {})", projects.join(", ")),
    }
}

#[cfg(test)]
mod tests;
