//! When each node does its periodic work (lease renewals, pings, status writes,
//! clean-up).
//!
//! Two things must not happen to a fleet of many nodes in one process:
//! - all of them renewing their Leases in the same instant (1,000 requests at once, a
//!   connection each);
//! - each of them waking the process at an instant of its own: 1,000 nodes renewing
//!   and pinging every 10 s were 200 separate wake-ups of the runtime a second (an
//!   idle 1,000-node process: 1.84 CPU-s/min and 484 context switches a second with
//!   them, 1.40 and 227 with 100 slots, about 0.9 and 140 with 20; see [`SLOTS`]).
//!
//! So each node keeps a *slot* fixed by its name, one of [`SLOTS`] equal slots of every
//! period, and its periodic work comes at the middle of that slot. Slots are anchored to
//! the wall clock (the Unix time modulo the period), not to when a node started: nodes
//! sharing a slot are woken together however far apart they were registered, and work
//! of the same period (a node's lease renewal and its ping) comes in the same wake-up.
//! 1,000 nodes then renew in 10 batches of about 100 per period.
//!
//! ```
//! use std::time::Duration;
//! use vk_core::phase;
//!
//! let period = Duration::from_secs(10);
//! let p = phase::phase_of("vk-0", period);
//! assert!(p > Duration::ZERO && p < period);
//! // The same name keeps its slot, whatever the period.
//! let slot = phase::slot_of("vk-0");
//! assert_eq!(p, period * (2 * slot + 1) / (2 * phase::SLOTS));
//! ```

use std::time::{Duration, SystemTime};

use tokio::time::{Instant, Interval, MissedTickBehavior};

/// Slots per period: at most this many distinct wake-ups per period for one kind of
/// periodic work, however many nodes. With 1,000 nodes and a 10 s period, about 100
/// nodes renew together every second.
///
/// Why 10: the fewer the slots, the more requests share one wake-up of the process
/// and the more of their answers one poll of the connections collects. An idle
/// 1,000-node process measured 1.33–1.59 CPU-s/min and 217–236 context switches a
/// second with 100 slots, 0.91–0.92 and 129–142 with 20 (runs alternated on one
/// control plane, 2026-11). With one runtime worker (2026-12-02, alternated, 60 s
/// each): 20 slots 1.09 and 0.86 CPU-s/min with 106 context switches a second, 10
/// slots 0.88 and 0.86 with 91–97, 5 slots 0.95 with 87 — below 10 the gain is lost
/// in the noise while each burst grows. The price is a burst of about 100 Lease
/// patches every second, inside one client's 128 requests in flight and the API
/// server's own budget.
pub const SLOTS: u32 = 10;

/// `key`'s slot (`0..SLOTS`): spread evenly over names, the same for the same name in
/// every run (FNV-1a of the name, then splitmix64's finalizer, so names differing only
/// in their last character land far apart).
pub fn slot_of(key: &str) -> u32 {
    let mut hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^= hash >> 31;
    (hash % u64::from(SLOTS)) as u32
}

/// `key`'s phase within `period`: the middle of its slot (never 0, always less than
/// the period).
pub fn phase_of(key: &str, period: Duration) -> Duration {
    period * (2 * slot_of(key) + 1) / (2 * SLOTS)
}

/// How long after `since_epoch` (a time since the Unix epoch) `key`'s next phase in
/// `period` comes: in `(0, period]`.
pub fn delay_to_phase(key: &str, period: Duration, since_epoch: Duration) -> Duration {
    let period_ns = period.as_nanos();
    if period_ns == 0 {
        return Duration::ZERO;
    }
    let into = since_epoch.as_nanos() % period_ns;
    let phase = phase_of(key, period).as_nanos();
    let delay = (phase + period_ns - into) % period_ns;
    let delay = if delay == 0 { period_ns } else { delay };
    // Less than one period, which is a Duration: the conversion cannot overflow.
    Duration::from_nanos(u64::try_from(delay).unwrap_or(u64::MAX))
}

/// An interval of `period` ticking at `key`'s phase (the first tick at the next one, not
/// at once); a late tick delays the ones after it
/// ([`MissedTickBehavior::Delay`]) rather than bursting.
pub fn interval(key: &str, period: Duration) -> Interval {
    let since_epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let start = Instant::now() + delay_to_phase(key, period, since_epoch);
    let mut interval = tokio::time::interval_at(start, period.max(Duration::from_millis(1)));
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_spread_evenly_and_stay_put() {
        let period = Duration::from_secs(10);
        let mut seconds = [0u32; 10];
        for i in 0..1000 {
            let p = phase_of(&format!("vk-bench-scale-{i}"), period);
            assert!(p > Duration::ZERO && p < period, "{p:?}");
            seconds[p.as_secs() as usize] += 1;
        }
        assert!(
            seconds.iter().all(|b| (60..=140).contains(b)),
            "1,000 fleet nodes over 10 one-second spans: {seconds:?}"
        );
        assert_eq!(slot_of("vk-1"), slot_of("vk-1"));
        assert_ne!(slot_of("vk-1"), slot_of("vk-2"));
    }

    #[test]
    fn the_delay_reaches_the_phase_on_the_wall_clock() {
        let period = Duration::from_secs(10);
        let key = "vk-0";
        let phase = phase_of(key, period);
        // 12 periods and a bit before the phase: the phase of this period.
        let now = period * 12 + phase - Duration::from_millis(30);
        assert_eq!(delay_to_phase(key, period, now), Duration::from_millis(30));
        // Just after the phase: the next period's.
        let now = period * 12 + phase + Duration::from_millis(30);
        assert_eq!(
            delay_to_phase(key, period, now),
            period - Duration::from_millis(30)
        );
        // Exactly at the phase: a whole period, never a tick at once.
        assert_eq!(delay_to_phase(key, period, period * 3 + phase), period);
    }

    /// Two nodes of the same slot, started 3.7 s apart, tick at the same instants: the
    /// batching that makes a fleet cheap to keep.
    #[test]
    fn nodes_of_one_slot_started_apart_wake_together() {
        let period = Duration::from_secs(10);
        let a = "vk-bench-scale-0";
        let b = (1..)
            .map(|i| format!("vk-bench-scale-{i}"))
            .find(|n| slot_of(n) == slot_of(a))
            .expect("another name in the slot");
        let wall = Duration::from_secs(1_764_547_200);
        let started_apart = Duration::from_millis(3_700);
        let first_a = delay_to_phase(a, period, wall);
        let first_b = started_apart + delay_to_phase(&b, period, wall + started_apart);
        let (early, late) = (first_a.min(first_b), first_a.max(first_b));
        assert_eq!((late - early).as_nanos() % period.as_nanos(), 0);
        // A node of another slot does not share their instants.
        let c = (1..)
            .map(|i| format!("vk-bench-scale-{i}"))
            .find(|n| slot_of(n) != slot_of(a))
            .expect("a name in another slot");
        let first_c = delay_to_phase(&c, period, wall);
        assert_ne!(first_c, first_a);
    }

    #[tokio::test(start_paused = true)]
    async fn the_interval_ticks_first_within_a_period_then_every_period() {
        let period = Duration::from_secs(10);
        let start = Instant::now();
        let mut tick = interval("vk-0", period);
        let first = tick.tick().await;
        assert!(
            first > start && first - start <= period,
            "{:?}",
            first - start
        );
        let second = tick.tick().await;
        assert_eq!(second - first, period);
    }
}
