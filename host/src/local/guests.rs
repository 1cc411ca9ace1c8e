//! Building transform workspaces for wasm32-wasip2, as the quickstart, the
//! tests and the benchmarks do before they load a module.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// Builds the guest workspace whose `Cargo.toml` is in `workspace`, release
/// profile, into `workspace/target` whatever `CARGO_TARGET_DIR` says (repos
/// point at modules there). Returns the folder holding the `.wasm` files.
pub fn build_guest_workspace(workspace: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(workspace.join("target"))
        .status()
        .with_context(|| {
            format!(
                "running cargo to build the transforms in {}",
                workspace.display()
            )
        })?;
    if !status.success() {
        bail!(
            "building the transforms in {} failed ({status}); is the wasm32-wasip2 target installed? (rustup target add wasm32-wasip2)",
            workspace.display()
        );
    }
    Ok(workspace.join("target/wasm32-wasip2/release"))
}
