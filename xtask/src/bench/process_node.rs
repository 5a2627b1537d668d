//! A vk-process node for the `stream` and `process` scenarios: real processes, a kubelet
//! API the API server reaches (serving certificate of the local control plane), and the
//! cleanup that real processes need (pods deleted while the node still runs).

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use vk_testkit::LocalCluster;

use super::agent::Agent;
use super::scenarios::{delete_node_objects, drop_namespace};
use super::workload::{Observer, delete_all};
use super::{Args, Env};

/// The vk-process binary the scenarios run: `--process-binary`, or the release build.
pub(crate) fn binary(args: &Args) -> PathBuf {
    args.process_binary
        .clone()
        .unwrap_or_else(|| crate::paths::binary("release", "vk-process"))
}

/// Starts a vk-process node `node` keeping its pods under `env.out/<node>-state` (with
/// room for `pods` pods), and waits until it is ready.
pub(crate) async fn start(
    env: &Env,
    args: &Args,
    node: &str,
    pods: usize,
) -> anyhow::Result<Agent> {
    let state = env.out.join(format!("{node}-state"));
    // A state directory left by an earlier run would be adopted: start empty.
    let _ = std::fs::remove_dir_all(&state);
    let config = env.out.join(format!("{node}.toml"));
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\n[capacity]\npods = \"{}\"\n",
            state.display().to_string(),
            pods + 10
        ),
    )?;
    let pki = LocalCluster::from_env()?.layout().pki();
    let port = vk_testkit::free_port()?.to_string();
    let mut argv: Vec<String> = vec![
        "--kubeconfig".into(),
        env.kubeconfig.display().to_string(),
        "--nodename".into(),
        node.into(),
        "--provider-config".into(),
        config.display().to_string(),
        "--listen-port".into(),
        port,
        "--startup-timeout".into(),
        "10m".into(),
        "--tls-cert-file".into(),
        pki.kubelet_serving().cert.display().to_string(),
        "--tls-private-key-file".into(),
        pki.kubelet_serving().key.display().to_string(),
        "--client-ca-file".into(),
        pki.ca().cert.display().to_string(),
    ];
    if let Some(qps) = args.qps {
        argv.extend([
            "--kube-api-qps".into(),
            qps.to_string(),
            "--kube-api-burst".into(),
            (qps * 2.0).to_string(),
        ]);
    }
    if !args.success_events {
        argv.push("--no-success-events".into());
    }
    let mut agent = Agent::start(
        &binary(args),
        &argv,
        &env.out.join(format!("{node}-agent.log")),
    )?;
    agent.wait_ready(Duration::from_secs(120)).await?;
    Ok(agent)
}

/// A pod on `node` running `command` (a real process), tolerating the provider taint.
pub(crate) fn pod(name: &str, node: &str, command: &[&str]) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"vk-bench": "true"}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
            "containers": [{"name": "c", "image": "bench", "command": command}]
        }
    }))
    .unwrap_or_default()
}

/// Deletes every pod of `ns` and waits until they are gone (so the node stops their
/// processes), then stops the node and deletes its Node object and the namespace.
pub(crate) async fn tear_down(
    env: &Env,
    args: &Args,
    agent: &mut Agent,
    observer: &Observer,
    ns: &str,
    node: &str,
) {
    let client = &env.client;
    if let Err(e) = delete_all(client, ns, 1, args.concurrency).await {
        eprintln!("    {node}: deleting the pods failed: {e:#}");
    }
    if let Err(e) = observer
        .wait_empty(&format!("{node} delete"), Duration::from_secs(300))
        .await
    {
        eprintln!("    {node}: {e:#}");
    }
    let _ = agent.stop();
    delete_node_objects(client, node).await;
    drop_namespace(client, ns).await;
}
