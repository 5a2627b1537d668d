//! The client-side rate limit: a token bucket in front of the HTTP stack, fixed (client-go's
//! QPS and burst) or adaptive (halved when the API server answers 429, grown back while it
//! does not).
//!
//! The adaptive limit is an AIMD-style controller: the API server's own flow control (API
//! Priority and Fairness, or `--max-requests-inflight`) is the authority on how much it can
//! take, and it says so with 429. A healthy server never answers 429, so the limit stays at
//! its ceiling and is never what throttles a burst; an overloaded one answers 429 and the
//! limit falls by half (at most once per [`DECREASE_EVERY`], so that one burst of
//! rejections counts once), down to a floor that still lets leases be renewed, then grows
//! by [`GROWTH`] per second without a 429.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::BoxFuture;
use http::{Response, StatusCode};
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

use super::{ApiStats, ClientLimits};

/// The adaptive limit is cut at most once per this long.
pub const DECREASE_EVERY: Duration = Duration::from_secs(1);

/// Factor the adaptive limit grows by per second without a 429.
pub const GROWTH: f64 = 1.2;

/// The adaptive limit's burst, in seconds of its rate.
const ADAPTIVE_BURST_SECONDS: f64 = 2.0;

/// A token bucket; adaptive when `adapt` is set.
#[derive(Debug)]
pub(crate) struct Bucket {
    tokens: f64,
    last: Instant,
    qps: f64,
    burst: f64,
    adapt: Option<Adapt>,
}

/// The state of the adaptive limit.
#[derive(Debug)]
struct Adapt {
    min_qps: f64,
    max_qps: f64,
    /// When the limit was last cut.
    last_cut: Option<Instant>,
    /// Since when the limit has grown (the last cut, or the last growth step).
    growing_since: Instant,
}

impl Bucket {
    /// A full bucket for `limits`.
    pub(crate) fn new(limits: ClientLimits, now: Instant) -> Self {
        match limits {
            ClientLimits::Fixed { qps, burst } => {
                let burst = f64::from(burst.max(1));
                Self {
                    tokens: burst,
                    last: now,
                    qps: f64::from(qps),
                    burst,
                    adapt: None,
                }
            }
            ClientLimits::Adaptive { max_qps, min_qps } => {
                let max_qps = f64::from(max_qps).max(f64::MIN_POSITIVE);
                let min_qps = f64::from(min_qps).clamp(f64::MIN_POSITIVE, max_qps);
                let burst = adaptive_burst(max_qps);
                Self {
                    tokens: burst,
                    last: now,
                    qps: max_qps,
                    burst,
                    adapt: Some(Adapt {
                        min_qps,
                        max_qps,
                        last_cut: None,
                        growing_since: now,
                    }),
                }
            }
        }
    }

    /// The rate now, in requests per second (0 or less: no limit).
    pub(crate) fn qps(&self) -> f64 {
        self.qps
    }

    /// Takes a token, or says how long until one is available.
    pub(crate) fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        if self.qps <= 0.0 {
            return Ok(());
        }
        self.grow(now);
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

    /// The API server answered 429: an adaptive limit is halved (once per
    /// [`DECREASE_EVERY`]) and the bucket emptied; a fixed one is left as configured.
    pub(crate) fn throttled(&mut self, now: Instant) {
        let Some(adapt) = self.adapt.as_mut() else {
            return;
        };
        adapt.growing_since = now;
        if adapt
            .last_cut
            .is_some_and(|cut| now.duration_since(cut) < DECREASE_EVERY)
        {
            return;
        }
        adapt.last_cut = Some(now);
        self.qps = (self.qps / 2.0).max(adapt.min_qps);
        self.burst = adaptive_burst(self.qps);
        self.tokens = 0.0;
        self.last = now;
    }

    /// Grows an adaptive limit by [`GROWTH`] per whole second since it last changed.
    fn grow(&mut self, now: Instant) {
        let Some(adapt) = self.adapt.as_mut() else {
            return;
        };
        if self.qps >= adapt.max_qps {
            adapt.growing_since = now;
            return;
        }
        let seconds = now.duration_since(adapt.growing_since).as_secs();
        if seconds == 0 {
            return;
        }
        let steps = i32::try_from(seconds).unwrap_or(i32::MAX);
        self.qps = (self.qps * GROWTH.powi(steps)).min(adapt.max_qps);
        self.burst = adaptive_burst(self.qps);
        adapt.growing_since += Duration::from_secs(seconds);
    }
}

fn adaptive_burst(qps: f64) -> f64 {
    (qps * ADAPTIVE_BURST_SECONDS).max(1.0)
}

/// The bucket shared by every clone of the layers, and the stats it reports its rate to.
#[derive(Debug, Clone)]
struct Shared {
    bucket: Arc<Mutex<Bucket>>,
    stats: Option<ApiStats>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Bucket> {
        self.bucket.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn report(&self, qps: f64) {
        if let Some(stats) = &self.stats {
            stats.set_rate_limit(qps.max(0.0));
        }
    }
}

/// Tower layer limiting requests to a token bucket.
///
/// ```
/// use vk_core::client::{ClientLimits, RateLimitLayer};
/// let layer = RateLimitLayer::new(ClientLimits::Fixed { qps: 50.0, burst: 100 });
/// // `layer.feedback()` goes below the retries, to see each 429 the API server sends.
/// let _feedback = layer.feedback();
/// ```
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    shared: Shared,
}

impl RateLimitLayer {
    /// A layer with `limits`; the bucket starts full.
    pub fn new(limits: ClientLimits) -> Self {
        Self {
            shared: Shared {
                bucket: Arc::new(Mutex::new(Bucket::new(limits, Instant::now()))),
                stats: None,
            },
        }
    }

    /// Reports the rate in force to `stats` ([`ApiStats::rate_limit`]).
    pub fn with_stats(mut self, stats: ApiStats) -> Self {
        stats.set_rate_limit(self.shared.lock().qps().max(0.0));
        self.shared.stats = Some(stats);
        self
    }

    /// The layer that tells this limit about the API server's 429 answers: put it below
    /// any retry layer, so that it sees every answer.
    pub fn feedback(&self) -> FeedbackLayer {
        FeedbackLayer {
            shared: self.shared.clone(),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            shared: self.shared.clone(),
            sleep: None,
            permitted: false,
        }
    }
}

/// The service made by [`RateLimitLayer`].
#[derive(Debug)]
pub struct RateLimit<S> {
    inner: S,
    shared: Shared,
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
            let (taken, qps_before, qps_after) = {
                let mut bucket = self.shared.lock();
                let before = bucket.qps();
                let taken = bucket.try_take(Instant::now());
                (taken, before, bucket.qps())
            };
            if qps_after != qps_before {
                self.shared.report(qps_after);
            }
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

/// Tower layer made by [`RateLimitLayer::feedback`].
#[derive(Debug, Clone)]
pub struct FeedbackLayer {
    shared: Shared,
}

impl<S> Layer<S> for FeedbackLayer {
    type Service = Feedback<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Feedback {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service made by [`FeedbackLayer`].
#[derive(Debug, Clone)]
pub struct Feedback<S> {
    inner: S,
    shared: Shared,
}

impl<S, Req, B> Service<Req> for Feedback<S>
where
    S: Service<Req, Response = Response<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let shared = self.shared.clone();
        self.inner
            .call(req)
            .inspect(move |result| {
                if let Ok(response) = result
                    && response.status() == StatusCode::TOO_MANY_REQUESTS
                {
                    let qps = {
                        let mut bucket = shared.lock();
                        bucket.throttled(Instant::now());
                        bucket.qps()
                    };
                    shared.report(qps);
                }
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    #[tokio::test(start_paused = true)]
    async fn the_bucket_allows_a_burst_then_the_sustained_rate() {
        let mut bucket = Bucket::new(
            ClientLimits::Fixed {
                qps: 10.0,
                burst: 3,
            },
            Instant::now(),
        );
        for _ in 0..3 {
            assert!(bucket.try_take(Instant::now()).is_ok());
        }
        let wait = bucket.try_take(Instant::now()).expect_err("empty");
        assert!(wait <= Duration::from_millis(100) && wait > Duration::from_millis(90));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(bucket.try_take(Instant::now()).is_ok());
        // Long idle refills only up to the burst.
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..3 {
            assert!(bucket.try_take(Instant::now()).is_ok());
        }
        assert!(bucket.try_take(Instant::now()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_layer_delays_requests_beyond_the_burst() {
        let layer = RateLimitLayer::new(ClientLimits::Fixed { qps: 2.0, burst: 2 });
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
        let now = Instant::now();
        let mut bucket = Bucket::new(ClientLimits::Fixed { qps: 0.0, burst: 1 }, now);
        for _ in 0..1000 {
            assert!(bucket.try_take(now).is_ok());
        }
    }

    #[test]
    fn a_fixed_limit_ignores_429s() {
        let now = Instant::now();
        let mut bucket = Bucket::new(
            ClientLimits::Fixed {
                qps: 50.0,
                burst: 100,
            },
            now,
        );
        bucket.throttled(now);
        assert_eq!(bucket.qps(), 50.0);
        assert!(bucket.try_take(now).is_ok(), "the burst is still there");
    }

    #[test]
    fn the_adaptive_limit_halves_once_per_burst_of_429s_down_to_its_floor() {
        let start = Instant::now();
        let limits = ClientLimits::Adaptive {
            max_qps: 1000.0,
            min_qps: 100.0,
        };
        let mut bucket = Bucket::new(limits, start);
        assert_eq!(bucket.qps(), 1000.0);
        // Fifty rejections of one burst count once.
        for _ in 0..50 {
            bucket.throttled(start);
        }
        assert_eq!(bucket.qps(), 500.0);
        assert!(bucket.try_take(start).is_err(), "emptied on a 429");
        bucket.throttled(start + DECREASE_EVERY);
        assert_eq!(bucket.qps(), 250.0);
        bucket.throttled(start + 2 * DECREASE_EVERY);
        assert_eq!(bucket.qps(), 125.0);
        bucket.throttled(start + 3 * DECREASE_EVERY);
        assert_eq!(bucket.qps(), 100.0, "never below the floor");
    }

    #[test]
    fn the_adaptive_limit_grows_back_while_there_is_no_429() {
        let start = Instant::now();
        let limits = ClientLimits::Adaptive {
            max_qps: 1000.0,
            min_qps: 5.0,
        };
        let mut bucket = Bucket::new(limits, start);
        for i in 0..10 {
            bucket.throttled(start + i * DECREASE_EVERY);
        }
        assert_eq!(bucket.qps(), 5.0);
        let cut = start + 9 * DECREASE_EVERY;
        // Less than a second: no growth.
        let _ = bucket.try_take(cut + Duration::from_millis(900));
        assert_eq!(bucket.qps(), 5.0);
        let _ = bucket.try_take(cut + Duration::from_secs(1));
        assert!(
            (bucket.qps() - 5.0 * GROWTH).abs() < 1e-9,
            "{}",
            bucket.qps()
        );
        // A 429 stops the growth and cuts again.
        bucket.throttled(cut + Duration::from_millis(1500));
        assert!((bucket.qps() - 5.0).abs() < 1e-9, "{}", bucket.qps());
        // Long quiet: back at the ceiling, never above.
        let _ = bucket.try_take(cut + Duration::from_secs(120));
        assert_eq!(bucket.qps(), 1000.0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_feedback_layer_cuts_the_limit_on_429_and_reports_it() {
        let stats = ApiStats::default();
        let limit = RateLimitLayer::new(ClientLimits::Adaptive {
            max_qps: 400.0,
            min_qps: 1.0,
        })
        .with_stats(stats.clone());
        assert_eq!(stats.rate_limit(), 400.0);
        let mut svc = limit
            .feedback()
            .layer(tower::service_fn(|code: u16| async move {
                Ok::<_, ()>(
                    Response::builder()
                        .status(code)
                        .body(())
                        .expect("a response"),
                )
            }));
        svc.ready()
            .await
            .expect("ready")
            .call(200)
            .await
            .expect("ok");
        assert_eq!(stats.rate_limit(), 400.0);
        svc.ready()
            .await
            .expect("ready")
            .call(429)
            .await
            .expect("ok");
        assert_eq!(stats.rate_limit(), 200.0);
    }
}
