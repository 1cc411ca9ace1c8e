//! Admin credentials: read from a file or an environment variable, never
//! from host.yaml; kept only as a SHA-256 digest; compared in constant time;
//! never printed.

use std::path::Path;

use sha2::{Digest, Sha256};

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
    /// Reads the credential and keeps its digest. A file's trailing
    /// whitespace (the newline editors add) is not part of the token.
    pub fn read(&self, relative_to: &Path) -> Result<TokenDigest, TokenError> {
        let token = match self {
            TokenSource::File(path) => {
                let path = relative_to.join(path);
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(&path).map_err(|e| TokenError::File {
                    path: shown.clone(),
                    reason: e.to_string(),
                })?;
                let token = text.trim_end().to_string();
                if token.is_empty() {
                    return Err(TokenError::EmptyFile(shown));
                }
                token
            }
            TokenSource::Env(name) => std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| TokenError::Env(name.clone()))?,
        };
        Ok(TokenDigest::of(&token))
    }
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
        assert_eq!(read("t").unwrap(), TokenDigest::of("s3cret"));
        assert!(matches!(read("empty"), Err(TokenError::EmptyFile(_))));
        assert!(matches!(read("missing"), Err(TokenError::File { .. })));
    }
}
