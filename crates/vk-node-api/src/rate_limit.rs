//! Rate limits: a token bucket that bounds how often costly work (a `TokenReview`) is
//! started, and a throttle that lets a repeated log line through once per interval.
//!
//! Both read the tokio clock, so tests can drive them with `tokio::time::pause()`.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket: up to `burst` operations at once, refilled at `per_second`.
/// Callers over the limit are told how long to wait; nothing queues.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use vk_node_api::rate_limit::TokenBucket;
///
/// let bucket = TokenBucket::new(2.0, 1);
/// assert!(bucket.try_acquire().is_ok());
/// let wait = bucket.try_acquire().expect_err("the burst is spent");
/// assert_eq!(wait, Duration::from_millis(500));
/// tokio::time::advance(wait).await;
/// assert!(bucket.try_acquire().is_ok());
/// # }
/// ```
#[derive(Debug)]
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens (at least one) refilled at `per_second` (a
    /// rate of zero or less, or not a number, never refills).
    pub fn new(per_second: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            per_second: if per_second.is_finite() && per_second > 0.0 {
                per_second
            } else {
                0.0
            },
            burst,
            state: Mutex::new(Bucket {
                tokens: burst,
                updated: Instant::now(),
            }),
        }
    }

    /// Takes one token, or says how long until one is available (`Duration::MAX`
    /// for a bucket that never refills).
    pub fn try_acquire(&self) -> Result<(), Duration> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(state.updated).as_secs_f64();
        state.tokens = (state.tokens + elapsed * self.per_second).min(self.burst);
        state.updated = now;
        if state.tokens >= 1.0 {
            state.tokens -= 1.0;
            return Ok(());
        }
        if self.per_second == 0.0 {
            return Err(Duration::MAX);
        }
        Err(
            Duration::try_from_secs_f64((1.0 - state.tokens) / self.per_second)
                .unwrap_or(Duration::MAX),
        )
    }
}

/// Lets a log line through at most once per interval, counting the ones held back so
/// the next line can say how many there were.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use vk_node_api::rate_limit::LogThrottle;
///
/// let throttle = LogThrottle::new(Duration::from_secs(10));
/// assert_eq!(throttle.allow(), Some(0)); // the first one passes
/// assert_eq!(throttle.allow(), None);
/// assert_eq!(throttle.allow(), None);
/// tokio::time::advance(Duration::from_secs(10)).await;
/// assert_eq!(throttle.allow(), Some(2)); // two were held back meanwhile
/// # }
/// ```
#[derive(Debug)]
pub struct LogThrottle {
    interval: Duration,
    state: Mutex<Throttle>,
}

#[derive(Debug)]
struct Throttle {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogThrottle {
    /// At most one line per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new(Throttle {
                last: None,
                suppressed: 0,
            }),
        }
    }

    /// `Some(n)` when a line may be logged now (`n` lines were held back since the
    /// last one); `None` when this one is held back.
    pub fn allow(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match state.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                state.suppressed = state.suppressed.saturating_add(1);
                None
            }
            _ => {
                state.last = Some(now);
                Some(std::mem::take(&mut state.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_burst_is_spent_then_refilled_at_the_rate() {
        let bucket = TokenBucket::new(10.0, 5);
        for _ in 0..5 {
            bucket.try_acquire().expect("within the burst");
        }
        assert_eq!(bucket.try_acquire(), Err(Duration::from_millis(100)));
        tokio::time::advance(Duration::from_millis(250)).await;
        bucket.try_acquire().expect("refilled");
        bucket.try_acquire().expect("refilled");
        assert!(bucket.try_acquire().is_err(), "half a token is not one");
        // A long pause refills to the burst, not beyond.
        tokio::time::advance(Duration::from_secs(3600)).await;
        let granted = (0..100).filter(|_| bucket.try_acquire().is_ok()).count();
        assert_eq!(granted, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_without_a_rate_never_refills() {
        let bucket = TokenBucket::new(0.0, 0);
        bucket.try_acquire().expect("a burst of at least one");
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(bucket.try_acquire(), Err(Duration::MAX));
        let slow = TokenBucket::new(f64::MIN_POSITIVE, 1);
        slow.try_acquire().expect("the burst");
        assert_eq!(slow.try_acquire(), Err(Duration::MAX), "no overflow");
        let nan = TokenBucket::new(f64::NAN, 1);
        assert_eq!(nan.try_acquire(), Ok(()));
        assert_eq!(nan.try_acquire(), Err(Duration::MAX));
    }

    #[tokio::test(start_paused = true)]
    async fn one_line_per_interval_with_the_count_held_back() {
        let throttle = LogThrottle::new(Duration::from_secs(5));
        let mut passed = Vec::new();
        for _ in 0..120 {
            // Twenty attempts a second for six seconds.
            if let Some(n) = throttle.allow() {
                passed.push(n);
            }
            tokio::time::advance(Duration::from_millis(50)).await;
        }
        assert_eq!(passed, [0, 99]);
    }
}
