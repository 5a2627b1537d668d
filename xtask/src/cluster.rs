//! `cargo xtask cluster ...`.

use anyhow::Context as _;
use vk_testkit::{LocalCluster, UpOptions, UpOutcome};

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

pub async fn run(action: Action) -> anyhow::Result<()> {
    let cluster = LocalCluster::from_env()?;
    match action {
        Action::Up { fresh } => {
            let outcome = cluster
                .up(UpOptions { fresh })
                .await
                .context("cargo xtask cluster up")?;
            if outcome == UpOutcome::AlreadyRunning {
                eprintln!("==> local control plane is already running");
            }
            eprintln!("Use it with:\n  eval \"$(cargo xtask cluster env)\"");
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

/// `export` lines for a shell: the admin kubeconfig, and the kubelet serving certificate
/// (signed by the cluster CA, which the API server verifies) under the variable names
/// virtual-kubelet has always read them from.
pub fn env_exports(cluster: &LocalCluster) -> String {
    let layout = cluster.layout();
    let pki = layout.pki();
    let serving = pki.kubelet_serving();
    format!(
        "export KUBECONFIG={}\n\
         export APISERVER_CERT_LOCATION={}\n\
         export APISERVER_KEY_LOCATION={}\n\
         export APISERVER_CA_CERT_LOCATION={}\n",
        layout.kubeconfig().display(),
        serving.cert.display(),
        serving.key.display(),
        pki.ca().cert.display(),
    )
}
