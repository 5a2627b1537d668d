//! Control-plane components going away under a running node: kube-apiserver killed in
//! the middle of pod creation, etcd stopped and started again.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde_json::json;
use tokio::time::Instant;
use vk_testkit::cluster::Component;

use super::probe::{Census, renewed_and_ready, time_until};
use super::report::{count, holds, within};
use super::rig::{ProviderSetup, Rig};
use super::{BACK_WITHIN, Env, OUTAGE};
use crate::bench::report::ScenarioResult;
use crate::bench::scenarios::names;

/// How long the suite waits for pods to run or go.
const PODS_LIMIT: Duration = Duration::from_secs(600);

/// How long the suite waits for the node to come back before giving up.
const BACK_LIMIT: Duration = Duration::from_secs(180);

/// Kills `component` (SIGKILL) or stops it (SIGTERM), keeps it down for [`OUTAGE`],
/// starts it again and waits until it is healthy; returns when it was healthy again
/// (as a monotonic and a wall-clock time).
async fn outage(
    env: &Env,
    component: Component,
    kill: bool,
) -> anyhow::Result<(Instant, Timestamp)> {
    let cluster = env.cluster.clone();
    let how = if kill { "killing" } else { "stopping" };
    eprintln!("    {how} {} for {} s", component.name(), OUTAGE.as_secs());
    tokio::task::spawn_blocking(move || {
        if kill {
            cluster.kill_component(component)
        } else {
            cluster.stop_component(component)
        }
    })
    .await??;
    tokio::time::sleep(OUTAGE).await;
    env.cluster.start_component(component).await?;
    eprintln!("    {} is back", component.name());
    Ok((Instant::now(), Timestamp::now()))
}

/// kube-apiserver killed with SIGKILL while `n` pods are being created, and restarted
/// 10 s later: every pod created once and Running, the node Ready again within 40 s,
/// every pod deleted when asked.
pub async fn apiserver_kill(env: &Env, n: usize) -> anyhow::Result<ScenarioResult> {
    let rig = Rig::start(env, "apiserver-kill", &ProviderSetup::default()).await?;
    let result = apiserver_kill_on(env, &rig, n).await;
    rig.teardown().await;
    result
}

async fn apiserver_kill_on(env: &Env, rig: &Rig, n: usize) -> anyhow::Result<ScenarioResult> {
    let pod_names = names("k", n);
    eprintln!("    creating {n} pods; the API server is killed once a third of them run");
    let start = Instant::now();
    let (created, kill) = tokio::join!(rig.create_pods(&pod_names, PODS_LIMIT), async {
        let third = n / 3;
        let reached = super::probe::poll(Instant::now(), PODS_LIMIT, || async {
            let running = rig.census().await.map_or(0, |c| c.running(&pod_names));
            (running >= third).then_some(running)
        })
        .await;
        let back = outage(env, Component::ApiServer, true).await;
        (reached, back)
    });
    let (running_at_kill, back) = kill;
    let (back, back_wall) = back?;
    created?;
    let node_back = time_until(back, BACK_LIMIT, || {
        renewed_and_ready(&rig.client, &rig.node, back_wall)
    })
    .await;
    let all_running = rig
        .wait_running("apiserver-kill", &pod_names, PODS_LIMIT)
        .await;
    let running = rig.census().await?.running(&pod_names);
    let created_by_provider = rig.counts().await?.creates;
    let deleted_in = rig.delete_pods("apiserver-kill delete", PODS_LIMIT).await?;
    let left = rig.census().await?.len();
    let deleted_by_provider = rig.counts().await?.deletes;

    let mut r = ScenarioResult::new(
        "apiserver-kill",
        json!({"pods": n, "outage_seconds": OUTAGE.as_secs(), "signal": "SIGKILL"}),
    );
    r.metric("pods_running_when_killed", running_at_kill.unwrap_or(0));
    r.metric(
        "node_ready_after_apiserver_back_seconds",
        node_back.map(|d| d.as_secs_f64()),
    );
    r.metric(
        "all_running_after_first_create_seconds",
        all_running.map(|_| start.elapsed().as_secs_f64()),
    );
    r.metric("provider_creates", created_by_provider);
    r.metric("provider_deletes", deleted_by_provider);
    r.metric("delete_all_seconds", deleted_in.map(|d| d.as_secs_f64()));
    r.targets.push(
        count(
            "provider creates (more = duplicates)",
            created_by_provider,
            n as u64,
        )
        .note("one create per pod"),
    );
    r.targets.push(count(
        "pods lost (not Running in the end)",
        (n - running) as u64,
        0,
    ));
    r.targets.push(within(
        "node Ready again after the API server is back",
        node_back,
        BACK_WITHIN,
        BACK_LIMIT,
    ));
    r.targets.push(holds(
        "no pod stuck",
        "all Running, then all deleted when asked",
        format!(
            "{running}/{n} Running; {left} left after deletion; {deleted_by_provider} provider deletes"
        ),
        running == n && left == 0 && deleted_by_provider == n as u64,
    ));
    Ok(r)
}

/// etcd stopped and started again with the same data while the node runs pods: the
/// node recovers, no pod is lost, pods created afterwards run.
pub async fn etcd_restart(env: &Env) -> anyhow::Result<ScenarioResult> {
    let rig = Rig::start(env, "etcd-restart", &ProviderSetup::default()).await?;
    let result = etcd_restart_on(env, &rig).await;
    rig.teardown().await;
    result
}

/// Pods running across the etcd outage.
const ETCD_PODS: usize = 100;

/// Pods created once etcd is back.
const ETCD_LATER_PODS: usize = 10;

async fn etcd_restart_on(env: &Env, rig: &Rig) -> anyhow::Result<ScenarioResult> {
    let pod_names = names("e", ETCD_PODS);
    rig.create_pods(&pod_names, PODS_LIMIT).await?;
    if rig
        .wait_running("etcd-restart", &pod_names, PODS_LIMIT)
        .await
        .is_none()
    {
        anyhow::bail!("the pods did not run before the fault");
    }
    let before = rig.census().await?;
    let (back, back_wall) = outage(env, Component::Etcd, false).await?;
    let api_back = time_until(back, BACK_LIMIT, || async {
        env.cluster.apiserver_ready().await.is_ok()
    })
    .await;
    let node_back = time_until(back, BACK_LIMIT, || {
        renewed_and_ready(&rig.client, &rig.node, back_wall)
    })
    .await;
    let after = Census::take(&rig.client, &rig.ns).await?;
    let lost = after.lost_since(&before);
    let still_running = after.running(&pod_names);
    let later = names("later", ETCD_LATER_PODS);
    rig.create_pods(&later, PODS_LIMIT).await?;
    let later_running = rig
        .wait_running("etcd-restart (after)", &later, BACK_LIMIT)
        .await;
    let counts = rig.counts().await?;
    let expected_creates = (ETCD_PODS + ETCD_LATER_PODS) as u64;
    rig.delete_pods("etcd-restart delete", PODS_LIMIT).await?;

    let mut r = ScenarioResult::new(
        "etcd-restart",
        json!({"pods": ETCD_PODS, "pods_created_after": ETCD_LATER_PODS, "outage_seconds": OUTAGE.as_secs(), "signal": "SIGTERM"}),
    );
    r.metric(
        "apiserver_ready_after_etcd_back_seconds",
        api_back.map(|d| d.as_secs_f64()),
    );
    r.metric(
        "node_ready_after_etcd_back_seconds",
        node_back.map(|d| d.as_secs_f64()),
    );
    r.metric(
        "later_pods_running_seconds",
        later_running.map(|d| d.as_secs_f64()),
    );
    r.metric("provider", counts);
    r.targets.push(
        within(
            "node Ready again after etcd is back",
            node_back,
            BACK_WITHIN,
            BACK_LIMIT,
        )
        .note("the bound the issue sets for the API server's outage"),
    );
    r.targets.push(count("pods lost", lost as u64, 0));
    r.targets.push(count(
        "pods not Running after the outage",
        (ETCD_PODS - still_running) as u64,
        0,
    ));
    r.targets.push(count("provider deletes", counts.deletes, 0));
    r.targets.push(count(
        "provider creates (more = duplicates)",
        counts.creates,
        expected_creates,
    ));
    r.targets.push(holds(
        "pods created after the outage run",
        "all Running",
        match later_running {
            Some(d) => format!("all {ETCD_LATER_PODS} in {:.1} s", d.as_secs_f64()),
            None => "not all".to_owned(),
        },
        later_running.is_some(),
    ));
    Ok(r)
}
