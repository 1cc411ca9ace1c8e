//! Reading a file whose path someone else chose (a transform module, a token
//! file, a repo's YAML), without trusting what the path points at.
//!
//! A path can name a FIFO that never answers, a device that never ends
//! (`/dev/zero`), or a `/proc` file whose metadata says 0 bytes while reading
//! it yields gigabytes (`/proc/self/pagemap`). So the file is opened without
//! blocking, must be a regular file, and is read through a reader that stops
//! one byte past the limit: the size on disk is never taken on trust.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Largest YAML file (feature_store.yaml, definitions, host.yaml) read: 16 MiB.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Largest token file read: 4 KiB.
pub const MAX_TOKEN_BYTES: u64 = 4096;

/// Why a file was not read. Each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum FileReadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is {kind}, not a regular file: only regular files are read")]
    NotRegular { path: String, kind: &'static str },
    #[error("{path} is larger than the {limit}-byte limit for {what}")]
    TooLarge {
        path: String,
        limit: u64,
        what: &'static str,
    },
    #[error("{path} is not UTF-8 text")]
    NotText { path: String },
}

/// Reads the regular file at `path`, refusing it if it holds more than
/// `limit` bytes; `what` names the kind of file in the error ("a module").
pub fn read(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, FileReadError> {
    let shown = || path.display().to_string();
    let io = |source| FileReadError::Io {
        path: shown(),
        source,
    };
    // O_NONBLOCK: opening a FIFO with no writer returns at once instead of
    // waiting for one; it changes nothing for a regular file.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    let file_type = file.metadata().map_err(io)?.file_type();
    if !file_type.is_file() {
        return Err(FileReadError::NotRegular {
            path: shown(),
            kind: describe(&file_type),
        });
    }
    read_up_to(file, limit)
        .map_err(io)?
        .ok_or_else(|| FileReadError::TooLarge {
            path: shown(),
            limit,
            what,
        })
}

/// Reads to the end in whole chunks (some `/proc` files refuse reads of
/// other sizes); `None` once more than `limit` bytes came.
fn read_up_to(mut file: std::fs::File, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    const CHUNK: usize = 64 << 10;
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let read = match file.read(&mut chunk) {
            Ok(0) => return Ok(Some(bytes)),
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if (bytes.len() + read) as u64 > limit {
            return Ok(None);
        }
        bytes.extend_from_slice(&chunk[..read]);
    }
}

/// [`read`], as UTF-8 text.
pub fn read_text(path: &Path, limit: u64, what: &'static str) -> Result<String, FileReadError> {
    String::from_utf8(read(path, limit, what)?).map_err(|_| FileReadError::NotText {
        path: path.display().to_string(),
    })
}

fn describe(file_type: &std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_within_the_limit_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.wasm");
        std::fs::write(&path, b"0123456789").unwrap();
        assert_eq!(read(&path, 10, "a module").unwrap(), b"0123456789");
        let error = read(&path, 9, "a module").unwrap_err().to_string();
        assert!(
            error.ends_with("m.wasm is larger than the 9-byte limit for a module"),
            "{error}"
        );
    }

    #[test]
    fn devices_directories_and_fifos_are_refused_without_blocking() {
        let error = read(Path::new("/dev/zero"), 1 << 20, "a token file")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "/dev/zero is a character device, not a regular file: only regular files are read"
        );
        let dir = tempfile::tempdir().unwrap();
        let error = read(dir.path(), 10, "a module").unwrap_err().to_string();
        assert!(
            error.contains("is a directory, not a regular file"),
            "{error}"
        );
        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let error = read(&fifo, 10, "a module").unwrap_err().to_string();
        assert!(error.contains("is a FIFO, not a regular file"), "{error}");
    }

    #[test]
    fn a_proc_file_that_claims_zero_bytes_is_read_only_up_to_the_limit() {
        let path = Path::new("/proc/self/pagemap");
        assert_eq!(std::fs::metadata(path).unwrap().len(), 0);
        let error = read(path, 1 << 20, "a module").unwrap_err().to_string();
        assert_eq!(
            error,
            "/proc/self/pagemap is larger than the 1048576-byte limit for a module"
        );
    }
}
