//! The `web` scenario: the same pods through vk-mock and through vk-web with the v1
//! in-memory bridge (`providers/vk-web/examples/v1-memory/bridge.py`, a separate Python
//! process), so the cost of the HTTP hop shows as a difference: pods/s to Running, and
//! the node's extra CPU per pod lifecycle (the bridge's own CPU is reported apart).

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::json;

use super::agent::Agent;
use super::procfs;
use super::report::ScenarioResult;
use super::scenarios::{
    ChurnCosts, ChurnRun, agent_args, churn_pods, delete_node_objects, drop_namespace, mock_config,
    namespace,
};
use super::stats::summarize;
use super::workload::Observer;
use super::{Args, Env};

/// The bridge process; killed when dropped.
struct Bridge {
    child: Child,
    url: String,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_bridge() -> anyhow::Result<Bridge> {
    let script =
        crate::paths::workspace_root().join("providers/vk-web/examples/v1-memory/bridge.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .args(["--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting python3 {}", script.display()))?;
    let stdout = child.stdout.take().context("the bridge's stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let Some(url) = line.trim().strip_prefix("listening on ") else {
        let _ = child.kill();
        bail!("unexpected first line from the bridge: {line:?}");
    };
    Ok(Bridge {
        url: url.to_owned(),
        child,
    })
}

/// One node's churn of `args.web_pods` pods.
async fn churn_through(
    env: &Env,
    args: &Args,
    binary: &std::path::Path,
    node: &str,
    config: &std::path::Path,
) -> anyhow::Result<ChurnRun> {
    let client = &env.client;
    let ns = namespace(client, node).await?;
    let mut agent = Agent::start(
        binary,
        &agent_args(env, args, node, config, &[]),
        &env.out.join(format!("{node}-agent.log")),
    )?;
    agent.wait_ready(Duration::from_secs(120)).await?;
    let observer = Observer::start(client.clone(), &ns).await?;
    let churn_args = Args {
        pods: args.web_pods,
        ..args.clone()
    };
    let run = churn_pods(client, &churn_args, &agent, &observer, &ns, node).await;
    agent.stop()?;
    delete_node_objects(client, node).await;
    drop_namespace(client, &ns).await;
    run
}

/// The `web` scenario (see the module docs).
pub async fn web(env: &Env, args: &Args) -> anyhow::Result<ScenarioResult> {
    let n = args.web_pods;
    eprintln!("==> web: {n} pods through vk-mock, then through vk-web + the v1 in-memory bridge");
    let mock_cfg = mock_config(&env.out, None)?;
    let mock = churn_through(env, args, &env.binary, "vk-bench-web-mock", &mock_cfg).await?;
    let mock_costs = ChurnCosts::of(&mock, n);

    let bridge = start_bridge()?;
    let web_cfg = env.out.join("web.toml");
    std::fs::write(
        &web_cfg,
        format!("endpoint = {:?}\nprotocol = \"v1\"\n", bridge.url),
    )?;
    let bridge_before = procfs::sample(bridge.child.id()).unwrap_or_default();
    let web_binary = crate::paths::binary("release", "vk-web");
    let web = churn_through(env, args, &web_binary, "vk-bench-web", &web_cfg).await?;
    let bridge_after = procfs::sample(bridge.child.id()).unwrap_or_default();
    drop(bridge);
    let web_costs = ChurnCosts::of(&web, n);

    let bridge_cpu_ms = (bridge_after.cpu_seconds - bridge_before.cpu_seconds) * 1000.0 / n as f64;
    let extra = web_costs.cpu_ms_per_pod - mock_costs.cpu_ms_per_pod;
    let latency = summarize(&web.latencies);
    let mut r = ScenarioResult::new(
        "web",
        json!({"pods": n, "concurrency": args.concurrency, "kube_api_qps": args.qps,
               "bridge": "examples/v1-memory (python3)", "protocol": "v1", "status_poll_interval_s": 5}),
    );
    r.metric("pods_per_second", web.rate);
    r.metric("mock_pods_per_second", mock.rate);
    r.metric("ratio_to_mock", web.rate / mock.rate);
    r.metric("latency_ms", latency);
    r.metric("delete_all_seconds", web.delete_secs);
    r.metric("cpu_ms_per_pod_lifecycle", web_costs.cpu_ms_per_pod);
    r.metric("mock_cpu_ms_per_pod_lifecycle", mock_costs.cpu_ms_per_pod);
    r.metric("extra_cpu_ms_per_pod_lifecycle", extra);
    r.metric("bridge_cpu_ms_per_pod_lifecycle", bridge_cpu_ms);
    r.metric("provider_peak_rss_mb", web_costs.peak_rss_mb);
    r.metric("pod_writes_per_lifecycle", web_costs.pod_writes_per_pod);
    r.notes.push(format!(
        "the HTTP hop costs the node {extra:.2} ms CPU per pod lifecycle ({:.2} vs {:.2} for vk-mock); the Python bridge used {bridge_cpu_ms:.2} ms",
        web_costs.cpu_ms_per_pod, mock_costs.cpu_ms_per_pod
    ));
    eprintln!(
        "    web: {:.0} pods/s (vk-mock {:.0}), p99 {:.0} ms, {:.2} ms CPU/pod (+{extra:.2} over vk-mock), bridge {bridge_cpu_ms:.2} ms/pod",
        web.rate, mock.rate, latency.p99_ms, web_costs.cpu_ms_per_pod
    );
    Ok(r)
}
