//! Pod IPs from 10.244.0.0/16 (65,024 addresses: host parts `.1` to `.254` of each
//! `/24`).
//!
//! A pod keeps its address, keyed by UID, for as long as it exists, and no address is
//! handed out while a pod holds it — also after a restart, when the pool is rebuilt from
//! the pods in the state file ([`IpPool::restore`]). Free addresses are taken round-robin,
//! so an address a deleted pod released is the last to be reused.
//!
//! An address can be reserved before the pod is created (the core asks for it to
//! resolve `status.podIP` in the environment; see `pod_ip_hint`). A pod whose creation
//! never succeeds is never deleted from the provider either, so such *pending*
//! reservations are bounded: past [`PENDING_LIMIT`] the oldest are released (a later
//! attempt to create that pod reserves again, and resolves its environment again).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::Ipv4Addr;

/// How many addresses the pool has.
pub(crate) const CAPACITY: u32 = 256 * 254;

/// How many reservations of pods not (yet) created are kept; past it the oldest go.
pub(crate) const PENDING_LIMIT: usize = 4096;

/// The `n`th address of the pool (`n < CAPACITY`).
fn address(n: u32) -> Ipv4Addr {
    let n = n % CAPACITY;
    Ipv4Addr::new(
        10,
        244,
        u8::try_from(n / 254).unwrap_or(u8::MAX),
        u8::try_from(n % 254 + 1).unwrap_or(u8::MAX),
    )
}

/// The position of `ip` in the pool, if it belongs to it.
fn index(ip: Ipv4Addr) -> Option<u32> {
    match ip.octets() {
        [10, 244, third, host @ 1..=254] => Some(u32::from(third) * 254 + u32::from(host) - 1),
        _ => None,
    }
}

/// The addresses held by pods (and reserved for pods about to be created).
#[derive(Debug)]
pub(crate) struct IpPool {
    by_uid: HashMap<String, Ipv4Addr>,
    /// How many UIDs hold each address: more than one only for pods restored from a
    /// state file that already had duplicates (written before the pool existed).
    holders: HashMap<Ipv4Addr, u32>,
    /// Reservations of pods not created yet, oldest first.
    pending: VecDeque<String>,
    pending_set: HashSet<String>,
    /// Where the search for a free address starts.
    cursor: u32,
}

impl Default for IpPool {
    fn default() -> Self {
        Self {
            by_uid: HashMap::new(),
            holders: HashMap::new(),
            pending: VecDeque::new(),
            pending_set: HashSet::new(),
            // The first pod gets 10.244.0.2, as it always has.
            cursor: 1,
        }
    }
}

impl IpPool {
    /// The address of `uid`: the one it holds, or a free one reserved for it (pending
    /// until [`IpPool::confirm`]). `None` when every address is taken.
    pub(crate) fn reserve(&mut self, uid: &str) -> Option<Ipv4Addr> {
        if let Some(ip) = self.by_uid.get(uid) {
            return Some(*ip);
        }
        let free = (0..CAPACITY)
            .map(|i| (self.cursor + i) % CAPACITY)
            .find(|&n| !self.holders.contains_key(&address(n)))?;
        self.cursor = (free + 1) % CAPACITY;
        let ip = address(free);
        self.hold(uid, ip);
        self.pending.push_back(uid.to_owned());
        self.pending_set.insert(uid.to_owned());
        while self.pending_set.len() > PENDING_LIMIT {
            let Some(oldest) = self.pending.pop_front() else {
                break;
            };
            if self.pending_set.contains(&oldest) {
                self.release(&oldest);
            }
        }
        Some(ip)
    }

    /// Marks `uid`'s reservation as held by a created pod (kept until released).
    pub(crate) fn confirm(&mut self, uid: &str) {
        self.no_longer_pending(uid);
    }

    /// Records that the stored pod `uid` holds `ip` (rebuilding the pool from the state
    /// file). Returns `false` if another pod already holds `ip`: both keep it (a pod's
    /// IP never changes), and no new pod gets it while either exists.
    pub(crate) fn restore(&mut self, uid: &str, ip: Ipv4Addr) -> bool {
        if let Some(n) = index(ip) {
            self.cursor = self.cursor.max((n + 1) % CAPACITY);
        }
        let unique = !self.holders.contains_key(&ip);
        self.release(uid);
        self.hold(uid, ip);
        unique
    }

    /// Frees `uid`'s address (its pod was deleted, or never created).
    pub(crate) fn release(&mut self, uid: &str) {
        let Some(ip) = self.by_uid.remove(uid) else {
            return;
        };
        self.no_longer_pending(uid);
        if let Some(count) = self.holders.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                self.holders.remove(&ip);
            }
        }
    }

    /// How many pods hold (or have reserved) an address.
    pub(crate) fn len(&self) -> usize {
        self.by_uid.len()
    }

    /// How many reservations are pending (pods not created yet).
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.pending_set.len()
    }

    /// Takes `uid` out of the pending reservations. Its entry in the queue stays until
    /// popped or until the queue is twice the limit, when such entries are dropped.
    fn no_longer_pending(&mut self, uid: &str) {
        if self.pending_set.remove(uid) && self.pending.len() > 2 * PENDING_LIMIT {
            let set = &self.pending_set;
            self.pending.retain(|u| set.contains(u));
        }
    }

    fn hold(&mut self, uid: &str, ip: Ipv4Addr) {
        self.by_uid.insert(uid.to_owned(), ip);
        *self.holders.entry(ip).or_insert(0) += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_map_both_ways_and_skip_network_and_broadcast() {
        assert_eq!(address(0), Ipv4Addr::new(10, 244, 0, 1));
        assert_eq!(address(253), Ipv4Addr::new(10, 244, 0, 254));
        assert_eq!(address(254), Ipv4Addr::new(10, 244, 1, 1));
        assert_eq!(address(CAPACITY - 1), Ipv4Addr::new(10, 244, 255, 254));
        for n in [0, 1, 253, 254, 1000, CAPACITY - 1] {
            assert_eq!(index(address(n)), Some(n));
        }
        assert_eq!(index(Ipv4Addr::new(10, 244, 3, 0)), None);
        assert_eq!(index(Ipv4Addr::new(10, 244, 3, 255)), None);
        assert_eq!(index(Ipv4Addr::new(10, 1, 0, 1)), None);
    }

    #[test]
    fn a_pod_keeps_its_address_and_a_released_one_is_reused_last() {
        let mut pool = IpPool::default();
        let a = pool.reserve("a").expect("free");
        assert_eq!(a, Ipv4Addr::new(10, 244, 0, 2));
        assert_eq!(pool.reserve("a"), Some(a));
        pool.confirm("a");
        let b = pool.reserve("b").expect("free");
        assert_ne!(a, b);
        pool.release("a");
        let c = pool.reserve("c").expect("free");
        assert!(c != a && c != b, "{c} was just released or is held");
        assert_eq!(pool.len(), 2);
    }

    #[test]
    fn restored_addresses_are_never_handed_out_again() {
        // What a state file holds after pods 1..=3 were created and 1 and 2 deleted.
        let mut pool = IpPool::default();
        assert!(pool.restore("third", Ipv4Addr::new(10, 244, 0, 4)));
        // And an address low in the pool, as left by an earlier wrap-around.
        assert!(pool.restore("old", Ipv4Addr::new(10, 244, 0, 2)));
        let mut seen: HashSet<Ipv4Addr> =
            [Ipv4Addr::new(10, 244, 0, 4), Ipv4Addr::new(10, 244, 0, 2)].into();
        for i in 0..(CAPACITY - 2) {
            let ip = pool.reserve(&format!("new-{i}")).expect("free");
            assert!(seen.insert(ip), "{ip} handed out twice");
            pool.confirm(&format!("new-{i}"));
        }
        assert_eq!(pool.reserve("one-too-many"), None, "the pool is full");
        pool.release("third");
        assert_eq!(
            pool.reserve("one-too-many"),
            Some(Ipv4Addr::new(10, 244, 0, 4))
        );
    }

    #[test]
    fn duplicates_restored_from_an_old_state_file_stay_taken_until_both_go() {
        let mut pool = IpPool::default();
        let ip = Ipv4Addr::new(10, 244, 0, 5);
        assert!(pool.restore("x", ip));
        assert!(!pool.restore("y", ip), "a duplicate is reported");
        pool.release("x");
        for i in 0..300 {
            assert_ne!(pool.reserve(&format!("n{i}")), Some(ip), "y still holds it");
        }
        pool.release("y");
        assert!((0..CAPACITY).any(|i| pool.reserve(&format!("m{i}")) == Some(ip)));
    }

    #[test]
    fn pending_reservations_are_bounded() {
        let mut pool = IpPool::default();
        let created = pool.reserve("created").expect("free");
        pool.confirm("created");
        let first = pool.reserve("never-created-0").expect("free");
        for i in 1..(3 * PENDING_LIMIT) {
            pool.reserve(&format!("never-created-{i}")).expect("free");
            assert!(pool.pending() <= PENDING_LIMIT);
            assert!(pool.pending.len() <= 2 * PENDING_LIMIT + 1);
        }
        assert_eq!(pool.len(), PENDING_LIMIT + 1);
        assert_eq!(
            pool.reserve("created"),
            Some(created),
            "confirmed pods stay"
        );
        assert_ne!(
            pool.reserve("never-created-0"),
            Some(first),
            "the oldest reservation was released (and reserving again takes a new one)"
        );
    }
}
