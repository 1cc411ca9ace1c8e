//! The Python guest SDK (`guest-sdk/python`) and the WIT contract, carried
//! in the binary so `fvhost build` works from any folder: written out next
//! to the transform being built, then handed to componentize-py.

use std::path::{Path, PathBuf};

/// The SDK's files, by their path under the SDK folder.
const FILES: &[(&str, &str)] = &[
    (
        "fvhost_guest/__init__.py",
        include_str!("../../../guest-sdk/python/fvhost_guest/__init__.py"),
    ),
    (
        "fvhost_guest/batch.py",
        include_str!("../../../guest-sdk/python/fvhost_guest/batch.py"),
    ),
    (
        "fvhost_guest/config.py",
        include_str!("../../../guest-sdk/python/fvhost_guest/config.py"),
    ),
    (
        "fvhost_guest/flatbuf.py",
        include_str!("../../../guest-sdk/python/fvhost_guest/flatbuf.py"),
    ),
    (
        "fvhost_guest/ipc.py",
        include_str!("../../../guest-sdk/python/fvhost_guest/ipc.py"),
    ),
    (
        "fvhost_guest/log.py",
        include_str!("../../../guest-sdk/python/fvhost_guest/log.py"),
    ),
    (
        "fvhost_guest/runtime.py",
        include_str!("../../../guest-sdk/python/fvhost_guest/runtime.py"),
    ),
    (
        "fvhost_guest/testing.py",
        include_str!("../../../guest-sdk/python/fvhost_guest/testing.py"),
    ),
    (
        "fvhost_guest/types.py",
        include_str!("../../../guest-sdk/python/fvhost_guest/types.py"),
    ),
    (
        "fvhost_guest_component.py",
        include_str!("../../../guest-sdk/python/fvhost_guest_component.py"),
    ),
    (
        "wit/transform.wit",
        include_str!("../../../guest-sdk/wit/transform.wit"),
    ),
];

/// The module componentize-py builds from: it imports the author's `transform.py`.
pub const ENTRY_MODULE: &str = "fvhost_guest_component";

/// The WIT world every transform implements.
pub const WORLD: &str = "feature-transform";

/// Writes the SDK under `dir` (replacing an older copy); returns the SDK
/// folder (for Python's path) and the WIT folder.
pub fn write_to(dir: &Path) -> std::io::Result<(PathBuf, PathBuf)> {
    let sdk = dir.join("fvhost-python-sdk");
    if sdk.exists() {
        std::fs::remove_dir_all(&sdk)?;
    }
    for (path, text) in FILES {
        let target = sdk.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(target, text)?;
    }
    let wit = sdk.join("wit");
    Ok((sdk, wit))
}
