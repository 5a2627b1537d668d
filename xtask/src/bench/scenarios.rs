//! The four scenarios of `cargo xtask bench`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::json;

use super::agent::{self, Agent};
use super::report::{ScenarioResult, TargetCheck};
use super::stats::{histogram_svg, summarize};
use super::workload::{Observer, bench_pod, create_all, delete_all, latencies, throughput};
use super::{Args, Env};

const MB: f64 = 1024.0 * 1024.0;

async fn namespace(client: &Client, scenario: &str) -> anyhow::Result<String> {
    let name = vk_testkit::unique_name(&format!("bench-{scenario}"));
    let ns: Namespace = serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"vk-bench": "true"}}}),
    )?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    // Pods need the namespace's default ServiceAccount (the controller-manager adds it).
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), &name);
    for _ in 0..200 {
        if sas.get_opt("default").await?.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(name)
}

async fn drop_namespace(client: &Client, name: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await;
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:05}")).collect()
}

/// The API server's own limit: the bench creates pods bound to a node and patches their
/// status to Running itself (an ideal kubelet that costs nothing).
pub async fn ceiling(env: &Env, args: &Args) -> anyhow::Result<ScenarioResult> {
    let client = &env.client;
    let n = args.pods;
    eprintln!("==> ceiling: {n} pods created and marked Running by the bench itself");
    let ns = namespace(client, "ceiling").await?;
    let node = "vk-bench-ceiling";
    let nodes: Api<Node> = Api::all(client.clone());
    let _ = nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": node}}))?,
        )
        .await;
    let observer = Observer::start(client.clone(), &ns).await?;
    let pod_names = names("c", n);
    let pods = pod_names.iter().map(|p| bench_pod(p, node)).collect();
    let start = Instant::now();
    let sent = create_all(client, &ns, pods, args.concurrency, true).await?;
    observer
        .wait_running("ceiling", &pod_names, Duration::from_secs(600))
        .await?;
    let create_secs = start.elapsed().as_secs_f64();
    let lat = latencies(&observer, &sent);
    let rate = throughput(&observer, &sent);
    let t = Instant::now();
    delete_all(client, &ns, 0, args.concurrency).await?;
    observer
        .wait_empty("ceiling delete", Duration::from_secs(600))
        .await?;
    let delete_secs = t.elapsed().as_secs_f64();
    let _ = nodes.delete(node, &DeleteParams::default()).await;
    drop_namespace(client, &ns).await;

    let mut r = ScenarioResult::new(
        "ceiling",
        json!({"pods": n, "concurrency": args.concurrency}),
    );
    r.metric("pods_per_second", rate);
    r.metric("create_to_running_seconds", create_secs);
    r.metric("latency_ms", summarize(&lat));
    r.metric("delete_all_seconds", delete_secs);
    eprintln!(
        "    ceiling: {rate:.0} pods/s, p99 {:.0} ms",
        summarize(&lat).p99_ms
    );
    Ok(r)
}

fn mock_config(dir: &Path, state_file: Option<&Path>) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join(format!("mock-{}.toml", vk_testkit::unique_name("cfg")));
    let mut text =
        String::from("[capacity]\ncpu = \"1000\"\nmemory = \"4Ti\"\npods = \"200000\"\n");
    if let Some(s) = state_file {
        text = format!("state_file = {:?}\n{text}", s.display().to_string());
    }
    std::fs::write(&path, text)?;
    Ok(path)
}

fn agent_args(env: &Env, args: &Args, node: &str, config: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "--kubeconfig".into(),
        env.kubeconfig.display().to_string(),
        "--nodename".into(),
        node.into(),
        "--provider-config".into(),
        config.display().to_string(),
        "--listen-port".into(),
        "10299".into(),
        "--startup-timeout".into(),
        "10m".into(),
    ];
    if let Some(qps) = args.qps {
        v.extend([
            "--kube-api-qps".into(),
            qps.to_string(),
            "--kube-api-burst".into(),
            (qps * 2.0).to_string(),
        ]);
    }
    if !args.success_events {
        v.push("--no-success-events".into());
    }
    v.extend(extra.iter().map(|s| (*s).to_owned()));
    v
}

async fn delete_node_objects(client: &Client, prefix: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let Ok(list) = nodes
        .list(&ListParams::default().labels("type=virtual-kubelet"))
        .await
    else {
        return;
    };
    let names: Vec<String> = list
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .filter(|n| n.starts_with(prefix))
        .collect();
    futures::stream::iter(names)
        .for_each_concurrent(16, |name| {
            let nodes = nodes.clone();
            async move {
                let _ = nodes.delete(&name, &DeleteParams::default()).await;
            }
        })
        .await;
}

/// N pods through one vk-mock node: throughput, latency, delete time, CPU, memory and
/// API writes per pod lifecycle.
pub async fn churn(
    env: &Env,
    args: &Args,
    ceiling_rate: Option<f64>,
) -> anyhow::Result<ScenarioResult> {
    let client = &env.client;
    let n = args.pods;
    eprintln!("==> churn: {n} pods through one vk-mock node");
    let ns = namespace(client, "churn").await?;
    let node = "vk-bench-churn";
    let config = mock_config(&env.out, None)?;
    let mut agent = Agent::start(
        &env.binary,
        &agent_args(env, args, node, &config, &[]),
        &env.out.join("churn-agent.log"),
    )?;
    agent.wait_ready(Duration::from_secs(120)).await?;
    let observer = Observer::start(client.clone(), &ns).await?;
    let cpu0 = agent.sample();
    let api0 = agent.api_counts().await?;
    let pod_names = names("p", n);
    let pods = pod_names.iter().map(|p| bench_pod(p, node)).collect();
    let start = Instant::now();
    let sent = create_all(client, &ns, pods, args.concurrency, false).await?;
    observer
        .wait_running("churn", &pod_names, Duration::from_secs(900))
        .await?;
    let create_secs = start.elapsed().as_secs_f64();
    let lat = latencies(&observer, &sent);
    let rate = throughput(&observer, &sent);
    let t = Instant::now();
    delete_all(client, &ns, 1, args.concurrency).await?;
    observer
        .wait_empty("churn delete", Duration::from_secs(900))
        .await?;
    let delete_secs = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await; // trailing writes settle
    let cpu1 = agent.sample();
    let api1 = agent.api_counts().await?;
    agent.stop()?;
    delete_node_objects(client, node).await;
    drop_namespace(client, &ns).await;

    let per_pod = |v: u64| v as f64 / n as f64;
    let pod_writes = agent::delta(&api0, &api1, |v, r| {
        agent::is_write(v) && (r == "pods" || r.starts_with("pods/"))
    });
    let event_writes = agent::delta(&api0, &api1, |v, r| agent::is_write(v) && r == "events");
    let all_requests = agent::delta(&api0, &api1, |_, r| {
        r.starts_with("pods")
            || r == "events"
            || r == "configmaps"
            || r == "secrets"
            || r == "services"
    });
    let cpu_secs = cpu1.cpu_seconds - cpu0.cpu_seconds;
    let cpu_ms_per_pod = cpu_secs * 1000.0 / n as f64;
    let breakdown: std::collections::BTreeMap<String, f64> = api1
        .iter()
        .map(|((v, res), after)| {
            let before = api0.get(&(v.clone(), res.clone())).copied().unwrap_or(0);
            (
                format!("{v} {res}"),
                after.saturating_sub(before) as f64 / n as f64,
            )
        })
        .filter(|(_, per)| *per > 0.0)
        .collect();
    let summary = summarize(&lat);
    std::fs::write(
        env.out.join("churn-latency.svg"),
        histogram_svg(&format!("churn: {n} pods, creation → Running"), &lat),
    )?;

    let mut r = ScenarioResult::new(
        "churn",
        json!({"pods": n, "concurrency": args.concurrency, "kube_api_qps": args.qps, "success_events": args.success_events, "pod_sync_workers": 32}),
    );
    r.metric("pods_per_second", rate);
    r.metric("create_to_running_seconds", create_secs);
    r.metric("latency_ms", summary);
    r.metric("delete_all_seconds", delete_secs);
    r.metric("provider_cpu_seconds", cpu_secs);
    r.metric("cpu_ms_per_pod_lifecycle", cpu_ms_per_pod);
    r.metric("provider_peak_rss_mb", cpu1.peak_rss_bytes as f64 / MB);
    r.metric("pod_writes_per_lifecycle", per_pod(pod_writes));
    r.metric("event_writes_per_lifecycle", per_pod(event_writes));
    r.metric("pod_related_requests_per_lifecycle", per_pod(all_requests));
    r.metric("requests_per_lifecycle_by_verb_and_resource", breakdown);
    if let Some(c) = ceiling_rate {
        r.metric("ceiling_pods_per_second", c);
        r.metric("ratio_to_ceiling", rate / c);
        r.targets.push(
            TargetCheck::at_least("pods/s to Running (0.8 × ceiling)", rate, 0.8 * c, "pods/s")
                .note(format!(
                    "{:.2} × this run's ceiling of {c:.1} pods/s",
                    rate / c
                )),
        );
    }
    r.targets.push(TargetCheck::at_most(
        "latency p99",
        summary.p99_ms,
        1000.0,
        "ms",
    ));
    r.targets.push(TargetCheck::at_most(
        "CPU per pod lifecycle",
        cpu_ms_per_pod,
        5.0,
        "ms",
    ));
    r.targets.push(TargetCheck::at_most(
        "peak RSS",
        cpu1.peak_rss_bytes as f64 / MB,
        30.0,
        "MB",
    ));
    r.targets.push(
        TargetCheck::at_most(
            "API writes per pod lifecycle",
            per_pod(pod_writes),
            3.0,
            "writes",
        )
        .note(format!(
            "pod writes only; events add {:.2} per pod",
            per_pod(event_writes)
        )),
    );
    eprintln!(
        "    churn: {rate:.0} pods/s, p99 {:.0} ms, delete {delete_secs:.1}s, {cpu_ms_per_pod:.2} ms CPU/pod, peak RSS {:.1} MB, {:.2} pod writes/pod",
        summary.p99_ms,
        cpu1.peak_rss_bytes as f64 / MB,
        per_pod(pod_writes)
    );
    Ok(r)
}

fn provider_counter(text: &str, name: &str, label: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// 10,000 pods held Running: memory, idle CPU, and the time to resync after a restart.
pub async fn steady(env: &Env, args: &Args) -> anyhow::Result<ScenarioResult> {
    let client = &env.client;
    let n = args.steady_pods;
    let minutes = args.minutes;
    eprintln!("==> steady: {n} pods Running on one node for {minutes} min, then a restart");
    let ns = namespace(client, "steady").await?;
    let node = "vk-bench-steady";
    let state = env
        .out
        .join(format!("{}-state.json", vk_testkit::unique_name("steady")));
    let config = mock_config(&env.out, Some(&state))?;
    let mut agent = Agent::start(
        &env.binary,
        &agent_args(env, args, node, &config, &[]),
        &env.out.join("steady-agent.log"),
    )?;
    agent.wait_ready(Duration::from_secs(120)).await?;
    let observer = Observer::start(client.clone(), &ns).await?;
    let pod_names = names("s", n);
    let pods = pod_names.iter().map(|p| bench_pod(p, node)).collect();
    let t = Instant::now();
    let sent = create_all(client, &ns, pods, args.concurrency, false).await?;
    observer
        .wait_running("steady", &pod_names, Duration::from_secs(1800))
        .await?;
    let fill_secs = t.elapsed().as_secs_f64();
    let fill_rate = throughput(&observer, &sent);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let a = agent.sample();
    let api_a = agent.api_counts().await?;
    let mut rss_max = a.rss_bytes;
    let idle_start = Instant::now();
    let idle = Duration::from_secs(60 * minutes);
    while idle_start.elapsed() < idle {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let s = agent.sample();
        rss_max = rss_max.max(s.rss_bytes);
        eprintln!(
            "    steady: {:.0}/{}s idle, RSS {:.1} MB, CPU {:.2}s",
            idle_start.elapsed().as_secs_f64(),
            idle.as_secs(),
            s.rss_bytes as f64 / MB,
            s.cpu_seconds - a.cpu_seconds
        );
    }
    let b = agent.sample();
    let api_b = agent.api_counts().await?;
    let idle_minutes = idle_start.elapsed().as_secs_f64() / 60.0;
    let cpu_per_min = (b.cpu_seconds - a.cpu_seconds) / idle_minutes;
    let idle_requests = agent::delta(&api_a, &api_b, |_, _| true) as f64 / idle_minutes;
    // Restart: the provider keeps its pods (state file), the core must adopt them all.
    eprintln!("    steady: restarting the provider process");
    agent.restart()?;
    let resync = agent.wait_ready(Duration::from_secs(600)).await?;
    let (_, metrics) = vk_testkit::http::get(agent.metrics_port, "/metrics").await?;
    let creates_after_restart = provider_counter(
        &metrics,
        "vk_pod_provider_calls_total",
        "operation=\"create\"",
    );
    let adopted = provider_counter(&metrics, "vk_pod_adopted_total", "node=");
    let after_restart = agent.sample();
    let t = Instant::now();
    delete_all(client, &ns, 1, args.concurrency).await?;
    observer
        .wait_empty("steady delete", Duration::from_secs(1800))
        .await?;
    let delete_secs = t.elapsed().as_secs_f64();
    agent.stop()?;
    delete_node_objects(client, node).await;
    drop_namespace(client, &ns).await;
    let _ = std::fs::remove_file(&state);

    let mut r = ScenarioResult::new(
        "steady",
        json!({"pods": n, "idle_minutes": minutes, "kube_api_qps": args.qps}),
    );
    r.metric("fill_seconds", fill_secs);
    r.metric("fill_pods_per_second", fill_rate);
    r.metric("rss_mb_while_holding", rss_max as f64 / MB);
    r.metric("peak_rss_mb", b.peak_rss_bytes as f64 / MB);
    r.metric("idle_cpu_seconds_per_minute", cpu_per_min);
    r.metric("idle_api_requests_per_minute", idle_requests);
    r.metric("resync_after_restart_seconds", resync.as_secs_f64());
    r.metric("creates_after_restart", creates_after_restart);
    r.metric("adopted_after_restart", adopted);
    r.metric("rss_mb_after_restart", after_restart.rss_bytes as f64 / MB);
    r.metric("delete_all_seconds", delete_secs);
    r.targets.push(TargetCheck::at_most(
        "RSS holding 10,000 pods",
        rss_max as f64 / MB,
        100.0,
        "MB",
    ));
    r.targets.push(
        TargetCheck::at_most("idle CPU", cpu_per_min, 0.5, "CPU-s/min")
            .note("\"near-zero\": at most 1% of one core"),
    );
    r.targets.push(TargetCheck {
        name: "no duplicate creates after restart".into(),
        target: "0".into(),
        value: creates_after_restart.to_string(),
        met: creates_after_restart == 0 && adopted as usize == n,
        note: Some(format!("{adopted} pods adopted")),
    });
    eprintln!(
        "    steady: RSS {:.1} MB, idle {cpu_per_min:.3} CPU-s/min, resync {:.1}s, {creates_after_restart} creates after restart",
        rss_max as f64 / MB,
        resync.as_secs_f64()
    );
    Ok(r)
}

#[derive(Default)]
struct FleetWatch {
    last_renew: HashMap<String, k8s_openapi::jiff::Timestamp>,
    renewals: u64,
    late: u64,
    max_gap_s: f64,
    not_ready: u64,
    not_ready_nodes: std::collections::BTreeSet<String>,
}

/// M nodes in one process: lease renewals on time, never NotReady, memory and CPU.
pub async fn fleet(env: &Env, args: &Args) -> anyhow::Result<ScenarioResult> {
    let client = &env.client;
    let m = args.nodes;
    let pods_n = args.fleet_pods;
    let minutes = args.minutes;
    eprintln!("==> fleet: {m} nodes in one vk-mock process, {pods_n} pods, {minutes} min");
    let prefix = "vk-bench-fleet";
    let ns = namespace(client, "fleet").await?;
    let config = mock_config(&env.out, None)?;
    let nodes_arg = m.to_string();
    let mut agent = Agent::start(
        &env.binary,
        // The fleet measures node/lease upkeep; 1,000 kubelet API listeners on
        // consecutive ports would collide with whatever else runs on this machine.
        &agent_args(
            env,
            args,
            prefix,
            &config,
            &["--nodes", &nodes_arg, "--no-kubelet-api"],
        ),
        &env.out.join("fleet-agent.log"),
    )?;
    let register = agent.wait_ready(Duration::from_secs(900)).await?;
    eprintln!(
        "    fleet: {m} nodes registered and synced in {:.1}s",
        register.as_secs_f64()
    );

    let watch = Arc::new(Mutex::new(FleetWatch::default()));
    let renew_interval = 10.0;
    let lease_task = {
        let watch = Arc::clone(&watch);
        let api: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
        tokio::spawn(async move {
            let mut s = watcher(api, watcher::Config::default()).boxed();
            while let Some(Ok(e)) = s.next().await {
                let (watcher::Event::Apply(l) | watcher::Event::InitApply(l)) = e else {
                    continue;
                };
                let name = l.metadata.name.clone().unwrap_or_default();
                if !name.starts_with(prefix) {
                    continue;
                }
                let Some(t) = l.spec.and_then(|s| s.renew_time).map(|t| t.0) else {
                    continue;
                };
                let mut w = watch.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(prev) = w.last_renew.insert(name, t) {
                    let gap = t.duration_since(prev).as_secs_f64();
                    if gap > 0.0 {
                        w.renewals += 1;
                        w.max_gap_s = w.max_gap_s.max(gap);
                        if gap > 2.0 * renew_interval {
                            w.late += 1;
                        }
                    }
                }
            }
        })
    };
    let node_task = {
        let watch = Arc::clone(&watch);
        let api: Api<Node> = Api::all(client.clone());
        tokio::spawn(async move {
            let mut s = watcher(
                api,
                watcher::Config::default().labels("type=virtual-kubelet"),
            )
            .boxed();
            while let Some(Ok(e)) = s.next().await {
                let (watcher::Event::Apply(n) | watcher::Event::InitApply(n)) = e else {
                    continue;
                };
                let name = n.metadata.name.clone().unwrap_or_default();
                if !name.starts_with(prefix) {
                    continue;
                }
                let ready = n
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                if !ready {
                    let mut w = watch.lock().unwrap_or_else(|e| e.into_inner());
                    w.not_ready += 1;
                    w.not_ready_nodes.insert(name);
                }
            }
        })
    };
    let observer = Observer::start(client.clone(), &ns).await?;
    let pod_names = names("f", pods_n);
    let pods = pod_names
        .iter()
        .enumerate()
        .map(|(i, p)| bench_pod(p, &format!("{prefix}-{}", i % m)))
        .collect();
    let cpu0 = agent.sample();
    let sent = create_all(client, &ns, pods, args.concurrency, false).await?;
    observer
        .wait_running("fleet", &pod_names, Duration::from_secs(900))
        .await?;
    let fill_rate = throughput(&observer, &sent);
    let hold = Instant::now();
    let mut rss_max = 0;
    while hold.elapsed() < Duration::from_secs(60 * minutes) {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let s = agent.sample();
        rss_max = rss_max.max(s.rss_bytes);
        let w = watch.lock().unwrap_or_else(|e| e.into_inner());
        eprintln!(
            "    fleet: {:.0}s, {} renewals ({} late, max gap {:.1}s), {} NotReady observations, RSS {:.1} MB",
            hold.elapsed().as_secs_f64(),
            w.renewals,
            w.late,
            w.max_gap_s,
            w.not_ready,
            s.rss_bytes as f64 / MB
        );
    }
    let cpu1 = agent.sample();
    lease_task.abort();
    node_task.abort();
    delete_all(client, &ns, 1, args.concurrency).await?;
    observer
        .wait_empty("fleet delete", Duration::from_secs(900))
        .await?;
    agent.stop()?;
    delete_node_objects(client, prefix).await;
    drop_namespace(client, &ns).await;

    let w = watch.lock().unwrap_or_else(|e| e.into_inner());
    let cpu_per_min = (cpu1.cpu_seconds - cpu0.cpu_seconds) / (hold.elapsed().as_secs_f64() / 60.0);
    let mut r = ScenarioResult::new(
        "fleet",
        json!({"nodes": m, "pods": pods_n, "minutes": minutes, "lease_renew_interval_s": renew_interval}),
    );
    r.metric("registration_seconds", register.as_secs_f64());
    r.metric("fill_pods_per_second", fill_rate);
    r.metric("lease_renewals_observed", w.renewals);
    r.metric("late_lease_renewals", w.late);
    r.metric("max_renewal_gap_seconds", w.max_gap_s);
    r.metric("not_ready_observations", w.not_ready);
    r.metric("rss_mb", rss_max as f64 / MB);
    r.metric("peak_rss_mb", cpu1.peak_rss_bytes as f64 / MB);
    r.metric("cpu_seconds_per_minute", cpu_per_min);
    r.targets.push(TargetCheck::at_most(
        "late lease renewals",
        w.late as f64,
        0.0,
        "renewals",
    ));
    r.targets.push(TargetCheck::at_most(
        "NotReady observations",
        w.not_ready as f64,
        0.0,
        "times",
    ));
    r.targets.push(TargetCheck::at_most(
        "RSS",
        rss_max as f64 / MB,
        200.0,
        "MB",
    ));
    if !w.not_ready_nodes.is_empty() {
        r.notes.push(format!(
            "nodes seen NotReady: {}",
            w.not_ready_nodes
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    eprintln!(
        "    fleet: {} late renewals (max gap {:.1}s), {} NotReady, RSS {:.1} MB, {cpu_per_min:.2} CPU-s/min",
        w.late,
        w.max_gap_s,
        w.not_ready,
        rss_max as f64 / MB
    );
    Ok(r)
}
