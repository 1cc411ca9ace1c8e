//! Building transform workspaces for wasm32-wasip2, as the quickstart, the
//! tests and the benchmarks do before they load a module.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// Builds the guest workspace whose `Cargo.toml` is in `workspace`, release
/// profile, and returns the folder holding the `.wasm` files:
/// `workspace/target/wasm32-wasip2/release`, where repos point, whatever
/// `CARGO_TARGET_DIR` says. With `FVHOST_GUEST_TARGET_DIR` set (CI sets
/// it beside its Cargo target directory) the build happens there, kept
/// between fresh clones, and the modules are copied into the workspace.
pub fn build_guest_workspace(workspace: &Path) -> anyhow::Result<PathBuf> {
    let target_dir = guest_target_dir(workspace);
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
        .arg(&target_dir)
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
    let modules = workspace.join("target/wasm32-wasip2/release");
    let built = target_dir.join("wasm32-wasip2/release");
    if built != modules {
        copy_modules(&built, &modules)?;
    }
    Ok(modules)
}

/// Where `workspace` is built: `FVHOST_GUEST_TARGET_DIR/<parent>-<name>`,
/// or the workspace's own `target`.
fn guest_target_dir(workspace: &Path) -> PathBuf {
    match std::env::var_os("FVHOST_GUEST_TARGET_DIR") {
        Some(dir) => {
            let name = |path: Option<&Path>| {
                path.and_then(Path::file_name)
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            let label = format!("{}-{}", name(workspace.parent()), name(Some(workspace)));
            PathBuf::from(dir).join(label)
        }
        None => workspace.join("target"),
    }
}

/// Copies the `.wasm` files of `from` into `to`, each through a temporary
/// file renamed over the old one (a test loading a module meanwhile reads
/// the old file or the new one, never half of one).
fn copy_modules(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let entries = std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|ext| ext != "wasm") {
            continue;
        }
        let Some(name) = path.file_name() else {
            continue;
        };
        let partial = to.join(format!(
            ".{}.{}.partial",
            name.to_string_lossy(),
            std::process::id()
        ));
        std::fs::copy(&path, &partial)
            .with_context(|| format!("copying {} to {}", path.display(), partial.display()))?;
        std::fs::rename(&partial, to.join(name))
            .with_context(|| format!("renaming {} into {}", partial.display(), to.display()))?;
    }
    Ok(())
}
