//! The network between the provider and the API server: slow, then cut. The provider
//! reaches the API server through the suite's [`Proxy`]; the suite itself talks to the
//! API server directly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::jiff::Timestamp;
use kube::api::DeleteParams;
use serde_json::json;
use tokio::time::Instant;

use super::analysis::longest_gap;
use super::probe::{NodeWatch, renewed_and_ready, time_until};
use super::proxy::{Mode, Proxy};
use super::report::{count, holds, within};
use super::rig::{ProviderSetup, Rig};
use super::{BACK_WITHIN, Env};
use crate::bench::report::ScenarioResult;
use crate::bench::scenarios::names;

/// Latency the slow network adds to every chunk, each way.
const DELAY: Duration = Duration::from_millis(200);

/// How long the network stays cut.
const CUT: Duration = Duration::from_secs(30);

/// The Lease renewal interval: renewals more than two apart are late.
const RENEW_INTERVAL: Duration = Duration::from_secs(10);

/// Pods of each scenario.
const PODS: usize = 50;

/// How long the suite waits for pods or the node before giving up.
const GIVE_UP: Duration = Duration::from_secs(300);

/// A proxy to `env`'s API server and a kubeconfig that goes through it.
async fn proxied(env: &Env, scenario: &str) -> anyhow::Result<(Proxy, PathBuf)> {
    let apiserver = SocketAddr::from(([127, 0, 0, 1], env.cluster.layout().ports.apiserver));
    let proxy = Proxy::start(apiserver).await?;
    let direct = env.cluster.layout().server_url();
    let via = format!("https://127.0.0.1:{}", proxy.addr().port());
    let text = std::fs::read_to_string(&env.kubeconfig)
        .with_context(|| format!("reading {}", env.kubeconfig.display()))?;
    anyhow::ensure!(
        text.contains(&direct),
        "{} does not name {direct}",
        env.kubeconfig.display()
    );
    let path = env.out.join(format!("{scenario}-via-proxy.kubeconfig"));
    std::fs::write(&path, text.replace(&direct, &via))?;
    Ok((proxy, path))
}

/// Starts a node whose provider goes through a proxy.
async fn rig_via_proxy(env: &Env, scenario: &str) -> anyhow::Result<(Rig, Proxy)> {
    let (proxy, kubeconfig) = proxied(env, scenario).await?;
    let setup = ProviderSetup {
        kubeconfig: Some(kubeconfig),
        ..Default::default()
    };
    Ok((Rig::start(env, scenario, &setup).await?, proxy))
}

/// Every chunk between the provider and the API server is delayed 200 ms each way:
/// pods still converge, Lease renewals stay on time, the node stays Ready.
pub async fn slow_api(env: &Env) -> anyhow::Result<ScenarioResult> {
    let (rig, proxy) = rig_via_proxy(env, "slow-api").await?;
    let result = slow_api_on(&rig, &proxy).await;
    rig.teardown().await;
    result
}

async fn slow_api_on(rig: &Rig, proxy: &Proxy) -> anyhow::Result<ScenarioResult> {
    eprintln!(
        "    the provider's API traffic is delayed {} ms each way",
        DELAY.as_millis()
    );
    proxy.set_mode(Mode::Delay(DELAY)).await?;
    let watch = NodeWatch::start(rig.client.clone(), rig.node.clone());
    let pod_names = names("s", PODS);
    rig.create_pods(&pod_names, GIVE_UP).await?;
    let converged = rig.wait_running("slow-api", &pod_names, GIVE_UP).await;
    let running = rig.census().await?.running(&pod_names);
    let deleted = rig.delete_pods("slow-api delete", GIVE_UP).await?;
    // Watch the Lease for at least four renewal intervals of slow traffic.
    let observed = Instant::now();
    super::probe::poll(observed, GIVE_UP, || async {
        (watch.report().renewals.len() > 4).then_some(())
    })
    .await;
    let seen = watch.report();
    drop(watch);
    proxy.set_mode(Mode::Pass).await?;
    let gap = longest_gap(&seen.renewals);

    let mut r = ScenarioResult::new(
        "slow-api",
        json!({"pods": PODS, "delay_ms_each_way": DELAY.as_millis()}),
    );
    r.metric("converged_seconds", converged.map(|d| d.as_secs_f64()));
    r.metric("delete_all_seconds", deleted.map(|d| d.as_secs_f64()));
    r.metric("lease_renewals_seen", seen.renewals.len());
    r.metric("longest_renewal_gap_seconds", gap.map(|g| g.as_secs_f64()));
    r.metric("node_looks", seen.looks);
    r.metric("proxy", proxy.stats());
    r.targets.push(count(
        "pods not Running (not converged)",
        (PODS - running) as u64,
        0,
    ));
    r.targets.push(holds(
        "pods deleted",
        "all gone",
        deleted.map_or("not all".into(), |d| format!("in {:.1} s", d.as_secs_f64())),
        deleted.is_some(),
    ));
    r.targets.push(
        within(
            "longest gap between Lease renewals",
            gap,
            2 * RENEW_INTERVAL,
            GIVE_UP,
        )
        .note(format!("{} renewals seen", seen.renewals.len())),
    );
    r.targets
        .push(count("NotReady observations", seen.not_ready, 0));
    Ok(r)
}

/// The network between the provider and the API server is cut for 30 s (connections
/// dropped, new ones refused), while pods are created and deleted: afterwards the same
/// provider process renews its Lease, the node is Ready, and the pods converge.
pub async fn network_cut(env: &Env) -> anyhow::Result<ScenarioResult> {
    let (rig, proxy) = rig_via_proxy(env, "network-cut").await?;
    let result = network_cut_on(&rig, &proxy).await;
    rig.teardown().await;
    result
}

/// Pods created, and pods deleted, while the network is cut.
const CREATED_DURING: usize = 10;
const DELETED_DURING: usize = 5;

async fn network_cut_on(rig: &Rig, proxy: &Proxy) -> anyhow::Result<ScenarioResult> {
    let before_names = names("b", PODS);
    rig.create_pods(&before_names, GIVE_UP).await?;
    rig.wait_running("network-cut", &before_names, GIVE_UP)
        .await
        .ok_or_else(|| anyhow::anyhow!("the pods did not run before the fault"))?;
    let pid = rig.agent.pid();
    let watch = NodeWatch::start(rig.client.clone(), rig.node.clone());

    eprintln!("    cutting the provider's network for {} s", CUT.as_secs());
    let cut = Instant::now();
    proxy.set_mode(Mode::Cut).await?;
    let during = names("n", CREATED_DURING);
    rig.create_pods(&during, GIVE_UP).await?;
    let (gone, kept) = before_names.split_at(DELETED_DURING);
    let grace = DeleteParams {
        grace_period_seconds: Some(1),
        ..Default::default()
    };
    for name in gone {
        rig.pods().delete(name, &grace).await?;
    }
    let before = rig.census().await?;
    tokio::time::sleep_until(cut + CUT).await;
    proxy.set_mode(Mode::Pass).await?;
    let (back, back_wall) = (Instant::now(), Timestamp::now());
    eprintln!("    the network is back");

    let node_back = time_until(back, GIVE_UP, || {
        renewed_and_ready(&rig.client, &rig.node, back_wall)
    })
    .await;
    let converged = time_until(back, GIVE_UP, || async {
        rig.census().await.is_ok_and(|c| {
            c.running(&during) == during.len()
                && c.running(kept) == kept.len()
                && gone.iter().all(|n| !c.0.contains_key(n))
        })
    })
    .await;
    let seen = watch.report();
    drop(watch);
    let census = rig.census().await?;
    let kept_lost = kept
        .iter()
        .filter(|n| census.0.get(*n).map(|p| &p.uid) != before.0.get(*n).map(|p| &p.uid))
        .count();
    let same_process = rig.agent.pid() == pid && rig.agent.sample().rss_bytes > 0;
    let counts = rig.counts().await?;
    rig.delete_pods("network-cut delete", GIVE_UP).await?;

    let mut r = ScenarioResult::new(
        "network-cut",
        json!({"pods": PODS, "cut_seconds": CUT.as_secs(), "created_during_cut": CREATED_DURING, "deleted_during_cut": DELETED_DURING}),
    );
    r.metric(
        "node_ready_after_cut_seconds",
        node_back.map(|d| d.as_secs_f64()),
    );
    r.metric(
        "pods_converged_after_cut_seconds",
        converged.map(|d| d.as_secs_f64()),
    );
    r.metric(
        "longest_renewal_gap_seconds",
        longest_gap(&seen.renewals).map(|g| g.as_secs_f64()),
    );
    r.metric("not_ready_looks", seen.not_ready);
    r.metric("proxy", proxy.stats());
    r.metric("provider", counts);
    r.targets.push(holds(
        "recovered without a restart",
        "the same provider process",
        if same_process {
            "same process"
        } else {
            "restarted or gone"
        },
        same_process,
    ));
    r.targets.push(within(
        "node Ready, Lease renewed after the cut",
        node_back,
        BACK_WITHIN,
        GIVE_UP,
    ));
    r.targets.push(holds(
        "pods changed during the cut converge",
        "created ones Running, deleted ones gone",
        converged.map_or("not after 300 s".into(), |d| {
            format!("in {:.1} s", d.as_secs_f64())
        }),
        converged.is_some(),
    ));
    r.targets
        .push(count("other pods lost", kept_lost as u64, 0));
    r.targets.push(count(
        "provider creates (more = duplicates)",
        counts.creates,
        (PODS + CREATED_DURING) as u64,
    ));
    Ok(r)
}
