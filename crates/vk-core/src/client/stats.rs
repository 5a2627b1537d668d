//! Request accounting: every request to the API server counted by verb, resource and
//! HTTP status, with its duration, and the retries the client made.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::BoxFuture;
use http::{Method, Request, Response};
use tower::{Layer, Service};

use crate::metrics::histogram::{DurationHistogram, HistogramSnapshot};

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
    /// Requests sent again after a 429/503/504 answer.
    retries: u64,
    /// The client-side rate limit now, in requests per second (0 = none).
    rate_limit: f64,
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

    /// Counts one request sent again (after a 429, 503 or 504 answer).
    pub(crate) fn record_retry(&self) {
        self.lock().retries += 1;
    }

    /// Requests sent again after a 429, 503 or 504 answer (each answer itself is counted
    /// in [`snapshot`](Self::snapshot) under its code).
    pub fn retries(&self) -> u64 {
        self.lock().retries
    }

    /// Records the client-side rate limit in force now.
    pub(crate) fn set_rate_limit(&self, qps: f64) {
        self.lock().rate_limit = qps;
    }

    /// The client-side rate limit in force now, in requests per second (0 = none): fixed,
    /// or where the adaptive limit stands after the API server's 429s.
    pub fn rate_limit(&self) -> f64 {
        self.lock().rate_limit
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

/// Tower layer feeding [`ApiStats`]: one count per request sent (a retried request is
/// counted once per attempt, each under the code it got).
#[derive(Debug, Clone)]
pub struct CountLayer {
    stats: ApiStats,
}

impl CountLayer {
    /// A layer counting into `stats`.
    pub fn new(stats: ApiStats) -> Self {
        Self { stats }
    }
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
#[derive(Debug, Clone)]
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
}
