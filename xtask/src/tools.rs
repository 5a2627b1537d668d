//! Tools from Debian packages that some tasks and tests need (`skopeo`, `umoci`,
//! `musl-gcc`): `cargo xtask tools install <package>...` installs the missing ones with
//! apt-get, once; a package whose program is already on PATH costs nothing.

use std::process::Command;

use anyhow::{Context as _, bail};

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Install Debian packages whose program is missing (skopeo, umoci, musl-tools).
    Install {
        /// Package names.
        #[arg(required = true)]
        packages: Vec<String>,
    },
}

pub fn run(action: Action) -> anyhow::Result<()> {
    match action {
        Action::Install { packages } => ensure_packages(&packages),
    }
}

/// The program a package is checked by.
fn program_of(package: &str) -> &str {
    match package {
        "musl-tools" => "musl-gcc",
        other => other,
    }
}

/// Installs those of `packages` whose program is not on PATH.
pub fn ensure_packages(packages: &[String]) -> anyhow::Result<()> {
    let missing: Vec<&String> = packages
        .iter()
        .filter(|p| !on_path(program_of(p)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("==> apt-get install {}", join(&missing));
    let apt = |args: &[&str]| -> anyhow::Result<()> {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("running apt-get (Debian/Ubuntu only)")?;
        if !status.success() {
            bail!(
                "apt-get {} failed ({status}); run it as root",
                args.join(" ")
            );
        }
        Ok(())
    };
    // The package lists may be absent in a fresh container.
    apt(&["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(missing.iter().map(|p| p.as_str()));
    apt(&args)?;
    for p in missing {
        if !on_path(program_of(p)) {
            bail!("{p} installed but {} is still not on PATH", program_of(p));
        }
    }
    Ok(())
}

fn join(items: &[&String]) -> String {
    items
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `program` is an executable file on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}
