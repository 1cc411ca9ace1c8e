//! Which files a FileSource `path` names: one Parquet file, every `*.parquet`
//! below a folder (hive-style `date=2026-11-26/` partitions included), or a glob.

use std::path::{Path, PathBuf};

use super::OfflineError;

/// The Parquet files `path` (relative to `root` unless absolute) names, sorted.
pub fn parquet_files(root: &Path, path: &str) -> Result<Vec<PathBuf>, OfflineError> {
    let full = if Path::new(path).is_absolute() {
        PathBuf::from(path)
    } else {
        root.join(path)
    };
    let text = full.to_string_lossy().into_owned();
    let mut files = if text.contains(['*', '?', '[']) {
        glob::glob(&text)
            .map_err(|e| OfflineError::file(&full, format!("bad glob pattern: {e}")))?
            .filter_map(Result::ok)
            .filter(|p| p.is_file() && visible(p))
            .collect()
    } else if full.is_dir() {
        let mut found = Vec::new();
        walk(&full, &mut found).map_err(|e| OfflineError::file(&full, e))?;
        found
    } else if full.is_file() {
        vec![full.clone()]
    } else {
        Vec::new()
    };
    files.sort();
    if files.is_empty() {
        return Err(OfflineError::NoFiles(text));
    }
    Ok(files)
}

/// Collects `*.parquet` files below `dir`, skipping hidden and `_`-prefixed
/// entries (temporary files of writers in progress).
fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !visible(&path) {
            continue;
        }
        if path.is_dir() {
            walk(&path, found)?;
        } else if path.extension().is_some_and(|e| e == "parquet") {
            found.push(path);
        }
    }
    Ok(())
}

/// Hidden (`.`) and `_`-prefixed names are writers' work in progress, never data.
fn visible(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|name| !name.starts_with('.') && !name.starts_with('_'))
}

/// Where new rows of a FileSource go, so that its readers see them.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteTarget {
    /// New files in this folder: the source's folder, or a glob's fixed part.
    Folder(PathBuf),
    /// Appended to this one Parquet file (see [`super::append`]).
    SingleFile(PathBuf),
}

/// Where new rows of the FileSource `path` go: its folder (or a glob's fixed
/// folder part), or the one file it names (a `.parquet` path that is a file
/// or does not exist yet).
pub fn write_target(root: &Path, path: &str) -> WriteTarget {
    match write_dir(root, path) {
        Ok(dir) => WriteTarget::Folder(dir),
        Err(_) if Path::new(path).is_absolute() => WriteTarget::SingleFile(PathBuf::from(path)),
        Err(_) => WriteTarget::SingleFile(root.join(path)),
    }
}

/// The folder new files of a FileSource go into, so that its readers see
/// them: the path itself when it is a folder (or does not exist yet and has no
/// `.parquet` suffix), or the fixed folder part of a glob. A source naming one
/// file has none; that is an error (see [`write_target`]).
pub fn write_dir(root: &Path, path: &str) -> Result<PathBuf, OfflineError> {
    let full = if Path::new(path).is_absolute() {
        PathBuf::from(path)
    } else {
        root.join(path)
    };
    let text = full.to_string_lossy().into_owned();
    if text.contains(['*', '?', '[']) {
        let fixed: PathBuf = full
            .components()
            .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
            .collect();
        return Ok(fixed);
    }
    if full.is_dir() || (!full.exists() && full.extension().is_none_or(|e| e != "parquet")) {
        return Ok(full);
    }
    Err(OfflineError::file(
        &full,
        "names a single file, so new files would not be read with it; point the source's path at a folder or a glob",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_globs_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("stats/date=2026-11-25")).unwrap();
        std::fs::write(root.join("stats/date=2026-11-25/a.parquet"), b"").unwrap();
        std::fs::write(root.join("stats/b.parquet"), b"").unwrap();
        std::fs::write(root.join("stats/_part.parquet.tmp"), b"").unwrap();
        std::fs::write(root.join("stats/.hidden.parquet"), b"").unwrap();
        let found = parquet_files(root, "stats").unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(parquet_files(root, "stats/*.parquet").unwrap().len(), 1);
        assert_eq!(parquet_files(root, "stats/b.parquet").unwrap().len(), 1);
        assert!(parquet_files(root, "nothing").is_err());
        assert_eq!(write_dir(root, "stats").unwrap(), root.join("stats"));
        assert_eq!(
            write_dir(root, "stats/date=*/*.parquet").unwrap(),
            root.join("stats")
        );
        assert!(write_dir(root, "stats/b.parquet").is_err());
    }
}
