//! The cached rows of one serve thread: what Redis answered for a key's
//! fields, kept until Redis says the key changed, within a byte budget.
//!
//! Correctness rests on one rule: a reply is cached only if no invalidation
//! of its key (and no flush) was seen between the moment the read was
//! *marked* (before it was sent) and the moment its reply is stored. Redis
//! tracks a key for a connection from the read on, so a change after the
//! read produces an invalidation; whether that invalidation is handled
//! before the reply is stored (the mark turns dirty: the reply is not
//! cached) or after (the stored entry is removed), the entry does not
//! outlive the change. A change before the read is in the reply itself.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::counters::CacheCounters;

/// A key's cached fields, as one read of the serve thread asks them.
type Fields = Vec<(Arc<[u8]>, Option<Vec<u8>>)>;

/// Bytes counted for an entry besides its key, field names and values
/// (the map slot, the vectors' headers, the eviction ring's copy of the key).
const ENTRY_OVERHEAD: usize = 96;

/// How long an entry is answered at most, whatever Redis reports: a
/// backstop for changes Redis does not report to tracking clients
/// (`SWAPDB` swaps every key of two databases and sends nothing).
pub const MAX_ENTRY_AGE: std::time::Duration = std::time::Duration::from_secs(300);

/// One serve thread's cache of Redis hash fields, keyed by Redis key.
pub struct ReadCache {
    state: Mutex<State>,
    budget: usize,
    counters: Arc<CacheCounters>,
}

#[derive(Default)]
struct State {
    entries: HashMap<Box<[u8]>, Entry>,
    /// Keys in the order they were cached, for second-chance eviction; a
    /// key whose entry has gone since (or was cached again) is skipped.
    ring: VecDeque<(Box<[u8]>, u64)>,
    /// Reads on the wire, by key.
    marks: HashMap<Box<[u8]>, Mark>,
    /// Bumped by every flush: a read marked before it stores nothing.
    epoch: u64,
    /// Bumped by every entry stored, to tell ring places apart.
    stored: u64,
    bytes: usize,
}

struct Entry {
    fields: Fields,
    /// When it stops being answered: when Redis expires the key (its TTL
    /// when it was read), or [`MAX_ENTRY_AGE`] after the read.
    expires: Instant,
    /// Used since the eviction hand last passed it.
    referenced: bool,
    /// Which ring place is this entry's.
    stored: u64,
    bytes: usize,
}

/// Reads of one key on the wire, and whether the key changed meanwhile.
struct Mark {
    readers: u32,
    dirty: bool,
}

/// What one read brought back for one key, to be cached.
pub struct Fetched<'a> {
    pub key: &'a [u8],
    pub fields: &'a Arc<[Vec<u8>]>,
    pub values: &'a [Option<Vec<u8>>],
    /// The key's remaining time to live in Redis, if it has one.
    pub expires: Option<Instant>,
}

impl ReadCache {
    /// An empty cache holding at most `budget` bytes of entries.
    pub fn new(budget: usize, counters: Arc<CacheCounters>) -> Self {
        Self {
            state: Mutex::default(),
            budget,
            counters,
        }
    }

    /// The cached values of `fields` of `key`, if every one of them is
    /// cached and the key has not expired since.
    pub fn get(&self, key: &[u8], fields: &[Vec<u8>]) -> Option<Vec<Option<Vec<u8>>>> {
        let mut state = self.lock();
        let expired = state.entries.get(key)?.expires <= Instant::now();
        if expired {
            let freed = state.remove(key);
            self.counters.bytes.dec_by(freed as i64);
            return None;
        }
        let entry = state.entries.get_mut(key)?;
        let mut values = Vec::with_capacity(fields.len());
        for field in fields {
            let (_, value) = entry
                .fields
                .iter()
                .find(|(name, _)| name.as_ref() == field.as_slice())?;
            values.push(value.clone());
        }
        entry.referenced = true;
        Some(values)
    }

    /// Marks reads of `keys` as on the wire; call before sending them. The
    /// marks are released when the returned guard is stored or dropped (a
    /// failed or abandoned read caches nothing).
    pub fn mark<'c>(&'c self, keys: impl Iterator<Item = &'c [u8]>) -> MarkedReads<'c> {
        let mut state = self.lock();
        let keys: Vec<Box<[u8]>> = keys.map(Box::from).collect();
        for key in &keys {
            let mark = state.marks.entry(key.clone()).or_insert(Mark {
                readers: 0,
                dirty: false,
            });
            mark.readers += 1;
        }
        MarkedReads {
            cache: self,
            epoch: state.epoch,
            keys,
        }
    }

    /// Redis says `key` changed (written, expired, evicted or deleted).
    pub fn invalidate(&self, key: &[u8]) {
        let mut state = self.lock();
        if let Some(mark) = state.marks.get_mut(key) {
            mark.dirty = true;
        }
        let freed = state.remove(key);
        if freed > 0 {
            self.counters.invalidated.inc();
            self.counters.bytes.dec_by(freed as i64);
        }
    }

    /// Forgets everything: the connection whose reads Redis tracked has
    /// dropped (a change meanwhile would go unreported) or the database was
    /// flushed. Reads on the wire cache nothing.
    pub fn flush(&self) {
        let mut state = self.lock();
        state.epoch += 1;
        state.entries.clear();
        state.ring.clear();
        self.counters
            .bytes
            .dec_by(std::mem::take(&mut state.bytes) as i64);
        self.counters.flushes.inc();
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores what marked reads brought back, where no change intervened,
    /// then releases their marks.
    fn store(&self, marked: &mut MarkedReads<'_>, fetched: &[Fetched<'_>]) {
        let mut state = self.lock();
        let current = state.epoch == marked.epoch;
        let before = state.bytes;
        for read in fetched {
            let clean = state.marks.get(read.key).is_some_and(|mark| !mark.dirty);
            if current && clean && state.insert(read, self.budget) {
                self.counters.evicted.inc_by(state.evict(self.budget));
            }
        }
        self.counters
            .bytes
            .inc_by(state.bytes as i64 - before as i64);
        state.release(&marked.keys);
        marked.keys.clear();
    }
}

impl State {
    /// Caches `read`'s fields beside those of the key cached already;
    /// `false` if the entry alone would not fit the budget.
    fn insert(&mut self, read: &Fetched<'_>, budget: usize) -> bool {
        let latest = Instant::now() + MAX_ENTRY_AGE;
        let mut expires = read.expires.map_or(latest, |at| at.min(latest));
        let mut fields: Fields = match self.entries.get(read.key) {
            Some(entry) => {
                // fields read earlier keep their own, earlier, end
                expires = expires.min(entry.expires);
                entry.fields.clone()
            }
            None => Vec::new(),
        };
        for (name, value) in read.fields.iter().zip(read.values) {
            match fields
                .iter_mut()
                .find(|(cached, _)| cached.as_ref() == name)
            {
                Some((_, cached)) => cached.clone_from(value),
                None => fields.push((Arc::from(name.as_slice()), value.clone())),
            }
        }
        let bytes = ENTRY_OVERHEAD
            + 2 * read.key.len()
            + fields
                .iter()
                .map(|(name, value)| name.len() + value.as_ref().map_or(0, Vec::len))
                .sum::<usize>();
        if bytes > budget {
            return false;
        }
        self.remove(read.key);
        self.compact_ring();
        self.stored += 1;
        let key: Box<[u8]> = Box::from(read.key);
        self.ring.push_back((key.clone(), self.stored));
        self.bytes += bytes;
        self.entries.insert(
            key,
            Entry {
                fields,
                expires,
                referenced: false,
                stored: self.stored,
                bytes,
            },
        );
        true
    }

    /// Evicts entries until the budget holds: the eviction hand passes over
    /// the ring, sparing once an entry used since it last passed. Returns
    /// how many were evicted.
    fn evict(&mut self, budget: usize) -> u64 {
        let mut evicted = 0;
        while self.bytes > budget {
            let Some((key, stored)) = self.ring.pop_front() else {
                break;
            };
            let Some(entry) = self.entries.get_mut(&key) else {
                continue;
            };
            if entry.stored != stored {
                continue;
            }
            if std::mem::take(&mut entry.referenced) {
                self.ring.push_back((key, stored));
                continue;
            }
            self.remove(&key);
            evicted += 1;
        }
        evicted
    }

    /// Removes `key`'s entry; the bytes it held (0: there was none).
    fn remove(&mut self, key: &[u8]) -> usize {
        match self.entries.remove(key) {
            Some(entry) => {
                self.bytes -= entry.bytes;
                if self.entries.is_empty() {
                    self.ring.clear();
                }
                entry.bytes
            }
            None => 0,
        }
    }

    /// Drops the ring places of entries gone or cached again since, once
    /// they are most of the ring (keys invalidated and read again, over and
    /// over, would otherwise grow it without bound).
    fn compact_ring(&mut self) {
        if self.ring.len() <= 2 * self.entries.len() + 64 {
            return;
        }
        let entries = &self.entries;
        self.ring
            .retain(|(key, stored)| entries.get(key).is_some_and(|e| e.stored == *stored));
    }

    fn release(&mut self, keys: &[Box<[u8]>]) {
        for key in keys {
            if let Some(mark) = self.marks.get_mut(key) {
                mark.readers -= 1;
                if mark.readers == 0 {
                    self.marks.remove(key);
                }
            }
        }
    }
}

/// Reads marked as on the wire; see [`ReadCache::mark`].
pub struct MarkedReads<'c> {
    cache: &'c ReadCache,
    epoch: u64,
    keys: Vec<Box<[u8]>>,
}

impl MarkedReads<'_> {
    /// Caches what the marked reads brought back (each key's values for
    /// the fields read), where no change of the key intervened.
    pub fn store(mut self, fetched: &[Fetched<'_>]) {
        let cache = self.cache;
        cache.store(&mut self, fetched);
    }
}

impl Drop for MarkedReads<'_> {
    fn drop(&mut self) {
        if !self.keys.is_empty() {
            self.cache.lock().release(&self.keys);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(budget: usize) -> ReadCache {
        ReadCache::new(budget, Arc::default())
    }

    fn fields(names: &[&str]) -> Arc<[Vec<u8>]> {
        names.iter().map(|n| n.as_bytes().to_vec()).collect()
    }

    fn value(text: &str) -> Option<Vec<u8>> {
        Some(text.as_bytes().to_vec())
    }

    /// Reads `key`'s `names` as if Redis answered `values`.
    fn read_through(
        cache: &ReadCache,
        key: &[u8],
        names: &Arc<[Vec<u8>]>,
        values: &[Option<Vec<u8>>],
    ) {
        let marked = cache.mark(std::iter::once(key));
        marked.store(&[Fetched {
            key,
            fields: names,
            values,
            expires: None,
        }]);
    }

    #[test]
    fn a_stored_read_answers_the_same_fields_and_no_others() {
        let cache = cache(1 << 20);
        let names = fields(&["a", "_ts"]);
        read_through(&cache, b"k", &names, &[value("1"), None]);
        assert_eq!(cache.get(b"k", &names), Some(vec![value("1"), None]));
        assert_eq!(cache.get(b"k", &fields(&["a", "b"])), None);
        assert_eq!(cache.get(b"other", &names), None);
    }

    #[test]
    fn fields_read_later_join_those_cached() {
        let cache = cache(1 << 20);
        read_through(&cache, b"k", &fields(&["a"]), &[value("1")]);
        read_through(&cache, b"k", &fields(&["b"]), &[value("2")]);
        assert_eq!(
            cache.get(b"k", &fields(&["b", "a"])),
            Some(vec![value("2"), value("1")])
        );
    }

    #[test]
    fn an_invalidation_while_the_read_is_on_the_wire_keeps_its_reply_out() {
        let cache = cache(1 << 20);
        let names = fields(&["a"]);
        let marked = cache.mark(std::iter::once(&b"k"[..]));
        cache.invalidate(b"k");
        marked.store(&[Fetched {
            key: b"k",
            fields: &names,
            values: &[value("old")],
            expires: None,
        }]);
        assert_eq!(cache.get(b"k", &names), None);
        // the mark is gone with the read: the next read is cached
        read_through(&cache, b"k", &names, &[value("new")]);
        assert_eq!(cache.get(b"k", &names), Some(vec![value("new")]));
    }

    #[test]
    fn an_invalidation_after_the_reply_was_stored_removes_it() {
        let cache = cache(1 << 20);
        let names = fields(&["a"]);
        read_through(&cache, b"k", &names, &[value("1")]);
        cache.invalidate(b"k");
        assert_eq!(cache.get(b"k", &names), None);
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn a_flush_empties_the_cache_and_keeps_reads_on_the_wire_out() {
        let cache = cache(1 << 20);
        let names = fields(&["a"]);
        read_through(&cache, b"k", &names, &[value("1")]);
        let marked = cache.mark(std::iter::once(&b"j"[..]));
        cache.flush();
        marked.store(&[Fetched {
            key: b"j",
            fields: &names,
            values: &[value("2")],
            expires: None,
        }]);
        assert_eq!(cache.get(b"k", &names), None);
        assert_eq!(cache.get(b"j", &names), None);
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn an_abandoned_read_releases_its_mark() {
        let cache = cache(1 << 20);
        let names = fields(&["a"]);
        drop(cache.mark(std::iter::once(&b"k"[..])));
        assert!(cache.lock().marks.is_empty());
        read_through(&cache, b"k", &names, &[value("1")]);
        assert_eq!(cache.get(b"k", &names), Some(vec![value("1")]));
    }

    #[test]
    fn an_expired_key_is_not_answered() {
        let cache = cache(1 << 20);
        let names = fields(&["a"]);
        let marked = cache.mark(std::iter::once(&b"k"[..]));
        marked.store(&[Fetched {
            key: b"k",
            fields: &names,
            values: &[value("1")],
            expires: Some(Instant::now()),
        }]);
        assert_eq!(cache.get(b"k", &names), None);
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn the_budget_evicts_entries_not_used_since_the_hand_last_passed() {
        let names = fields(&["a"]);
        let one_entry = ENTRY_OVERHEAD + 2 + 1 + 10;
        let cache = cache(3 * one_entry);
        for key in [b"1", b"2", b"3"] {
            read_through(&cache, key, &names, &[value("0123456789")]);
        }
        assert_eq!(cache.bytes(), 3 * one_entry);
        // "1" is used: the hand spares it once and takes "2"
        assert!(cache.get(b"1", &names).is_some());
        read_through(&cache, b"4", &names, &[value("0123456789")]);
        assert!(cache.get(b"1", &names).is_some());
        assert!(cache.get(b"2", &names).is_none());
        assert!(cache.get(b"3", &names).is_some());
        assert!(cache.get(b"4", &names).is_some());
        assert_eq!(cache.bytes(), 3 * one_entry);
    }

    #[test]
    fn an_entry_is_answered_no_longer_than_the_backstop_age() {
        let cache = cache(1 << 20);
        let names = fields(&["a"]);
        read_through(&cache, b"k", &names, &[value("1")]);
        let marked = cache.mark(std::iter::once(&b"k"[..]));
        let later = Instant::now() + 2 * MAX_ENTRY_AGE;
        marked.store(&[Fetched {
            key: b"k",
            fields: &fields(&["b"]),
            values: &[value("2")],
            expires: Some(later),
        }]);
        let expires = cache.lock().entries[&b"k"[..]].expires;
        assert!(expires <= Instant::now() + MAX_ENTRY_AGE);
    }

    #[test]
    fn an_entry_larger_than_the_budget_is_not_cached() {
        let cache = cache(ENTRY_OVERHEAD);
        let names = fields(&["a"]);
        read_through(&cache, b"k", &names, &[value("1")]);
        assert_eq!(cache.get(b"k", &names), None);
        assert_eq!(cache.bytes(), 0);
    }
}
