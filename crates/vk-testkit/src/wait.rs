//! Waiting for a condition instead of sleeping.
//!
//! A test that sleeps "long enough" for something to happen is slow when the machine is
//! fast and flaky when it is slow. Every wait here polls a probe until it reports the
//! condition, fails after a deadline, and names in its panic message what it waited
//! for (with the last error seen, for [`eventually_ok`]).
//!
//! ```no_run
//! # async fn demo(port: u16) {
//! use vk_testkit::wait::eventually;
//! eventually("the admin listener reports ready", || async move {
//!     matches!(vk_testkit::http::get(port, "/readyz").await, Ok((200, _))).then_some(())
//! })
//! .await;
//! # }
//! ```

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// How long waits last before failing. Generous on purpose: these machines are shared
/// and slow sometimes; a test never asserts speed.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// Pause between two probes.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Polls `probe` until it yields a value, failing after [`PATIENCE`] with `what`.
pub async fn eventually<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(what, PATIENCE, probe).await
}

/// As [`eventually`], failing after `patience`.
pub async fn eventually_within<T, F, Fut>(what: &str, patience: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {patience:?} waiting for: {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Polls `attempt` until it succeeds, failing after [`PATIENCE`] with `what` and the
/// last error; for operations that fail until something else is ready (creating a pod
/// before the namespace's ServiceAccount exists, a port before its listener is up).
///
/// ```no_run
/// # async fn demo(pods: kube::Api<k8s_openapi::api::core::v1::Pod>, pod: k8s_openapi::api::core::v1::Pod) {
/// let created = vk_testkit::wait::eventually_ok("create pod p", || {
///     let (pods, pod) = (pods.clone(), pod.clone());
///     async move { pods.create(&Default::default(), &pod).await }
/// })
/// .await;
/// # }
/// ```
pub async fn eventually_ok<T, E, F, Fut>(what: &str, attempt: F) -> T
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    retry_within(what, PATIENCE, attempt).await
}

async fn retry_within<T, E, F, Fut>(what: &str, patience: Duration, mut attempt: F) -> T
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let error = match attempt().await {
            Ok(v) => return v,
            Err(e) => e,
        };
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {patience:?} waiting for: {what}; last error: {error}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Awaits `future`, failing after [`PATIENCE`] with `what`; for a single event that
/// arrives on its own (a channel message, a task's end) rather than one to poll for.
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    within_for(what, PATIENCE, future).await
}

async fn within_for<T>(what: &str, patience: Duration, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(patience, future).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {patience:?} waiting for: {what}"),
    }
}

/// As [`eventually_within`] for code that is not async (plain `#[test]`s): blocks the
/// calling thread between probes, so never call it from async code.
pub fn eventually_blocking<T>(
    what: &str,
    patience: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + patience;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if std::time::Instant::now() >= deadline {
            panic!("timed out after {patience:?} waiting for: {what}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    const SHORT: Duration = Duration::from_millis(300);

    #[tokio::test]
    async fn polls_until_the_probe_yields() {
        let calls = AtomicU32::new(0);
        let got = eventually("the third call", || async {
            (calls.fetch_add(1, Ordering::SeqCst) == 2).then_some("yes")
        })
        .await;
        assert_eq!(got, "yes");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for: the impossible")]
    async fn fails_after_the_deadline_naming_the_condition() {
        eventually_within("the impossible", SHORT, || async { None::<()> }).await;
    }

    #[tokio::test]
    async fn retries_until_the_attempt_succeeds() {
        let calls = AtomicU32::new(0);
        let got = retry_within("the second attempt", SHORT * 10, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err("not yet"),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(got, 1);
    }

    #[tokio::test]
    #[should_panic(expected = "last error: still refused")]
    async fn retries_report_the_last_error() {
        retry_within("a refusing operation", SHORT, || async {
            Err::<(), _>("still refused")
        })
        .await;
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for: a message that never comes")]
    async fn within_fails_after_the_deadline() {
        let (_tx, rx) = tokio::sync::oneshot::channel::<()>();
        let _ = within_for("a message that never comes", SHORT, rx).await;
    }

    #[test]
    fn blocking_waits_poll_too() {
        let mut calls = 0;
        let got = eventually_blocking("the second call", Duration::from_secs(5), || {
            calls += 1;
            (calls == 2).then_some(calls)
        });
        assert_eq!(got, 2);
    }
}
