//! `serve --read-cache-mb`: online reads answered from memory, kept exact
//! by Redis itself.
//!
//! A read that asks Redis costs a round trip between processes, several
//! times fvhost's own work for a request of a few entities. With the read
//! cache, each serve thread keeps what Redis answered for each key's
//! fields ([`entries`]) and reads the keys it lacks on a connection whose
//! reads Redis tracks ([`crate::online::redis::tracking`]): when a key
//! changes — written by any client (fvhost's stream, `/push`, Feast's
//! materialize), expired, evicted or deleted — Redis pushes an
//! invalidation and the thread drops the key. A dropped connection or a
//! flushed database empties the cache. Writes go to the store unchanged
//! (and drop their keys from the writing thread's cache at once).
//!
//! What a reader may see: a value written by another client is answered
//! from memory until its invalidation arrives (on one host, well under a
//! millisecond after the write). A key is not answered past the TTL Redis
//! reported when it was read (`key_ttl_seconds`, or one another client
//! gave it), nor more than [`entries::MAX_ENTRY_AGE`] after it was read: a
//! backstop for the change Redis does not report (`SWAPDB`).

mod counters;
pub mod entries;

use std::sync::Arc;

pub use counters::CacheCounters;
use entries::Fetched;
pub use entries::ReadCache;

use super::fields::ViewFields;
use super::redis::tracking::TrackedReads;
use super::rows::OnlineRow;
use super::store::{GuardedUpdate, HashRead, OnlineStore, StoreError, WriteStats};

/// An online store whose reads go through one serve thread's cache.
pub struct CachingStore {
    store: Arc<dyn OnlineStore>,
    cache: Arc<ReadCache>,
    tracked: TrackedReads,
    counters: Arc<CacheCounters>,
}

impl CachingStore {
    /// Reads through `cache` (whose invalidations `tracked` delivers);
    /// writes go to `store`.
    pub fn new(
        store: Arc<dyn OnlineStore>,
        cache: Arc<ReadCache>,
        tracked: TrackedReads,
        counters: Arc<CacheCounters>,
    ) -> Self {
        Self {
            store,
            cache,
            tracked,
            counters,
        }
    }
}

#[async_trait::async_trait]
impl OnlineStore for CachingStore {
    async fn write(
        &self,
        fields: &ViewFields,
        rows: &[OnlineRow],
    ) -> Result<WriteStats, StoreError> {
        let written = self.store.write(fields, rows).await;
        // This thread reads its own writes at once, without waiting for
        // Redis's invalidation (other threads' caches get theirs).
        for row in rows {
            self.cache.invalidate(&row.key);
        }
        written
    }

    async fn read(&self, reads: &[HashRead]) -> Result<Vec<Vec<Option<Vec<u8>>>>, StoreError> {
        let mut answers: Vec<Option<Vec<Option<Vec<u8>>>>> = reads
            .iter()
            .map(|read| self.cache.get(&read.key, &read.fields))
            .collect();
        let missing: Vec<usize> = (0..reads.len()).filter(|&i| answers[i].is_none()).collect();
        let hits = reads.len() - missing.len();
        self.counters.hits.inc_by(hits as u64);
        self.counters.misses.inc_by(missing.len() as u64);
        if !missing.is_empty() {
            let asked: Vec<&HashRead> = missing.iter().map(|&i| &reads[i]).collect();
            let marked = self
                .cache
                .mark(asked.iter().map(|read| read.key.as_slice()));
            let replies = self.tracked.read(&asked).await?;
            let fetched: Vec<Fetched<'_>> = asked
                .iter()
                .zip(&replies)
                .map(|(read, reply)| Fetched {
                    key: &read.key,
                    fields: &read.fields,
                    values: &reply.values,
                    expires: reply.expires,
                })
                .collect();
            marked.store(&fetched);
            for (i, reply) in missing.into_iter().zip(replies) {
                answers[i] = Some(reply.values);
            }
        }
        Ok(answers.into_iter().map(Option::unwrap_or_default).collect())
    }

    async fn compare_and_set(&self, updates: &[GuardedUpdate]) -> Result<Vec<bool>, StoreError> {
        let applied = self.store.compare_and_set(updates).await;
        for update in updates {
            self.cache.invalidate(&update.key);
        }
        applied
    }
}
