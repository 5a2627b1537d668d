//! `cargo xtask bench`: throughput, latency, CPU and memory of a virtual node at scale,
//! against the real local control plane, with the provider (vk-mock, release build) as a
//! separate process measured through /proc.
//!
//! Scenarios: `ceiling` (the API server's own limit, measured first so the pod
//! scenarios can be read as ratios), `churn`, `steady`, `fleet`, `web`, `stream` (the
//! kubelet API's streaming paths on vk-process, against the API server's own),
//! `process` (pods as real processes on vk-process) and `scale` (1,000 nodes and
//! 100,000 pods in one process, with the ceiling at that count; tens of minutes);
//! `all` runs every one; `kube` (pods offloaded by vk-kube into the named cluster
//! `remote`, against that cluster's ceiling) runs only when asked for. `stream`, `process` and `scale` alone skip the
//! 2,000-pod ceiling. `churn` runs twice when `--qps` is set (the default): with it,
//! and with the provider's default flags (scenario `churn-default-flags`);
//! `--default-qps` runs every scenario at the provider's default limit.
//! Results go to `target/bench/<scenario>.json`, `target/bench/report.md` and
//! `target/bench/churn-latency.svg`; `--record` also merges them into
//! `bench/results/<date>.*` (replacing the rows of the scenarios run, keeping the
//! others).
//!
//! Targets are recorded in the results (met or not, with notes), never asserted by tests.

// `agent`, `procfs`, `report`, `stats`, `workload` and a few helpers of `scenarios`
// are also used by `cargo xtask faults`.
pub(crate) mod agent;
mod kubectl;
mod offload;
mod process_node;
mod process_scale;
pub(crate) mod procfs;
mod record;
pub(crate) mod report;
mod scale;
pub(crate) mod scenarios;
pub(crate) mod stats;
mod stream;
mod transfer;
mod web;
pub(crate) mod workload;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, bail};
use kube::Client;
use serde_json::json;
use vk_testkit::{LocalCluster, UpOptions};

use report::ScenarioResult;

/// Which scenario(s) to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Every scenario.
    All,
    /// The API server's limit with an ideal kubelet.
    Ceiling,
    /// Pods through one node: throughput, latency, CPU, memory, writes.
    Churn,
    /// Many pods held: memory, idle CPU, resync after restart.
    Steady,
    /// Many nodes in one process: leases on time, memory.
    Fleet,
    /// Pods through vk-web and the v1 in-memory bridge, against vk-mock: the HTTP hop's
    /// cost.
    Web,
    /// Pods offloaded by vk-kube through two API servers (home and `remote`), against
    /// the remote API server's ceiling. Not part of `all`.
    Kube,
    /// The kubelet API's streaming paths on a vk-process node (exec, port-forward,
    /// logs -f, idle sessions' memory), against the API server's own overhead.
    Stream,
    /// Pods as real processes on one vk-process node: start latency, RSS and CPU.
    Process,
    /// KWOK's anchor: 1,000 nodes and 100,000 pods in one vk-mock process (fill, hold,
    /// delete), against the API server's ceiling at the same count; tens of minutes.
    Scale,
}

/// Options of `cargo xtask bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Scenario to run.
    #[arg(value_enum, default_value = "all")]
    pub scenario: Scenario,
    /// Pods of the churn (and ceiling) scenario.
    #[arg(long, default_value_t = 2000)]
    pub pods: usize,
    /// Pods of the kube scenario (and of its remote ceiling).
    #[arg(long, default_value_t = 300)]
    pub kube_pods: usize,
    /// Pods held by the steady scenario.
    #[arg(long, default_value_t = 10_000)]
    pub steady_pods: usize,
    /// Virtual nodes of the fleet scenario.
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Virtual nodes of the scale scenario (in one process).
    #[arg(long, default_value_t = 1000)]
    pub scale_nodes: usize,
    /// Pods of the scale scenario (and of its ceiling).
    #[arg(long, default_value_t = 100_000)]
    pub scale_pods: usize,
    /// Pods spread over the fleet.
    #[arg(long, default_value_t = 2000)]
    pub fleet_pods: usize,
    /// Pods of the web scenario (through each of vk-mock and vk-web).
    #[arg(long, default_value_t = 500)]
    pub web_pods: usize,
    /// `kubectl exec` round trips per protocol (stream scenario).
    #[arg(long, default_value_t = 200)]
    pub exec_runs: usize,
    /// MB moved per port-forward transfer (stream scenario).
    #[arg(long, default_value_t = 256)]
    pub transfer_mb: u64,
    /// Lines the container prints for `kubectl logs -f` (stream scenario).
    #[arg(long, default_value_t = 1_000_000)]
    pub log_lines: u64,
    /// Idle exec sessions and port-forwards held open at once (stream scenario).
    #[arg(long, default_value_t = 50)]
    pub sessions: usize,
    /// Pods of the process scenario.
    #[arg(long, default_value_t = 200)]
    pub process_pods: usize,
    /// Run this vk-process binary instead of the release build (stream and process
    /// scenarios).
    #[arg(long, value_name = "PATH")]
    pub process_binary: Option<PathBuf>,
    /// Minutes the steady and fleet scenarios hold.
    #[arg(long, default_value_t = 5)]
    pub minutes: u64,
    /// Concurrent pod creations (and deletions) by the bench.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// The provider's --kube-api-qps (burst = 2×) for every scenario but `churn`'s
    /// default-flags run.
    #[arg(long, default_value = "1000", value_parser = parse_qps)]
    pub qps: Option<f32>,
    /// Run every scenario with the provider's default (adaptive) client limit instead
    /// of `--qps`.
    #[arg(long)]
    pub default_qps: bool,
    /// Record Normal success events (ProviderCreateSuccess...) as upstream does; off by
    /// default because the write target counts pod writes only.
    #[arg(long)]
    pub success_events: bool,
    /// Also copy the results to `bench/results/<date>.*`.
    #[arg(long)]
    pub record: bool,
    /// Use the release binaries already in the target directory (do not build them).
    #[arg(long)]
    pub no_build: bool,
    /// Run this provider binary instead of the release vk-mock (e.g. a wrapper that
    /// starts it under a profiler); it must accept vk-mock's flags.
    #[arg(long, value_name = "PATH")]
    pub provider_binary: Option<PathBuf>,
}

/// What every scenario needs.
pub struct Env {
    /// Admin client.
    pub client: Client,
    /// Admin kubeconfig (for the provider process).
    pub kubeconfig: PathBuf,
    /// The provider binary.
    pub binary: PathBuf,
    /// Output directory.
    pub out: PathBuf,
}

fn command_output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn mem_total_gib() -> f64 {
    vk_core::procfs::meminfo()
        .ok()
        .and_then(|m| m.total_bytes)
        .map_or(0.0, |bytes| bytes as f64 / (1024.0 * 1024.0 * 1024.0))
}

/// Builds the release providers the bench and the fault suite run (`cargo build
/// --release -p vk-mock -p vk-web -p vk-kube -p vk-process`, quick when they are up to
/// date).
pub(crate) fn build_release_provider() -> anyhow::Result<()> {
    eprintln!("==> building vk-mock, vk-web, vk-kube and vk-process (release)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    if !Command::new(&cargo)
        // Always all of them, in one build: built alone, each would resolve vk-core's
        // dependencies' features differently and rebuild it after the others.
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "vk-mock",
            "-p",
            "vk-web",
            "-p",
            "vk-kube",
            "-p",
            "vk-process",
        ])
        // `cargo xtask` (cargo run) sets this for xtask; ring's build script watches it,
        // so inheriting it would make this build and one from a shell invalidate each
        // other (a full release rebuild each time).
        .env_remove("CARGO_MANIFEST_DIR")
        .current_dir(crate::paths::workspace_root())
        .status()?
        .success()
    {
        bail!("building the release providers failed");
    }
    Ok(())
}

/// `--qps`: a positive number of requests per second.
fn parse_qps(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(q) if q.is_finite() && q > 0.0 => Ok(q),
        _ => Err(format!(
            "{text:?} is not a positive number of requests per second (use --default-qps \
             for the provider's own limit)"
        )),
    }
}

/// Today's date (UTC), as results are named: `2026-11-22`.
pub(crate) fn date() -> String {
    command_output("date", &["-u", "+%Y-%m-%d"])
}

/// Where a run happened: date, commit, machine, toolchain, API server version and the
/// provider `binary`'s version.
pub(crate) async fn run_context(client: &Client, binary: &std::path::Path) -> serde_json::Value {
    let server = client
        .apiserver_version()
        .await
        .map(|v| v.git_version)
        .unwrap_or_default();
    json!({
        "date": command_output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        "commit": command_output("git", &["rev-parse", "--short", "HEAD"]),
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_gib": (mem_total_gib() * 10.0).round() / 10.0,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "rustc": command_output("rustc", &["--version"]),
        "kube_apiserver": server,
        "provider": format!("{} (release)", command_output(&binary.display().to_string(), &["--version"])),
    })
}

/// Runs the benchmark.
pub async fn run(mut args: Args) -> anyhow::Result<()> {
    if args.default_qps {
        args.qps = None;
    }
    let cluster = LocalCluster::from_env()?;
    cluster
        .up(UpOptions::default())
        .await
        .context("starting the local control plane")?;
    let client = cluster.client().await?;
    if !args.no_build {
        build_release_provider()?;
    }
    let out = crate::paths::target_dir().join("bench");
    std::fs::create_dir_all(&out)?;
    let env = Env {
        client: client.clone(),
        kubeconfig: cluster.layout().kubeconfig(),
        binary: args
            .provider_binary
            .clone()
            .unwrap_or_else(|| crate::paths::binary("release", "vk-mock")),
        out: out.clone(),
    };
    let date = date();
    let context = if matches!(args.scenario, Scenario::Stream | Scenario::Process) {
        run_context(&client, &process_node::binary(&args)).await
    } else {
        run_context(&client, &env.binary).await
    };

    let mut results: Vec<ScenarioResult> = Vec::new();
    let s = args.scenario;
    let mut ceiling_rate = None;
    if !matches!(s, Scenario::Stream | Scenario::Process | Scenario::Scale) {
        let ceiling = scenarios::ceiling(&env, &args).await?;
        ceiling_rate = ceiling
            .metrics
            .iter()
            .find(|(k, _)| k == "pods_per_second")
            .and_then(|(_, v)| v.as_f64());
        results.push(ceiling);
    }
    if matches!(s, Scenario::All | Scenario::Churn) {
        results.push(scenarios::churn(&env, &args, ceiling_rate).await?);
        if args.qps.is_some() {
            // The binary as a new user starts it: no client limit flags, success
            // events recorded.
            let defaults = Args {
                qps: None,
                success_events: true,
                ..args.clone()
            };
            results.push(scenarios::churn(&env, &defaults, ceiling_rate).await?);
        }
    }
    if matches!(s, Scenario::All | Scenario::Steady) {
        results.push(scenarios::steady(&env, &args).await?);
    }
    if matches!(s, Scenario::All | Scenario::Fleet) {
        results.push(scenarios::fleet(&env, &args).await?);
    }
    if matches!(s, Scenario::All | Scenario::Web) {
        results.push(web::web(&env, &args).await?);
    }
    if matches!(s, Scenario::All | Scenario::Stream) {
        results.push(stream::stream(&env, &args).await?);
    }
    if matches!(s, Scenario::All | Scenario::Process) {
        results.push(process_scale::process(&env, &args).await?);
    }
    if matches!(s, Scenario::All | Scenario::Scale) {
        results.extend(scale::scale(&env, &args).await?);
    }
    if s == Scenario::Kube {
        results.extend(offload::run(&env, &args).await?);
    }

    for r in &results {
        let doc = r.to_json(&context);
        std::fs::write(
            out.join(format!("{}.json", r.scenario)),
            serde_json::to_string_pretty(&doc)?,
        )?;
    }
    let md = report::markdown(&context, &results);
    std::fs::write(out.join("report.md"), &md)?;
    println!("{md}");
    eprintln!("==> results in {}", out.display());
    if args.record {
        let dir = crate::paths::workspace_root().join("bench/results");
        record::record(&dir, &date, &context, &results)?;
        if results.iter().any(|r| r.scenario == "churn") && out.join("churn-latency.svg").exists() {
            std::fs::copy(
                out.join("churn-latency.svg"),
                dir.join(format!("{date}-churn-latency.svg")),
            )?;
        }
        eprintln!("==> recorded in {}", dir.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_qps;

    #[test]
    fn qps_is_a_positive_number() {
        assert_eq!(parse_qps("1000"), Ok(1000.0));
        for bad in ["0", "-5", "NaN", "inf", "fast", "", "default"] {
            let Err(err) = parse_qps(bad) else {
                panic!("{bad:?} accepted");
            };
            assert!(err.contains("--default-qps"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_bench_command_line_parses() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: super::Args,
        }
        let cli = Cli::try_parse_from(["bench", "scale", "--qps", "500"]).expect("parses");
        assert_eq!(cli.args.qps, Some(500.0));
        let cli = Cli::try_parse_from(["bench", "churn", "--default-qps"]).expect("parses");
        assert!(cli.args.default_qps);
        let cli = Cli::try_parse_from(["bench"]).expect("parses");
        assert_eq!(cli.args.qps, Some(1000.0));
    }
}
