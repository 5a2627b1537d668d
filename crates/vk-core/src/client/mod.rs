//! Building the Kubernetes client every controller of a process shares: a client-side
//! rate limit, retries of what the API server asks to be sent again, and request
//! accounting.
//!
//! The stack, from the caller down to the connection:
//!
//! 1. [`RateLimitLayer`]: a token bucket, once per request (retries do not take tokens:
//!    they already wait for the server's `Retry-After`). By default it is **adaptive**
//!    ([`ClientLimits::Adaptive`]): its ceiling is high enough never to be what throttles
//!    a burst on a healthy API server, it is halved each time the server answers 429 and
//!    grows back while it does not. With explicit limits it is client-go's fixed QPS and
//!    burst ([`ClientLimits::Fixed`]).
//! 2. [`CountingRetry`]: kube-client's server-aware retry policy for 429, 503 and 504
//!    (`Retry-After` honoured), counted in [`ApiStats::retries`].
//! 3. [`FeedbackLayer`]: tells the adaptive limit about each 429.
//! 4. [`CountLayer`]: every request sent, by verb, resource and status code
//!    ([`ApiStats`]); watches count once, when they are opened.
//! 5. A cap of [`MAX_IN_FLIGHT`] requests awaiting their response headers at once.
//!    The connection pool opens a connection for every request that finds none idle,
//!    and keeps it until it has been idle for [`transport::IDLE_TIMEOUT`]; without the
//!    cap, the 1,000 nodes of a fleet renewing their Leases together held 1,000 TLS
//!    connections (about 160 KB each, 166 MB in all) and the API server as many. Watches hold a slot only until their response starts.
//! 6. kube's own layers (base URL, authentication, impersonation) over hyper's HTTP/1.1
//!    connection pool, built by [`transport`] so the whole stack clones: the retry
//!    layer needs no buffer task of its own (kube's [`kube::Client`] has one on top).
//!
//! Why adaptive by default: the kubelet's fixed 50 QPS / burst 100 made a burst of 500
//! pods reach Running at a fifth of what the API server could take. The API server
//! protects itself (API Priority and Fairness answers 429 with `Retry-After` when a flow
//! exceeds its share); a client that honours that signal, and slows down when it sees it,
//! protects an overloaded server without throttling a healthy one.

mod rate_limit;
mod retry;
mod stats;
pub mod transport;

use tower::limit::ConcurrencyLimitLayer;
use tower::retry::RetryLayer;

pub use self::rate_limit::{
    DECREASE_EVERY, Feedback, FeedbackLayer, GROWTH, RateLimit, RateLimitLayer,
};
pub use self::retry::CountingRetry;
pub use self::stats::{ApiStats, Count, CountLayer, RequestKey, classify};

/// Requests of one client awaiting their response headers at once; the rest wait
/// their turn (in order). A process at full speed keeps a few dozen in flight (300
/// pods/s × 3 requests × 20-50 ms); the API server's own default budget is 400 reads
/// and 200 writes for all its clients together.
pub const MAX_IN_FLIGHT: usize = 128;

/// Client-side limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClientLimits {
    /// client-go's token bucket: `qps` sustained, `burst` above it; a `qps` of 0 or less
    /// disables the limit. What `--kube-api-qps`/`--kube-api-burst` set.
    Fixed {
        /// Sustained requests per second.
        qps: f32,
        /// Requests allowed in a burst above the sustained rate.
        burst: u32,
    },
    /// Starts at `max_qps` (burst: two seconds of the rate), halves on each 429 (at most
    /// once per [`DECREASE_EVERY`]) down to `min_qps`, grows by [`GROWTH`] per second
    /// without a 429.
    Adaptive {
        /// The ceiling, and where the limit starts.
        max_qps: f32,
        /// The floor: what a node needs at the least (lease renewals, status).
        min_qps: f32,
    },
}

impl ClientLimits {
    /// The kubelet's fixed limits: 50 QPS, burst 100.
    pub const KUBELET: ClientLimits = ClientLimits::Fixed {
        qps: 50.0,
        burst: 100,
    };

    /// Ceiling of the default adaptive limit, per virtual node.
    pub const ADAPTIVE_MAX_QPS_PER_NODE: f32 = 1000.0;

    /// Floor of the default adaptive limit, per virtual node (never below 5 in all).
    pub const ADAPTIVE_MIN_QPS_PER_NODE: f32 = 1.0;

    /// The default for a process running `nodes` virtual nodes on one client: adaptive,
    /// between 1 and 1,000 requests per second per node (at least 5 in all).
    ///
    /// ```
    /// use vk_core::client::ClientLimits;
    /// assert_eq!(
    ///     ClientLimits::adaptive_for_nodes(2),
    ///     ClientLimits::Adaptive { max_qps: 2000.0, min_qps: 5.0 }
    /// );
    /// ```
    pub fn adaptive_for_nodes(nodes: u32) -> Self {
        let nodes = nodes.max(1) as f32;
        ClientLimits::Adaptive {
            max_qps: Self::ADAPTIVE_MAX_QPS_PER_NODE * nodes,
            min_qps: (Self::ADAPTIVE_MIN_QPS_PER_NODE * nodes).max(5.0),
        }
    }
}

impl Default for ClientLimits {
    /// Adaptive, for one node ([`ClientLimits::adaptive_for_nodes`]).
    fn default() -> Self {
        Self::adaptive_for_nodes(1)
    }
}

/// Builds a client from `config` with the rate limit, retries and request accounting.
/// Must be called within a Tokio runtime (kube's buffer runs as a task).
///
/// ```no_run
/// # async fn demo() -> Result<(), kube::Error> {
/// let config = kube::Config::infer().await.map_err(kube::Error::InferConfig)?;
/// let (client, stats) = vk_core::client::build(config, vk_core::client::ClientLimits::default())?;
/// # let _ = (client, stats);
/// # Ok(()) }
/// ```
pub fn build(
    mut config: kube::Config,
    limits: ClientLimits,
) -> Result<(kube::Client, ApiStats), kube::Error> {
    let stats = ApiStats::default();
    // kube-client's own retry layer would sit below the accounting, where the 429s it
    // absorbs are invisible; the same policy is put back above it (CountingRetry).
    config.default_retry = false;
    let limit = RateLimitLayer::new(limits).with_stats(stats.clone());
    let client = transport::builder(config)?
        .with_layer(&ConcurrencyLimitLayer::new(MAX_IN_FLIGHT))
        .with_layer(&CountLayer::new(stats.clone()))
        .with_layer(&limit.feedback())
        .with_layer(&RetryLayer::new(CountingRetry::new(stats.clone())))
        .with_layer(&limit)
        .build();
    Ok((client, stats))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use k8s_openapi::api::core::v1::Namespace;
    use kube::Api;

    use super::*;
    use crate::http::tests::{answer, serve};

    /// Through the whole stack: two 429s with `Retry-After: 0`, then the answer. The
    /// caller sees only the answer; the accounting sees all three, the retries and the cut.
    #[tokio::test]
    async fn a_429_is_retried_counted_and_slows_the_adaptive_limit() {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&calls);
        let server = serve(None, move |_request| {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    let mut response = answer(429, r#"{"kind":"Status","code":429}"#);
                    response
                        .headers_mut()
                        .insert("Retry-After", http::HeaderValue::from_static("0"));
                    response
                } else {
                    answer(
                        200,
                        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"ns"}}"#,
                    )
                }
            }
        })
        .await;
        let config = kube::Config::new(server.http_url().parse().expect("a URL"));
        let limits = ClientLimits::Adaptive {
            max_qps: 100.0,
            min_qps: 1.0,
        };
        let (client, stats) = build(config, limits).expect("a client");
        let ns = Api::<Namespace>::all(client)
            .get("ns")
            .await
            .expect("got it");
        assert_eq!(ns.metadata.name.as_deref(), Some("ns"));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(stats.retries(), 2);
        let by_code = |code| stats.total(|k| k.verb == "get" && k.code == code);
        assert_eq!((by_code(429), by_code(200)), (2, 1));
        assert_eq!(stats.rate_limit(), 50.0, "two 429s of one burst cut once");
    }

    /// Many concurrent requests: at most [`MAX_IN_FLIGHT`] reach the server at once,
    /// and all are answered.
    #[tokio::test]
    async fn requests_in_flight_are_capped() {
        let now = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (n, m) = (Arc::clone(&now), Arc::clone(&most));
        let server = serve(None, move |_request| {
            let (now, most) = (Arc::clone(&n), Arc::clone(&m));
            async move {
                let current = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(current, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                answer(
                    200,
                    r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"ns"}}"#,
                )
            }
        })
        .await;
        let config = kube::Config::new(server.http_url().parse().expect("a URL"));
        let limits = ClientLimits::Fixed { qps: 0.0, burst: 0 };
        let (client, _stats) = build(config, limits).expect("a client");
        let api = Api::<Namespace>::all(client);
        let answered = futures::future::join_all((0..3 * MAX_IN_FLIGHT).map(|_| api.get("ns")))
            .await
            .into_iter()
            .filter(Result::is_ok)
            .count();
        assert_eq!(answered, 3 * MAX_IN_FLIGHT);
        let most = most.load(Ordering::SeqCst);
        assert!(
            most <= MAX_IN_FLIGHT && most > MAX_IN_FLIGHT / 2,
            "{most} requests at the server at once"
        );
    }
}
