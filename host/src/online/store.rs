//! The online-store seam: what the data path and the readers need from the
//! place online rows live. Feast's encodings (keys, field names, values,
//! timestamps) are the caller's; a store only keeps hashes of bytes.
//!
//! [`super::redis::RedisStore`] is the store Feast reads (one server, a
//! cluster or a Sentinel-managed master); [`super::memory::MemoryStore`]
//! keeps rows in memory for tests and authoring tools. Another store
//! implements the same three calls.

use super::fields::ViewFields;
use super::rows::OnlineRow;

/// Where a view's online rows are written and read back.
#[async_trait::async_trait]
pub trait OnlineStore: Send + Sync {
    /// Writes `rows` (one per entity key) for the view whose fields are
    /// `fields`, each key atomically and newer-wins: a key whose stored
    /// event time is equal or newer keeps its values (unless the store was
    /// configured to write blindly).
    async fn write(
        &self,
        fields: &ViewFields,
        rows: &[OnlineRow],
    ) -> Result<WriteStats, StoreError>;

    /// Reads the named fields of each key, in request order; an absent
    /// key or field reads as `None`.
    async fn read(&self, reads: &[HashRead]) -> Result<Vec<Vec<Option<Vec<u8>>>>, StoreError>;

    /// For each update, atomically: if its guard field still holds what the
    /// caller read, sets its fields (and the key TTL). Returns, per update,
    /// whether it was applied; a `false` means another writer came between
    /// the caller's read and this call.
    async fn compare_and_set(&self, updates: &[GuardedUpdate]) -> Result<Vec<bool>, StoreError>;
}

/// Fields to set on one key, if its guard field still starts with what the
/// caller read (a writer that changes the field changes that prefix: a
/// version or generation kept at its front).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardedUpdate {
    pub key: Vec<u8>,
    pub guard: Vec<u8>,
    /// What the guard must start with; `None`: it must be absent.
    pub expected_prefix: Option<Vec<u8>>,
    pub set: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The fields to read from one key's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashRead {
    pub key: Vec<u8>,
    /// Shared: a request reads the same fields of many keys.
    pub fields: std::sync::Arc<[Vec<u8>]>,
}

/// Outcome of one write.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    /// Keys whose view fields were written.
    pub written: u64,
    /// Keys left alone because the store already held an equal or newer event.
    pub skipped_older: u64,
}

impl std::ops::AddAssign for WriteStats {
    fn add_assign(&mut self, other: Self) {
        self.written += other.written;
        self.skipped_older += other.skipped_older;
    }
}

/// Why a store call failed. After a failed write nothing may be committed:
/// the write is retried (newer-wins makes a repeated write harmless).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis write to {at} failed: {source}")]
    RedisWrite {
        /// The deployment written to (its nodes, never its password).
        at: std::sync::Arc<str>,
        source: redis::RedisError,
    },
    #[error("redis read from {at} failed: {source}")]
    RedisRead {
        /// The deployment read from (its nodes, never its password).
        at: std::sync::Arc<str>,
        source: redis::RedisError,
    },
    /// A request read in chunks: which reads the failed chunk held (a
    /// pipeline error's `Index n` counts from the chunk's first read).
    #[error(
        "reads {first}..{end} of {total} (a reply index below counts from read {first}): {source}"
    )]
    InChunk {
        first: usize,
        end: usize,
        total: usize,
        source: Box<StoreError>,
    },
    #[error("redis reply has {found} results for {expected} keys")]
    RedisReply { expected: usize, found: usize },
    #[error("redis write reached {acknowledged} replicas of the {wanted} it must wait for")]
    ReplicasBehind { wanted: u32, acknowledged: i64 },
}
