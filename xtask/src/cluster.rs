//! `cargo xtask cluster ...`.

use anyhow::Context as _;
use vk_testkit::cluster::{CLUSTER_NAME_ENV, DaemonState};
use vk_testkit::{Layout, LocalCluster, UpOptions, UpOutcome};

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Install what is missing, build the control plane once (cached), and start it.
    /// Does nothing if it already runs.
    Up {
        /// Start from empty etcd data when the cluster is not already running.
        #[arg(long)]
        fresh: bool,
    },
    /// Stop exactly the processes `up` started.
    Down {
        /// Also delete certificates, kubeconfigs, logs and etcd data (the build cache
        /// is kept).
        #[arg(long)]
        wipe: bool,
    },
    /// Show which components run, their ports and logs, and whether /readyz is ok.
    Status,
    /// Print shell exports for the cluster: `eval "$(cargo xtask cluster env)"`.
    Env,
}

/// Runs `action` on the cluster `name` (default: `VK_CLUSTER_NAME`, else `default`).
pub async fn run(name: Option<String>, action: Action) -> anyhow::Result<()> {
    let layout = match &name {
        Some(name) => Layout::named(name)?,
        None => Layout::from_env()?,
    };
    let cluster = LocalCluster::new(layout);
    let selector = match cluster.layout().name() {
        vk_testkit::cluster::DEFAULT_CLUSTER => String::new(),
        other => format!(" --name {other}"),
    };
    match action {
        Action::Up { fresh } => {
            let outcome = cluster
                .up(UpOptions { fresh })
                .await
                .context("cargo xtask cluster up")?;
            if outcome == UpOutcome::AlreadyRunning {
                eprintln!("==> local control plane is already running");
            }
            eprintln!("Use it with:\n  eval \"$(cargo xtask cluster env{selector})\"");
        }
        Action::Down { wipe } => {
            cluster.down(wipe).context("cargo xtask cluster down")?;
            eprintln!(
                "==> local control plane stopped{}",
                if wipe { " and its state wiped" } else { "" }
            );
        }
        Action::Status => {
            let status = cluster.status().await;
            print!("{status}");
        }
        Action::Env => print!("{}", checked_env_exports(&cluster).await?),
    }
    Ok(())
}

/// [`env_exports`] once the cluster is up (its kubeconfig written and every component
/// running); otherwise an error saying what is missing and how to start it, so that
/// `eval "$(cargo xtask cluster env)"` fails instead of exporting paths to nothing.
pub async fn checked_env_exports(cluster: &LocalCluster) -> anyhow::Result<String> {
    let status = cluster.status().await;
    let selector = match cluster.layout().name() {
        vk_testkit::cluster::DEFAULT_CLUSTER => String::new(),
        other => format!(" --name {other}"),
    };
    let stopped: Vec<&str> = status
        .components
        .iter()
        .filter(|c| !matches!(c.state, DaemonState::Running { .. }))
        .map(|c| c.component.name())
        .collect();
    if !status.kubeconfig.is_file() || !stopped.is_empty() {
        anyhow::bail!(
            "the local control plane is not up (state directory {}; {}): start it with \
             `cargo xtask cluster up{selector}`, see `cargo xtask cluster status{selector}`",
            cluster.layout().state().display(),
            if stopped.is_empty() {
                format!("no kubeconfig at {}", status.kubeconfig.display())
            } else {
                format!("not running: {}", stopped.join(", "))
            }
        );
    }
    Ok(env_exports(cluster))
}

/// `export` lines for a shell: the cluster's name (so tests and tools pick the same
/// cluster), the admin kubeconfig, and the kubelet serving certificate
/// (signed by the cluster CA, which the API server verifies) under the variable names
/// virtual-kubelet has always read them from.
pub fn env_exports(cluster: &LocalCluster) -> String {
    let layout = cluster.layout();
    let pki = layout.pki();
    let serving = pki.kubelet_serving();
    format!(
        "export {CLUSTER_NAME_ENV}={}\n\
         export KUBECONFIG={}\n\
         export APISERVER_CERT_LOCATION={}\n\
         export APISERVER_KEY_LOCATION={}\n\
         export APISERVER_CA_CERT_LOCATION={}\n",
        layout.name(),
        layout.kubeconfig().display(),
        serving.cert.display(),
        serving.key.display(),
        pki.ca().cert.display(),
    )
}

#[cfg(test)]
mod tests {
    use vk_testkit::Layout;

    use super::*;

    #[tokio::test]
    async fn env_fails_clearly_when_the_cluster_is_not_up() {
        let dir = std::env::temp_dir().join(format!("xtask-no-cluster-{}", std::process::id()));
        let cluster = LocalCluster::new(Layout::new(
            dir.join("cache"),
            dir.join("never-created"),
            dir.join("etcd"),
        ));
        let err = checked_env_exports(&cluster)
            .await
            .expect_err("no cluster there")
            .to_string();
        assert!(
            err.contains("not up") && err.contains("cargo xtask cluster up"),
            "{err}"
        );
        assert!(err.contains("never-created"), "{err}");
    }
}
