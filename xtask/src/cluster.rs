//! `cargo xtask cluster ...`.

use anyhow::Context as _;
use vk_testkit::cluster::CLUSTER_NAME_ENV;
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
        Action::Env => print!("{}", env_exports(&cluster)),
    }
    Ok(())
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
