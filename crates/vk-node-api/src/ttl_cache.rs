//! A map whose entries expire and whose size is bounded: what the authenticator caches
//! webhook answers in. A full cache first drops its expired entries, then the entry
//! closest to expiry, so hostile input can fill it but never grow it.
//!
//! It reads the tokio clock, so tests can drive it with `tokio::time::pause()`.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

/// A bounded map of expiring entries.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use vk_node_api::ttl_cache::TtlCache;
///
/// let mut cache = TtlCache::new(2);
/// cache.insert("a", 1, Duration::from_secs(60));
/// cache.insert("b", 2, Duration::from_secs(10));
/// cache.insert("c", 3, Duration::from_secs(60)); // full: "b" expires first, it goes
/// assert_eq!((cache.get(&"a"), cache.get(&"b"), cache.get(&"c")), (Some(1), None, Some(3)));
/// tokio::time::advance(Duration::from_secs(60)).await;
/// assert_eq!(cache.get(&"a"), None);
/// # }
/// ```
#[derive(Debug)]
pub struct TtlCache<K, V> {
    max_entries: usize,
    entries: HashMap<K, Entry<V>>,
    next_sweep: Instant,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    until: Instant,
}

/// How often an insertion also drops every expired entry, full or not.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

impl<K: Hash + Eq + Clone, V: Clone> TtlCache<K, V> {
    /// An empty cache holding at most `max_entries` (zero: it holds nothing).
    pub fn new(max_entries: usize) -> Self {
        Self {
            max_entries,
            entries: HashMap::new(),
            next_sweep: Instant::now() + SWEEP_EVERY,
        }
    }

    /// The value under `key` unless it expired (an expired entry is dropped).
    pub fn get(&mut self, key: &K) -> Option<V> {
        let now = Instant::now();
        match self.entries.get(key) {
            Some(e) if e.until > now => Some(e.value.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores `value` under `key` for `ttl`. When the cache is full, expired entries
    /// are dropped first, then the one closest to expiry.
    pub fn insert(&mut self, key: K, value: V, ttl: Duration) {
        if self.max_entries == 0 {
            return;
        }
        let now = Instant::now();
        if now >= self.next_sweep {
            self.sweep(now);
        }
        if !self.entries.contains_key(&key) && self.entries.len() >= self.max_entries {
            self.sweep(now);
            if self.entries.len() >= self.max_entries {
                let soonest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.until)
                    .map(|(k, _)| k.clone());
                if let Some(k) = soonest {
                    self.entries.remove(&k);
                }
            }
        }
        let until = now
            .checked_add(ttl)
            .unwrap_or(now + Duration::from_secs(86_400));
        self.entries.insert(key, Entry { value, until });
    }

    /// Drops every expired entry (and the table's spare room once mostly empty).
    fn sweep(&mut self, now: Instant) {
        self.entries.retain(|_, e| e.until > now);
        if self.entries.capacity() > 4 * self.entries.len().max(16) {
            self.entries.shrink_to_fit();
        }
        self.next_sweep = now + SWEEP_EVERY;
    }

    /// How many entries are stored (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_size_never_exceeds_the_bound() {
        let mut cache = TtlCache::new(100);
        for i in 0..10_000u32 {
            cache.insert(i, i, Duration::from_secs(3600));
            assert!(cache.len() <= 100);
            // Each entry expires a little later than the one before (with the clock
            // paused, equal expiry times would make the evicted entry arbitrary).
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        // The newest entries are kept (the oldest expire first).
        assert_eq!(cache.get(&9_999), Some(9_999));
        assert_eq!(cache.get(&0), None);
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_dropped_by_later_insertions() {
        let mut cache = TtlCache::new(1000);
        for i in 0..500u32 {
            cache.insert(i, (), Duration::from_secs(10));
        }
        tokio::time::advance(SWEEP_EVERY).await;
        cache.insert(1_000, (), Duration::from_secs(10));
        assert_eq!(cache.len(), 1, "the expired 500 were swept");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_cache_drops_expired_entries_before_live_ones() {
        let mut cache = TtlCache::new(3);
        cache.insert("short", 0, Duration::from_secs(1));
        cache.insert("long-1", 1, Duration::from_secs(100));
        cache.insert("long-2", 2, Duration::from_secs(100));
        tokio::time::advance(Duration::from_secs(2)).await;
        cache.insert("new", 3, Duration::from_secs(1));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&"long-1"), Some(1));
        assert_eq!(cache.get(&"long-2"), Some(2));
        assert_eq!(cache.get(&"new"), Some(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_sized_cache_stores_nothing_and_replacing_keeps_the_size() {
        let mut none = TtlCache::new(0);
        none.insert(1, 1, Duration::from_secs(1));
        assert!(none.is_empty());
        let mut one = TtlCache::new(1);
        one.insert(1, 1, Duration::from_secs(1));
        one.insert(1, 2, Duration::from_secs(1));
        assert_eq!((one.len(), one.get(&1)), (1, Some(2)));
    }
}
