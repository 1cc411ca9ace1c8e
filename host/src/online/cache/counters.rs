//! What the read cache did, summed over `serve`'s threads, for `/metrics`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The read cache's counters; each serve thread's cache adds to the same ones.
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Keys answered from memory.
    pub hits: Counter,
    /// Keys read from Redis (not cached, expired, or a field not cached yet).
    pub misses: Counter,
    /// Entries removed because Redis said their key changed.
    pub invalidated: Counter,
    /// Whole caches emptied (a dropped connection, a flushed database).
    pub flushes: Counter,
    /// Entries evicted to stay within the memory budget.
    pub evicted: Counter,
    /// Bytes the caches hold now.
    pub bytes: Gauge,
}

impl CacheCounters {
    /// Registers the counters as `fvhost_read_cache_*`.
    pub fn register(&self, registry: &mut Registry) {
        let counters = [
            (
                "fvhost_read_cache_hits",
                "Keys answered from the read cache.",
                &self.hits,
            ),
            (
                "fvhost_read_cache_misses",
                "Keys the read cache asked Redis for.",
                &self.misses,
            ),
            (
                "fvhost_read_cache_invalidations",
                "Cached keys dropped because they changed (Redis reported it, or the same thread wrote them).",
                &self.invalidated,
            ),
            (
                "fvhost_read_cache_flushes",
                "Times a serve thread's cache was emptied (dropped connection, flushed database).",
                &self.flushes,
            ),
            (
                "fvhost_read_cache_evictions",
                "Cached keys evicted to stay within --read-cache-mb.",
                &self.evicted,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "fvhost_read_cache_bytes",
            "Bytes held by the read caches of all serve threads.",
            self.bytes.clone(),
        );
    }
}
