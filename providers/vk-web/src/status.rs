//! Pod status from the bridge to the core: pushed by a v2 bridge's `GET /v2/watch`,
//! polled with `GET /getPods` from a v1 bridge.
//!
//! The loop runs for as long as the provider exists. A broken or silent watch (no
//! line, not even a heartbeat, for [`WATCH_IDLE`]) is reopened with backoff; the
//! bridge sends every pod's current status when a watch opens, so nothing is missed
//! across reconnections.

use std::sync::Weak;
use std::time::Duration;

use futures::StreamExt as _;
use vk_core::PodStatusSink;

use crate::error::WebError;
use crate::provider::{Inner, pause};
use crate::v2::{self, WatchEvent, feature, parse_watch_line};

/// How long a watch may stay silent before it is reopened (bridges send a heartbeat
/// at least every 15 s).
pub const WATCH_IDLE: Duration = Duration::from_secs(60);

const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The status loop (see the module docs).
pub(crate) async fn run(inner: Weak<Inner>, sink: PodStatusSink) {
    let mut backoff = BACKOFF_START;
    let mut failed = false;
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let interval = strong.bridge.config.status_poll_interval;
        let protocol = if failed {
            strong.refresh_protocol().await
        } else {
            strong.protocol().await
        };
        let wait = match protocol {
            Ok(p) if p.has(feature::WATCH) => {
                match watch(&strong, &sink).await {
                    Ok(0) => tracing::debug!("the bridge closed the status watch"),
                    Ok(_) => backoff = BACKOFF_START,
                    Err(e) => tracing::warn!(error = %e, "status watch failed; reopening"),
                }
                // Ask again: the bridge may have been replaced by another version.
                failed = true;
                let wait = backoff;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                wait
            }
            Ok(_) => {
                failed = match poll(&strong, &sink).await {
                    Ok(()) => false,
                    Err(e) => {
                        tracing::warn!(error = %e, "polling pod status failed");
                        true
                    }
                };
                interval
            }
            Err(e) => {
                tracing::warn!(error = %e, "the bridge does not answer");
                failed = true;
                interval
            }
        };
        drop(strong);
        if !pause(&inner, wait).await {
            return;
        }
    }
}

/// One `GET /getPods`: every pod's status to the core (which skips unchanged ones).
async fn poll(inner: &Inner, sink: &PodStatusSink) -> Result<(), WebError> {
    for pod in inner.bridge.get_pods().await? {
        if pod.status.is_some() {
            sink.notify(pod);
        }
    }
    Ok(())
}

/// Follows one watch until it ends; returns the number of status events.
async fn watch(inner: &Inner, sink: &PodStatusSink) -> Result<u64, WebError> {
    let stream = inner.bridge.watch().await?;
    let mut lines = Box::pin(v2::lines(stream));
    let mut events = 0;
    loop {
        let line = match tokio::time::timeout(WATCH_IDLE, lines.next()).await {
            Err(_) => {
                return Err(WebError::BadMessage {
                    call: "watch pod status".into(),
                    route: v2::WATCH,
                    reason: format!("nothing received for {WATCH_IDLE:?}"),
                });
            }
            Ok(None) => return Ok(events),
            Ok(Some(line)) => {
                line.map_err(|e| WebError::call("watch pod status", v2::read_error(v2::WATCH, &e)))?
            }
        };
        match parse_watch_line(&line) {
            Ok(Some(WatchEvent::Status { pod })) => {
                events += 1;
                sink.notify(*pod);
            }
            Ok(Some(WatchEvent::Lost { namespace, name })) => {
                tracing::warn!(pod.namespace = %namespace, pod.name = %name, "the bridge lost a pod");
                sink.notify_gone(&namespace, &name);
            }
            Ok(Some(WatchEvent::Deleted { .. } | WatchEvent::Heartbeat) | None) => {}
            Err(reason) => {
                tracing::warn!(route = v2::WATCH, %reason, "skipping a watch event that is not valid JSON");
            }
        }
    }
}
