//! Faults of the provider process itself: killed and restarted, failing calls, and
//! long churn (does it leak?).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;
use tokio::time::Instant;
use vk_core::pod::PodControllerConfig;

use super::Env;
use super::analysis::{Drift, create_failures, retries};
use super::probe::{ProviderCounts, fd_kinds, is_ready, poll, time_until};
use super::report::{count, holds, within};
use super::rig::{ProviderSetup, Rig, state_lines};
use crate::bench::report::ScenarioResult;
use crate::bench::scenarios::names;

/// How long the suite waits for pods to run or go.
const PODS_LIMIT: Duration = Duration::from_secs(900);

const MB: f64 = 1024.0 * 1024.0;

/// The provider process killed with SIGKILL and restarted while it runs `n` pods (kept
/// in its state file): no duplicate create, no wrongful delete, and how long the
/// restarted process takes to be ready with every pod adopted.
pub async fn provider_kill(env: &Env, n: usize) -> anyhow::Result<ScenarioResult> {
    let setup = ProviderSetup {
        state_file: true,
        ..Default::default()
    };
    let mut rig = Rig::start(env, "provider-kill", &setup).await?;
    let result = provider_kill_on(&mut rig, n).await;
    rig.teardown().await;
    result
}

async fn provider_kill_on(rig: &mut Rig, n: usize) -> anyhow::Result<ScenarioResult> {
    let pod_names = names("r", n);
    rig.create_pods(&pod_names, PODS_LIMIT).await?;
    let fill = rig
        .wait_running("provider-kill", &pod_names, PODS_LIMIT)
        .await
        .ok_or_else(|| anyhow::anyhow!("the pods did not run before the fault"))?;
    let state = rig.state_file.clone().unwrap_or_default();
    // The state file is written once a second: kill only once it holds every pod.
    poll(Instant::now(), Duration::from_secs(60), || async {
        (state_lines(&state) == n).then_some(())
    })
    .await
    .ok_or_else(|| anyhow::anyhow!("the state file never held all {n} pods"))?;
    let before = rig.census().await?;
    let creates_before = rig.counts().await?.creates;

    eprintln!(
        "    kill -9 of the provider (pid {}) with {n} pods, then a restart",
        rig.agent.pid()
    );
    let killed = Instant::now();
    rig.agent.kill_and_restart()?;
    let readyz = rig.agent.wait_ready(Duration::from_secs(600)).await?;
    let port = rig.agent.metrics_port;
    let (client, node) = (&rig.client, &rig.node);
    let resync = time_until(killed, Duration::from_secs(600), || async move {
        let adopted = ProviderCounts::read(port)
            .await
            .is_ok_and(|c| c.adopted == n as u64);
        adopted && is_ready(client, node).await
    })
    .await;
    // Every pod synced (none queued): only now can "no create, no delete" be read.
    let idle = rig.wait_idle(n as u64, Duration::from_secs(300)).await;
    let after = rig.counts().await?;
    let census = rig.census().await?;
    let lost = census.lost_since(&before);
    let running = census.running(&pod_names);
    let in_state = state_lines(&state);
    rig.delete_pods("provider-kill delete", PODS_LIMIT).await?;

    let mut r = ScenarioResult::new(
        "provider-kill",
        json!({"pods": n, "signal": "SIGKILL", "state_file": true}),
    );
    r.metric("fill_seconds", fill.as_secs_f64());
    r.metric("creates_before_kill", creates_before);
    r.metric("readyz_after_restart_seconds", readyz.as_secs_f64());
    r.metric("resync_seconds", resync.map(|d| d.as_secs_f64()));
    r.metric("synced_and_idle", idle);
    r.metric("after_restart", after);
    r.metric("pods_in_state_file_after", in_state);
    r.targets.push(count(
        "duplicate creates after the restart",
        after.creates,
        0,
    ));
    r.targets.push(holds(
        "wrongful deletes",
        "0 (provider deletes, dangling deletes, pods gone)",
        format!(
            "{} provider, {} dangling, {lost} pods gone",
            after.deletes, after.dangling_deleted
        ),
        after.deletes == 0 && after.dangling_deleted == 0 && lost == 0,
    ));
    r.targets.push(holds(
        "resync: restart → node Ready, every pod adopted",
        "measured; all adopted",
        match resync {
            Some(d) => format!("{:.1} s, {}/{n} adopted", d.as_secs_f64(), after.adopted),
            None => format!("not after 600 s ({}/{n} adopted)", after.adopted),
        },
        resync.is_some(),
    ));
    r.targets.push(count(
        "pods not Running after the restart",
        (n - running) as u64,
        0,
    ));
    if !idle {
        r.notes
            .push("the pod controller still had work queued when the counters were read".into());
    }
    Ok(r)
}

/// The configured error rate of the failing provider.
const ERROR_RATE: f64 = 0.2;

/// Slack on the backoff bound: start times have whole seconds, and the retry itself
/// takes a moment.
const BACKOFF_SLACK: Duration = Duration::from_secs(2);

/// The provider fails 20 % of its calls: every pod still converges (Running, then
/// deleted), failed creates are recorded as Warning events, and no retry waits longer
/// than the backoff's maximum.
pub async fn provider_errors(env: &Env, n: usize) -> anyhow::Result<ScenarioResult> {
    let setup = ProviderSetup {
        error_rate: ERROR_RATE,
        json_logs: true,
        ..Default::default()
    };
    let rig = Rig::start(env, "provider-errors", &setup).await?;
    let result = provider_errors_on(&rig, n).await;
    rig.teardown().await;
    result
}

async fn provider_errors_on(rig: &Rig, n: usize) -> anyhow::Result<ScenarioResult> {
    let pod_names = names("f", n);
    rig.create_pods(&pod_names, PODS_LIMIT).await?;
    let converged = rig
        .wait_running("provider-errors", &pod_names, PODS_LIMIT)
        .await;
    let census = rig.census().await?;
    let running = census.running(&pod_names);
    let failures = create_failures(&std::fs::read_to_string(&rig.log).unwrap_or_default());
    let started: BTreeMap<String, _> = census
        .0
        .iter()
        .filter_map(|(name, p)| Some((format!("{}/{name}", rig.ns), p.start_time?)))
        .collect();
    let retried = retries(&failures, &started);
    let failed_pods: BTreeSet<String> = failures
        .keys()
        .filter_map(|k| k.rsplit_once('/').map(|(_, name)| name.to_owned()))
        .collect();
    // Events are published in the background: wait until every pod that failed has one.
    let events_api: Api<Event> = Api::namespaced(rig.client.clone(), &rig.ns);
    let with_event = poll(Instant::now(), Duration::from_secs(60), || async {
        let warned = warned_pods(&events_api).await.ok()?;
        failed_pods.is_subset(&warned).then_some(warned)
    })
    .await;
    let warned = match with_event {
        Some(w) => w,
        None => warned_pods(&events_api).await.unwrap_or_default(),
    };
    let covered = failed_pods.intersection(&warned).count();
    let counts = rig.counts().await?;
    let deleted = rig
        .delete_pods("provider-errors delete", PODS_LIMIT)
        .await?;
    let delete_errors = rig.counts().await?.delete_errors;

    let backoff_max = PodControllerConfig::default().backoff_max;
    let mut gaps: Vec<f64> = retried.gaps.iter().map(Duration::as_secs_f64).collect();
    gaps.sort_by(f64::total_cmp);
    let mut r = ScenarioResult::new(
        "provider-errors",
        json!({"pods": n, "error_rate": ERROR_RATE, "backoff_base_seconds": PodControllerConfig::default().backoff_base.as_secs_f64(), "backoff_max_seconds": backoff_max.as_secs_f64()}),
    );
    r.metric("create_failures", counts.create_errors);
    r.metric("pods_whose_create_failed", retried.pods);
    r.metric("longest_failure_streak", retried.longest_streak);
    r.metric("retries_observed", gaps.len());
    r.metric(
        "retry_gap_median_seconds",
        gaps.get(gaps.len() / 2).copied(),
    );
    r.metric("retry_gap_max_seconds", retried.max_gap().as_secs_f64());
    r.metric("delete_failures", delete_errors);
    r.metric("converged_seconds", converged.map(|d| d.as_secs_f64()));
    r.metric("delete_all_seconds", deleted.map(|d| d.as_secs_f64()));
    r.targets.push(count(
        "pods not Running (not converged)",
        (n - running) as u64,
        0,
    ));
    r.targets.push(holds(
        "Warning events ProviderCreateFailed",
        "on every pod whose create failed",
        format!("{covered} of {} pods", failed_pods.len()),
        !failed_pods.is_empty() && covered == failed_pods.len(),
    ));
    r.targets.push(
        within(
            "longest retry gap",
            Some(retried.max_gap()),
            backoff_max + BACKOFF_SLACK,
            backoff_max + BACKOFF_SLACK,
        )
        .note(format!(
            "backoff max {} s + {} s slack; {} retries seen, longest streak {}",
            backoff_max.as_secs(),
            BACKOFF_SLACK.as_secs(),
            gaps.len(),
            retried.longest_streak
        )),
    );
    r.targets.push(holds(
        "pods deleted despite failing deletes",
        "all gone",
        match deleted {
            Some(d) => format!(
                "all in {:.1} s ({delete_errors} delete failures)",
                d.as_secs_f64()
            ),
            None => "not all".into(),
        },
        deleted.is_some(),
    ));
    Ok(r)
}

/// The names of the pods with a ProviderCreateFailed event.
async fn warned_pods(api: &Api<Event>) -> kube::Result<BTreeSet<String>> {
    let events = api
        .list(&ListParams::default().fields("reason=ProviderCreateFailed"))
        .await?;
    Ok(events
        .items
        .into_iter()
        .filter_map(|e| e.involved_object.name)
        .collect())
}

/// How many of the first (and last) cycles are compared.
const WINDOW: usize = 3;

/// Cycles left out of the RSS comparison: the allocator's arenas and the caches fill
/// during the first ones (60 cycles of 100 pods: 22.3 MB after the first, 25.1 MB after
/// the 11th, then 24.9-25.7 MB through the 60th), so a leak shows only after them.
const RSS_WARMUP: usize = 10;

/// How much the provider's RSS may grow from the first cycles to the last.
const RSS_TOLERANCE: f64 = 0.10;

/// How many more file descriptors (not sockets) the last cycles may hold.
const FD_TOLERANCE: f64 = 2.0;

/// How much more the last cycles' socket count may be than the first cycles'. The
/// client's HTTP/1.1 pool keeps one connection per request that ran concurrently, idle ones
/// included (kube-client's pool has no idle reaper: 120 s idle closed none), so the count
/// follows the busiest moment so far, not the number of cycles: a leak grows with every
/// cycle, a pool does not.
const SOCKET_TOLERANCE: f64 = 0.10;

/// `cycles` create/delete cycles of `pods` pods: the provider's RSS and open file
/// descriptors after each cycle (once it has nothing left to do) stay flat.
pub async fn leak(env: &Env, cycles: usize, pods: usize) -> anyhow::Result<ScenarioResult> {
    let rig = Rig::start(env, "leak", &ProviderSetup::default()).await?;
    let result = leak_on(&rig, cycles, pods).await;
    rig.teardown().await;
    result
}

async fn leak_on(rig: &Rig, cycles: usize, pods: usize) -> anyhow::Result<ScenarioResult> {
    let start = rig.agent.sample();
    let mut rss_mb = Vec::new();
    let mut fds = Vec::new();
    let mut sockets = Vec::new();
    for cycle in 1..=cycles {
        let pod_names = names(&format!("c{cycle}"), pods);
        rig.create_pods(&pod_names, PODS_LIMIT).await?;
        rig.wait_running("leak", &pod_names, PODS_LIMIT)
            .await
            .ok_or_else(|| anyhow::anyhow!("cycle {cycle}: the pods did not run"))?;
        rig.delete_pods("leak delete", PODS_LIMIT)
            .await?
            .ok_or_else(|| anyhow::anyhow!("cycle {cycle}: the pods were not deleted"))?;
        if !rig.wait_idle(0, Duration::from_secs(120)).await {
            anyhow::bail!("cycle {cycle}: the provider still had work queued");
        }
        let sample = rig.agent.sample();
        let (open_sockets, open_others) = fd_kinds(rig.agent.pid());
        rss_mb.push(sample.rss_bytes as f64 / MB);
        fds.push(open_others as f64);
        sockets.push(open_sockets as f64);
        eprintln!(
            "    leak: cycle {cycle}/{cycles}: RSS {:.1} MB, {open_others} open fds and {open_sockets} sockets",
            sample.rss_bytes as f64 / MB
        );
    }
    let end = rig.agent.sample();

    let mut r = ScenarioResult::new("leak", json!({"cycles": cycles, "pods_per_cycle": pods}));
    r.metric("rss_mb_at_start", start.rss_bytes as f64 / MB);
    r.metric("rss_mb_by_cycle", rounded(&rss_mb));
    r.metric("open_fds_by_cycle", &fds);
    r.metric("sockets_by_cycle", &sockets);
    r.metric("peak_rss_mb", end.peak_rss_bytes as f64 / MB);
    r.metric("cpu_seconds", end.cpu_seconds - start.cpu_seconds);
    let rss = Drift::of(rss_mb.get(RSS_WARMUP..).unwrap_or_default(), WINDOW);
    let fd = Drift::of(&fds, WINDOW);
    r.targets.push(holds(
        "RSS flat over the cycles",
        &format!(
            "last {WINDOW} cycles ≤ first {WINDOW} after {RSS_WARMUP} cycles of warm-up + {:.0} %",
            RSS_TOLERANCE * 100.0
        ),
        rss.map_or("too few cycles".into(), |d| {
            format!("{:.1} → {:.1} MB", d.first, d.last)
        }),
        rss.is_some_and(|d| d.within(RSS_TOLERANCE, 0.0)),
    ));
    r.targets.push(holds(
        "open file descriptors (not sockets) flat over the cycles",
        &format!("last {WINDOW} cycles ≤ first {WINDOW} + {FD_TOLERANCE}"),
        fd.map_or("too few cycles".into(), |d| {
            format!("{} → {}", d.first, d.last)
        }),
        fd.is_some_and(|d| d.within(0.0, FD_TOLERANCE)),
    ));
    let socket = Drift::of(&sockets, WINDOW);
    r.targets.push(holds(
        "sockets do not grow with the cycles",
        &format!(
            "last {WINDOW} cycles ≤ first {WINDOW} + {:.0} % (pooled connections)",
            SOCKET_TOLERANCE * 100.0
        ),
        socket.map_or("too few cycles".into(), |d| {
            format!("{} → {}", d.first, d.last)
        }),
        socket.is_some_and(|d| d.within(SOCKET_TOLERANCE, 0.0)),
    ));
    Ok(r)
}

/// Values rounded to 0.1.
fn rounded(values: &[f64]) -> Vec<f64> {
    values.iter().map(|v| (v * 10.0).round() / 10.0).collect()
}
