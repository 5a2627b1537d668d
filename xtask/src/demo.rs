//! `cargo xtask demo`: the README's main job. Starts the local control plane, runs a
//! virtual node (vk-mock for now), deploys a sample Deployment to it, shows what to try,
//! and stops what it started on Ctrl-C.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use vk_testkit::{LocalCluster, UpOptions, UpOutcome};

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
    let kubeconfig = layout.kubeconfig();
    eprintln!("==> building vk-mock");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .args(["build", "--quiet", "-p", "vk-mock"])
        .status()?;
    if !status.success() {
        bail!("building vk-mock failed");
    }
    let bin = std::env::current_dir()?.join("target/debug/vk-mock");
    let log_path = layout.log_dir().join("vk-demo.log");
    let log = std::fs::File::create(&log_path)?;
    let pki = layout.pki();
    eprintln!(
        "==> starting virtual node {NODE} (log: {})",
        log_path.display()
    );
    let child = Command::new(&bin)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--nodename", NODE, "--metrics-addr", "127.0.0.1:10255"])
        .env("APISERVER_CERT_LOCATION", pki.kubelet_serving().cert)
        .env("APISERVER_KEY_LOCATION", pki.kubelet_serving().key)
        .env("APISERVER_CA_CERT_LOCATION", pki.ca().cert)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut agent = Agent(child);
    let client = cluster.client().await?;

    wait("the node registers and turns Ready", &mut agent, || {
        let nodes: Api<Node> = Api::all(client.clone());
        async move {
            let n = nodes.get_opt(NODE).await.ok()??;
            n.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
                .then_some(())
        }
    })
    .await?;

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
                    "containers": [{"name": "web", "image": "python:3", "command": ["python3", "-m", "http.server", "8080"]}]
                }
            }
        }
    }))?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deployments
        .patch(
            DEPLOYMENT,
            &PatchParams::apply("vk-demo").force(),
            &Patch::Apply(&deployment),
        )
        .await
        .context("applying the sample Deployment")?;
    wait("2 replicas Running on the virtual node", &mut agent, || {
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        async move {
            let list = pods
                .list(&ListParams::default().labels(&format!("app={DEPLOYMENT}")))
                .await
                .ok()?;
            let running = list
                .items
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count();
            (running == 2).then_some(())
        }
    })
    .await?;

    println!(
        "\nThe virtual node {NODE} is Ready and runs the Deployment {DEPLOYMENT}. Try:\n\n  \
         export KUBECONFIG={}\n  \
         kubectl get nodes,pods -o wide\n  \
         kubectl describe node {NODE}\n  \
         kubectl get events --field-selector involvedObject.kind=Pod\n  \
         kubectl scale deployment {DEPLOYMENT} --replicas=5\n\n\
         (kubectl logs/exec/port-forward arrive with the kubelet API.)\n\
         Press Ctrl-C to stop.",
        kubeconfig.display()
    );
    tokio::signal::ctrl_c().await?;
    eprintln!("\n==> cleaning up");
    let _ = deployments
        .delete(DEPLOYMENT, &DeleteParams::default())
        .await;
    drop(agent);
    let _ = Api::<Node>::all(client)
        .delete(NODE, &DeleteParams::default())
        .await;
    Ok(())
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
