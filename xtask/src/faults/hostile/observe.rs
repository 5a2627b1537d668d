//! Watching a node while it is under attack: its `/healthz` on the kubelet port and on
//! the admin listener, a normal authenticated request now and then, and the process's
//! memory and open file descriptors — until told to stop.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vk_testkit::kubelet_client::KubeletClient;

use super::super::probe::fd_kinds;
use crate::bench::procfs;
use crate::bench::stats::{LatencySummary, summarize};

/// Pause between two rounds of probes.
const PROBE_EVERY: Duration = Duration::from_millis(100);

/// Every how many rounds a normal authenticated request is made too.
const AUTHENTICATED_EVERY: u64 = 5;

/// How long one probe may take before it counts as failed.
pub const PROBE_LIMIT: Duration = Duration::from_secs(5);

/// The node under attack and how to reach it as a legitimate caller.
#[derive(Clone)]
pub struct Target {
    /// Its kubelet API port (TLS).
    pub kubelet_port: u16,
    /// Its admin listener's port (plain HTTP).
    pub admin_port: u16,
    /// The provider process.
    pub pid: u32,
    /// A kubelet API client with the cluster administrator's certificate.
    pub admin: KubeletClient,
    /// Namespace of a running pod of the node.
    pub ns: String,
    /// That pod; its container is `c`.
    pub pod: String,
}

impl Target {
    /// `GET /healthz` on the kubelet port: whether it answered 200 `ok`, and how long
    /// it took.
    pub async fn kubelet_healthz(&self) -> (bool, Duration) {
        timed(async {
            matches!(
                self.admin.get(self.kubelet_port, "/healthz").await,
                Ok((200, body)) if body == "ok"
            )
        })
        .await
    }

    /// `GET /healthz` on the admin listener.
    pub async fn admin_healthz(&self) -> (bool, Duration) {
        timed(async {
            matches!(
                vk_testkit::http::get(self.admin_port, "/healthz").await,
                Ok((200, _))
            )
        })
        .await
    }

    /// A normal authenticated request, `/pods` (listing the pod) when `round` is even,
    /// else the logs of the pod's container: whether it answered 200 as expected.
    pub async fn authenticated(&self, round: u64) -> bool {
        let (ok, _) = timed(async {
            if round.is_multiple_of(2) {
                matches!(
                    self.admin.get(self.kubelet_port, "/pods").await,
                    Ok((200, body)) if body.contains(&format!("\"{}\"", self.pod))
                )
            } else {
                let path = format!("/containerLogs/{}/{}/c?tailLines=5", self.ns, self.pod);
                matches!(self.admin.get(self.kubelet_port, &path).await, Ok((200, _)))
            }
        })
        .await;
        ok
    }

    /// The process's resources now.
    pub fn resources(&self) -> Resources {
        let (sockets, others) = fd_kinds(self.pid);
        Resources {
            rss_bytes: procfs::sample(self.pid).map_or(0, |s| s.rss_bytes),
            sockets,
            other_fds: others,
        }
    }
}

/// Whether `probe` succeeded within [`PROBE_LIMIT`], and how long it took.
async fn timed(probe: impl Future<Output = bool>) -> (bool, Duration) {
    let start = Instant::now();
    let ok = tokio::time::timeout(PROBE_LIMIT, probe)
        .await
        .unwrap_or(false);
    (ok, start.elapsed())
}

/// Memory and file descriptors of the process at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// Resident set size.
    pub rss_bytes: u64,
    /// Open sockets.
    pub sockets: u64,
    /// Other open file descriptors.
    pub other_fds: u64,
}

impl Resources {
    /// All open file descriptors.
    pub fn fds(self) -> u64 {
        self.sockets + self.other_fds
    }

    /// The larger of each of these and `other`'s.
    pub fn max(self, other: Resources) -> Resources {
        Resources {
            rss_bytes: self.rss_bytes.max(other.rss_bytes),
            sockets: self.sockets.max(other.sockets),
            other_fds: self.other_fds.max(other.other_fds),
        }
    }

    /// The measurements as JSON (RSS in MB).
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "rss_mb": mb(self.rss_bytes),
            "sockets": self.sockets,
            "other_fds": self.other_fds,
        })
    }
}

/// Bytes as MB.
pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// One probe's latencies and failures.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    /// Latencies of the probes that succeeded.
    pub ok: Vec<Duration>,
    /// Probes that failed or took longer than [`PROBE_LIMIT`].
    pub failed: usize,
}

impl Latencies {
    fn add(&mut self, (ok, took): (bool, Duration)) {
        if ok {
            self.ok.push(took);
        } else {
            self.failed += 1;
        }
    }

    /// Percentiles of the successful probes.
    pub fn summary(&self) -> LatencySummary {
        summarize(&self.ok)
    }

    /// The 99th percentile of the successful probes.
    pub fn p99(&self) -> Duration {
        Duration::from_secs_f64(self.summary().p99_ms / 1000.0)
    }

    /// `p50 12 ms, p99 80 ms (120 probes, 0 failed)`.
    pub fn describe(&self) -> String {
        let s = self.summary();
        format!(
            "p50 {:.0} ms, p99 {:.0} ms ({} probes, {} failed)",
            s.p50_ms,
            s.p99_ms,
            s.count + self.failed,
            self.failed
        )
    }

    /// The measurements as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let s = self.summary();
        serde_json::json!({
            "probes": s.count + self.failed,
            "failed": self.failed,
            "p50_ms": s.p50_ms,
            "p99_ms": s.p99_ms,
            "max_ms": s.max_ms,
        })
    }
}

/// What an [`Observer`] saw.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// `/healthz` on the kubelet port.
    pub kubelet_healthz: Latencies,
    /// `/healthz` on the admin listener.
    pub admin_healthz: Latencies,
    /// Normal authenticated requests made.
    pub authenticated: usize,
    /// Of those, the ones that answered 200 as expected.
    pub authenticated_ok: usize,
    /// The largest memory and descriptor counts sampled.
    pub peak: Resources,
}

impl Observed {
    /// Whether both `/healthz` answered every probe with a p99 within `limit`, and
    /// every authenticated request (at least one) answered.
    pub fn answered(&self, limit: Duration) -> bool {
        let healthz = |l: &Latencies| l.failed == 0 && !l.ok.is_empty() && l.p99() <= limit;
        healthz(&self.kubelet_healthz)
            && healthz(&self.admin_healthz)
            && self.authenticated > 0
            && self.authenticated_ok == self.authenticated
    }

    /// The figures of a row.
    pub fn describe(&self) -> String {
        format!(
            "kubelet /healthz {}; admin /healthz {}; authenticated {}/{} answered",
            self.kubelet_healthz.describe(),
            self.admin_healthz.describe(),
            self.authenticated_ok,
            self.authenticated
        )
    }

    /// The measurements as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kubelet_healthz": self.kubelet_healthz.to_json(),
            "admin_healthz": self.admin_healthz.to_json(),
            "authenticated": self.authenticated,
            "authenticated_ok": self.authenticated_ok,
            "peak": self.peak.to_json(),
        })
    }
}

/// Probes a [`Target`] in the background until [`finish`](Observer::finish)ed.
pub struct Observer {
    stop: CancellationToken,
    task: JoinHandle<Observed>,
}

impl Observer {
    /// Starts probing `target`: both `/healthz` at once, then every
    /// [`AUTHENTICATED_EVERY`] rounds an authenticated request, then a resource sample;
    /// [`PROBE_EVERY`] between rounds.
    pub fn start(target: Target) -> Self {
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut seen = Observed::default();
            for round in 0u64.. {
                let (kubelet, admin) =
                    tokio::join!(target.kubelet_healthz(), target.admin_healthz());
                seen.kubelet_healthz.add(kubelet);
                seen.admin_healthz.add(admin);
                if round % AUTHENTICATED_EVERY == 0 {
                    seen.authenticated += 1;
                    if target.authenticated(round / AUTHENTICATED_EVERY).await {
                        seen.authenticated_ok += 1;
                    }
                }
                seen.peak = seen.peak.max(target.resources());
                tokio::select! {
                    () = stopped.cancelled() => break,
                    () = tokio::time::sleep(PROBE_EVERY) => {}
                }
            }
            seen
        });
        Self { stop, task }
    }

    /// Stops probing (after the round under way) and returns what was seen.
    pub async fn finish(self) -> Observed {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latencies(ms: &[u64], failed: usize) -> Latencies {
        Latencies {
            ok: ms.iter().copied().map(Duration::from_millis).collect(),
            failed,
        }
    }

    fn observed(kubelet: Latencies, authenticated: (usize, usize)) -> Observed {
        Observed {
            kubelet_healthz: kubelet,
            admin_healthz: latencies(&[1, 2], 0),
            authenticated: authenticated.1,
            authenticated_ok: authenticated.0,
            peak: Resources::default(),
        }
    }

    #[test]
    fn answered_needs_every_probe_and_request_and_a_p99_within_the_limit() {
        let limit = Duration::from_secs(1);
        assert!(observed(latencies(&[10, 20, 900], 0), (3, 3)).answered(limit));
        assert!(
            !observed(latencies(&[10, 20, 1500], 0), (3, 3)).answered(limit),
            "slow"
        );
        assert!(
            !observed(latencies(&[10, 20], 1), (3, 3)).answered(limit),
            "a failed probe"
        );
        assert!(
            !observed(latencies(&[10, 20], 0), (2, 3)).answered(limit),
            "an authenticated request failed"
        );
        assert!(
            !observed(latencies(&[10], 0), (0, 0)).answered(limit),
            "no authenticated request made"
        );
        assert!(
            !observed(latencies(&[], 0), (1, 1)).answered(limit),
            "no probe made"
        );
    }

    #[test]
    fn latencies_describe_percentiles_and_failures() {
        let l = latencies(&[10, 20, 30, 40], 2);
        assert_eq!(l.p99(), Duration::from_millis(40));
        assert_eq!(l.describe(), "p50 20 ms, p99 40 ms (6 probes, 2 failed)");
    }

    #[test]
    fn the_peak_takes_each_largest_value() {
        let a = Resources {
            rss_bytes: 10,
            sockets: 5,
            other_fds: 1,
        };
        let b = Resources {
            rss_bytes: 7,
            sockets: 9,
            other_fds: 1,
        };
        assert_eq!(
            a.max(b),
            Resources {
                rss_bytes: 10,
                sockets: 9,
                other_fds: 1
            }
        );
        assert_eq!(a.max(b).fds(), 10);
    }
}
