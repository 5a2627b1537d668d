//! `cargo xtask faults`: a recorded fault suite. Each scenario breaks something around
//! a virtual node — the API server, etcd, the provider process, the network, the
//! objects an administrator may delete — on a real control plane with the release
//! vk-mock, and records what the node did against what issue 17 expects of it: one row
//! per expectation, met or not. Nothing here fails because a row is not met: the suite
//! measures, it does not gate CI.
//!
//! It kills and restarts control-plane components, so it runs on a cluster of its own
//! (`--name`, default `faults`), never on the `default` one others use: started if it
//! is not running, and stopped again at the end when this run started it.
//!
//! Results go to `target/faults/report.{json,md}` (with each provider's log beside
//! them); `--record` also copies them to `faults/results/<date>.{json,md}`.

mod admin;
mod analysis;
mod control_plane;
mod hostile;
mod network;
mod ping;
mod probe;
mod provider;
pub mod proxy;
mod report;
mod rig;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use kube::Client;
use vk_testkit::cluster::DEFAULT_CLUSTER;
use vk_testkit::{Layout, LocalCluster, UpOptions, UpOutcome};

use crate::bench::report::ScenarioResult;

/// A scenario of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Scenario {
    /// kube-apiserver killed (SIGKILL) and restarted while pods are being created.
    ApiserverKill,
    /// The provider process killed (SIGKILL) and restarted while it runs many pods.
    ProviderKill,
    /// The provider fails 20 % of its create/update/delete calls.
    ProviderErrors,
    /// An administrator deletes the Node object.
    NodeDeleted,
    /// The node's Lease is deleted.
    LeaseDeleted,
    /// Someone else overwrites the node's status conditions.
    StatusOverwritten,
    /// The provider's ping fails, then succeeds again (in-process node).
    PingFailure,
    /// etcd stopped and started again with the same data.
    EtcdRestart,
    /// Create/delete cycles: the provider's memory and file descriptors stay flat.
    Leak,
    /// The network between the provider and the API server is slow.
    SlowApi,
    /// The network between the provider and the API server is cut for a while.
    NetworkCut,
    /// Hostile clients on the kubelet port: idle connections, half-open handshakes,
    /// oversized heads, path traversal, absurd query values, a flood of huge tokens.
    Hostile,
}

impl Scenario {
    /// Every scenario, in the order a full run goes through them.
    pub const ALL: [Scenario; 12] = [
        Scenario::ApiserverKill,
        Scenario::ProviderKill,
        Scenario::ProviderErrors,
        Scenario::NodeDeleted,
        Scenario::LeaseDeleted,
        Scenario::StatusOverwritten,
        Scenario::PingFailure,
        Scenario::EtcdRestart,
        Scenario::Leak,
        Scenario::SlowApi,
        Scenario::NetworkCut,
        Scenario::Hostile,
    ];

    /// Its name on the command line and in the results.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::ApiserverKill => "apiserver-kill",
            Scenario::ProviderKill => "provider-kill",
            Scenario::ProviderErrors => "provider-errors",
            Scenario::NodeDeleted => "node-deleted",
            Scenario::LeaseDeleted => "lease-deleted",
            Scenario::StatusOverwritten => "status-overwritten",
            Scenario::PingFailure => "ping-failure",
            Scenario::EtcdRestart => "etcd-restart",
            Scenario::Leak => "leak",
            Scenario::SlowApi => "slow-api",
            Scenario::NetworkCut => "network-cut",
            Scenario::Hostile => "hostile",
        }
    }
}

/// Options of `cargo xtask faults`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Scenarios to run (default: all, in the order listed here).
    #[arg(value_enum)]
    pub scenarios: Vec<Scenario>,
    /// The local cluster to break: a cluster of its own, started if not running and
    /// stopped at the end if this run started it. Never `default`.
    #[arg(long, value_name = "NAME", default_value = "faults")]
    pub name: String,
    /// Pods created while the API server is killed (apiserver-kill).
    #[arg(long, default_value_t = 300)]
    pub churn_pods: usize,
    /// Pods the provider runs when it is killed (provider-kill).
    #[arg(long, default_value_t = 1000)]
    pub restart_pods: usize,
    /// Pods created while the provider fails calls (provider-errors).
    #[arg(long, default_value_t = 200)]
    pub error_pods: usize,
    /// Create/delete cycles (leak; the first 10 are the RSS warm-up).
    #[arg(long, default_value_t = 30)]
    pub cycles: usize,
    /// Pods per cycle (leak).
    #[arg(long, default_value_t = 100)]
    pub cycle_pods: usize,
    /// Leave the cluster running at the end even if this run started it.
    #[arg(long)]
    pub keep_cluster: bool,
    /// Also copy the results to `faults/results/<date>.{json,md}`.
    #[arg(long)]
    pub record: bool,
    /// Run this provider binary instead of the release vk-mock (which is then not
    /// built); it must accept vk-mock's flags and configuration.
    #[arg(long, value_name = "PATH")]
    pub provider_binary: Option<PathBuf>,
}

/// What every scenario needs.
pub struct Env {
    /// The cluster under test.
    pub cluster: LocalCluster,
    /// Admin client.
    pub client: Client,
    /// Admin kubeconfig (for the provider process).
    pub kubeconfig: PathBuf,
    /// The provider binary.
    pub binary: PathBuf,
    /// Output directory.
    pub out: PathBuf,
}

/// How long a control-plane component stays down in the scenarios that stop one.
pub const OUTAGE: Duration = Duration::from_secs(10);

/// How soon the node must be Ready again once the API is reachable again (issue 17:
/// "node Ready again within 40 s"; the Lease's duration).
pub const BACK_WITHIN: Duration = Duration::from_secs(40);

/// Runs the suite.
pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.name == DEFAULT_CLUSTER {
        bail!(
            "the fault suite kills control-plane components: run it on a cluster of its own \
             (--name faults), never on `{DEFAULT_CLUSTER}`"
        );
    }
    let cluster = LocalCluster::new(Layout::named(&args.name)?);
    eprintln!("==> cluster `{}` for the fault suite", args.name);
    let outcome = cluster
        .up(UpOptions::default())
        .await
        .with_context(|| format!("starting the local control plane `{}`", args.name))?;
    let result = tokio::select! {
        r = run_on(&cluster, &args) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    if outcome == UpOutcome::Started && !args.keep_cluster {
        eprintln!("==> stopping cluster `{}` (this run started it)", args.name);
        cluster
            .down(false)
            .context("stopping the fault suite's cluster")?;
    }
    result
}

/// The suite on a running `cluster`: scenarios, then the report.
async fn run_on(cluster: &LocalCluster, args: &Args) -> anyhow::Result<()> {
    if args.provider_binary.is_none() {
        crate::bench::build_release_provider()?;
    }
    let out = crate::paths::target_dir().join("faults");
    std::fs::create_dir_all(&out)?;
    let client = cluster.client().await?;
    let env = Env {
        cluster: cluster.clone(),
        client: client.clone(),
        kubeconfig: cluster.layout().kubeconfig(),
        binary: args
            .provider_binary
            .clone()
            .unwrap_or_else(|| crate::paths::binary("release", "vk-mock")),
        out: out.clone(),
    };
    let mut context = crate::bench::run_context(&client, &env.binary).await;
    context["cluster"] = args.name.clone().into();
    let mut selected = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenarios.clone()
    };
    selected.sort();
    selected.dedup();

    let mut results = Vec::new();
    for scenario in selected {
        eprintln!("==> {}", scenario.name());
        let result = match run_scenario(scenario, &env, args).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("    {}: could not run to its end: {e:#}", scenario.name());
                report::aborted(scenario.name(), &e)
            }
        };
        for t in &result.targets {
            eprintln!(
                "    {}: {} — expected {}, measured {}: {}",
                scenario.name(),
                t.name,
                t.target,
                t.value,
                if t.met { "met" } else { "NOT MET" }
            );
        }
        results.push(result);
        // A scenario that failed half-way may leave a component down: bring the
        // control plane back before the next one.
        cluster
            .up(UpOptions::default())
            .await
            .context("restoring the control plane between scenarios")?;
    }

    let doc = report::to_json(&context, &results);
    let md = report::markdown(&context, &results);
    std::fs::write(out.join("report.json"), serde_json::to_string_pretty(&doc)?)?;
    std::fs::write(out.join("report.md"), &md)?;
    println!("{md}");
    eprintln!("==> results in {}", out.display());
    if args.record {
        let dir = crate::paths::workspace_root().join("faults/results");
        std::fs::create_dir_all(&dir)?;
        let date = crate::bench::date();
        std::fs::write(
            dir.join(format!("{date}.json")),
            serde_json::to_string_pretty(&doc)?,
        )?;
        std::fs::write(dir.join(format!("{date}.md")), &md)?;
        eprintln!("==> recorded in {}", dir.display());
    }
    Ok(())
}

async fn run_scenario(
    scenario: Scenario,
    env: &Env,
    args: &Args,
) -> anyhow::Result<ScenarioResult> {
    match scenario {
        Scenario::ApiserverKill => control_plane::apiserver_kill(env, args.churn_pods).await,
        Scenario::EtcdRestart => control_plane::etcd_restart(env).await,
        Scenario::ProviderKill => provider::provider_kill(env, args.restart_pods).await,
        Scenario::ProviderErrors => provider::provider_errors(env, args.error_pods).await,
        Scenario::Leak => provider::leak(env, args.cycles, args.cycle_pods).await,
        Scenario::NodeDeleted => admin::node_deleted(env).await,
        Scenario::LeaseDeleted => admin::lease_deleted(env).await,
        Scenario::StatusOverwritten => admin::status_overwritten(env).await,
        Scenario::PingFailure => ping::ping_failure(env).await,
        Scenario::SlowApi => network::slow_api(env).await,
        Scenario::NetworkCut => network::network_cut(env).await,
        Scenario::Hostile => hostile::hostile(env).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum as _;

    #[test]
    fn every_scenario_is_listed_once_and_named_as_on_the_command_line() {
        let distinct: std::collections::BTreeSet<_> = Scenario::ALL.into_iter().collect();
        assert_eq!(distinct.len(), Scenario::ALL.len());
        assert_eq!(distinct.len(), Scenario::value_variants().len());
        for s in Scenario::ALL {
            let parsed = Scenario::from_str(s.name(), false).expect("a command-line name");
            assert_eq!(parsed, s);
        }
        let mut sorted = Scenario::ALL.to_vec();
        sorted.sort();
        assert_eq!(sorted, Scenario::ALL, "a run goes in the listed order");
    }
}
