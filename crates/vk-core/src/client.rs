//! Building the Kubernetes client every controller of a process shares: a client-side
//! rate limit (QPS and burst, like client-go's) and request accounting.
//!
//! kube-rs has no client-side rate limiter; without one a burst of pods turns into a
//! burst of API calls. We add a token bucket in front of the HTTP stack. Defaults match
//! the kubelet (50 QPS, burst 100); watches count once, when they are opened.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::BoxFuture;
use http::{Method, Request, Response};
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

use crate::metrics::histogram::{DurationHistogram, HistogramSnapshot};

/// Client-side limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientLimits {
    /// Sustained requests per second; 0 or less disables the limit.
    pub qps: f32,
    /// Requests allowed in a burst above the sustained rate.
    pub burst: u32,
}

impl Default for ClientLimits {
    /// The kubelet's defaults: 50 QPS, burst 100.
    fn default() -> Self {
        Self {
            qps: 50.0,
            burst: 100,
        }
    }
}

/// Builds a client from `config` with the rate limit and request accounting.
///
/// ```no_run
/// # async fn demo() -> Result<(), kube::Error> {
/// let config = kube::Config::infer().await.map_err(kube::Error::InferConfig)?;
/// let (client, stats) = vk_core::client::build(config, vk_core::client::ClientLimits::default())?;
/// # let _ = (client, stats);
/// # Ok(()) }
/// ```
pub fn build(
    config: kube::Config,
    limits: ClientLimits,
) -> Result<(kube::Client, ApiStats), kube::Error> {
    let stats = ApiStats::default();
    let client = kube::client::ClientBuilder::try_from(config)?
        .with_layer(&RateLimitLayer::new(limits))
        .with_layer(&CountLayer {
            stats: stats.clone(),
        })
        .build();
    Ok((client, stats))
}

/// A token bucket shared by every clone of the layer.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    qps: f64,
    burst: f64,
}

impl Bucket {
    /// Takes a token, or says how long until one is available.
    fn try_take(&mut self) -> Result<(), Duration> {
        if self.qps <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.qps))
        }
    }
}

/// Tower layer limiting requests to a token bucket.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    bucket: Arc<Mutex<Bucket>>,
}

impl RateLimitLayer {
    /// A layer with `limits`; the bucket starts full.
    pub fn new(limits: ClientLimits) -> Self {
        let burst = f64::from(limits.burst.max(1));
        Self {
            bucket: Arc::new(Mutex::new(Bucket {
                tokens: burst,
                last: Instant::now(),
                qps: f64::from(limits.qps),
                burst,
            })),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            bucket: Arc::clone(&self.bucket),
            sleep: None,
            permitted: false,
        }
    }
}

/// The service made by [`RateLimitLayer`].
#[derive(Debug)]
pub struct RateLimit<S> {
    inner: S,
    bucket: Arc<Mutex<Bucket>>,
    sleep: Option<Pin<Box<Sleep>>>,
    permitted: bool,
}

impl<S, Req> Service<Req> for RateLimit<S>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        loop {
            if self.permitted {
                return self.inner.poll_ready(cx);
            }
            if let Some(sleep) = self.sleep.as_mut() {
                ready!(sleep.as_mut().poll(cx));
                self.sleep = None;
            }
            let taken = self
                .bucket
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .try_take();
            match taken {
                Ok(()) => self.permitted = true,
                Err(wait) => self.sleep = Some(Box::pin(tokio::time::sleep(wait))),
            }
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.permitted = false;
        self.inner.call(req)
    }
}

/// One bucket of [`ApiStats`]: verb, resource (with subresource) and HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestKey {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`.
    pub verb: &'static str,
    /// `pods`, `pods/status`, `leases`, `events`... (`other` for non-resource paths).
    pub resource: String,
    /// HTTP status code, or 0 for a transport error.
    pub code: u16,
}

impl RequestKey {
    /// Whether the verb modifies state.
    pub fn is_write(&self) -> bool {
        matches!(self.verb, "create" | "update" | "patch" | "delete")
    }
}

/// Counts of API requests made through a client, by verb, resource and status code,
/// and their durations by verb and resource. Cheap to clone; clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct ApiStats {
    inner: Arc<Mutex<Recorded>>,
}

#[derive(Debug, Default)]
struct Recorded {
    counts: BTreeMap<RequestKey, u64>,
    /// verb → resource → durations (nested so a lookup needs no owned key).
    durations: BTreeMap<&'static str, BTreeMap<String, DurationHistogram>>,
}

impl ApiStats {
    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, key: RequestKey, elapsed: Duration) {
        let mut recorded = self.lock();
        let by_resource = recorded.durations.entry(key.verb).or_default();
        match by_resource.get(key.resource.as_str()) {
            Some(h) => h.observe(elapsed),
            None => by_resource
                .entry(key.resource.clone())
                .or_default()
                .observe(elapsed),
        }
        *recorded.counts.entry(key).or_insert(0) += 1;
    }

    /// Records one request (for tests of code that reads the counts).
    #[doc(hidden)]
    pub fn record_for_test(&self, key: RequestKey) {
        self.record(key, Duration::from_millis(1));
    }

    /// A copy of all counts.
    pub fn snapshot(&self) -> BTreeMap<RequestKey, u64> {
        self.lock().counts.clone()
    }

    /// Request durations (until the response headers arrived) by verb and resource.
    pub fn durations(&self) -> Vec<(&'static str, String, HistogramSnapshot)> {
        self.lock()
            .durations
            .iter()
            .flat_map(|(verb, by_resource)| {
                by_resource
                    .iter()
                    .map(|(resource, h)| (*verb, resource.clone(), h.snapshot()))
            })
            .collect()
    }

    /// Total requests matching `filter`.
    pub fn total(&self, filter: impl Fn(&RequestKey) -> bool) -> u64 {
        self.snapshot()
            .iter()
            .filter(|(k, _)| filter(k))
            .map(|(_, v)| v)
            .sum()
    }
}

/// Tower layer feeding [`ApiStats`].
#[derive(Debug, Clone)]
pub struct CountLayer {
    stats: ApiStats,
}

impl<S> Layer<S> for CountLayer {
    type Service = Count<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Count {
            inner,
            stats: self.stats.clone(),
        }
    }
}

/// The service made by [`CountLayer`].
#[derive(Debug)]
pub struct Count<S> {
    inner: S,
    stats: ApiStats,
}

impl<S, B, RB> Service<Request<B>> for Count<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (verb, resource) = classify(req.method(), req.uri().path(), req.uri().query());
        let stats = self.stats.clone();
        let started = std::time::Instant::now();
        self.inner
            .call(req)
            .map(move |result| {
                let code = result.as_ref().map(|r| r.status().as_u16()).unwrap_or(0);
                let key = RequestKey {
                    verb,
                    resource,
                    code,
                };
                stats.record(key, started.elapsed());
                result
            })
            .boxed()
    }
}

/// The Kubernetes verb and resource of a request, from its method and path.
pub fn classify(method: &Method, path: &str, query: Option<&str>) -> (&'static str, String) {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest: &[&str] = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => &[],
    };
    let rest = match rest {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let (resource, has_name) = match rest {
        [] => ("other".to_owned(), false),
        [r] => ((*r).to_owned(), false),
        [r, _name] => ((*r).to_owned(), true),
        [r, _name, sub, ..] => (format!("{r}/{sub}"), true),
    };
    let watching = query.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let verb = match *method {
        Method::GET if watching => "watch",
        Method::GET if has_name => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "other",
    };
    (verb, resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_requests_like_the_apiserver_audit_log() {
        let cases = [
            (
                Method::GET,
                "/api/v1/namespaces/ns/pods",
                Some("fieldSelector=x"),
                "list",
                "pods",
            ),
            (
                Method::GET,
                "/api/v1/pods",
                Some("watch=true&x=1"),
                "watch",
                "pods",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/ns/pods/p",
                None,
                "get",
                "pods",
            ),
            (
                Method::PATCH,
                "/api/v1/namespaces/ns/pods/p/status",
                None,
                "patch",
                "pods/status",
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/ns/pods/p",
                None,
                "delete",
                "pods",
            ),
            (
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n",
                None,
                "update",
                "leases",
            ),
            (
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/ns/events",
                None,
                "create",
                "events",
            ),
            (Method::GET, "/api/v1/nodes/n", None, "get", "nodes"),
            (
                Method::GET,
                "/api/v1/namespaces/ns",
                None,
                "get",
                "namespaces",
            ),
            (Method::GET, "/readyz", None, "list", "other"),
        ];
        for (m, path, q, verb, resource) in cases {
            assert_eq!(
                classify(&m, path, q),
                (verb, resource.to_owned()),
                "{m} {path}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_allows_a_burst_then_the_sustained_rate() {
        let mut bucket = Bucket {
            tokens: 3.0,
            last: Instant::now(),
            qps: 10.0,
            burst: 3.0,
        };
        for _ in 0..3 {
            assert!(bucket.try_take().is_ok());
        }
        let wait = bucket.try_take().expect_err("empty");
        assert!(wait <= Duration::from_millis(100) && wait > Duration::from_millis(90));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(bucket.try_take().is_ok());
        // Long idle refills only up to the burst.
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..3 {
            assert!(bucket.try_take().is_ok());
        }
        assert!(bucket.try_take().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_layer_delays_requests_beyond_the_burst() {
        use tower::ServiceExt as _;
        let layer = RateLimitLayer::new(ClientLimits { qps: 2.0, burst: 2 });
        let mut svc = layer.layer(tower::service_fn(|_: ()| async {
            Ok::<_, ()>(Instant::now())
        }));
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..4 {
            let t = svc
                .ready()
                .await
                .expect("ready")
                .call(())
                .await
                .expect("call");
            times.push(t.duration_since(start));
        }
        assert_eq!(times[0], Duration::ZERO);
        assert_eq!(times[1], Duration::ZERO);
        assert!(times[2] >= Duration::from_millis(499), "{times:?}");
        assert!(times[3] >= Duration::from_millis(999), "{times:?}");
    }

    #[test]
    fn unlimited_when_qps_is_zero() {
        let mut bucket = Bucket {
            tokens: 1.0,
            last: Instant::now(),
            qps: 0.0,
            burst: 1.0,
        };
        for _ in 0..1000 {
            assert!(bucket.try_take().is_ok());
        }
    }
}
