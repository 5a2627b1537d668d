//! Hostile clients on the kubelet port (issue 17): the release vk-mock's kubelet API,
//! served with the cluster's kubelet serving certificate, is attacked by each of
//!
//! * 200 TCP connections that never send a byte (slowloris),
//! * 200 half-open TLS handshakes (the start of a ClientHello, then nothing),
//! * 200 TLS connections through the handshake that never send a request,
//! * requests with oversized heads (one header of 64 KiB, 256 KiB, 1 MiB),
//! * path traversal in container and pod names (`..%2f..%2fetc%2fpasswd`...),
//! * huge, negative and unparsable query values (`tailLines=-1`,
//!   `limitBytes=99999999999999999999`, `sinceSeconds=-5`...),
//! * batches of 600 requests each with a unique 60 KiB bearer token,
//!
//! in turn, then all together; the attacks of quick requests go on, round after round,
//! for at least 10 s. Throughout each, the suite probes `/healthz` on the
//! kubelet port (with the administrator's client certificate) and on the admin
//! listener, makes a normal authenticated request (`/pods`, the pod's logs) every
//! half second, and samples the process's memory and open file descriptors.
//!
//! Rows: the answers during each attack (both `/healthz` p99 within 1 s, nothing
//! failed), the server closing the silent connections within its own timeouts, every
//! bad request answered 4xx (an oversized head may instead be closed unanswered),
//! nothing of a system file in any answer, no panic in the log, open file descriptors
//! back to the baseline within the server's idle timeout, RSS back within 20 MB of the
//! baseline and its peak bounded.

mod attack;
mod observe;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use tokio::time::Instant;
use vk_node_api::server::ServeOptions;
use vk_testkit::kubelet_client::KubeletClient;

use self::attack::{Answers, Held, Silence, client_error};
use self::observe::{Observed, Observer, Resources, Target, mb};
use super::Env;
use super::probe::{is_ready, time_until};
use super::report::{count, holds, within};
use super::rig::{ProviderSetup, Rig};
use crate::bench::report::ScenarioResult;
use crate::bench::scenarios::names;

/// Silent connections of each kind.
const SILENT: usize = 200;
/// Requests with an oversized head in a round.
const OVERSIZED: usize = 30;
/// How many times each traversal path and each bad query is sent in a round.
const REPEAT: usize = 3;
/// Requests of a batch of the token flood.
const TOKENS: usize = 600;

/// The longest `/healthz` may take at the 99th percentile during an attack.
const HEALTHZ_P99: Duration = Duration::from_secs(1);
/// How much more memory the process may hold once the attack is over.
const RSS_AFTER_TOLERANCE_MB: f64 = 20.0;
/// How much more memory the process may hold at the worst of the attack (600
/// connections held at once, heads of up to 64 KiB buffered).
const RSS_PEAK_TOLERANCE_MB: f64 = 100.0;
/// Open file descriptors that may remain above the baseline once the attack is over
/// (the API client may have opened a connection meanwhile).
const FD_TOLERANCE: u64 = 2;
/// How long past a server timeout a silent connection may stay open (scheduling on a
/// loaded machine; the server checks its timers when its tasks run).
const TIMEOUT_SLACK: Duration = Duration::from_secs(5);
/// How long the attacks of a few quick requests go on (round after round), for the
/// probes to see enough of them.
const MIN_REQUEST_PHASE: Duration = Duration::from_secs(10);
/// How long the baseline is probed before the attacks.
const BASELINE: Duration = Duration::from_secs(5);

/// One attack (or all of them at once) and what was seen while it ran.
struct Phase {
    name: &'static str,
    observed: Observed,
    took: Duration,
}

/// The phases run so far, each observed on `target`.
struct Phases<'a> {
    target: &'a Target,
    done: Vec<Phase>,
}

impl Phases<'_> {
    /// Runs `attack` while an [`Observer`] watches the target; records the phase and
    /// returns what the attack got.
    async fn phase<T>(&mut self, name: &'static str, attack: impl Future<Output = T>) -> T {
        eprintln!("    {name}");
        let start = Instant::now();
        let watch = Observer::start(self.target.clone());
        let got = attack.await;
        let observed = watch.finish().await;
        eprintln!("    {name}: {}", observed.describe());
        self.done.push(Phase {
            name,
            observed,
            took: start.elapsed(),
        });
        got
    }
}

/// What the attacks themselves got (alone, together, or both summed).
#[derive(Default)]
struct Outcomes {
    idle_tcp: Held,
    partial_hello: Held,
    silent_tls: Held,
    oversized: Answers,
    traversal: Answers,
    queries: Answers,
    tokens: Answers,
}

impl Outcomes {
    /// Adds `other`'s counts to these.
    fn merge(&mut self, other: &Outcomes) {
        self.idle_tcp.merge(other.idle_tcp);
        self.partial_hello.merge(other.partial_hello);
        self.silent_tls.merge(other.silent_tls);
        self.oversized.merge(&other.oversized);
        self.traversal.merge(&other.traversal);
        self.queries.merge(&other.queries);
        self.tokens.merge(&other.tokens);
    }

    /// The measurements as JSON.
    fn to_json(&self) -> serde_json::Value {
        json!({
            "idle_tcp": self.idle_tcp.to_json(),
            "half_open_tls": self.partial_hello.to_json(),
            "silent_tls": self.silent_tls.to_json(),
            "oversized_heads": self.oversized.summary(),
            "path_traversal": self.traversal.summary(),
            "bad_queries": self.queries.summary(),
            "tokens": self.tokens.summary(),
        })
    }
}

/// The attacks, with the clients and the server's timeouts they need.
struct Attacker {
    port: u16,
    /// Authenticated as the cluster administrator.
    admin: KubeletClient,
    /// No client certificate.
    anonymous: KubeletClient,
    traversal: Vec<String>,
    queries: Vec<String>,
    server: ServeOptions,
    /// Bearer tokens sent so far (the next one is unique).
    tokens_sent: AtomicUsize,
}

impl Attacker {
    async fn hold(&self, silence: Silence) -> Held {
        let timeout = match silence {
            Silence::Tcp | Silence::PartialHello => self.server.handshake_timeout,
            Silence::Tls => self.server.header_read_timeout,
        };
        attack::hold(
            silence,
            SILENT,
            self.port,
            &self.anonymous,
            timeout + TIMEOUT_SLACK,
        )
        .await
    }

    async fn oversized(&self) -> Answers {
        for_at_least(MIN_REQUEST_PHASE, || {
            attack::oversized_heads(&self.anonymous, self.port, OVERSIZED)
        })
        .await
    }

    async fn traversal(&self) -> Answers {
        for_at_least(MIN_REQUEST_PHASE, || {
            attack::bad_paths(&self.admin, self.port, &self.traversal, REPEAT)
        })
        .await
    }

    async fn queries(&self) -> Answers {
        for_at_least(MIN_REQUEST_PHASE, || {
            attack::bad_paths(&self.admin, self.port, &self.queries, REPEAT)
        })
        .await
    }

    /// Batches of [`TOKENS`] requests, each token never sent before.
    async fn tokens(&self) -> Answers {
        for_at_least(MIN_REQUEST_PHASE, || {
            let first = self.tokens_sent.fetch_add(TOKENS, Ordering::Relaxed);
            attack::token_flood(&self.anonymous, self.port, first..first + TOKENS)
        })
        .await
    }
}

/// Runs `round` again and again until `at_least` has passed (once at least); the
/// answers of every round.
async fn for_at_least<F, Fut>(at_least: Duration, round: F) -> Answers
where
    F: Fn() -> Fut,
    Fut: Future<Output = Answers>,
{
    let start = Instant::now();
    let mut all = Answers::default();
    loop {
        all.merge(&round().await);
        if start.elapsed() >= at_least {
            return all;
        }
    }
}

/// The scenario: a node with one running pod, attacked on its kubelet port.
pub async fn hostile(env: &Env) -> anyhow::Result<ScenarioResult> {
    let setup = ProviderSetup {
        kubelet_tls: true,
        ..Default::default()
    };
    let rig = Rig::start(env, "hostile", &setup).await?;
    let result = hostile_on(env, &rig).await;
    rig.teardown().await;
    result
}

async fn hostile_on(env: &Env, rig: &Rig) -> anyhow::Result<ScenarioResult> {
    let pod = names("h", 1);
    rig.create_pods(&pod, Duration::from_secs(120)).await?;
    rig.wait_running("hostile", &pod, Duration::from_secs(120))
        .await
        .ok_or_else(|| anyhow::anyhow!("the pod did not run"))?;
    let pki = env.cluster.layout().pki();
    let read = |p: std::path::PathBuf| {
        std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
    };
    let ca = read(pki.ca().cert)?;
    let admin = KubeletClient::new(
        &ca,
        Some((&read(pki.admin().cert)?, &read(pki.admin().key)?)),
    )?;
    let target = Target {
        kubelet_port: rig.kubelet_port,
        admin_port: rig.agent.metrics_port,
        pid: rig.agent.pid(),
        admin: admin.clone(),
        ns: rig.ns.clone(),
        pod: pod[0].clone(),
    };
    // The first authenticated requests fill the authorization cache.
    for round in 0..4 {
        anyhow::ensure!(
            target.authenticated(round).await,
            "the kubelet port does not answer an authenticated request (round {round})"
        );
    }
    let attacker = Attacker {
        port: rig.kubelet_port,
        admin,
        anonymous: KubeletClient::new(&ca, None)?,
        traversal: attack::traversal_paths(&rig.ns, &pod[0]),
        queries: attack::bad_query_paths(&rig.ns, &pod[0]),
        server: ServeOptions::default(),
        tokens_sent: AtomicUsize::new(0),
    };

    eprintln!("    baseline: probing for {} s", BASELINE.as_secs());
    let before = target.resources();
    let watch = Observer::start(target.clone());
    tokio::time::sleep(BASELINE).await;
    let baseline = watch.finish().await;

    let mut alone = Outcomes::default();
    let mut run = Phases {
        target: &target,
        done: Vec::new(),
    };
    let a = &attacker;
    alone.idle_tcp = run
        .phase("200 idle TCP connections", a.hold(Silence::Tcp))
        .await;
    alone.partial_hello = run
        .phase(
            "200 half-open TLS handshakes",
            a.hold(Silence::PartialHello),
        )
        .await;
    alone.silent_tls = run
        .phase(
            "200 TLS connections without a request",
            a.hold(Silence::Tls),
        )
        .await;
    alone.oversized = run.phase("oversized heads", a.oversized()).await;
    alone.traversal = run.phase("path traversal", a.traversal()).await;
    alone.queries = run.phase("bad query values", a.queries()).await;
    alone.tokens = run
        .phase("unique 60 KiB bearer tokens, 600 a batch", a.tokens())
        .await;
    let all = async {
        let (idle_tcp, partial_hello, silent_tls, oversized, traversal, queries, tokens) = tokio::join!(
            a.hold(Silence::Tcp),
            a.hold(Silence::PartialHello),
            a.hold(Silence::Tls),
            a.oversized(),
            a.traversal(),
            a.queries(),
            a.tokens(),
        );
        Outcomes {
            idle_tcp,
            partial_hello,
            silent_tls,
            oversized,
            traversal,
            queries,
            tokens,
        }
    };
    let together = run.phase("all together", all).await;
    let mut outcomes = Outcomes::default();
    outcomes.merge(&alone);
    outcomes.merge(&together);
    let phases = run.done;

    // Connections the attacks left are closed by the server's timeouts; the idle
    // timeout is the longest of them.
    let settle_limit = attacker.server.idle_timeout + TIMEOUT_SLACK;
    eprintln!(
        "    waiting up to {} s for the open file descriptors to fall back to {} ({} sockets)",
        settle_limit.as_secs(),
        before.fds(),
        before.sockets
    );
    let ended = Instant::now();
    let settled = time_until(ended, settle_limit, || async {
        target.resources().fds() <= before.fds() + FD_TOLERANCE
    })
    .await;
    let after = target.resources();
    let (still_ok, still_took) = target.kubelet_healthz().await;
    let still_authenticated = target.authenticated(0).await;
    let log = std::fs::read_to_string(&rig.log).unwrap_or_default();
    let panics = log.lines().filter(|l| l.contains("panicked")).count();
    let ready = is_ready(&rig.client, &rig.node).await;

    let peak = phases
        .iter()
        .fold(Resources::default(), |p, f| p.max(f.observed.peak));
    let mut r = ScenarioResult::new(
        "hostile",
        json!({
            "silent_connections_per_kind": SILENT,
            "oversized_heads": OVERSIZED,
            "oversized_header_bytes": attack::OVERSIZED_HEADERS,
            "traversal_paths": attacker.traversal.len(),
            "bad_queries": attacker.queries.len(),
            "repeat": REPEAT,
            "tokens_per_batch": TOKENS,
            "token_bytes": attack::TOKEN_BYTES,
            "server_handshake_timeout_s": attacker.server.handshake_timeout.as_secs(),
            "server_header_read_timeout_s": attacker.server.header_read_timeout.as_secs(),
            "server_idle_timeout_s": attacker.server.idle_timeout.as_secs(),
        }),
    );
    r.metric("baseline", baseline.to_json());
    for p in &phases {
        let mut doc = p.observed.to_json();
        doc["seconds"] = json!(p.took.as_secs_f64());
        r.metric(p.name, doc);
    }
    r.metric("attacks_alone", alone.to_json());
    r.metric("attacks_together", together.to_json());
    r.metric("resources_before", before.to_json());
    r.metric("resources_peak", peak.to_json());
    r.metric("resources_after", after.to_json());
    r.metric("fds_back_after_seconds", settled.map(|d| d.as_secs_f64()));

    for p in &phases {
        r.targets.push(holds(
            &format!("answers during: {}", p.name),
            &format!(
                "both /healthz p99 ≤ {} s, no probe and no authenticated request failed",
                HEALTHZ_P99.as_secs()
            ),
            p.observed.describe(),
            p.observed.answered(HEALTHZ_P99),
        ));
    }
    let server = &attacker.server;
    r.targets.push(closed_row(
        "idle TCP connections closed by the server",
        outcomes.idle_tcp,
        server.handshake_timeout,
    ));
    r.targets.push(closed_row(
        "half-open TLS handshakes closed by the server",
        outcomes.partial_hello,
        server.handshake_timeout,
    ));
    r.targets.push(closed_row(
        "TLS connections without a request closed by the server",
        outcomes.silent_tls,
        server.header_read_timeout,
    ));
    let oversized_ok = outcomes
        .oversized
        .count(|l| client_error(l) || l == "closed" || l == "failed (answer)");
    r.targets.push(holds(
        "oversized heads refused",
        "each 4xx (431), or closed while sent or unanswered; never 2xx/5xx",
        outcomes.oversized.summary(),
        outcomes.oversized.total() > 0 && oversized_ok == outcomes.oversized.total(),
    ));
    for (name, answers) in [
        ("path traversal answered 4xx", &outcomes.traversal),
        ("bad query values answered 4xx", &outcomes.queries),
        ("unique 60 KiB bearer tokens answered 4xx", &outcomes.tokens),
    ] {
        r.targets.push(holds(
            name,
            "every request 4xx",
            answers.summary(),
            answers.total() > 0 && answers.count(client_error) == answers.total(),
        ));
    }
    r.targets.push(count(
        "answers holding a system file's content",
        (outcomes.traversal.leaked + outcomes.queries.leaked) as u64,
        0,
    ));
    r.targets
        .push(count("panics in the provider's log", panics as u64, 0));
    r.targets.push(
        within(
            "open fds back to the baseline",
            settled,
            server.idle_timeout,
            settle_limit,
        )
        .note(format!(
            "{} before (+{FD_TOLERANCE} allowed), {} at the peak, {} after",
            before.fds(),
            peak.fds(),
            after.fds()
        )),
    );
    let (before_mb, peak_mb, after_mb) = (
        mb(before.rss_bytes),
        mb(peak.rss_bytes),
        mb(after.rss_bytes),
    );
    r.targets.push(holds(
        "RSS after the attack",
        &format!("≤ before + {RSS_AFTER_TOLERANCE_MB:.0} MB"),
        format!("{before_mb:.1} → {after_mb:.1} MB"),
        after_mb <= before_mb + RSS_AFTER_TOLERANCE_MB,
    ));
    r.targets.push(holds(
        "peak RSS during the attack",
        &format!("≤ before + {RSS_PEAK_TOLERANCE_MB:.0} MB"),
        format!("{before_mb:.1} → {peak_mb:.1} MB"),
        peak_mb <= before_mb + RSS_PEAK_TOLERANCE_MB,
    ));
    r.targets.push(holds(
        "still answering afterwards",
        "kubelet /healthz and an authenticated request 200; node Ready",
        format!(
            "/healthz {} in {:.0} ms, authenticated {}, node {}",
            if still_ok { "200" } else { "failed" },
            still_took.as_secs_f64() * 1000.0,
            if still_authenticated { "200" } else { "failed" },
            if ready { "Ready" } else { "not Ready" }
        ),
        still_ok && still_authenticated && ready,
    ));
    r.notes.push(format!(
        "Baseline before the attacks: {}.",
        baseline.describe()
    ));
    r.notes.push(
        "Every probe and every attack request opens a new TLS connection (HTTP/1.0), so \
         /healthz latencies include a full handshake with client certificate."
            .into(),
    );
    Ok(r)
}

/// The row of silent connections the server must close within `timeout` (plus
/// [`TIMEOUT_SLACK`]).
fn closed_row(name: &str, held: Held, timeout: Duration) -> crate::bench::report::TargetCheck {
    let limit = timeout + TIMEOUT_SLACK;
    holds(
        name,
        &format!(
            "all, each within the server's {} s timeout (+{} s)",
            timeout.as_secs(),
            TIMEOUT_SLACK.as_secs()
        ),
        format!(
            "{}/{} opened, {} refused; longest open {:.1} s",
            held.closed,
            held.opened,
            held.refused,
            held.longest.as_secs_f64()
        ),
        held.opened > 0 && held.closed == held.opened && held.longest <= limit,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_connections_must_all_be_closed_within_the_timeout() {
        let timeout = Duration::from_secs(10);
        let held = |closed, longest| Held {
            opened: 200,
            refused: 0,
            closed,
            longest: Duration::from_secs(longest),
        };
        assert!(closed_row("x", held(200, 10), timeout).met);
        assert!(
            !closed_row("x", held(199, 10), timeout).met,
            "one left open"
        );
        assert!(!closed_row("x", held(200, 16), timeout).met, "too late");
        assert!(
            !closed_row("x", Held::default(), timeout).met,
            "none opened"
        );
        assert_eq!(
            closed_row("x", held(200, 10), timeout).value,
            "200/200 opened, 0 refused; longest open 10.0 s"
        );
    }
}
