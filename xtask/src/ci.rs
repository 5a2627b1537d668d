//! `cargo xtask ci`: the whole test suite, as CI runs it.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};
use vk_testkit::{Layout, LocalCluster, UpOptions, UpOutcome};

/// The second control plane vk-kube's end-to-end tests offload pods to (they would
/// start it themselves; CI starts it fresh and stops it, like the default one).
const REMOTE_CLUSTER: &str = "remote";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Skip the end-to-end tests (and the control plane).
    #[arg(long)]
    pub no_e2e: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    step("cargo fmt --all --check", &["fmt", "--all", "--check"])?;
    step(
        "cargo clippy --workspace --all-targets -- -D warnings",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    step("unit tests", &["test", "--workspace", "--lib", "--bins"])?;
    step("doc tests", &["test", "--workspace", "--doc"])?;
    step_with_env(
        "cargo doc --workspace --no-deps (warnings are errors)",
        &["doc", "--workspace", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    // The library crates as crates.io and docs.rs see them: packaged (manifests,
    // LICENSE, README; the verifying build of every package is `cargo xtask
    // release-check`, a CI job of its own), and documented on their own, without the
    // workspace's K8S_OPENAPI_ENABLED_VERSION (empty = unset for k8s-openapi's build
    // script; `[env]` does not override a variable that is already set) and with the
    // version docs.rs enables.
    step(
        "cargo package --workspace (no verify)",
        &[
            "package",
            "--workspace",
            "--exclude",
            "xtask",
            "--no-verify",
            "--allow-dirty",
        ],
    )?;
    step_with_env(
        "cargo doc of the library crates outside the workspace's k8s-openapi version",
        &docs_rs_args(),
        &[
            ("RUSTDOCFLAGS", "-D warnings"),
            (K8S_OPENAPI_VERSION_ENV, ""),
        ],
    )?;
    if !args.no_e2e {
        let cluster = LocalCluster::from_env()?;
        eprintln!("==> local control plane");
        let outcome = cluster
            .up(UpOptions { fresh: true })
            .await
            .context("starting the local control plane for the end-to-end tests")?;
        eprintln!("==> second control plane `{REMOTE_CLUSTER}` (vk-kube's remote cluster)");
        let remote = LocalCluster::new(Layout::named(REMOTE_CLUSTER)?);
        let remote_outcome = remote
            .up(UpOptions { fresh: true })
            .await
            .context("starting the remote control plane for the end-to-end tests");
        let result = match &remote_outcome {
            // Every test binary runs even after one fails: one CI run names all failures.
            Ok(_) => step(
                "end-to-end tests (real control planes)",
                &["test", "--workspace", "--no-fail-fast", "--test", "*"],
            ),
            Err(_) => Ok(()),
        };
        if matches!(remote_outcome, Ok(UpOutcome::Started)) {
            eprintln!("==> stopping the remote control plane this run started");
            remote.down(false)?;
        }
        if outcome == UpOutcome::Started {
            eprintln!("==> stopping the local control plane this run started");
            cluster.down(false)?;
        }
        remote_outcome?;
        result?;
    }
    eprintln!("==> ci passed in {:.0}s", started.elapsed().as_secs_f64());
    Ok(())
}

pub fn step(title: &str, cargo_args: &[&str]) -> anyhow::Result<()> {
    step_with_env(title, cargo_args, &[])
}

/// Runs `cargo <cargo_args>` with extra environment variables, as one CI step.
pub fn step_with_env(title: &str, cargo_args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<()> {
    eprintln!("==> {title}");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let t = Instant::now();
    let status = Command::new(cargo)
        .args(cargo_args)
        .envs(env.iter().copied())
        .status()
        .with_context(|| format!("running cargo {}", cargo_args.join(" ")))?;
    if !status.success() {
        bail!(
            "{title} failed ({status}) after {:.0}s",
            t.elapsed().as_secs_f64()
        );
    }
    eprintln!("    {title}: ok in {:.0}s", t.elapsed().as_secs_f64());
    Ok(())
}

/// The variable k8s-openapi's build script reads when no version feature is enabled.
pub const K8S_OPENAPI_VERSION_ENV: &str = "K8S_OPENAPI_ENABLED_VERSION";

/// The library crates that use k8s-openapi, each of which names a version for docs.rs
/// in `[package.metadata.docs.rs]`.
pub const K8S_LIBRARY_CRATES: &[&str] = &["vk-core", "vk-node-api", "vk-cli", "vk-testkit"];

/// `cargo doc` of [`K8S_LIBRARY_CRATES`] as docs.rs builds them (the features of their
/// `[package.metadata.docs.rs]`).
fn docs_rs_args() -> Vec<&'static str> {
    let mut args = vec!["doc", "--no-deps"];
    for krate in K8S_LIBRARY_CRATES {
        args.extend(["-p", krate]);
    }
    args.extend(["--features", "k8s-openapi/latest"]);
    args
}
