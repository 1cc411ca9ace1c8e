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
};

use super::definitions::DefinitionsFile;
use super::store_config::{RegistrySetting, StoreConfig};

/// The largest registry file read; Feast's registries are kilobytes to a
/// few megabytes.
pub const MAX_REGISTRY_BYTES: u64 = 64 << 20;

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
    Ok(convert::definitions(&registry, project))
}

#[cfg(test)]
mod tests;
