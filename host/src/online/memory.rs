//! An online store in memory, with the Redis store's semantics (one hash
//! per entity key, newer-wins per view, ties keep what is stored): for unit
//! tests of the data path and for tools that run a view without Redis.
//! Key TTLs are not kept.

use std::collections::HashMap;
use std::sync::Mutex;

use super::fields::ViewFields;
use super::rows::OnlineRow;
use super::store::{GuardedUpdate, HashRead, OnlineStore, StoreError, WriteStats};
use super::timestamp::{self, EventTime};

/// One entity's hash: field → bytes.
pub type Hash = HashMap<Vec<u8>, Vec<u8>>;

/// Entity hashes in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    hashes: Mutex<HashMap<Vec<u8>, Hash>>,
    /// Writes every row, as `skip_dedup: true` makes the Redis store do.
    blind: bool,
}

impl MemoryStore {
    /// A store that writes newer-wins.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that overwrites whatever is stored.
    pub fn blind() -> Self {
        Self {
            blind: true,
            ..Self::default()
        }
    }

    /// A copy of every hash: entity key → field → bytes.
    pub fn contents(&self) -> HashMap<Vec<u8>, Hash> {
        self.hashes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn is_newer(row: EventTime, stored: Option<&Vec<u8>>) -> bool {
    match stored.map(|bytes| timestamp::decode(bytes)) {
        Some(Ok(stored)) => row > stored,
        // Absent, or not a timestamp: the row takes the key, as in Redis.
        _ => true,
    }
}

#[async_trait::async_trait]
impl OnlineStore for MemoryStore {
    async fn write(
        &self,
        fields: &ViewFields,
        rows: &[OnlineRow],
    ) -> Result<WriteStats, StoreError> {
        let mut hashes = self.hashes.lock().unwrap_or_else(|p| p.into_inner());
        let mut stats = WriteStats::default();
        for row in rows {
            let hash = hashes.entry(row.key.clone()).or_default();
            if !self.blind && !is_newer(row.event_time, hash.get(&fields.timestamp)) {
                stats.skipped_older += 1;
                continue;
            }
            hash.insert(fields.timestamp.clone(), timestamp::encode(row.event_time));
            for (field, value) in fields.features.iter().zip(&row.values) {
                hash.insert(field.to_vec(), value.clone());
            }
            stats.written += 1;
        }
        Ok(stats)
    }

    async fn compare_and_set(&self, updates: &[GuardedUpdate]) -> Result<Vec<bool>, StoreError> {
        let mut hashes = self.hashes.lock().unwrap_or_else(|p| p.into_inner());
        Ok(updates
            .iter()
            .map(|update| {
                let hash = hashes.entry(update.key.clone()).or_default();
                let holds = match (hash.get(&update.guard), &update.expected_prefix) {
                    (None, None) => true,
                    (Some(current), Some(prefix)) => current.starts_with(prefix),
                    _ => false,
                };
                if !holds {
                    return false;
                }
                for (field, value) in &update.set {
                    hash.insert(field.clone(), value.clone());
                }
                true
            })
            .collect())
    }

    async fn read(&self, reads: &[HashRead]) -> Result<Vec<Vec<Option<Vec<u8>>>>, StoreError> {
        let hashes = self.hashes.lock().unwrap_or_else(|p| p.into_inner());
        Ok(reads
            .iter()
            .map(|read| {
                let hash = hashes.get(&read.key);
                read.fields
                    .iter()
                    .map(|field| hash.and_then(|h| h.get(field)).cloned())
                    .collect()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> ViewFields {
        ViewFields {
            timestamp: b"_ts:v".to_vec(),
            features: vec![*b"f001"],
        }
    }

    fn row(key: &[u8], micros: i64, value: &[u8]) -> OnlineRow {
        OnlineRow {
            key: key.to_vec(),
            event_time: EventTime::from_micros(micros),
            created: None,
            values: vec![value.to_vec()],
            batch_row: 0,
        }
    }

    fn value_of(store: &MemoryStore, key: &[u8]) -> Option<Vec<u8>> {
        let read = HashRead {
            key: key.to_vec(),
            fields: vec![b"f001".to_vec()].into(),
        };
        futures::executor::block_on(store.read(&[read]))
            .unwrap()
            .remove(0)
            .remove(0)
    }

    #[test]
    fn newer_rows_win_and_ties_keep_what_is_stored() {
        let store = MemoryStore::new();
        let write =
            |rows: &[OnlineRow]| futures::executor::block_on(store.write(&fields(), rows)).unwrap();
        assert_eq!(write(&[row(b"a", 10, b"first")]).written, 1);
        let stats = write(&[row(b"a", 10, b"tie"), row(b"a", 5, b"older")]);
        assert_eq!((stats.written, stats.skipped_older), (0, 2));
        assert_eq!(value_of(&store, b"a").as_deref(), Some(&b"first"[..]));
        assert_eq!(write(&[row(b"a", 11, b"newer")]).written, 1);
        assert_eq!(value_of(&store, b"a").as_deref(), Some(&b"newer"[..]));
        assert_eq!(value_of(&store, b"absent"), None);
    }

    #[test]
    fn a_blind_store_takes_every_row() {
        let store = MemoryStore::blind();
        let write =
            |rows: &[OnlineRow]| futures::executor::block_on(store.write(&fields(), rows)).unwrap();
        write(&[row(b"a", 10, b"first")]);
        assert_eq!(write(&[row(b"a", 5, b"older")]).written, 1);
        assert_eq!(value_of(&store, b"a").as_deref(), Some(&b"older"[..]));
    }
}
