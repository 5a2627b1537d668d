//! Retrying the requests the API server asks us to send again (429 with `Retry-After`,
//! 503, 504), counted.
//!
//! kube-client's own [`RetryPolicy::server_retry`] decides (exponential backoff from 5 ms,
//! the server's `Retry-After` when it is later, at most 15 attempts, only requests whose
//! body can be replayed); we only count what it does. kube-client would install the same
//! policy itself, below anything we can layer, where its retries are invisible: the
//! client is built with `default_retry` off and this layer put back above the accounting.

use http::{Request, Response};
use kube::client::Body;
use kube::client::retry::RetryPolicy;
use tower::BoxError;
use tower::retry::Policy;

use super::ApiStats;

/// kube-client's server-aware retry policy, counting each retry in [`ApiStats::retries`].
#[derive(Clone)]
pub struct CountingRetry {
    policy: RetryPolicy,
    stats: ApiStats,
}

impl CountingRetry {
    /// The policy kube-client uses by default, counting into `stats`.
    pub fn new(stats: ApiStats) -> Self {
        Self {
            policy: RetryPolicy::server_retry(),
            stats,
        }
    }
}

impl std::fmt::Debug for CountingRetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountingRetry").finish_non_exhaustive()
    }
}

impl<Res> Policy<Request<Body>, Response<Res>, BoxError> for CountingRetry {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut Request<Body>,
        result: &mut Result<Response<Res>, BoxError>,
    ) -> Option<Self::Future> {
        let again = self.policy.retry(req, result);
        if again.is_some() {
            self.stats.record_retry();
        }
        again
    }

    fn clone_request(&mut self, req: &Request<Body>) -> Option<Request<Body>> {
        <RetryPolicy as Policy<Request<Body>, Response<Res>, BoxError>>::clone_request(
            &mut self.policy,
            req,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn answer(status: StatusCode, retry_after: Option<&str>) -> Result<Response<()>, BoxError> {
        let mut response = Response::builder().status(status);
        if let Some(seconds) = retry_after {
            response = response.header("Retry-After", seconds);
        }
        Ok(response.body(()).expect("a response"))
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_is_retried_after_the_servers_delay_and_counted() {
        let stats = ApiStats::default();
        let mut policy = CountingRetry::new(stats.clone());
        let mut req = Request::new(Body::from(b"{}".to_vec()));
        let started = tokio::time::Instant::now();
        let wait = policy
            .retry(
                &mut req,
                &mut answer(StatusCode::TOO_MANY_REQUESTS, Some("2")),
            )
            .expect("retried");
        wait.await;
        assert!(started.elapsed() >= std::time::Duration::from_secs(2));
        assert_eq!(stats.retries(), 1);
        let copy = <CountingRetry as Policy<_, Response<()>, _>>::clone_request(&mut policy, &req);
        assert!(copy.is_some(), "a buffered body can be replayed");
    }

    #[test]
    fn other_answers_are_not_retried() {
        let stats = ApiStats::default();
        let mut policy = CountingRetry::new(stats.clone());
        for status in [
            StatusCode::OK,
            StatusCode::CONFLICT,
            StatusCode::INTERNAL_SERVER_ERROR,
        ] {
            let mut req = Request::new(Body::empty());
            assert!(policy.retry(&mut req, &mut answer(status, None)).is_none());
        }
        assert_eq!(stats.retries(), 0);
    }
}
