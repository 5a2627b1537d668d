//! The `kube` scenario: pods offloaded by vk-kube through two API servers.
//!
//! The home cluster is the default local one; the remote one is the named cluster
//! `remote` (started if needed). A vk-mock node (release) registered in the remote
//! cluster runs the remote pods; vk-kube (release) is the home node. The bench creates
//! `--kube-pods` pods bound to the vk-kube node and measures pods per second to Running
//! *at home* (each went home API → vk-kube → remote API → vk-mock → remote status →
//! vk-kube → home status), against the same run's ceiling of the **remote** API server
//! (the `ceiling` scenario run there first).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;
use vk_testkit::{Layout, LocalCluster, UpOptions};

use super::agent::Agent;
use super::report::{ScenarioResult, TargetCheck};
use super::scenarios::{self, agent_args, drop_namespace, mock_config, names, namespace};
use super::stats::summarize;
use super::workload::{Observer, bench_pod, create_all, delete_all, latencies, throughput};
use super::{Args, Env};

/// The remote cluster's name.
const REMOTE: &str = "remote";
/// The home node.
const NODE: &str = "vk-bench-kube";
/// The remote node.
const REMOTE_NODE: &str = "vk-bench-kube-remote";

fn vk_kube_config(out: &Path, remote_kubeconfig: &Path) -> anyhow::Result<std::path::PathBuf> {
    let path = out.join("vk-kube-bench.toml");
    std::fs::write(
        &path,
        format!(
            "kubeconfig = {:?}\n[scheduling]\n\
             add_node_selector = {{ \"kubernetes.io/hostname\" = \"{REMOTE_NODE}\" }}\n\
             add_tolerations = [{{ key = \"virtual-kubelet.io/provider\", operator = \"Exists\" }}]\n",
            remote_kubeconfig.display().to_string()
        ),
    )?;
    Ok(path)
}

/// Runs the remote ceiling and the two-cluster run; returns both results.
pub async fn run(env: &Env, args: &Args) -> anyhow::Result<Vec<ScenarioResult>> {
    let n = args.kube_pods;
    eprintln!("==> kube: {n} pods through vk-kube into the `{REMOTE}` cluster");
    let remote = LocalCluster::new(Layout::named(REMOTE)?);
    remote
        .up(UpOptions::default())
        .await
        .context("starting the remote control plane")?;
    // vk-kube is among the bench's release binaries (built with the others, so that
    // feature resolution stays the same for all of them).
    super::build_release_provider()?;
    let remote_env = Env {
        client: remote.client().await?,
        kubeconfig: remote.layout().kubeconfig(),
        binary: env.binary.clone(),
        out: env.out.clone(),
    };
    let remote_args = Args {
        pods: n,
        ..args.clone()
    };
    let mut ceiling = scenarios::ceiling(&remote_env, &remote_args).await?;
    ceiling.scenario = "kube-remote-ceiling".into();
    let ceiling_rate = ceiling
        .metrics
        .iter()
        .find(|(k, _)| k == "pods_per_second")
        .and_then(|(_, v)| v.as_f64());

    // The remote node (vk-mock) and the home node (vk-kube).
    let mut remote_node = Agent::start(
        &env.binary,
        &agent_args(
            &remote_env,
            args,
            REMOTE_NODE,
            &mock_config(&env.out, None)?,
            &[],
        ),
        &env.out.join("kube-remote-agent.log"),
    )?;
    remote_node.wait_ready(Duration::from_secs(120)).await?;
    let mut kube_args = agent_args(
        env,
        args,
        NODE,
        &vk_kube_config(&env.out, &remote_env.kubeconfig)?,
        &[],
    );
    for a in kube_args.iter_mut().filter(|a| *a == "10299") {
        *a = "10298".into();
    }
    let mut agent = Agent::start(
        &crate::paths::binary("release", "vk-kube"),
        &kube_args,
        &env.out.join("kube-agent.log"),
    )?;
    agent.wait_ready(Duration::from_secs(120)).await?;

    let client = &env.client;
    let ns = namespace(client, "kube").await?;
    let observer = Observer::start(client.clone(), &ns).await?;
    let pod_names = names("k", n);
    let pods = pod_names.iter().map(|p| bench_pod(p, NODE)).collect();
    let before = agent.sample();
    let start = Instant::now();
    let sent = create_all(client, &ns, pods, args.concurrency, false).await?;
    observer
        .wait_running("kube", &pod_names, Duration::from_secs(900))
        .await?;
    let create_secs = start.elapsed().as_secs_f64();
    let after = agent.sample();
    let lat = latencies(&observer, &sent);
    let rate = throughput(&observer, &sent);
    let t = Instant::now();
    delete_all(client, &ns, 0, args.concurrency).await?;
    observer
        .wait_empty("kube delete", Duration::from_secs(900))
        .await?;
    let delete_secs = t.elapsed().as_secs_f64();
    agent.stop()?;
    remote_node.stop()?;
    drop_namespace(client, &ns).await;
    drop_namespace(&remote_env.client, &ns).await;
    for (c, node) in [(client, NODE), (&remote_env.client, REMOTE_NODE)] {
        let _ = kube::Api::<k8s_openapi::api::core::v1::Node>::all(c.clone())
            .delete(node, &Default::default())
            .await;
    }

    let mut r = ScenarioResult::new(
        "kube",
        json!({"pods": n, "concurrency": args.concurrency, "remote_node": "vk-mock (release)"}),
    );
    let summary = summarize(&lat);
    r.metric("pods_per_second", rate);
    r.metric("create_to_running_seconds", create_secs);
    r.metric("latency_ms", summary);
    r.metric("delete_all_seconds", delete_secs);
    r.metric(
        "vk_kube_cpu_ms_per_pod",
        (after.cpu_seconds - before.cpu_seconds) * 1000.0 / n.max(1) as f64,
    );
    if let Some(ceiling) = ceiling_rate {
        let ratio = rate / ceiling;
        r.metric("ratio_to_remote_ceiling", ratio);
        r.targets.push(
            TargetCheck::at_least("pods/s vs the remote API server's ceiling", ratio, 0.5, "×")
                .note("every pod is written by two API servers and two virtual kubelets"),
        );
    }
    eprintln!(
        "    kube: {rate:.0} pods/s to Running at home (remote ceiling {:.0}), p99 {:.0} ms",
        ceiling_rate.unwrap_or_default(),
        summary.p99_ms
    );
    Ok(vec![ceiling, r])
}
