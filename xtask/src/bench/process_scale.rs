//! The `process` scenario: pods on a vk-process node, each a real process (`sleep`)
//! with its shim: creation → Running latency, and the node's RSS and CPU while they
//! run.

use std::time::{Duration, Instant};

use serde_json::json;

use super::agent::{self, Agent};
use super::process_node;
use super::report::{ScenarioResult, TargetCheck};
use super::scenarios::{names, namespace};
use super::stats::summarize;
use super::stream::load_average;
use super::workload::{Observer, create_all, latencies, throughput};
use super::{Args, Env};

const NODE: &str = "vk-bench-process";
const MB: f64 = 1024.0 * 1024.0;
/// How long the running pods are held while the node is sampled.
const HOLD: Duration = Duration::from_secs(60);

/// The `process` scenario (see the module docs).
pub async fn process(env: &Env, args: &Args) -> anyhow::Result<ScenarioResult> {
    let n = args.process_pods;
    eprintln!("==> process: {n} pods as real processes on one vk-process node");
    let client = &env.client;
    let ns = namespace(client, "process").await?;
    let mut agent = process_node::start(env, args, NODE, n).await?;
    let observer = Observer::start(client.clone(), &ns).await?;
    let result = measure(env, args, &agent, &observer, &ns).await;
    process_node::tear_down(env, args, &mut agent, &observer, &ns, NODE).await;
    result
}

async fn measure(
    env: &Env,
    args: &Args,
    agent: &Agent,
    observer: &Observer,
    ns: &str,
) -> anyhow::Result<ScenarioResult> {
    let n = args.process_pods;
    let load_start = load_average();
    let pod_names = names("p", n);
    let sleep = format!("{}", 86_400 + std::process::id() % 300);
    let pods = pod_names
        .iter()
        .map(|p| process_node::pod(p, NODE, &["sleep", &sleep]))
        .collect();
    let cpu0 = agent.sample();
    let api0 = agent.api_counts().await?;
    let sent = create_all(&env.client, ns, pods, args.concurrency, false).await?;
    observer
        .wait_running("process", &pod_names, Duration::from_secs(600))
        .await?;
    let lat = summarize(&latencies(observer, &sent));
    let rate = throughput(observer, &sent);
    let filled = agent.sample();
    let api1 = agent.api_counts().await?;
    let status_writes = agent::delta(&api0, &api1, |v, r| {
        agent::is_write(v) && (r == "pods" || r.starts_with("pods/"))
    }) as f64
        / n as f64;
    eprintln!(
        "    process: {rate:.0} pods/s, p50 {:.0} ms, p99 {:.0} ms",
        lat.p50_ms, lat.p99_ms
    );
    // Hold: the node's upkeep of n running processes.
    let hold = Instant::now();
    let mut rss_max = filled.rss_bytes;
    while hold.elapsed() < HOLD {
        tokio::time::sleep(Duration::from_secs(5)).await;
        rss_max = rss_max.max(agent.sample().rss_bytes);
    }
    let held = agent.sample();
    let shims = shim_pss(agent.pid());
    let cpu_per_min =
        (held.cpu_seconds - filled.cpu_seconds) / (hold.elapsed().as_secs_f64() / 60.0);
    eprintln!(
        "    process: node RSS {:.1} MB with {n} processes, {cpu_per_min:.2} CPU-s/min held; {} shims, PSS {:.1} MB",
        rss_max as f64 / MB,
        shims.0,
        shims.1 as f64 / MB
    );

    let mut r = ScenarioResult::new(
        "process",
        json!({"pods": n, "concurrency": args.concurrency, "kube_api_qps": args.qps,
               "hold_seconds": HOLD.as_secs(), "command": "sleep"}),
    );
    r.metric("load_average_1m_at_start", load_start);
    r.metric("pods_per_second", rate);
    r.metric("latency_ms", lat);
    r.metric(
        "fill_cpu_ms_per_pod",
        (filled.cpu_seconds - cpu0.cpu_seconds) * 1000.0 / n as f64,
    );
    r.metric("pod_writes_per_pod_to_running", status_writes);
    r.metric("node_rss_mb", rss_max as f64 / MB);
    r.metric("node_peak_rss_mb", held.peak_rss_bytes as f64 / MB);
    r.metric("node_cpu_seconds_per_minute_held", cpu_per_min);
    r.metric("shims", shims.0);
    r.metric("shims_pss_mb", shims.1 as f64 / MB);
    r.metric("load_average_1m_at_end", load_average());
    r.targets.push(TargetCheck::at_most(
        "pod start latency p99 (create → Running)",
        lat.p99_ms,
        1000.0,
        "ms",
    ));
    r.notes.push(
        "each container runs under a shim (the vk-process binary in shim mode, in a process \
         group of its own); `shims_pss_mb` is their total proportional set size (shared \
         pages of the binary split between them), apart from the node's RSS"
            .into(),
    );
    Ok(r)
}

/// How many shims of the node `node_pid` run (processes running the node's binary with
/// `__shim`), and their total proportional set size in bytes.
fn shim_pss(node_pid: u32) -> (usize, u64) {
    let Ok(exe) = std::fs::read_link(format!("/proc/{node_pid}/exe")) else {
        return (0, 0);
    };
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return (0, 0);
    };
    let shims: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == exe)
                && std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == b"__shim"))
        })
        .collect();
    let pss = shims.iter().filter_map(|pid| pss_bytes(*pid)).sum();
    (shims.len(), pss)
}

/// The `Pss` of `/proc/<pid>/smaps_rollup`, in bytes.
fn pss_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    pss_of(&text)
}

/// The `Pss:` line of a `smaps_rollup` text, in bytes.
fn pss_of(smaps_rollup: &str) -> Option<u64> {
    let line = smaps_rollup.lines().find(|l| l.starts_with("Pss:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pss_is_read_from_smaps_rollup() {
        let text = "55d0-7ffd ---p 00000000 00:00 0  [rollup]\nRss:  2048 kB\nPss:  1500 kB\nPss_Anon: 700 kB\n";
        assert_eq!(pss_of(text), Some(1500 * 1024));
        assert_eq!(pss_of("Rss: 1 kB\n"), None);
        assert!(pss_bytes(std::process::id()).is_some_and(|b| b > 0));
    }
}
