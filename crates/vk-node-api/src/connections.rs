//! A cap on the connections a listener holds at once. Each accepted connection takes a
//! [`ConnectionPermit`] for as long as it lives (an upgraded exec or port-forward
//! session included); a connection over the cap is closed at once, and the refusals
//! are logged at most once per interval.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::rate_limit::LogThrottle;

/// A connection cap; clones share it (e.g. the kubelet API listeners of one process).
///
/// ```
/// use vk_node_api::connections::ConnectionLimit;
///
/// let limit = ConnectionLimit::new("kubelet API", 2);
/// let a = limit.try_acquire().expect("room");
/// let _b = limit.try_acquire().expect("room");
/// assert!(limit.try_acquire().is_none());
/// assert_eq!((limit.open(), limit.refused()), (2, 1));
/// drop(a);
/// assert!(limit.try_acquire().is_some());
/// ```
#[derive(Debug, Clone)]
pub struct ConnectionLimit {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: &'static str,
    max: usize,
    permits: Arc<Semaphore>,
    refused: AtomicU64,
    log: LogThrottle,
}

/// A connection's place under a [`ConnectionLimit`], given back when dropped.
#[derive(Debug)]
pub struct ConnectionPermit {
    _permit: OwnedSemaphorePermit,
}

/// How often refusals are logged at most.
const LOG_EVERY: Duration = Duration::from_secs(10);

impl ConnectionLimit {
    /// At most `max` connections (clamped to what a semaphore holds) for the listener
    /// `name` (used in the log).
    pub fn new(name: &'static str, max: usize) -> Self {
        let max = max.min(Semaphore::MAX_PERMITS);
        Self {
            inner: Arc::new(Inner {
                name,
                max,
                permits: Arc::new(Semaphore::new(max)),
                refused: AtomicU64::new(0),
                log: LogThrottle::new(LOG_EVERY),
            }),
        }
    }

    /// A place for one more connection, or `None` (counted and logged, throttled) when
    /// the cap is reached.
    pub fn try_acquire(&self) -> Option<ConnectionPermit> {
        match Arc::clone(&self.inner.permits).try_acquire_owned() {
            Ok(permit) => Some(ConnectionPermit { _permit: permit }),
            Err(_) => {
                self.inner.refused.fetch_add(1, Ordering::Relaxed);
                if let Some(held_back) = self.inner.log.allow() {
                    tracing::warn!(
                        listener = self.inner.name,
                        max = self.inner.max,
                        refused_since_last_report = held_back + 1,
                        "connection cap reached: closing new connections until some end"
                    );
                }
                None
            }
        }
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.inner.max
    }

    /// How many connections hold a permit now.
    pub fn open(&self) -> usize {
        self.inner.max - self.inner.permits.available_permits()
    }

    /// How many connections were refused so far.
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_cap() {
        let limit = ConnectionLimit::new("test", 1);
        let other = limit.clone();
        let held = limit.try_acquire().expect("room");
        assert!(other.try_acquire().is_none());
        assert_eq!((other.open(), other.refused(), other.max()), (1, 1, 1));
        drop(held);
        assert_eq!(limit.open(), 0);
        assert!(other.try_acquire().is_some());
    }
}
