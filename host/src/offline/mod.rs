//! The offline side: Parquet history read for materialization, and the
//! offline log that stream views append their served rows to.
//!
//! - [`files`]: a FileSource `path` (file, folder, glob) to the files it names;
//! - [`scan`]: reading a time range with column projection and row-group pruning;
//! - [`log`]: atomic, rotated, date-partitioned Parquet files of served rows;
//! - [`append`]: rows appended to a source that is one Parquet file (rewritten whole).

pub mod append;
pub mod files;
pub mod log;
pub mod scan;

/// Parquet key-value metadata naming the view whose transformed output a file holds.
/// Materialization writes such rows as they are instead of transforming them again.
pub const TRANSFORMED_FOR_VIEW: &str = "fvhost.transformed_for_view";

/// Why offline data could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("source path `{0}` names no Parquet file")]
    NoFiles(String),
    #[error("{path}: column `{column}` {problem}")]
    Column {
        path: String,
        column: String,
        problem: String,
    },
}

impl OfflineError {
    pub(crate) fn file(path: &std::path::Path, reason: impl std::fmt::Display) -> Self {
        OfflineError::File {
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }
}
