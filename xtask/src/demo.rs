//! `cargo xtask demo`: the README's main job. Starts the local control plane, runs a
//! vk-process virtual node (pods run as local processes), deploys a sample Deployment of
//! two `python3 -m http.server` replicas to it, shows what to try, and stops what it
//! started on Ctrl-C.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use vk_testkit::{Layout, LocalCluster, UpOptions, UpOutcome};

const NODE: &str = "vk-demo";
const DEPLOYMENT: &str = "demo-web";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep the control plane running after the demo stops.
    #[arg(long)]
    pub keep_cluster: bool,
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let cluster = LocalCluster::from_env()?;
    let outcome = cluster
        .up(UpOptions::default())
        .await
        .context("starting the local control plane")?;
    let result = demo(&cluster).await;
    if outcome == UpOutcome::Started && !args.keep_cluster {
        eprintln!("==> stopping the local control plane");
        cluster.down(false)?;
    }
    result
}

async fn demo(cluster: &LocalCluster) -> anyhow::Result<()> {
    let layout = cluster.layout();
    // The sample Deployment serves pages with Python's http.server.
    vk_testkit::cluster::ensure_command("python3", "python3")
        .context("installing python3 for the sample Deployment")?;
    let bin = build_vk_process()?;
    let log_path = layout.log_dir().join("vk-demo.log");
    let mut agent = start_node(layout, &bin, &log_path)?;
    let client = cluster.client().await?;
    wait("the node registers and turns Ready", &mut agent, || {
        node_is_ready(client.clone())
    })
    .await?;
    apply_deployment(&client).await?;
    wait("2 replicas Running on the virtual node", &mut agent, || {
        replicas_running(client.clone())
    })
    .await?;
    print_what_to_try(&client, &layout.kubeconfig(), &log_path).await?;
    tokio::signal::ctrl_c().await?;
    clean_up(client, agent).await;
    Ok(())
}

/// Builds vk-process (debug) and returns its binary.
fn build_vk_process() -> anyhow::Result<PathBuf> {
    eprintln!("==> building vk-process");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .args(["build", "--quiet", "-p", "vk-process"])
        .current_dir(crate::paths::workspace_root())
        .status()?;
    if !status.success() {
        bail!("building vk-process failed");
    }
    Ok(crate::paths::binary("debug", "vk-process"))
}

/// Writes the node's provider config and starts the virtual node `bin`, logging to
/// `log_path`.
fn start_node(layout: &Layout, bin: &Path, log_path: &Path) -> anyhow::Result<Agent> {
    let state_dir = layout.log_dir().join("vk-demo-state");
    let config_path = layout.log_dir().join("vk-demo-process.toml");
    std::fs::write(
        &config_path,
        format!(
            "state_dir = {:?}\n[images]\n\"python:3\" = [\"python3\"]\n",
            state_dir.display().to_string()
        ),
    )?;
    let log = std::fs::File::create(log_path)?;
    let pki = layout.pki();
    eprintln!(
        "==> starting virtual node {NODE} (log: {})",
        log_path.display()
    );
    let child = Command::new(bin)
        .arg("--kubeconfig")
        .arg(layout.kubeconfig())
        .args(["--nodename", NODE, "--metrics-addr", "127.0.0.1:10255"])
        .arg("--provider-config")
        .arg(&config_path)
        .env("APISERVER_CERT_LOCATION", pki.kubelet_serving().cert)
        .env("APISERVER_KEY_LOCATION", pki.kubelet_serving().key)
        .env("APISERVER_CA_CERT_LOCATION", pki.ca().cert)
        // Its own process group: Ctrl-C reaches only the demo, which deletes the
        // Deployment (the node stops the replicas' processes) before stopping the node.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    Ok(Agent(child))
}

/// `Some` once the node is Ready.
async fn node_is_ready(client: Client) -> Option<()> {
    let n = Api::<Node>::all(client).get_opt(NODE).await.ok()??;
    n.status?
        .conditions?
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
        .then_some(())
}

/// Applies the sample Deployment: two `http.server` replicas on the virtual node.
async fn apply_deployment(client: &Client) -> anyhow::Result<()> {
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT, "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": DEPLOYMENT}},
            "template": {
                "metadata": {"labels": {"app": DEPLOYMENT}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": NODE},
                    "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
                    // Replicas share the host's network: each takes the first free
                    // port from 8080 (http.server exits when the port is taken).
                    "containers": [{
                        "name": "web",
                        "image": "python:3",
                        "command": ["sh", "-c", "for port in 8080 8081 8082 8083 8084; do python3 -m http.server $port; done"],
                        "env": [{"name": "PYTHONUNBUFFERED", "value": "1"}]
                    }]
                }
            }
        }
    }))?;
    Api::<Deployment>::namespaced(client.clone(), "default")
        .patch(
            DEPLOYMENT,
            &PatchParams::apply("vk-demo").force(),
            &Patch::Apply(&deployment),
        )
        .await
        .context("applying the sample Deployment")?;
    Ok(())
}

/// The label selector of the sample Deployment's pods.
fn replica_selector() -> ListParams {
    ListParams::default().labels(&format!("app={DEPLOYMENT}"))
}

/// `Some` once both replicas are Running.
async fn replicas_running(client: Client) -> Option<()> {
    let list = Api::<Pod>::namespaced(client, "default")
        .list(&replica_selector())
        .await
        .ok()?;
    let running = list
        .items
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .count();
    (running == 2).then_some(())
}

/// Prints the commands to try against the running demo, with each replica's port.
async fn print_what_to_try(
    client: &Client,
    kubeconfig: &Path,
    log_path: &Path,
) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut tries = String::new();
    for pod in pods.list(&replica_selector()).await?.items {
        let name = pod.metadata.name.unwrap_or_default();
        let port = served_port(&pods, &name).await;
        tries.push_str(&format!(
            "  kubectl port-forward pod/{name} 9000:{port} &   # then: curl localhost:9000\n  \
             kubectl logs {name} -f\n"
        ));
    }
    println!(
        "\nThe virtual node {NODE} is Ready and runs the Deployment {DEPLOYMENT} as local \
         processes. Try:\n\n  \
         export KUBECONFIG={}\n  \
         kubectl get nodes,pods -o wide\n\
         {tries}  \
         kubectl exec -it deployment/{DEPLOYMENT} -- sh\n  \
         kubectl get --raw /api/v1/nodes/{NODE}/proxy/stats/summary\n  \
         kubectl scale deployment {DEPLOYMENT} --replicas=3\n\n\
         Node log: {}\n\
         Press Ctrl-C to stop.",
        kubeconfig.display(),
        log_path.display()
    );
    Ok(())
}

/// Deletes the Deployment, lets the node stop its replicas' processes (up to 30s),
/// then stops the node and deletes its Node object.
async fn clean_up(client: Client, agent: Agent) {
    eprintln!("\n==> cleaning up");
    let _ = Api::<Deployment>::namespaced(client.clone(), "default")
        .delete(DEPLOYMENT, &DeleteParams::default())
        .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for _ in 0..60 {
        let left = pods
            .list(&replica_selector())
            .await
            .map_or(0, |l| l.items.len());
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(agent);
    let _ = Api::<Node>::all(client)
        .delete(NODE, &DeleteParams::default())
        .await;
}

async fn wait<F, Fut>(what: &str, agent: &mut Agent, mut probe: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<()>>,
{
    eprintln!("==> waiting: {what}");
    let start = Instant::now();
    let mut last_report = Instant::now();
    loop {
        if probe().await.is_some() {
            eprintln!("    {what}: done in {:.1}s", start.elapsed().as_secs_f64());
            return Ok(());
        }
        if let Some(status) = agent.0.try_wait()? {
            bail!("the virtual node exited ({status}) while waiting for: {what}");
        }
        if start.elapsed() > Duration::from_secs(180) {
            bail!("gave up after 3 minutes waiting for: {what}");
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "    still waiting ({:.0}s): {what}",
                start.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The port a replica's http.server listens on, from its log ("Serving HTTP on ... port
/// N"); 8080 when the log does not say yet.
async fn served_port(pods: &Api<Pod>, name: &str) -> u16 {
    for _ in 0..20 {
        if let Ok(log) = pods.logs(name, &Default::default()).await
            && let Some(port) = log
                .lines()
                .filter_map(|l| l.split(" port ").nth(1))
                .filter_map(|rest| rest.split_whitespace().next())
                .find_map(|p| p.parse::<u16>().ok())
        {
            return port;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    8080
}
