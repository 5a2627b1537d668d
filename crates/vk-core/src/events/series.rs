//! Which events repeat an open series: an event with the same object, type, reason and
//! action as one published less than a TTL ago is counted in that Event (a patch of its
//! `series`) instead of becoming a new Event.
//!
//! The cache is bounded by age *and* size, whatever the churn: entries older than the
//! TTL are dropped (on every call and by a periodic sweep, so an idle node frees them
//! too), and past the size limit the least recently seen series is forgotten (its next
//! repeat just starts a new Event). Without a size bound, a node creating and deleting
//! pods quickly keeps two entries per pod for the whole TTL: memory grows with the
//! churn rate.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;

/// What makes two events the same series.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SeriesKey {
    warning: bool,
    reason: String,
    action: String,
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    uid: Option<String>,
}

impl SeriesKey {
    /// The series of a `reason`/`action` event about `object`.
    pub(crate) fn new(object: &ObjectReference, warning: bool, reason: &str, action: &str) -> Self {
        Self {
            warning,
            reason: reason.to_owned(),
            action: action.to_owned(),
            kind: object.kind.clone(),
            namespace: object.namespace.clone(),
            name: object.name.clone(),
            uid: object.uid.clone(),
        }
    }
}

/// An open series: the Event's name and how many times it happened.
#[derive(Debug)]
struct Open {
    event_name: String,
    count: i32,
    /// The position in [`SeriesCache::by_age`].
    seen: (Instant, u64),
}

/// The open series, bounded by age and size.
#[derive(Debug)]
pub(crate) struct SeriesCache {
    ttl: Duration,
    limit: usize,
    open: HashMap<SeriesKey, Open>,
    /// The keys by when their series was last seen (and a sequence number, so that
    /// entries seen at the same instant stay distinct): the oldest first.
    by_age: BTreeMap<(Instant, u64), SeriesKey>,
    sequence: u64,
}

impl SeriesCache {
    /// A cache keeping a series open for `ttl` after its last occurrence, and at most
    /// `limit` series.
    pub(crate) fn new(ttl: Duration, limit: usize) -> Self {
        Self {
            ttl,
            limit: limit.max(1),
            open: HashMap::new(),
            by_age: BTreeMap::new(),
            sequence: 0,
        }
    }

    /// Counts an occurrence of `key` at `now`: the Event to patch and its new count if
    /// the series is open, `None` if a new Event is needed (then [`SeriesCache::open`]
    /// once it is created).
    pub(crate) fn repeat(&mut self, key: &SeriesKey, now: Instant) -> Option<(String, i32)> {
        self.evict_expired(now);
        let stamp = self.stamp(now);
        let open = self.open.get_mut(key)?;
        self.by_age.remove(&open.seen);
        open.seen = stamp;
        open.count = open.count.saturating_add(1);
        let answer = (open.event_name.clone(), open.count);
        self.by_age.insert(stamp, key.clone());
        Some(answer)
    }

    /// Opens the series of `key`: Event `event_name` was created at `now`.
    pub(crate) fn open(&mut self, key: SeriesKey, event_name: String, now: Instant) {
        self.evict_expired(now);
        self.close(&key);
        while self.open.len() >= self.limit {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                break;
            };
            self.open.remove(&oldest);
        }
        let seen = self.stamp(now);
        self.by_age.insert(seen, key.clone());
        self.open.insert(
            key,
            Open {
                event_name,
                count: 1,
                seen,
            },
        );
    }

    /// Forgets the series of `key` (its Event could not be patched).
    pub(crate) fn close(&mut self, key: &SeriesKey) {
        if let Some(open) = self.open.remove(key) {
            self.by_age.remove(&open.seen);
        }
    }

    /// Drops the series last seen a TTL or more before `now`.
    pub(crate) fn evict_expired(&mut self, now: Instant) {
        while let Some(entry) = self.by_age.first_entry() {
            if now.saturating_duration_since(entry.key().0) < self.ttl {
                break;
            }
            let key = entry.remove();
            self.open.remove(&key);
        }
    }

    /// How many series are open.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether no series is open (nothing to sweep).
    pub(crate) fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    fn stamp(&mut self, now: Instant) -> (Instant, u64) {
        self.sequence = self.sequence.wrapping_add(1);
        (now, self.sequence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("Pod".into()),
            namespace: Some("ns".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        }
    }

    fn key(name: &str, reason: &str) -> SeriesKey {
        SeriesKey::new(&pod(name), false, reason, "Create")
    }

    #[test]
    fn a_repeat_within_the_ttl_counts_in_the_same_event() {
        let t0 = Instant::now();
        let mut cache = SeriesCache::new(Duration::from_secs(360), 10);
        let k = key("a", "Failed");
        assert_eq!(cache.repeat(&k, t0), None);
        cache.open(k.clone(), "a.1".into(), t0);
        assert_eq!(
            cache.repeat(&k, t0 + Duration::from_secs(300)),
            Some(("a.1".into(), 2))
        );
        // The TTL runs from the last occurrence.
        assert_eq!(
            cache.repeat(&k, t0 + Duration::from_secs(600)),
            Some(("a.1".into(), 3))
        );
        assert_eq!(cache.repeat(&k, t0 + Duration::from_secs(960)), None);
        assert_eq!(cache.len(), 0);
        // Another reason or object is another series.
        cache.open(k.clone(), "a.2".into(), t0);
        assert_eq!(cache.repeat(&key("a", "Other"), t0), None);
        assert_eq!(cache.repeat(&key("b", "Failed"), t0), None);
        cache.close(&k);
        assert_eq!(cache.repeat(&k, t0), None);
    }

    #[test]
    fn past_the_limit_the_least_recently_seen_series_goes() {
        let t0 = Instant::now();
        let mut cache = SeriesCache::new(Duration::from_secs(360), 2);
        cache.open(key("a", "R"), "a".into(), t0);
        cache.open(key("b", "R"), "b".into(), t0);
        assert!(
            cache.repeat(&key("a", "R"), t0).is_some(),
            "a is now the newest"
        );
        cache.open(key("c", "R"), "c".into(), t0);
        assert_eq!(cache.len(), 2);
        assert!(cache.repeat(&key("b", "R"), t0).is_none(), "b went");
        assert!(cache.repeat(&key("a", "R"), t0).is_some());
        assert!(cache.repeat(&key("c", "R"), t0).is_some());
    }

    /// 45 cycles of 100 pods created and deleted (two events each, as the pod
    /// controller records), faster than the TTL: the cache never holds more than its
    /// limit, and once the node is idle for a TTL it is empty again.
    #[test]
    fn churn_is_bounded_by_the_limit_and_an_idle_cache_empties() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(360);
        let mut cache = SeriesCache::new(ttl, 4096);
        let mut now = t0;
        let mut peak = 0;
        for cycle in 0..45 {
            for event in ["ProviderCreateSuccess", "ProviderDeleteSuccess"] {
                for i in 0..100 {
                    let k = key(&format!("p{cycle}-{i}"), event);
                    if cache.repeat(&k, now).is_none() {
                        cache.open(k, format!("p{cycle}-{i}.{event}"), now);
                    }
                    peak = peak.max(cache.len());
                }
                now += Duration::from_secs(1);
            }
        }
        assert_eq!(peak, 4096, "the limit holds under churn");
        assert!(cache.by_age.len() == cache.len());
        cache.evict_expired(now + ttl);
        assert_eq!((cache.len(), cache.by_age.len()), (0, 0));
    }
}
