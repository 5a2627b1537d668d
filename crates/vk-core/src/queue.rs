//! A work queue with the semantics controllers need (modelled on client-go's workqueue):
//!
//! * **dedup**: a key added several times before a worker takes it is processed once;
//! * **no concurrent processing of one key**: a key added while a worker holds it is
//!   queued again when the worker calls [`WorkQueue::done`];
//! * **delayed adds** for backoff and deadlines, driven by a single timer task (not one
//!   timer per key), keeping the earliest deadline per key;
//! * **urgent adds** ([`WorkQueue::add_urgent`]) are served before every key queued with
//!   [`WorkQueue::add`]: a pod controller uses them for provider status reports, which
//!   cost one status write, so that a pod whose container already runs is not reported
//!   only after every create queued behind it (the kubelet writes status from a loop of
//!   its own for the same reason);
//! * no global rate limit: throughput is bounded only by the number of workers.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// See the module documentation.
#[derive(Debug)]
pub struct WorkQueue<K> {
    inner: Mutex<Inner<K>>,
    /// Wakes workers waiting in `get`.
    ready: Notify,
    /// Wakes the delay timer when an earlier deadline arrives or on shutdown.
    timer: Notify,
}

#[derive(Debug)]
struct Inner<K> {
    /// Keys added with `add`, in order, each with the number of its entry.
    queue: VecDeque<(K, u64)>,
    /// Keys added with `add_urgent`, in order; served before `queue`.
    urgent: VecDeque<(K, u64)>,
    /// The waiting keys and the number of the entry that stands for each. A key made
    /// urgent while it waited in `queue` also stays there (removing it would be a scan
    /// of the queue): that older entry no longer matches and is skipped when reached.
    waiting: HashMap<K, u64>,
    /// Numbers the entries.
    entries: u64,
    /// Keys waiting or to be queued again after `done`.
    dirty: HashSet<K>,
    /// The dirty keys that go (or went) to `urgent`.
    dirty_urgent: HashSet<K>,
    processing: HashSet<K>,
    delayed: BTreeMap<(Instant, u64), K>,
    delayed_by_key: HashMap<K, (Instant, u64)>,
    seq: u64,
    shut_down: bool,
}

impl<K: Clone + Eq + Hash> Default for WorkQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Hash> WorkQueue<K> {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                urgent: VecDeque::new(),
                waiting: HashMap::new(),
                entries: 0,
                dirty: HashSet::new(),
                dirty_urgent: HashSet::new(),
                processing: HashSet::new(),
                delayed: BTreeMap::new(),
                delayed_by_key: HashMap::new(),
                seq: 0,
                shut_down: false,
            }),
            ready: Notify::new(),
            timer: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K>> {
        // A panic while holding this lock cannot leave the queue inconsistent in a way
        // that matters more than losing the process; keep going with the data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `key` now (a pending delayed add for it is dropped).
    pub fn add(&self, key: K) {
        let mut inner = self.lock();
        if let Some(slot) = inner.delayed_by_key.remove(&key) {
            inner.delayed.remove(&slot);
        }
        if inner.shut_down || !inner.dirty.insert(key.clone()) {
            return;
        }
        if !inner.processing.contains(&key) {
            inner.push(key, false);
            drop(inner);
            self.ready.notify_one();
        }
    }

    /// Queues `key` now, ahead of every key queued with [`WorkQueue::add`] (a pending
    /// delayed add for it is dropped). A key already waiting moves ahead; a key being
    /// processed is queued ahead when [`WorkQueue::done`] is called for it. Urgent keys are
    /// served in the order they were added.
    ///
    /// Keep it for cheap work that a caller is waiting for: urgent keys can delay the
    /// others without bound if they keep coming.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let q = vk_core::queue::WorkQueue::new();
    /// q.add("create-a");
    /// q.add("create-b");
    /// q.add_urgent("status-c");
    /// assert_eq!(q.get().await, Some("status-c"));
    /// assert_eq!(q.get().await, Some("create-a"));
    /// # });
    /// ```
    pub fn add_urgent(&self, key: K) {
        let mut inner = self.lock();
        if let Some(slot) = inner.delayed_by_key.remove(&key) {
            inner.delayed.remove(&slot);
        }
        if inner.shut_down || !inner.dirty_urgent.insert(key.clone()) {
            return;
        }
        inner.dirty.insert(key.clone());
        if inner.processing.contains(&key) {
            return;
        }
        inner.push(key, true);
        drop(inner);
        self.ready.notify_one();
    }

    /// Queues `key` after `delay`, unless it is already due earlier.
    pub fn add_after(&self, key: K, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let at = Instant::now() + delay;
        let mut inner = self.lock();
        if inner.shut_down || inner.dirty.contains(&key) {
            return;
        }
        if let Some(&(existing, seq)) = inner.delayed_by_key.get(&key) {
            if existing <= at {
                return;
            }
            inner.delayed.remove(&(existing, seq));
        }
        inner.seq += 1;
        let slot = (at, inner.seq);
        let earliest = inner
            .delayed
            .keys()
            .next()
            .is_none_or(|first| slot < *first);
        inner.delayed.insert(slot, key.clone());
        inner.delayed_by_key.insert(key, slot);
        drop(inner);
        if earliest {
            self.timer.notify_one();
        }
    }

    /// Whether nothing is queued, being processed or waiting for a delayed add — read
    /// at one instant, under the queue's lock.
    pub fn is_idle(&self) -> bool {
        let inner = self.lock();
        inner.waiting() == 0 && inner.processing.is_empty() && inner.delayed.is_empty()
    }

    /// Waits for the next key; `None` once the queue is shut down.
    pub async fn get(&self) -> Option<K> {
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut inner = self.lock();
                if inner.shut_down {
                    return None;
                }
                if let Some(key) = inner.take() {
                    let more = inner.waiting() > 0;
                    drop(inner);
                    if more {
                        // Pass the baton: another worker may take the next key.
                        self.ready.notify_one();
                    }
                    return Some(key);
                }
            }
            notified.await;
        }
    }

    /// Marks `key` as no longer being processed; requeues it if it was added meanwhile.
    pub fn done(&self, key: &K) {
        let mut inner = self.lock();
        inner.processing.remove(key);
        if inner.dirty.contains(key) && !inner.shut_down {
            let urgent = inner.dirty_urgent.contains(key);
            inner.push(key.clone(), urgent);
            drop(inner);
            self.ready.notify_one();
        }
    }

    /// Keys waiting (not counting delayed ones or those being processed).
    pub fn len(&self) -> usize {
        self.lock().waiting()
    }

    /// Whether no key is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys waiting for a delayed add.
    pub fn delayed_len(&self) -> usize {
        self.lock().delayed.len()
    }

    /// Stops the queue: `get` returns `None` from now on.
    pub fn shut_down(&self) {
        self.lock().shut_down = true;
        self.ready.notify_waiters();
        self.timer.notify_one();
    }

    /// Moves delayed keys into the queue when due. Run exactly one of these per queue;
    /// it returns after [`WorkQueue::shut_down`].
    pub async fn run_timer(&self) {
        loop {
            let notified = self.timer.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next = {
                let mut inner = self.lock();
                if inner.shut_down {
                    return;
                }
                let now = Instant::now();
                let mut due = Vec::new();
                while let Some((&slot, _)) = inner.delayed.iter().next() {
                    if slot.0 > now {
                        break;
                    }
                    if let Some(key) = inner.delayed.remove(&slot) {
                        inner.delayed_by_key.remove(&key);
                        due.push(key);
                    }
                }
                let next = inner.delayed.keys().next().map(|s| s.0);
                drop(inner);
                for key in due {
                    self.add(key);
                }
                next
            };
            match next {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = &mut notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}

impl<K: Clone + Eq + Hash> Inner<K> {
    /// How many keys wait to be taken.
    fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Adds an entry for `key` at the end of `urgent` or `queue`; an earlier entry for
    /// it no longer counts.
    fn push(&mut self, key: K, urgent: bool) {
        self.entries += 1;
        let entry = self.entries;
        self.waiting.insert(key.clone(), entry);
        if urgent {
            self.urgent.push_back((key, entry));
        } else {
            self.queue.push_back((key, entry));
        }
    }

    /// Takes the next waiting key, urgent ones first, skipping entries that no longer
    /// count, and marks it as being processed.
    fn take(&mut self) -> Option<K> {
        loop {
            let (key, entry) = match self.urgent.pop_front() {
                Some(e) => e,
                None => self.queue.pop_front()?,
            };
            if self.waiting.get(&key) != Some(&entry) {
                continue;
            }
            self.waiting.remove(&key);
            self.dirty.remove(&key);
            self.dirty_urgent.remove(&key);
            self.processing.insert(key.clone());
            return Some(key);
        }
    }
}

/// Per-key exponential backoff: `base * 2^(failures-1)`, capped at `max`, with up to 10 %
/// jitter so that many pods failing together do not retry in lockstep. It never gives
/// up: a pod whose provider keeps failing is retried every `max` for as long as it exists.
#[derive(Debug)]
pub struct Backoff<K> {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<K, u32>>,
}

impl<K: Eq + Hash + Clone> Backoff<K> {
    /// A backoff from `base` doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failure of `key` and returns how long to wait before retrying.
    pub fn next_delay(&self, key: &K) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key.clone()).or_insert(0);
        *n = n.saturating_add(1);
        let delay = delay_for(self.base, self.max, *n);
        let jitter = delay.mul_f64(rand::random::<f64>() * 0.1);
        (delay + jitter).min(self.max)
    }

    /// Forgets `key`'s failures (after a success).
    pub fn forget(&self, key: &K) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// How many consecutive failures `key` has.
    pub fn failures(&self, key: &K) -> u32 {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
            .unwrap_or(0)
    }
}

/// `base * 2^(n-1)` capped at `max` (no jitter).
pub(crate) fn delay_for(base: Duration, max: Duration, n: u32) -> Duration {
    let exp = n.saturating_sub(1).min(32);
    base.saturating_mul(1u32 << exp.min(31)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn dedups_keys_added_before_processing() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        assert_eq!(q.get().await, Some("a"));
        assert_eq!(q.get().await, Some("b"));
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn a_key_added_while_processing_is_requeued_after_done() {
        let q = WorkQueue::new();
        q.add("a");
        let k = q.get().await.expect("key");
        q.add("a"); // while processing: must not be handed to another worker
        assert!(q.is_empty());
        q.done(&k);
        assert_eq!(q.len(), 1);
        assert_eq!(q.get().await, Some("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_only_when_nothing_is_queued_processing_or_delayed() {
        let q = WorkQueue::new();
        assert!(q.is_idle());
        q.add("a");
        assert!(!q.is_idle(), "queued");
        let k = q.get().await.expect("key");
        assert!(!q.is_idle(), "being processed");
        q.done(&k);
        assert!(q.is_idle());
        q.add_after("b", Duration::from_secs(5));
        assert!(!q.is_idle(), "waiting for a retry");
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_adds_fire_at_their_deadline_earliest_wins() {
        let q = Arc::new(WorkQueue::new());
        let timer = tokio::spawn({
            let q = Arc::clone(&q);
            async move { q.run_timer().await }
        });
        q.add_after("a", Duration::from_secs(10));
        q.add_after("a", Duration::from_secs(2)); // earlier wins
        q.add_after("a", Duration::from_secs(5)); // later ignored
        q.add_after("b", Duration::from_secs(3));
        tokio::time::sleep(Duration::from_millis(1900)).await;
        assert!(q.is_empty());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(q.get().await, Some("a"));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(q.get().await, Some("b"));
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(
            q.is_empty(),
            "the later deadline for a must have been dropped"
        );
        assert_eq!(q.delayed_len(), 0);
        q.shut_down();
        timer.await.expect("timer task");
    }

    #[tokio::test]
    async fn an_immediate_add_cancels_a_delayed_one() {
        let q = WorkQueue::new();
        q.add_after("a", Duration::from_secs(60));
        q.add("a");
        assert_eq!(q.delayed_len(), 0);
        assert_eq!(q.get().await, Some("a"));
    }

    /// Takes and finishes every waiting key; returns them in the order served.
    async fn drain<K: Clone + Eq + std::hash::Hash>(q: &WorkQueue<K>) -> Vec<K> {
        let mut order = Vec::new();
        while !q.is_empty() {
            let k = q.get().await.expect("key");
            q.done(&k);
            order.push(k);
        }
        order
    }

    #[tokio::test]
    async fn urgent_keys_are_served_before_the_others_in_their_order() {
        let q = WorkQueue::new();
        for k in ["a", "b", "c"] {
            q.add(k);
        }
        q.add_urgent("x");
        q.add_urgent("y");
        q.add_urgent("x"); // already urgent: no second entry
        assert_eq!(q.len(), 5);
        let order = drain(&q).await;
        assert_eq!(order, ["x", "y", "a", "b", "c"]);
        assert!(q.is_idle());
    }

    #[tokio::test]
    async fn a_waiting_key_made_urgent_moves_ahead_once() {
        let q = WorkQueue::new();
        for k in ["a", "b", "c"] {
            q.add(k);
        }
        q.add_urgent("c");
        q.add("c"); // still waiting: deduplicated, stays urgent
        assert_eq!(q.len(), 3);
        let order = drain(&q).await;
        // `c` once, first; its old place in line is skipped.
        assert_eq!(order, ["c", "a", "b"]);
        assert!(q.is_idle());
        // Added again after it was served, it waits in the ordinary line again.
        q.add("d");
        q.add("c");
        assert_eq!(q.get().await, Some("d"));
        assert_eq!(q.get().await, Some("c"));
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn a_key_made_urgent_while_processing_goes_first_after_done() {
        let q = WorkQueue::new();
        q.add("a");
        let a = q.get().await.expect("key");
        q.add("b");
        q.add("c");
        q.add_urgent("a"); // e.g. the provider reports a pod while it is being created
        assert_eq!(q.len(), 2, "not handed out while processing");
        q.done(&a);
        assert_eq!(q.get().await, Some("a"));
        assert_eq!(q.get().await, Some("b"));
    }

    #[tokio::test(start_paused = true)]
    async fn an_urgent_add_cancels_a_delayed_one() {
        let q = WorkQueue::new();
        q.add("a");
        q.add_after("b", Duration::from_secs(60));
        q.add_urgent("b");
        assert_eq!(q.delayed_len(), 0);
        assert_eq!(q.get().await, Some("b"));
    }

    #[tokio::test]
    async fn shut_down_releases_waiting_workers() {
        let q = Arc::new(WorkQueue::<&str>::new());
        let worker = tokio::spawn({
            let q = Arc::clone(&q);
            async move { q.get().await }
        });
        tokio::task::yield_now().await;
        q.shut_down();
        assert_eq!(worker.await.expect("worker"), None);
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_never_gives_up() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(10);
        assert_eq!(delay_for(base, max, 1), Duration::from_millis(100));
        assert_eq!(delay_for(base, max, 2), Duration::from_millis(200));
        assert_eq!(delay_for(base, max, 5), Duration::from_millis(1600));
        assert_eq!(delay_for(base, max, 8), max);
        assert_eq!(delay_for(base, max, 1000), max);

        let b = Backoff::new(base, max);
        let first = b.next_delay(&"p");
        assert!(first >= base && first <= base.mul_f64(1.1));
        for _ in 0..100 {
            assert!(b.next_delay(&"p") <= max);
        }
        assert_eq!(b.failures(&"p"), 101);
        b.forget(&"p");
        assert_eq!(b.failures(&"p"), 0);
    }
}
