//! `fvhost new`: a transform folder to start from, in Rust or Python: the
//! transform (scale a `value` column by the config's `factor`, reject
//! negative values), its unit test, and `view.yaml`, a repo entry using it.

use std::path::{Path, PathBuf};

use super::build::Language;

const PYTHON_TRANSFORM: &str = include_str!("templates/transform.py");
const PYTHON_TEST: &str = include_str!("templates/test_transform.py");
const RUST_MANIFEST: &str = include_str!("templates/Cargo.toml");
const RUST_LIB: &str = include_str!("templates/lib.rs");
const VIEW: &str = include_str!("templates/view.yaml");

/// Why a transform folder was not created.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "`{0}` is not a transform name: use lowercase letters, digits and `_`, starting with a letter"
    )]
    BadName(String),
    #[error("{0} already exists; nothing was written")]
    Exists(PathBuf),
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// What `new` wrote.
#[derive(Debug, Clone)]
pub struct Scaffolded {
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
    /// Where `fvhost build` puts the module (what `view.yaml` points at).
    pub module: PathBuf,
}

/// Creates `parent/name` for a transform in `language`. Rust transforms
/// depend on the guest SDK at `rust_sdk`.
pub fn scaffold(
    parent: &Path,
    name: &str,
    language: Language,
    rust_sdk: &Path,
) -> Result<Scaffolded, ScaffoldError> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 64;
    if !valid {
        return Err(ScaffoldError::BadName(name.to_string()));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir));
    }
    // Absolute, so the repo entry finds it from any repo folder.
    let home = std::path::absolute(&dir).unwrap_or_else(|_| dir.clone());
    let module = match language {
        Language::Python => home.join("build").join(format!("{name}.wasm")),
        Language::Rust => home
            .join("target/wasm32-wasip2/release")
            .join(format!("{name}.wasm")),
    };
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{sdk}}", &rust_sdk.display().to_string())
            .replace("{{module}}", &module.display().to_string())
    };
    let files: Vec<(PathBuf, String)> = match language {
        Language::Python => vec![
            (dir.join("transform.py"), fill(PYTHON_TRANSFORM)),
            (dir.join("test_transform.py"), fill(PYTHON_TEST)),
            (dir.join("view.yaml"), fill(VIEW)),
        ],
        Language::Rust => vec![
            (dir.join("Cargo.toml"), fill(RUST_MANIFEST)),
            (dir.join("src/lib.rs"), fill(RUST_LIB)),
            (dir.join("view.yaml"), fill(VIEW)),
        ],
    };
    for (path, text) in &files {
        let parent = path.parent().unwrap_or(&dir);
        std::fs::create_dir_all(parent).map_err(|error| ScaffoldError::Io {
            path: parent.to_path_buf(),
            error,
        })?;
        std::fs::write(path, text).map_err(|error| ScaffoldError::Io {
            path: path.clone(),
            error,
        })?;
    }
    Ok(Scaffolded {
        dir,
        files: files.into_iter().map(|(path, _)| path).collect(),
        module,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_identifiers_and_existing_folders_are_refused() {
        let parent = tempfile::tempdir().unwrap();
        for bad in ["", "Upper", "1st", "a-b", "../escape", "a/b"] {
            assert!(
                matches!(
                    scaffold(parent.path(), bad, Language::Python, Path::new("sdk")),
                    Err(ScaffoldError::BadName(_))
                ),
                "{bad:?}"
            );
        }
        let made = scaffold(parent.path(), "scale", Language::Python, Path::new("sdk")).unwrap();
        assert_eq!(made.files.len(), 3);
        let text = std::fs::read_to_string(made.dir.join("view.yaml")).unwrap();
        assert!(text.contains(&made.module.display().to_string()), "{text}");
        assert!(matches!(
            scaffold(parent.path(), "scale", Language::Rust, Path::new("sdk")),
            Err(ScaffoldError::Exists(_))
        ));
    }
}
