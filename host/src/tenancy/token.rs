//! Admin credentials: read from a file or an environment variable, never
//! from host.yaml; kept only as a SHA-256 digest; compared in constant time;
//! never printed. A token shorter than [`MIN_TOKEN_CHARS`] or a token file
//! that group or others can read is accepted with a warning.

use std::path::Path;

use sha2::{Digest, Sha256};

/// Shortest token accepted without a warning: 16 characters. Tokens are
/// compared as whole secrets, so a short one is guessed sooner.
pub const MIN_TOKEN_CHARS: usize = 16;

/// Where a credential is read from (`token_file:` or `token_env:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    File(std::path::PathBuf),
    Env(String),
}

/// A credential's digest. Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenDigest(<redacted>)")
    }
}

/// Why a credential could not be read. The messages name the file or
/// variable, never the value.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TokenError {
    #[error("cannot read token file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("token file {0} is empty")]
    EmptyFile(String),
    #[error("environment variable {0} is not set or empty")]
    Env(String),
}

impl TokenSource {
    /// Reads the credential and keeps its digest, with warnings about its
    /// strength (never its value). Whitespace around it (the newline editors
    /// add) is not part of the token, as it is not of a presented one.
    pub fn read(&self, relative_to: &Path) -> Result<(TokenDigest, Vec<String>), TokenError> {
        let mut warnings = Vec::new();
        let token = match self {
            TokenSource::File(path) => {
                let path = relative_to.join(path);
                let shown = path.display().to_string();
                let text = crate::bounded_file::read_text(
                    &path,
                    crate::bounded_file::MAX_TOKEN_BYTES,
                    "a token file",
                )
                .map_err(|e| TokenError::File {
                    path: shown.clone(),
                    reason: e.to_string(),
                })?;
                let token = text.trim().to_string();
                if token.is_empty() {
                    return Err(TokenError::EmptyFile(shown));
                }
                if let Some(mode) = readable_by_others(&path) {
                    warnings.push(format!(
                        "token file {shown} can be read by group or others (mode {mode:o}): `chmod 600` it"
                    ));
                }
                token
            }
            TokenSource::Env(name) => std::env::var(name)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| TokenError::Env(name.clone()))?,
        };
        let length = token.chars().count();
        if length < MIN_TOKEN_CHARS {
            warnings.push(format!(
                "the token from {} has {length} characters, fewer than {MIN_TOKEN_CHARS}: use a long random one (`openssl rand -hex 32`)",
                self.describe()
            ));
        }
        Ok((TokenDigest::of(&token), warnings))
    }

    /// Where the token comes from, for messages.
    pub fn describe(&self) -> String {
        match self {
            TokenSource::File(path) => format!("token file {}", path.display()),
            TokenSource::Env(name) => format!("environment variable {name}"),
        }
    }
}

/// The file's permission bits if group or others may read it.
fn readable_by_others(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o044 != 0).then_some(mode)
}

impl TokenDigest {
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Whether `presented` is this credential; takes the same time whatever
    /// the bytes (digests of equal length, compared without an early exit).
    pub fn matches(&self, presented: &TokenDigest) -> bool {
        let difference = self
            .0
            .iter()
            .zip(presented.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(difference) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_matches_itself_only() {
        let digest = TokenDigest::of("s3cret");
        assert!(digest.matches(&TokenDigest::of("s3cret")));
        assert!(!digest.matches(&TokenDigest::of("s3cret ")));
        assert!(!digest.matches(&TokenDigest::of("")));
    }

    #[test]
    fn debug_output_never_shows_the_token_or_its_digest() {
        let shown = format!("{:?}", TokenDigest::of("s3cret"));
        assert_eq!(shown, "TokenDigest(<redacted>)");
    }

    #[test]
    fn a_token_file_loses_its_trailing_newline_and_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), "s3cret\n").unwrap();
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let read = |name: &str| TokenSource::File(name.into()).read(dir.path());
        assert_eq!(read("t").unwrap().0, TokenDigest::of("s3cret"));
        assert!(matches!(read("empty"), Err(TokenError::EmptyFile(_))));
        assert!(matches!(read("missing"), Err(TokenError::File { .. })));
    }

    #[test]
    fn short_tokens_and_files_others_can_read_are_warned_about_never_shown() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (_, warnings) = TokenSource::File("t".into()).read(dir.path()).unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("can be read by group or others (mode 644)"));
        assert!(warnings[1].contains("has 6 characters, fewer than 16"));
        assert!(warnings.iter().all(|w| !w.contains("s3cret")));

        std::fs::write(&path, "0123456789abcdef0123\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (_, warnings) = TokenSource::File("t".into()).read(dir.path()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn a_device_as_token_file_is_refused_at_once() {
        let error = TokenSource::File("/dev/zero".into())
            .read(Path::new("/"))
            .unwrap_err();
        assert!(error.to_string().contains("not a regular file"), "{error}");
    }
}
