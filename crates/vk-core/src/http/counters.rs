//! What a client has done: attempts, retries and answers by status class.

use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;

/// Live counters of one [`HttpClient`](super::HttpClient) and all its clones.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    attempts: AtomicU64,
    retries: AtomicU64,
    transport_errors: AtomicU64,
    /// Index 0 is 1xx, ..., index 4 is 5xx.
    responses: [AtomicU64; 5],
}

impl Counters {
    pub(crate) fn attempt(&self) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn transport_error(&self) {
        self.transport_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn response(&self, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100);
        if let Some(counter) = class.checked_sub(1).and_then(|i| self.responses.get(i)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> HttpCounts {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HttpCounts {
            attempts: load(&self.attempts),
            retries: load(&self.retries),
            transport_errors: load(&self.transport_errors),
            responses_by_class: self.responses.each_ref().map(load),
        }
    }
}

/// A snapshot of a client's counters, from [`HttpClient::counts`](super::HttpClient::counts).
///
/// Every attempt counts, retries included: a request answered `429` twice and then
/// `200` counts 3 attempts, 2 retries, 2 `4xx` and 1 `2xx` answers. A WebSocket
/// handshake counts as a request answered `101`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpCounts {
    /// Requests sent or attempted (each retry counts).
    pub attempts: u64,
    /// Attempts that were a retry of an earlier one.
    pub retries: u64,
    /// Attempts that got no answer: connection refused, TLS failure, timeout, reset.
    pub transport_errors: u64,
    /// Answers by status class: index 0 counts `1xx`, ..., index 4 counts `5xx`.
    pub responses_by_class: [u64; 5],
}

impl HttpCounts {
    /// Answers whose status is in `class` (1 for `1xx`, ... 5 for `5xx`); 0 for other
    /// classes.
    ///
    /// ```
    /// let counts = vk_core::http::HttpCounts {
    ///     responses_by_class: [0, 7, 0, 2, 1],
    ///     ..Default::default()
    /// };
    /// assert_eq!(counts.responses(2), 7);
    /// assert_eq!(counts.responses(4), 2);
    /// assert_eq!(counts.responses(9), 0);
    /// ```
    pub fn responses(&self, class: u8) -> u64 {
        usize::from(class)
            .checked_sub(1)
            .and_then(|i| self.responses_by_class.get(i))
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_counted_by_class() {
        let counters = Counters::default();
        for status in [200, 204, 404, 429, 503, 101] {
            counters.response(StatusCode::from_u16(status).expect("status"));
        }
        counters.attempt();
        counters.retry();
        counters.transport_error();
        let counts = counters.snapshot();
        assert_eq!(counts.responses_by_class, [1, 2, 0, 2, 1]);
        assert_eq!(
            (counts.attempts, counts.retries, counts.transport_errors),
            (1, 1, 1)
        );
    }
}
