//! When a request is tried again, and how long to wait before it.

use std::time::{Duration, SystemTime};

use http::{HeaderValue, Method, StatusCode};
use rand::Rng as _;

/// How a [`HttpClient`](super::HttpClient) retries failed requests.
///
/// What is retried:
///
/// * failures to connect (nothing was sent, so every method is safe to retry);
/// * timeouts, other transport errors and `502`, `503`, `504` answers, for idempotent
///   requests only (`GET`, `HEAD`, `PUT`, `DELETE`, `OPTIONS`, `TRACE`, or a request
///   marked with [`RequestBuilder::idempotent`](super::RequestBuilder::idempotent));
/// * `429 Too Many Requests`, for every method (the server did not act on it).
///
/// Between attempts the client waits the server's `Retry-After` (delta-seconds or an
/// HTTP-date) when the answer has one, otherwise an exponential backoff with jitter:
/// attempt *n* waits a random time between half and all of
/// `min(initial_backoff * 2^(n-1), max_backoff)`. A `Retry-After` longer than
/// [`max_retry_after`](Self::max_retry_after) is not waited for: the request fails at
/// once with the error carrying the server's delay
/// ([`HttpError::retry_after`](super::HttpError::retry_after)), so the caller's own
/// (slower) retry can take over.
///
/// ```
/// use std::time::Duration;
/// use vk_core::http::RetryPolicy;
///
/// let patient = RetryPolicy {
///     max_attempts: 6,
///     max_retry_after: Duration::from_secs(120),
///     ..RetryPolicy::default()
/// };
/// assert_eq!(patient.initial_backoff, Duration::from_millis(200));
/// assert_eq!(RetryPolicy::never().max_attempts, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; `0` counts as `1`. Default 4.
    pub max_attempts: u32,
    /// The backoff before the first retry (before jitter). Default 200 ms.
    pub initial_backoff: Duration,
    /// The longest backoff (before jitter). Default 10 s.
    pub max_backoff: Duration,
    /// The longest `Retry-After` the client waits for; beyond it the request fails at
    /// once. Default 60 s.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retries.
    pub fn never() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Attempts in all (at least one).
    pub(crate) fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }

    /// The exponential part of the wait after failed attempt `attempt` (1-based),
    /// before jitter.
    pub(crate) fn backoff_ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }

    /// The wait after failed attempt `attempt` (1-based): a random time between half
    /// and all of [`backoff_ceiling`](Self::backoff_ceiling).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.backoff_ceiling(attempt);
        let floor = ceiling / 2;
        if ceiling.is_zero() {
            return ceiling;
        }
        rand::rng().random_range(floor..=ceiling)
    }
}

/// Whether `method` is idempotent by definition (RFC 9110 §9.2.2).
pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

/// Whether an answer with `status` is worth another attempt.
pub(crate) fn status_is_retryable(status: StatusCode, idempotent: bool) -> bool {
    match status.as_u16() {
        429 => true,
        502..=504 => idempotent,
        _ => false,
    }
}

/// The delay a `Retry-After` header asks for: delta-seconds or an HTTP-date (a date in
/// the past means "now"). `None` when the value is neither.
pub(crate) fn parse_retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long numbers saturate rather than fail: they are beyond any cap.
        return Some(Duration::from_secs(text.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_delta_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").expect("date");
        let parse = |v: &'static str| parse_retry_after(&HeaderValue::from_static(v), now);
        assert_eq!(parse("1"), Some(Duration::from_secs(1)));
        assert_eq!(parse(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(
            parse("99999999999999999999999"),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(
            parse("Sun, 06 Nov 1994 08:50:07 GMT"),
            Some(Duration::from_secs(30))
        );
        // A date already past: retry now.
        assert_eq!(parse("Sun, 06 Nov 1994 08:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse("-1"), None);
        assert_eq!(parse("soon"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_below_it() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        let ceilings: Vec<u128> = (1..=6)
            .map(|n| policy.backoff_ceiling(n).as_millis())
            .collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(policy.backoff_ceiling(u32::MAX).as_millis(), 1000);
        for attempt in 1..=6 {
            let ceiling = policy.backoff_ceiling(attempt);
            for _ in 0..50 {
                let wait = policy.backoff(attempt);
                assert!(wait <= ceiling && wait >= ceiling / 2, "{wait:?}");
            }
        }
    }

    #[test]
    fn which_answers_are_retried() {
        for (status, idempotent, retry) in [
            (429, false, true),
            (429, true, true),
            (503, true, true),
            (503, false, false),
            (502, true, true),
            (504, true, true),
            (500, true, false),
            (501, true, false),
            (404, true, false),
        ] {
            let status = StatusCode::from_u16(status).expect("status");
            assert_eq!(
                status_is_retryable(status, idempotent),
                retry,
                "{status} idempotent={idempotent}"
            );
        }
        assert!(is_idempotent(&Method::PUT));
        assert!(is_idempotent(&Method::DELETE));
        assert!(!is_idempotent(&Method::POST));
        assert!(!is_idempotent(&Method::PATCH));
    }
}
