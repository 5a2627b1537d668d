//! The fault probe's token flood, against the authenticator directly: 600 requests
//! without valid credentials, each with a unique bearer token, first of 60 KB (over the
//! length limit: no review, nothing cached), then of 8 KB (reviewed within the rate
//! limit, rejected, cached small and briefly). The assertions are on the cache's
//! entries; the process's resident memory is reported, not asserted (other tests of
//! this binary share the process).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewStatus};
use kube::Client;
use vk_core::procfs::Process;
use vk_node_api::auth::{AuthConfig, Authenticator, TOKEN_REVIEW_BURST, TokenLimits};
use vk_node_api::rate_limit::TokenBucket;
use vk_node_api::token_cache::TokenCacheConfig;

/// A fake API server that rejects every token; counts the reviews.
fn rejecting_api_server() -> (Client, Arc<AtomicUsize>) {
    let reviews = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&reviews);
    let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        let count = Arc::clone(&count);
        async move {
            count.fetch_add(1, Ordering::SeqCst);
            let body = req.into_body().collect_bytes().await.expect("body");
            let mut review: TokenReview = serde_json::from_slice(&body).expect("a review");
            review.spec.token = None;
            review.status = Some(TokenReviewStatus {
                authenticated: Some(false),
                error: Some("invalid bearer token".into()),
                ..Default::default()
            });
            let json = serde_json::to_vec(&review).expect("json");
            Ok::<_, std::convert::Infallible>(http::Response::new(kube::client::Body::from(json)))
        }
    });
    (Client::new(service, "default"), reviews)
}

fn rss_kib() -> u64 {
    Process::current()
        .status()
        .expect("/proc/self/status")
        .vm_rss_bytes
        .expect("VmRSS")
        / 1024
}

fn bearer(i: usize, len: usize) -> http::HeaderMap {
    let mut token = format!("flood-{i:06}-");
    token.extend(std::iter::repeat_n('x', len - token.len()));
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    headers
}

#[tokio::test]
async fn six_hundred_unique_tokens_leave_the_cache_bounded() {
    let (client, reviews) = rejecting_api_server();
    // The default limits, and a limiter of this test's own with the default burst
    // and no refill, so the count of reviews does not depend on timing.
    let auth = Authenticator::new(AuthConfig::default(), "n", Some(client))
        .with_review_limiter(Arc::new(TokenBucket::new(0.0, TOKEN_REVIEW_BURST)));
    let rss_before = rss_kib();

    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..600 {
        let e = auth
            .authenticate(None, &bearer(i, 60 * 1024))
            .await
            .expect_err("never authenticated");
        *statuses.entry(e.status().as_u16()).or_insert(0) += 1;
    }
    let rss_long = rss_kib();
    assert_eq!(statuses, [(401, 600)].into());
    assert_eq!(
        reviews.load(Ordering::SeqCst),
        0,
        "60 KB tokens are not reviewed"
    );
    assert_eq!(auth.cached_tokens(), (0, 0), "nor cached");

    statuses.clear();
    for i in 0..600 {
        let e = auth
            .authenticate(None, &bearer(i, 8 * 1024))
            .await
            .expect_err("never authenticated");
        *statuses.entry(e.status().as_u16()).or_insert(0) += 1;
    }
    let rss_short = rss_kib();
    let burst = TOKEN_REVIEW_BURST as usize;
    assert_eq!(reviews.load(Ordering::SeqCst), burst);
    assert_eq!(statuses, [(401, burst), (429, 600 - burst)].into());
    assert_eq!(auth.cached_tokens(), (0, burst));
    eprintln!(
        "token flood: RSS {rss_before} KiB -> {rss_long} KiB after 600 unique 60 KB tokens -> {rss_short} KiB after 600 unique 8 KB tokens; cache (accepted, rejected) = {:?}, reviews = {}",
        auth.cached_tokens(),
        reviews.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn without_a_rate_limit_the_rejections_still_stay_within_their_bound() {
    let (client, reviews) = rejecting_api_server();
    let auth = Authenticator::new(AuthConfig::default(), "n", Some(client))
        .with_review_limiter(Arc::new(TokenBucket::new(1e9, 1_000_000)))
        .with_token_limits(TokenLimits {
            cache: TokenCacheConfig {
                max_rejected: 256,
                ..Default::default()
            },
            ..Default::default()
        });
    let rss_before = rss_kib();
    for i in 0..600 {
        let e = auth
            .authenticate(None, &bearer(i, 8 * 1024))
            .await
            .expect_err("never authenticated");
        assert_eq!(e.status(), 401);
        let (accepted, rejected) = auth.cached_tokens();
        assert!(accepted == 0 && rejected <= 256, "{rejected}");
    }
    assert_eq!(reviews.load(Ordering::SeqCst), 600);
    assert_eq!(auth.cached_tokens(), (0, 256));
    eprintln!(
        "token flood without a rate limit: RSS {rss_before} KiB -> {} KiB, cache {:?}",
        rss_kib(),
        auth.cached_tokens()
    );
}
