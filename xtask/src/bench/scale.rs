//! The `scale` scenario: KWOK's claim of "1,000 nodes and 100,000 pods in one process"
//! held against one vk-mock process, with the API server's own ceiling at the same
//! object count measured first in the same run.
//!
//! Steps: the ceiling (the bench creates the pods bound to a plain Node and marks them
//! Running itself, then deletes them), then one vk-mock process with `--nodes N`, the
//! same number of pods spread over its nodes (filled, held for `--minutes`, deleted),
//! while every Lease renewal and every Node condition of the fleet is watched. The API
//! server's and etcd's CPU and memory are sampled throughout, so the figures can be
//! read against what the control plane itself needed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Toleration};
use serde_json::json;
use tokio::task::JoinHandle;
use vk_testkit::LocalCluster;
use vk_testkit::cluster::Component;

use super::procfs::{self, ProcSample};
use super::report::{ScenarioResult, TargetCheck};
use super::scenarios::{FleetMeasure, FleetSpec, ceiling_of, lock, run_fleet};
use super::stream::load_average;
use super::workload::bench_pod;
use super::{Args, Env};

/// The name prefix of the scale fleet's nodes (and Leases).
const PREFIX: &str = "vk-bench-scale";
const MB: f64 = 1024.0 * 1024.0;
/// The RSS target of the node process holding the pods, MB.
const RSS_TARGET_MB: f64 = 400.0;
/// The idle CPU target of the node process, CPU-seconds per minute.
const IDLE_CPU_TARGET: f64 = 1.0;
/// The fill rate target, as a fraction of the same run's ceiling.
const FILL_RATIO_TARGET: f64 = 0.7;

/// The `scale` scenario (see the module docs): the ceiling at the same count
/// (`scale-ceiling`) and the fleet (`scale`).
pub async fn scale(env: &Env, args: &Args) -> anyhow::Result<Vec<ScenarioResult>> {
    let (m, n) = (args.scale_nodes, args.scale_pods);
    let cluster = LocalCluster::from_env()?;
    let load_start = load_average();
    let server = ServerSampler::start(&cluster);
    let mut ceiling = ceiling_of(env, "scale-ceiling", n, args.concurrency, scale_pod).await?;
    let ceiling_rate = ceiling
        .metrics
        .iter()
        .find(|(k, _)| k == "pods_per_second")
        .and_then(|(_, v)| v.as_f64())
        .unwrap_or(0.0);
    server.report_into(&mut ceiling, "during the ceiling's fill and delete");

    eprintln!(
        "==> scale: {m} nodes in one vk-mock process, {n} pods, {} min",
        args.minutes
    );
    let server = ServerSampler::start(&cluster);
    let spec = FleetSpec {
        label: "scale",
        prefix: PREFIX,
        nodes: m,
        pods: n,
        pod_prefix: "s",
        pod: scale_pod,
        timeout: Duration::from_secs(3600),
        server: Some(&server),
    };
    let run = run_fleet(env, args, &spec).await?;
    let mut r = scale_result(args, &run, ceiling_rate);
    server.report_into(&mut r, "during the fill, the hold and the delete");
    r.metric("load_average_1m_at_start", load_start);
    r.metric("load_average_1m_at_end", load_average());
    Ok(vec![ceiling, r])
}

/// A bench pod that also tolerates its node being unreachable or not ready for good.
/// The ceiling's Node has no kubelet: 40 s after it appears the node lifecycle
/// controller taints it `unreachable:NoExecute`, and pods with the API server's
/// default 300 s toleration would be evicted while 100,000 are still being created.
/// The fleet's pods are the same, so both fills write the same objects.
fn scale_pod(name: &str, node: &str) -> Pod {
    let mut pod = bench_pod(name, node);
    if let Some(spec) = pod.spec.as_mut() {
        let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
        for key in [
            "node.kubernetes.io/unreachable",
            "node.kubernetes.io/not-ready",
        ] {
            tolerations.push(Toleration {
                key: Some(key.to_owned()),
                operator: Some("Exists".to_owned()),
                effect: Some("NoExecute".to_owned()),
                ..Default::default()
            });
        }
    }
    pod
}

fn scale_result(args: &Args, run: &FleetMeasure, ceiling_rate: f64) -> ScenarioResult {
    let mut r = ScenarioResult::new(
        "scale",
        json!({"nodes": args.scale_nodes, "pods": args.scale_pods, "minutes": args.minutes,
               "concurrency": args.concurrency, "kube_api_qps": args.qps}),
    );
    let w = &run.watch;
    r.metric("registration_seconds", run.register.as_secs_f64());
    r.metric("fill_seconds", run.fill_secs);
    r.metric("fill_pods_per_second", run.fill_rate);
    r.metric("ceiling_pods_per_second", ceiling_rate);
    let ratio = if ceiling_rate > 0.0 {
        run.fill_rate / ceiling_rate
    } else {
        0.0
    };
    r.metric("ratio_to_ceiling", ratio);
    r.metric(
        "fill_cpu_ms_per_pod",
        (run.full.cpu_seconds - run.before_fill.cpu_seconds) * 1000.0
            / args.scale_pods.max(1) as f64,
    );
    r.metric("rss_mb_full", run.full.rss_bytes as f64 / MB);
    r.metric("rss_mb_held_max", run.rss_max_held as f64 / MB);
    r.metric("peak_rss_mb", run.held.peak_rss_bytes as f64 / MB);
    r.metric("cpu_seconds_per_minute_held", run.cpu_per_min_held());
    w.add_metrics(&mut r);
    r.metric("delete_all_seconds", run.delete_secs);
    for (name, a, b) in &run.server_held {
        r.metric(
            &format!("{name}_cpu_seconds_per_minute_held"),
            (b.cpu_seconds - a.cpu_seconds) / run.minutes_held(),
        );
        r.metric(&format!("{name}_rss_mb_held"), b.rss_bytes as f64 / MB);
    }
    r.targets.extend(w.targets());
    r.targets.push(
        TargetCheck::at_least(
            &format!("fill rate ({FILL_RATIO_TARGET} × ceiling at the same count)"),
            run.fill_rate,
            FILL_RATIO_TARGET * ceiling_rate,
            "pods/s",
        )
        .note(format!(
            "{ratio:.2} × this run's ceiling of {ceiling_rate:.1} pods/s"
        )),
    );
    r.targets.push(TargetCheck::at_most(
        &format!("RSS holding {} pods", args.scale_pods),
        run.rss_max_held as f64 / MB,
        RSS_TARGET_MB,
        "MB",
    ));
    r.targets.push(TargetCheck::at_most(
        "idle CPU",
        run.cpu_per_min_held(),
        IDLE_CPU_TARGET,
        "CPU-s/min",
    ));
    r.notes.extend(w.not_ready_note());
    r
}

/// Samples kube-apiserver and etcd every 2 s while it lives: their peak RSS and the
/// CPU they used, so a scenario can say what the control plane itself needed.
pub(super) struct ServerSampler {
    pids: Vec<(&'static str, u32)>,
    first: Vec<ProcSample>,
    peak_rss: Arc<Mutex<Vec<u64>>>,
    task: JoinHandle<()>,
}

impl ServerSampler {
    fn start(cluster: &LocalCluster) -> Self {
        let pids: Vec<(&'static str, u32)> = [
            ("kube_apiserver", Component::ApiServer),
            ("etcd", Component::Etcd),
        ]
        .into_iter()
        .filter_map(|(name, c)| cluster.component_pid(c).map(|pid| (name, pid)))
        .collect();
        let first = pids
            .iter()
            .map(|(_, pid)| procfs::sample(*pid).unwrap_or_default())
            .collect();
        let peak_rss = Arc::new(Mutex::new(vec![0; pids.len()]));
        let task = {
            let pids = pids.clone();
            let peak_rss = Arc::clone(&peak_rss);
            tokio::spawn(async move {
                loop {
                    for (i, (_, pid)) in pids.iter().enumerate() {
                        let rss = procfs::sample(*pid).map_or(0, |s| s.rss_bytes);
                        let mut peaks = lock(&peak_rss);
                        peaks[i] = peaks[i].max(rss);
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            })
        };
        Self {
            pids,
            first,
            peak_rss,
            task,
        }
    }

    /// Each sampled process's current sample, by name.
    pub(super) fn now(&self) -> Vec<(&'static str, ProcSample)> {
        self.pids
            .iter()
            .map(|(name, pid)| (*name, procfs::sample(*pid).unwrap_or_default()))
            .collect()
    }

    /// Stops sampling and adds each process's CPU seconds since the start and peak RSS
    /// to `r`, with a note saying over what `span` they were taken.
    fn report_into(self, r: &mut ScenarioResult, span: &str) {
        self.task.abort();
        let now = self.now();
        let peaks = lock(&self.peak_rss).clone();
        for (i, (name, sample)) in now.iter().enumerate() {
            r.metric(
                &format!("{name}_cpu_seconds"),
                sample.cpu_seconds - self.first[i].cpu_seconds,
            );
            r.metric(&format!("{name}_peak_rss_mb"), peaks[i] as f64 / MB);
        }
        if !now.is_empty() {
            r.notes.push(format!(
                "`kube_apiserver_*` and `etcd_*`: the control plane's CPU seconds and peak RSS {span} (sampled every 2 s), so the node's figures can be read against what the API server itself needed"
            ));
        }
    }
}
