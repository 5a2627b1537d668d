//! The four scenarios of `cargo xtask bench`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::json;

use super::agent::{self, Agent, ApiCounts};
use super::procfs::ProcSample;
use super::report::{ScenarioResult, TargetCheck};
use super::scale::ServerSampler;
use super::stats::{LatencySummary, histogram_svg, summarize};
use super::workload::{Observer, bench_pod, create_all, delete_all, latencies, throughput};
use super::{Args, Env};

const MB: f64 = 1024.0 * 1024.0;

/// A new namespace `bench-<scenario>-xxxxxx`, once its default ServiceAccount exists.
pub(crate) async fn namespace(client: &Client, scenario: &str) -> anyhow::Result<String> {
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

/// Deletes namespace `name` (and so its pods), without waiting.
pub(crate) async fn drop_namespace(client: &Client, name: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await;
}

/// `n` pod names: `<prefix>-00000`, `<prefix>-00001`...
pub(crate) fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:05}")).collect()
}

/// The API server's own limit: the bench creates pods bound to a node and patches their
/// status to Running itself (an ideal kubelet that costs nothing).
pub async fn ceiling(env: &Env, args: &Args) -> anyhow::Result<ScenarioResult> {
    ceiling_of(env, "ceiling", args.pods, args.concurrency, bench_pod).await
}

/// [`ceiling`] with `n` pods made by `pod(name, node)`, reported as scenario
/// `scenario`.
pub(super) async fn ceiling_of(
    env: &Env,
    scenario: &str,
    n: usize,
    concurrency: usize,
    pod: fn(&str, &str) -> Pod,
) -> anyhow::Result<ScenarioResult> {
    let client = &env.client;
    eprintln!("==> {scenario}: {n} pods created and marked Running by the bench itself");
    let ns = namespace(client, scenario).await?;
    let node = format!("vk-bench-{scenario}");
    let nodes: Api<Node> = Api::all(client.clone());
    let _ = nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": node}}))?,
        )
        .await;
    let observer = Observer::start(client.clone(), &ns).await?;
    let pod_names = names("c", n);
    let pods = pod_names.iter().map(|p| pod(p, &node)).collect();
    let start = Instant::now();
    let sent = create_all(client, &ns, pods, concurrency, true).await?;
    observer
        .wait_running(scenario, &pod_names, Duration::from_secs(3600))
        .await?;
    let create_secs = start.elapsed().as_secs_f64();
    let lat = latencies(&observer, &sent);
    let rate = throughput(&observer, &sent);
    let t = Instant::now();
    delete_all(client, &ns, 0, concurrency).await?;
    observer
        .wait_empty(&format!("{scenario} delete"), Duration::from_secs(3600))
        .await?;
    let delete_secs = t.elapsed().as_secs_f64();
    let _ = nodes.delete(&node, &DeleteParams::default()).await;
    drop_namespace(client, &ns).await;

    let mut r = ScenarioResult::new(scenario, json!({"pods": n, "concurrency": concurrency}));
    r.metric("pods_per_second", rate);
    r.metric("create_to_running_seconds", create_secs);
    r.metric("latency_ms", summarize(&lat));
    r.metric("delete_all_seconds", delete_secs);
    eprintln!(
        "    {scenario}: {rate:.0} pods/s, p99 {:.0} ms",
        summarize(&lat).p99_ms
    );
    Ok(r)
}

pub(super) fn mock_config(
    dir: &Path,
    state_file: Option<&Path>,
) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join(format!("mock-{}.toml", vk_testkit::unique_name("cfg")));
    let mut text =
        String::from("[capacity]\ncpu = \"1000\"\nmemory = \"4Ti\"\npods = \"200000\"\n");
    if let Some(s) = state_file {
        text = format!("state_file = {:?}\n{text}", s.display().to_string());
    }
    std::fs::write(&path, text)?;
    Ok(path)
}

pub(super) fn agent_args(
    env: &Env,
    args: &Args,
    node: &str,
    config: &Path,
    extra: &[&str],
) -> Vec<String> {
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

/// Deletes the virtual-kubelet Nodes whose name starts with `prefix`.
pub(crate) async fn delete_node_objects(client: &Client, prefix: &str) {
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

/// Deletes every pod of `ns` (grace 1s) and waits until the observer sees none; returns
/// how long that took.
async fn delete_and_wait(
    client: &Client,
    ns: &str,
    concurrency: usize,
    observer: &Observer,
    label: &str,
    timeout: Duration,
) -> anyhow::Result<f64> {
    let t = Instant::now();
    delete_all(client, ns, 1, concurrency).await?;
    observer.wait_empty(label, timeout).await?;
    Ok(t.elapsed().as_secs_f64())
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
    let scenario = churn_scenario(args);
    eprintln!("==> {scenario}: {n} pods through one vk-mock node");
    let ns = namespace(client, scenario).await?;
    let node = &format!("vk-bench-{scenario}");
    let config = mock_config(&env.out, None)?;
    let mut agent = Agent::start(
        &env.binary,
        &agent_args(env, args, node, &config, &[]),
        &env.out.join(format!("{scenario}-agent.log")),
    )?;
    agent.wait_ready(Duration::from_secs(120)).await?;
    let observer = Observer::start(client.clone(), &ns).await?;
    let run = churn_pods(client, args, &agent, &observer, &ns, node).await?;
    agent.stop()?;
    delete_node_objects(client, node).await;
    drop_namespace(client, &ns).await;

    let costs = ChurnCosts::of(&run, n);
    let summary = summarize(&run.latencies);
    std::fs::write(
        env.out.join(format!("{scenario}-latency.svg")),
        histogram_svg(
            &format!("{scenario}: {n} pods, creation → Running"),
            &run.latencies,
        ),
    )?;
    let r = churn_result(args, &run, &costs, summary, ceiling_rate);
    eprintln!(
        "    {scenario}: {:.0} pods/s, p99 {:.0} ms, delete {:.1}s, {:.2} ms CPU/pod, peak RSS {:.1} MB, {:.2} pod writes/pod",
        run.rate,
        summary.p99_ms,
        run.delete_secs,
        costs.cpu_ms_per_pod,
        costs.peak_rss_mb,
        costs.pod_writes_per_pod
    );
    Ok(r)
}

/// What one churn run measured, with the agent's CPU and API counts before and after.
pub(super) struct ChurnRun {
    /// Seconds from the first create until every pod ran.
    create_secs: f64,
    /// Seconds from the first delete until every pod was gone.
    pub(super) delete_secs: f64,
    /// Each pod's creation → Running latency.
    pub(super) latencies: Vec<Duration>,
    /// Pods per second to Running.
    pub(super) rate: f64,
    cpu_before: ProcSample,
    cpu_after: ProcSample,
    api_before: ApiCounts,
    api_after: ApiCounts,
}

/// Creates `args.pods` pods on `node`, waits until all run, deletes them and waits until
/// they are gone (then 2 s for trailing writes), sampling the agent before and after.
pub(super) async fn churn_pods(
    client: &Client,
    args: &Args,
    agent: &Agent,
    observer: &Observer,
    ns: &str,
    node: &str,
) -> anyhow::Result<ChurnRun> {
    let cpu_before = agent.sample();
    let api_before = agent.api_counts().await?;
    let pod_names = names("p", args.pods);
    let pods = pod_names.iter().map(|p| bench_pod(p, node)).collect();
    let start = Instant::now();
    let sent = create_all(client, ns, pods, args.concurrency, false).await?;
    observer
        .wait_running("churn", &pod_names, Duration::from_secs(900))
        .await?;
    let create_secs = start.elapsed().as_secs_f64();
    let latencies = latencies(observer, &sent);
    let rate = throughput(observer, &sent);
    let delete_secs = delete_and_wait(
        client,
        ns,
        args.concurrency,
        observer,
        "churn delete",
        Duration::from_secs(900),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await; // trailing writes settle
    let cpu_after = agent.sample();
    let api_after = agent.api_counts().await?;
    Ok(ChurnRun {
        create_secs,
        delete_secs,
        latencies,
        rate,
        cpu_before,
        cpu_after,
        api_before,
        api_after,
    })
}

/// What a churn run cost the provider.
pub(super) struct ChurnCosts {
    /// CPU seconds over the whole run.
    cpu_secs: f64,
    /// CPU milliseconds per pod lifecycle.
    pub(super) cpu_ms_per_pod: f64,
    /// Peak RSS, MB.
    pub(super) peak_rss_mb: f64,
    /// Pod (and pod subresource) writes per pod lifecycle.
    pub(super) pod_writes_per_pod: f64,
    /// Event writes per pod lifecycle.
    event_writes_per_pod: f64,
    /// Pod, event, ConfigMap, Secret and Service requests per pod lifecycle.
    requests_per_pod: f64,
    /// Requests per pod lifecycle by "verb resource" (those made only).
    by_verb_and_resource: BTreeMap<String, f64>,
}

impl ChurnCosts {
    /// The costs of `run`, spread over its `n` pods.
    pub(super) fn of(run: &ChurnRun, n: usize) -> Self {
        let (api0, api1) = (&run.api_before, &run.api_after);
        let per_pod = |v: u64| v as f64 / n as f64;
        let pod_writes = agent::delta(api0, api1, |v, r| {
            agent::is_write(v) && (r == "pods" || r.starts_with("pods/"))
        });
        let event_writes = agent::delta(api0, api1, |v, r| agent::is_write(v) && r == "events");
        let all_requests = agent::delta(api0, api1, |_, r| {
            r.starts_with("pods")
                || r == "events"
                || r == "configmaps"
                || r == "secrets"
                || r == "services"
        });
        let cpu_secs = run.cpu_after.cpu_seconds - run.cpu_before.cpu_seconds;
        let by_verb_and_resource = api1
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
        Self {
            cpu_secs,
            cpu_ms_per_pod: cpu_secs * 1000.0 / n as f64,
            peak_rss_mb: run.cpu_after.peak_rss_bytes as f64 / MB,
            pod_writes_per_pod: per_pod(pod_writes),
            event_writes_per_pod: per_pod(event_writes),
            requests_per_pod: per_pod(all_requests),
            by_verb_and_resource,
        }
    }
}

/// The churn result: its settings, metrics and targets (the rate against 0.8 × this
/// run's ceiling when there is one).
/// `churn` with a fixed `--qps`, `churn-default-flags` without (the provider's
/// default flags: adaptive client limit, success events recorded).
fn churn_scenario(args: &Args) -> &'static str {
    if args.qps.is_some() {
        "churn"
    } else {
        "churn-default-flags"
    }
}

fn churn_result(
    args: &Args,
    run: &ChurnRun,
    costs: &ChurnCosts,
    summary: LatencySummary,
    ceiling_rate: Option<f64>,
) -> ScenarioResult {
    let rate = run.rate;
    let mut r = ScenarioResult::new(
        churn_scenario(args),
        json!({"pods": args.pods, "concurrency": args.concurrency, "kube_api_qps": args.qps, "success_events": args.success_events, "pod_sync_workers": 32}),
    );
    r.metric("pods_per_second", rate);
    r.metric("create_to_running_seconds", run.create_secs);
    r.metric("latency_ms", summary);
    r.metric("delete_all_seconds", run.delete_secs);
    r.metric("provider_cpu_seconds", costs.cpu_secs);
    r.metric("cpu_ms_per_pod_lifecycle", costs.cpu_ms_per_pod);
    r.metric("provider_peak_rss_mb", costs.peak_rss_mb);
    r.metric("pod_writes_per_lifecycle", costs.pod_writes_per_pod);
    r.metric("event_writes_per_lifecycle", costs.event_writes_per_pod);
    r.metric("pod_related_requests_per_lifecycle", costs.requests_per_pod);
    r.metric(
        "requests_per_lifecycle_by_verb_and_resource",
        &costs.by_verb_and_resource,
    );
    if let Some(c) = ceiling_rate {
        r.metric("ceiling_pods_per_second", c);
        r.metric("ratio_to_ceiling", rate / c);
        // With a generous fixed limit the node should come close to the API server; at
        // default flags (adaptive limit, success events on) issue 18 asks for 0.7.
        let share = if args.qps.is_some() { 0.8 } else { 0.7 };
        r.targets.push(
            TargetCheck::at_least(
                &format!("pods/s to Running ({share} × ceiling)"),
                rate,
                share * c,
                "pods/s",
            )
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
        costs.cpu_ms_per_pod,
        5.0,
        "ms",
    ));
    r.targets.push(TargetCheck::at_most(
        "peak RSS",
        costs.peak_rss_mb,
        30.0,
        "MB",
    ));
    r.targets.push(
        TargetCheck::at_most(
            "API writes per pod lifecycle",
            costs.pod_writes_per_pod,
            3.0,
            "writes",
        )
        .note(format!(
            "pod writes only; events add {:.2} per pod",
            costs.event_writes_per_pod
        )),
    );
    r
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
    let fill = steady_fill(client, args, &observer, &ns, node).await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle = hold_idle(&agent, minutes).await?;
    // Restart: the provider keeps its pods (state file), the core must adopt them all.
    let resync = restart_and_resync(&mut agent).await?;
    let delete_secs = delete_and_wait(
        client,
        &ns,
        args.concurrency,
        &observer,
        "steady delete",
        Duration::from_secs(1800),
    )
    .await?;
    agent.stop()?;
    delete_node_objects(client, node).await;
    drop_namespace(client, &ns).await;
    let _ = std::fs::remove_file(&state);

    let r = steady_result(args, &fill, &idle, &resync, delete_secs);
    eprintln!(
        "    steady: RSS {:.1} MB, idle {:.3} CPU-s/min, resync {:.1}s, {} creates after restart",
        idle.rss_max as f64 / MB,
        idle.cpu_per_min,
        resync.duration.as_secs_f64(),
        resync.creates
    );
    Ok(r)
}

/// How the steady scenario's pods were started.
struct Fill {
    /// Seconds from the first create until every pod ran.
    seconds: f64,
    /// Pods per second to Running.
    pub(super) rate: f64,
}

/// Creates `args.steady_pods` pods on `node` and waits until all run.
async fn steady_fill(
    client: &Client,
    args: &Args,
    observer: &Observer,
    ns: &str,
    node: &str,
) -> anyhow::Result<Fill> {
    let pod_names = names("s", args.steady_pods);
    let pods = pod_names.iter().map(|p| bench_pod(p, node)).collect();
    let t = Instant::now();
    let sent = create_all(client, ns, pods, args.concurrency, false).await?;
    observer
        .wait_running("steady", &pod_names, Duration::from_secs(1800))
        .await?;
    Ok(Fill {
        seconds: t.elapsed().as_secs_f64(),
        rate: throughput(observer, &sent),
    })
}

/// The provider while it held its pods idle.
struct Idle {
    /// The largest RSS sampled, bytes.
    rss_max: u64,
    /// Peak RSS at the end, bytes.
    peak_rss_bytes: u64,
    /// CPU seconds per minute.
    cpu_per_min: f64,
    /// API requests per minute.
    requests_per_min: f64,
}

/// Holds the pods for `minutes`, sampling the agent every 10 s and printing progress.
async fn hold_idle(agent: &Agent, minutes: u64) -> anyhow::Result<Idle> {
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
    Ok(Idle {
        rss_max,
        peak_rss_bytes: b.peak_rss_bytes,
        cpu_per_min: (b.cpu_seconds - a.cpu_seconds) / idle_minutes,
        requests_per_min: agent::delta(&api_a, &api_b, |_, _| true) as f64 / idle_minutes,
    })
}

/// What the provider did when restarted with its pods.
struct Resync {
    /// Until it was ready again.
    duration: Duration,
    /// Provider creates after the restart (0 when every pod was adopted).
    creates: u64,
    /// Pods adopted.
    adopted: u64,
    /// RSS once ready, bytes.
    rss_bytes: u64,
}

/// Restarts the provider and waits until it is ready again, then reads what it did
/// from its metrics.
async fn restart_and_resync(agent: &mut Agent) -> anyhow::Result<Resync> {
    eprintln!("    steady: restarting the provider process");
    agent.restart()?;
    let duration = agent.wait_ready(Duration::from_secs(600)).await?;
    let (_, metrics) = vk_testkit::http::get(agent.metrics_port, "/metrics").await?;
    let creates = provider_counter(
        &metrics,
        "vk_pod_provider_calls_total",
        "operation=\"create\"",
    );
    let adopted = provider_counter(&metrics, "vk_pod_adopted_total", "node=");
    Ok(Resync {
        duration,
        creates,
        adopted,
        rss_bytes: agent.sample().rss_bytes,
    })
}

/// The steady result: its settings, metrics and targets.
fn steady_result(
    args: &Args,
    fill: &Fill,
    idle: &Idle,
    resync: &Resync,
    delete_secs: f64,
) -> ScenarioResult {
    let n = args.steady_pods;
    let mut r = ScenarioResult::new(
        "steady",
        json!({"pods": n, "idle_minutes": args.minutes, "kube_api_qps": args.qps}),
    );
    r.metric("fill_seconds", fill.seconds);
    r.metric("fill_pods_per_second", fill.rate);
    r.metric("rss_mb_while_holding", idle.rss_max as f64 / MB);
    r.metric("peak_rss_mb", idle.peak_rss_bytes as f64 / MB);
    r.metric("idle_cpu_seconds_per_minute", idle.cpu_per_min);
    r.metric("idle_api_requests_per_minute", idle.requests_per_min);
    r.metric(
        "resync_after_restart_seconds",
        resync.duration.as_secs_f64(),
    );
    r.metric("creates_after_restart", resync.creates);
    r.metric("adopted_after_restart", resync.adopted);
    r.metric("rss_mb_after_restart", resync.rss_bytes as f64 / MB);
    r.metric("delete_all_seconds", delete_secs);
    r.targets.push(TargetCheck::at_most(
        "RSS holding 10,000 pods",
        idle.rss_max as f64 / MB,
        100.0,
        "MB",
    ));
    r.targets.push(
        TargetCheck::at_most("idle CPU", idle.cpu_per_min, 0.5, "CPU-s/min")
            .note("\"near-zero\": at most 1% of one core"),
    );
    r.targets.push(TargetCheck {
        name: "no duplicate creates after restart".into(),
        target: "0".into(),
        value: resync.creates.to_string(),
        met: resync.creates == 0 && resync.adopted as usize == n,
        note: Some(format!("{} pods adopted", resync.adopted)),
    });
    r
}

/// The name prefix of the fleet's nodes (and so of their Leases).
const FLEET_PREFIX: &str = "vk-bench-fleet";

/// The Lease renewal interval the fleet is held to, seconds.
const LEASE_RENEW_INTERVAL_S: f64 = 10.0;

#[derive(Default)]
pub(super) struct FleetWatch {
    last_renew: HashMap<String, k8s_openapi::jiff::Timestamp>,
    renewals: u64,
    late: u64,
    max_gap_s: f64,
    not_ready: u64,
    not_ready_nodes: std::collections::BTreeSet<String>,
}

impl FleetWatch {
    /// Records Lease `name` renewed at `t`: a renewal when later than the last one
    /// seen, late when more than two intervals after it.
    fn record_renewal(&mut self, name: String, t: k8s_openapi::jiff::Timestamp) {
        if let Some(prev) = self.last_renew.insert(name, t) {
            let gap = t.duration_since(prev).as_secs_f64();
            if gap > 0.0 {
                self.renewals += 1;
                self.max_gap_s = self.max_gap_s.max(gap);
                if gap > 2.0 * LEASE_RENEW_INTERVAL_S {
                    self.late += 1;
                }
            }
        }
    }

    /// Records node `name` seen not Ready.
    fn record_not_ready(&mut self, name: String) {
        self.not_ready += 1;
        self.not_ready_nodes.insert(name);
    }

    /// Adds the watch's counts to `r`.
    pub(super) fn add_metrics(&self, r: &mut ScenarioResult) {
        r.metric("lease_renewals_observed", self.renewals);
        r.metric("late_lease_renewals", self.late);
        r.metric("max_renewal_gap_seconds", self.max_gap_s);
        r.metric("not_ready_observations", self.not_ready);
    }

    /// The fleet targets the watch decides: no late renewal, never NotReady.
    pub(super) fn targets(&self) -> [TargetCheck; 2] {
        [
            TargetCheck::at_most("late lease renewals", self.late as f64, 0.0, "renewals"),
            TargetCheck::at_most("NotReady observations", self.not_ready as f64, 0.0, "times"),
        ]
    }

    /// Names the first ten nodes seen NotReady, if any were.
    pub(super) fn not_ready_note(&self) -> Option<String> {
        (!self.not_ready_nodes.is_empty()).then(|| {
            format!(
                "nodes seen NotReady: {}",
                self.not_ready_nodes
                    .iter()
                    .take(10)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// M nodes in one process: lease renewals on time, never NotReady, memory and CPU.
pub async fn fleet(env: &Env, args: &Args) -> anyhow::Result<ScenarioResult> {
    let (m, pods_n, minutes) = (args.nodes, args.fleet_pods, args.minutes);
    eprintln!("==> fleet: {m} nodes in one vk-mock process, {pods_n} pods, {minutes} min");
    let spec = FleetSpec {
        label: "fleet",
        prefix: FLEET_PREFIX,
        nodes: m,
        pods: pods_n,
        pod_prefix: "f",
        pod: bench_pod,
        timeout: Duration::from_secs(900),
        server: None,
    };
    let measure = run_fleet(env, args, &spec).await?;
    let run = FleetRun {
        register: measure.register,
        fill_rate: measure.fill_rate,
        rss_max: measure.rss_max_held,
        peak_rss_bytes: measure.held.peak_rss_bytes,
        cpu_per_min: measure.cpu_per_min_held(),
    };
    let w = &measure.watch;
    let r = fleet_result(args, &run, w);
    eprintln!(
        "    fleet: {} late renewals (max gap {:.1}s), {} NotReady, RSS {:.1} MB, {:.2} CPU-s/min",
        w.late,
        w.max_gap_s,
        w.not_ready,
        run.rss_max as f64 / MB,
        run.cpu_per_min
    );
    Ok(r)
}

/// What a fleet run varies: `fleet` and `scale` differ only in these.
pub(super) struct FleetSpec<'a> {
    /// Names the namespace and the progress lines.
    pub(super) label: &'static str,
    /// Node (and Lease) name prefix.
    pub(super) prefix: &'static str,
    /// Virtual nodes in the one process.
    pub(super) nodes: usize,
    /// Pods spread over them (pod `i` on node `i % nodes`).
    pub(super) pods: usize,
    /// Pod name prefix.
    pub(super) pod_prefix: &'static str,
    /// Makes pod `name` bound to `node`.
    pub(super) pod: fn(&str, &str) -> Pod,
    /// How long the fill, and the delete, may take.
    pub(super) timeout: Duration,
    /// Samples the control plane at the hold's start and end, when given.
    pub(super) server: Option<&'a ServerSampler>,
}

/// What one fleet run measured.
pub(super) struct FleetMeasure {
    /// Until every node was registered and synced.
    pub(super) register: Duration,
    /// From the first create until every pod ran, seconds.
    pub(super) fill_secs: f64,
    /// Pods per second to Running.
    pub(super) fill_rate: f64,
    /// The node process before the fill, once full (the hold's start) and at the hold's end.
    pub(super) before_fill: ProcSample,
    pub(super) full: ProcSample,
    pub(super) held: ProcSample,
    /// The largest RSS sampled while holding, bytes.
    pub(super) rss_max_held: u64,
    /// The hold's length.
    pub(super) hold: Duration,
    /// Until every pod was gone, seconds.
    pub(super) delete_secs: f64,
    /// Lease renewals and NotReady observations, fill to hold's end.
    pub(super) watch: FleetWatch,
    /// Each control-plane process at the hold's start and end (empty without a sampler).
    pub(super) server_held: Vec<(&'static str, ProcSample, ProcSample)>,
}

impl FleetMeasure {
    /// The node's CPU seconds per minute of the hold alone (not the fill before it or
    /// the deletion after it).
    pub(super) fn cpu_per_min_held(&self) -> f64 {
        (self.held.cpu_seconds - self.full.cpu_seconds) / self.minutes_held()
    }

    /// The hold's length in minutes.
    pub(super) fn minutes_held(&self) -> f64 {
        (self.hold.as_secs_f64() / 60.0).max(f64::EPSILON)
    }
}

/// One vk-mock process running `spec.nodes` nodes: `spec.pods` pods filled, held for
/// `args.minutes` while every Lease renewal and Node condition is watched, deleted.
pub(super) async fn run_fleet(
    env: &Env,
    args: &Args,
    spec: &FleetSpec<'_>,
) -> anyhow::Result<FleetMeasure> {
    let client = &env.client;
    let (label, prefix) = (spec.label, spec.prefix);
    let ns = namespace(client, label).await?;
    let config = mock_config(&env.out, None)?;
    let (mut agent, register) = start_fleet(env, args, &config, prefix, spec.nodes).await?;
    let watch = Arc::new(Mutex::new(FleetWatch::default()));
    let lease_task = tokio::spawn(watch_leases(client.clone(), Arc::clone(&watch), prefix));
    let node_task = tokio::spawn(watch_nodes(client.clone(), Arc::clone(&watch), prefix));
    let observer = Observer::start(client.clone(), &ns).await?;
    let pod_names = names(spec.pod_prefix, spec.pods);
    let pods = pod_names
        .iter()
        .enumerate()
        .map(|(i, p)| (spec.pod)(p, &format!("{prefix}-{}", i % spec.nodes)))
        .collect();
    let before_fill = agent.sample();
    let t = Instant::now();
    let sent = create_all(client, &ns, pods, args.concurrency, false).await?;
    observer
        .wait_running(label, &pod_names, spec.timeout)
        .await?;
    let fill_secs = t.elapsed().as_secs_f64();
    let fill_rate = throughput(&observer, &sent);
    drop(sent);
    let full = agent.sample();
    eprintln!(
        "    {label}: {} pods Running in {fill_secs:.0}s ({fill_rate:.0} pods/s), node RSS {:.1} MB",
        spec.pods,
        full.rss_bytes as f64 / MB
    );

    let server0 = spec.server.map(ServerSampler::now).unwrap_or_default();
    let hold = Instant::now();
    let rss_max_held = hold_fleet(&agent, &watch, hold, args.minutes, label).await;
    let hold = hold.elapsed();
    let held = agent.sample();
    let server1 = spec.server.map(ServerSampler::now).unwrap_or_default();
    let server_held = server0
        .into_iter()
        .zip(server1)
        .map(|((name, a), (_, b))| (name, a, b))
        .collect();
    lease_task.abort();
    node_task.abort();
    let delete_secs = delete_and_wait(
        client,
        &ns,
        args.concurrency,
        &observer,
        &format!("{label} delete"),
        spec.timeout,
    )
    .await?;
    agent.stop()?;
    delete_node_objects(client, prefix).await;
    drop_namespace(client, &ns).await;
    let watch = std::mem::take(&mut *lock(&watch));
    Ok(FleetMeasure {
        register,
        fill_secs,
        fill_rate,
        before_fill,
        full,
        held,
        rss_max_held,
        hold,
        delete_secs,
        watch,
        server_held,
    })
}

/// Starts one vk-mock process running `nodes` nodes named `<prefix>-<i>` and waits
/// until all are registered and synced; returns the agent and how long that took.
async fn start_fleet(
    env: &Env,
    args: &Args,
    config: &Path,
    prefix: &str,
    nodes: usize,
) -> anyhow::Result<(Agent, Duration)> {
    let nodes_arg = nodes.to_string();
    let mut agent = Agent::start(
        &env.binary,
        // The fleet measures node/lease upkeep; 1,000 kubelet API listeners on
        // consecutive ports would collide with whatever else runs on this machine.
        &agent_args(
            env,
            args,
            prefix,
            config,
            &["--nodes", &nodes_arg, "--no-kubelet-api"],
        ),
        &env.out.join(format!("{prefix}-agent.log")),
    )?;
    let register = agent.wait_ready(Duration::from_secs(900)).await?;
    eprintln!(
        "    {prefix}: {nodes} nodes registered and synced in {:.1}s",
        register.as_secs_f64()
    );
    Ok((agent, register))
}

/// Records every renewal of the Leases named `<prefix>...` in `watch` (until aborted).
async fn watch_leases(client: Client, watch: Arc<Mutex<FleetWatch>>, prefix: &str) {
    let api: Api<Lease> = Api::namespaced(client, "kube-node-lease");
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
        lock(&watch).record_renewal(name, t);
    }
}

/// Records in `watch` every time a Node named `<prefix>...` is seen not Ready (until
/// aborted).
async fn watch_nodes(client: Client, watch: Arc<Mutex<FleetWatch>>, prefix: &str) {
    let api: Api<Node> = Api::all(client);
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
            lock(&watch).record_not_ready(name);
        }
    }
}

/// Holds the fleet until `minutes` after `since`, sampling the agent every 10 s and
/// printing progress (with the node's CPU over the last sample's span, so a burst
/// within the hold shows where it is); returns the largest RSS sampled, bytes.
async fn hold_fleet(
    agent: &Agent,
    watch: &Mutex<FleetWatch>,
    since: Instant,
    minutes: u64,
    label: &str,
) -> u64 {
    let mut rss_max = 0;
    let mut last = (Instant::now(), agent.sample().cpu_seconds);
    while since.elapsed() < Duration::from_secs(60 * minutes) {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let s = agent.sample();
        let now = Instant::now();
        let span_min = (now - last.0).as_secs_f64() / 60.0;
        let cpu_per_min = (s.cpu_seconds - last.1) / span_min.max(f64::EPSILON);
        last = (now, s.cpu_seconds);
        rss_max = rss_max.max(s.rss_bytes);
        let w = lock(watch);
        eprintln!(
            "    {label}: {:.0}s, {} renewals ({} late, max gap {:.1}s), {} NotReady observations, RSS {:.1} MB, CPU {cpu_per_min:.2} CPU-s/min",
            since.elapsed().as_secs_f64(),
            w.renewals,
            w.late,
            w.max_gap_s,
            w.not_ready,
            s.rss_bytes as f64 / MB
        );
    }
    rss_max
}

/// What a fleet run measured besides the watch.
struct FleetRun {
    /// Until every node was registered and synced.
    register: Duration,
    /// Pods per second to Running.
    fill_rate: f64,
    /// The largest RSS sampled while holding, bytes.
    rss_max: u64,
    /// Peak RSS at the end of the hold, bytes.
    peak_rss_bytes: u64,
    /// CPU seconds per minute of the hold.
    cpu_per_min: f64,
}

/// The fleet result: its settings, metrics, targets, and the first nodes seen NotReady.
fn fleet_result(args: &Args, run: &FleetRun, w: &FleetWatch) -> ScenarioResult {
    let mut r = ScenarioResult::new(
        "fleet",
        json!({"nodes": args.nodes, "pods": args.fleet_pods, "minutes": args.minutes, "lease_renew_interval_s": LEASE_RENEW_INTERVAL_S}),
    );
    r.metric("registration_seconds", run.register.as_secs_f64());
    r.metric("fill_pods_per_second", run.fill_rate);
    w.add_metrics(&mut r);
    r.metric("rss_mb", run.rss_max as f64 / MB);
    r.metric("peak_rss_mb", run.peak_rss_bytes as f64 / MB);
    r.metric("cpu_seconds_per_minute", run.cpu_per_min);
    r.targets.extend(w.targets());
    r.targets.push(TargetCheck::at_most(
        "RSS",
        run.rss_max as f64 / MB,
        200.0,
        "MB",
    ));
    r.notes.extend(w.not_ready_note());
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("timestamp")
    }

    #[test]
    fn fleet_watch_counts_renewals_gaps_and_late_ones() {
        let mut w = FleetWatch::default();
        w.record_renewal("a".into(), at(100));
        w.record_renewal("a".into(), at(110));
        w.record_renewal("a".into(), at(110)); // the same renewal seen again
        w.record_renewal("b".into(), at(105));
        w.record_renewal("a".into(), at(135)); // more than two intervals late
        assert_eq!(w.renewals, 2);
        assert_eq!(w.late, 1);
        assert_eq!(w.max_gap_s, 25.0);
        w.record_not_ready("b".into());
        w.record_not_ready("b".into());
        assert_eq!(w.not_ready, 2);
        assert_eq!(w.not_ready_nodes.len(), 1);
    }

    #[test]
    fn churn_costs_are_per_pod_and_split_by_kind() {
        let counts = |entries: &[(&str, &str, u64)]| -> ApiCounts {
            entries
                .iter()
                .map(|(v, r, n)| (((*v).to_owned(), (*r).to_owned()), *n))
                .collect()
        };
        let run = ChurnRun {
            create_secs: 1.0,
            delete_secs: 1.0,
            latencies: Vec::new(),
            rate: 1.0,
            cpu_before: ProcSample {
                cpu_seconds: 1.0,
                ..Default::default()
            },
            cpu_after: ProcSample {
                cpu_seconds: 3.0,
                rss_bytes: 0,
                peak_rss_bytes: 8 * 1024 * 1024,
            },
            api_before: counts(&[("patch", "pods/status", 10), ("get", "nodes", 5)]),
            api_after: counts(&[
                ("patch", "pods/status", 30),
                ("delete", "pods", 10),
                ("create", "events", 5),
                ("get", "configmaps", 10),
                ("get", "nodes", 5),
            ]),
        };
        let c = ChurnCosts::of(&run, 10);
        assert_eq!(c.cpu_secs, 2.0);
        assert_eq!(c.cpu_ms_per_pod, 200.0);
        assert_eq!(c.peak_rss_mb, 8.0);
        assert_eq!(c.pod_writes_per_pod, 3.0);
        assert_eq!(c.event_writes_per_pod, 0.5);
        assert_eq!(c.requests_per_pod, 4.5);
        let by: Vec<_> = c.by_verb_and_resource.into_iter().collect();
        assert_eq!(
            by,
            [
                ("create events".to_owned(), 0.5),
                ("delete pods".to_owned(), 1.0),
                ("get configmaps".to_owned(), 1.0),
                ("patch pods/status".to_owned(), 2.0),
            ]
        );
    }
}
