//! `fvhost build`: a transform's folder to a WebAssembly component,
//! whatever its language. Rust folders (a `Cargo.toml`) build with cargo
//! for wasm32-wasip2; Python folders (a `transform.py`) build with
//! componentize-py against the SDK carried in this binary. Both give the
//! same kind of component: the WIT world `feature-transform` of
//! `fvhost:transform@0.1.0`, checked the same way when a view loads it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use super::python_sdk;

/// A transform's source language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    Rust,
    Python,
}

/// A built transform.
#[derive(Debug, Clone)]
pub struct Built {
    pub language: Language,
    /// The component a view's `transform.module` points at.
    pub module: PathBuf,
    pub seconds: f64,
}

/// Why a transform did not build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "{0}: not a transform folder (no Cargo.toml for a Rust transform, no transform.py for a Python one)"
    )]
    NotATransform(PathBuf),
    #[error("{0}: holds both Cargo.toml and transform.py; say which with --lang")]
    TwoLanguages(PathBuf),
    #[error(
        "componentize-py not found (looked for {0}): scripts/setup.sh installs it into ~/.cache/fvhost/py-venv; or set FVHOST_COMPONENTIZE_PY to its path"
    )]
    NoComponentizePy(String),
    #[error("cannot run {tool}: {error}")]
    Spawn { tool: String, error: std::io::Error },
    #[error("{tool} failed ({status}):\n{output}")]
    Failed {
        tool: String,
        status: String,
        output: String,
    },
    #[error("cargo built no .wasm for {0} (is it a cdylib crate?)")]
    NoModule(PathBuf),
    #[error("cargo built several modules for {dir} ({modules}); pass the crate's own folder")]
    SeveralModules { dir: PathBuf, modules: String },
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// The language of the transform in `dir`.
pub fn detect(dir: &Path) -> Result<Language, BuildError> {
    let rust = dir.join("Cargo.toml").is_file();
    let python = dir.join("transform.py").is_file();
    match (rust, python) {
        (true, true) => Err(BuildError::TwoLanguages(dir.to_path_buf())),
        (true, false) => Ok(Language::Rust),
        (false, true) => Ok(Language::Python),
        (false, false) => Err(BuildError::NotATransform(dir.to_path_buf())),
    }
}

/// Builds the transform in `dir` (its language detected unless given);
/// the module is copied to `output` when given.
pub fn build(
    dir: &Path,
    language: Option<Language>,
    output: Option<&Path>,
) -> Result<Built, BuildError> {
    let started = Instant::now();
    let language = match language {
        Some(language) => language,
        None => detect(dir)?,
    };
    let module = match language {
        Language::Rust => build_rust(dir)?,
        Language::Python => build_python(dir, output)?,
    };
    let module = match output {
        Some(output) if output != module => {
            std::fs::copy(&module, output).map_err(|error| BuildError::Io {
                path: output.to_path_buf(),
                error,
            })?;
            output.to_path_buf()
        }
        _ => module,
    };
    Ok(Built {
        language,
        module,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn run(tool: &str, command: &mut Command) -> Result<Output, BuildError> {
    let output = command.output().map_err(|error| BuildError::Spawn {
        tool: tool.to_string(),
        error,
    })?;
    if output.status.success() {
        return Ok(output);
    }
    let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stdout));
    Err(BuildError::Failed {
        tool: tool.to_string(),
        status: output.status.to_string(),
        output: text.trim_end().to_string(),
    })
}

/// `cargo build --release --target wasm32-wasip2`; the module is the
/// `.wasm` cargo reports for the folder's own package.
fn build_rust(dir: &Path) -> Result<PathBuf, BuildError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = dir.join("Cargo.toml");
    let output = run(
        "cargo",
        Command::new(cargo)
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .args([
                "--message-format",
                "json-render-diagnostics",
                "--manifest-path",
            ])
            .arg(&manifest),
    )?;
    let manifest = std::fs::canonicalize(&manifest).unwrap_or(manifest);
    let modules: Vec<PathBuf> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| {
            message["manifest_path"].as_str().map(Path::new) == Some(manifest.as_path())
        })
        .flat_map(|message| message["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|name| name.as_str().map(PathBuf::from))
        .filter(|name| name.extension().is_some_and(|e| e == "wasm"))
        .collect();
    match modules.as_slice() {
        [] => Err(BuildError::NoModule(dir.to_path_buf())),
        [module] => Ok(module.clone()),
        several => Err(BuildError::SeveralModules {
            dir: dir.to_path_buf(),
            modules: several
                .iter()
                .map(|m| m.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// componentize-py over the folder's `transform.py` and the SDK, into
/// `DIR/build/<folder name>.wasm` (or `output`).
fn build_python(dir: &Path, output: Option<&Path>) -> Result<PathBuf, BuildError> {
    let tool = componentize_py()?;
    let build_dir = dir.join("build");
    let io = |error| BuildError::Io {
        path: build_dir.clone(),
        error,
    };
    std::fs::create_dir_all(&build_dir).map_err(io)?;
    let (sdk, wit) = python_sdk::write_to(&build_dir).map_err(io)?;
    let module = match output {
        Some(output) => output.to_path_buf(),
        None => build_dir.join(format!("{}.wasm", module_name(dir))),
    };
    run(
        "componentize-py",
        Command::new(&tool)
            .arg("-d")
            .arg(&wit)
            .args([
                "-w",
                python_sdk::WORLD,
                "componentize",
                python_sdk::ENTRY_MODULE,
            ])
            .arg("-p")
            .arg(dir)
            .arg("-p")
            .arg(&sdk)
            .arg("-o")
            .arg(&module),
    )?;
    Ok(module)
}

/// The module's file name: the folder's name, `-` as `_`.
fn module_name(dir: &Path) -> String {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    dir.file_name()
        .map(|n| n.to_string_lossy().replace('-', "_"))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "transform".into())
}

/// componentize-py: `FVHOST_COMPONENTIZE_PY`, else the virtualenv the
/// project's setup makes, else the PATH.
pub fn componentize_py() -> Result<PathBuf, BuildError> {
    if let Some(path) = std::env::var_os("FVHOST_COMPONENTIZE_PY") {
        return Ok(PathBuf::from(path));
    }
    let mut looked = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        let venv = Path::new(&home).join(".cache/fvhost/py-venv/bin/componentize-py");
        if venv.is_file() {
            return Ok(venv);
        }
        looked.push(venv.display().to_string());
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let candidate = dir.join("componentize-py");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    looked.push("componentize-py on the PATH".into());
    Err(BuildError::NoComponentizePy(looked.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_is_rust_python_or_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let refused = detect(dir.path()).unwrap_err().to_string();
        assert!(refused.contains("not a transform folder"), "{refused}");
        std::fs::write(dir.path().join("transform.py"), "").unwrap();
        assert_eq!(detect(dir.path()).unwrap(), Language::Python);
        std::fs::write(dir.path().join("Cargo.toml"), "").unwrap();
        assert!(matches!(
            detect(dir.path()),
            Err(BuildError::TwoLanguages(_))
        ));
        std::fs::remove_file(dir.path().join("transform.py")).unwrap();
        assert_eq!(detect(dir.path()).unwrap(), Language::Rust);
    }
}
