//! vk-kube's own process and its remote cluster going away: `kill -9` and restart with
//! pods running (adopted, none duplicated, none deleted; a pod deleted at home meanwhile
//! is cleaned up remotely), and the remote API server unreachable (home node NotReady
//! with a reason, Ready again afterwards, no pod lost). Each test runs its own vk-kube
//! node. See `support` for the two control planes.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Child;

use k8s_openapi::api::core::v1::Node;
use serde_json::json;
use support::{
    RemoteNamespace, apply, delete_node_snippet, home_uid, kubectl, phase, pod_on, pod_where,
    provider_config, remote, remote_pods, shell, start_kube,
};
use tokio::net::{TcpListener, TcpStream};
use vk_testkit::wait::eventually;
use vk_testkit::{TestContext, unique_name};

/// The PID of the vk-kube process under the watchdog shell `child`.
fn kube_pid(child: &Child) -> u32 {
    let shell = child.id();
    let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
        .expect("the watchdog's children");
    children
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "vk-kube")
        })
        .expect("vk-kube runs under the watchdog")
}

/// `kill -9` of vk-kube (not of its watchdog: that would stop it with SIGTERM).
fn kill_9(mut child: Child) {
    let pid = kube_pid(&child);
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let _ = child.wait();
}

async fn ready_condition(client: &kube::Client, node: &str) -> Option<(String, String, String)> {
    let node: Node = kube::Api::all(client.clone()).get_opt(node).await.ok()??;
    let c = node
        .status?
        .conditions?
        .into_iter()
        .find(|c| c.type_ == "Ready")?;
    Some((
        c.status,
        c.reason.unwrap_or_default(),
        c.message.unwrap_or_default(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_adopts_without_duplicates_and_cleans_dangling_pods() {
    let r = remote().await;
    let ctx = TestContext::new().await.expect("home");
    let ns = ctx.namespace("vk-kube").await.expect("namespace");
    let ns = ns.name().to_owned();
    let _remote_ns = RemoteNamespace {
        kubeconfig: r.kubeconfig.clone(),
        name: ns.clone(),
    };
    let node = unique_name("vk-kube-restart");
    let config = provider_config(r, &r.kubeconfig);
    let kubeconfig = ctx.kubeconfig().to_owned();
    let first = start_kube(&kubeconfig, &node, &config, "");
    vk_testkit::conformance::harness::wait_node_ready(&ctx.client(), &node).await;
    for name in ["keep-a", "keep-b", "gone"] {
        apply(
            &kubeconfig,
            &ns,
            &pod_on(
                &node,
                name,
                json!({"containers": [shell("exec sleep 3600")]}),
            ),
        );
    }
    for name in ["keep-a", "keep-b", "gone"] {
        pod_where(&kubeconfig, &ns, name, "Running", |p| {
            (phase(p) == Some("Running")).then_some(())
        })
        .await;
    }
    let remote_client = r.cluster.client().await.expect("remote client");
    let before = remote_pods(&remote_client, &ns, &node).await;
    assert_eq!(before.len(), 3);
    let gone_uid = pod_where(&kubeconfig, &ns, "gone", "uid", |p| p.metadata.uid.clone()).await;

    kill_9(first);
    // While vk-kube is down, "gone" disappears from the home API for good.
    let (code, _, err) = kubectl(
        &kubeconfig,
        &ns,
        &[],
        &["delete", "pod", "gone", "--grace-period=0", "--force"],
        None,
    );
    assert_eq!(code, 0, "{err}");

    let second = start_kube(
        &kubeconfig,
        &node,
        &config,
        &delete_node_snippet(&kubeconfig, &node),
    );
    support::CHILDREN.lock().expect("lock").push(second);
    // The restarted provider reconciles: the dangling remote pod goes (exact by UID)...
    eventually("the remote pod of the deleted home pod is removed", || {
        let remote_client = remote_client.clone();
        let (ns, node, gone_uid) = (ns.clone(), node.clone(), gone_uid.clone());
        async move {
            let pods = remote_pods(&remote_client, &ns, &node).await;
            pods.iter()
                .all(|p| home_uid(p).as_deref() != Some(gone_uid.as_str()))
                .then_some(())
        }
    })
    .await;
    // ...and the others are adopted: the same remote pods, no second copy.
    let after = remote_pods(&remote_client, &ns, &node).await;
    let uids = |pods: &[k8s_openapi::api::core::v1::Pod]| -> BTreeSet<String> {
        pods.iter()
            .filter(|p| home_uid(p).as_deref() != Some(gone_uid.as_str()))
            .filter_map(|p| p.metadata.uid.clone())
            .collect()
    };
    assert_eq!(
        after.len(),
        2,
        "no duplicate: {:?}",
        after.iter().map(|p| &p.metadata.name).collect::<Vec<_>>()
    );
    assert_eq!(
        uids(&after),
        uids(&before),
        "the same remote pods, none re-created"
    );
    for name in ["keep-a", "keep-b"] {
        pod_where(&kubeconfig, &ns, name, "still Running", |p| {
            (phase(p) == Some("Running")).then_some(())
        })
        .await;
    }
    vk_testkit::conformance::harness::wait_node_ready(&ctx.client(), &node).await;
    assert_eq!(remote_pods(&remote_client, &ns, &node).await.len(), 2);
}

/// A TCP proxy to `target` that can be cut (listener closed, connections dropped) and
/// restored on the same port: the remote API server "going away" for one vk-kube only.
struct Proxy {
    port: u16,
    target: std::net::SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Self {
        let mut proxy = Self {
            port: vk_testkit::free_port().expect("port"),
            target,
            task: None,
        };
        proxy.restore().await;
        proxy
    }

    async fn restore(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("proxy listens");
        let target = self.target;
        self.task = Some(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Closes the listener and every connection (dropping the task drops them all).
    async fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

fn proxied_kubeconfig(original: &Path, server: &str, proxy_port: u16, out: &Path) {
    let text = std::fs::read_to_string(original).expect("remote kubeconfig");
    let proxied = text.replace(server, &format!("https://127.0.0.1:{proxy_port}"));
    assert_ne!(text, proxied, "the kubeconfig names {server}");
    std::fs::write(out, proxied).expect("write kubeconfig");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_remote_cluster_turns_the_node_not_ready_and_loses_no_pod() {
    let r = remote().await;
    let ctx = TestContext::new().await.expect("home");
    let ns = ctx.namespace("vk-kube").await.expect("namespace");
    let ns = ns.name().to_owned();
    let _remote_ns = RemoteNamespace {
        kubeconfig: r.kubeconfig.clone(),
        name: ns.clone(),
    };
    let server = r.cluster.layout().server_url();
    let target: std::net::SocketAddr = server
        .trim_start_matches("https://")
        .parse()
        .expect("the remote API server's address");
    let mut proxy = Proxy::start(target).await;
    let node = unique_name("vk-kube-outage");
    let kubeconfig_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{node}.kubeconfig"));
    proxied_kubeconfig(&r.kubeconfig, &server, proxy.port, &kubeconfig_path);
    let kubeconfig = ctx.kubeconfig().to_owned();
    let child = start_kube(
        &kubeconfig,
        &node,
        &provider_config(r, &kubeconfig_path),
        &delete_node_snippet(&kubeconfig, &node),
    );
    support::CHILDREN.lock().expect("lock").push(child);
    let client = ctx.client();
    vk_testkit::conformance::harness::wait_node_ready(&client, &node).await;
    apply(
        &kubeconfig,
        &ns,
        &pod_on(
            &node,
            "survivor",
            json!({"containers": [shell("exec sleep 3600")]}),
        ),
    );
    pod_where(&kubeconfig, &ns, "survivor", "Running", |p| {
        (phase(p) == Some("Running")).then_some(())
    })
    .await;
    let remote_client = r.cluster.client().await.expect("remote client");
    let before = remote_pods(&remote_client, &ns, &node).await;
    assert_eq!(before.len(), 1);

    proxy.cut().await;
    let (_, reason, message) = eventually("the home node turns NotReady", || {
        let client = client.clone();
        let node = node.clone();
        async move {
            ready_condition(&client, &node)
                .await
                .filter(|(status, _, _)| status == "False")
        }
    })
    .await;
    assert_eq!(reason, "ProviderPingFailed");
    assert!(message.contains("remote cluster remote"), "{message}");
    // The pod is not lost meanwhile.
    let (code, out, err) = kubectl(
        &kubeconfig,
        &ns,
        &[],
        &["get", "pod", "survivor", "-o", "jsonpath={.status.phase}"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "Running");

    proxy.restore().await;
    vk_testkit::conformance::harness::wait_node_ready(&client, &node).await;
    pod_where(
        &kubeconfig,
        &ns,
        "survivor",
        "Running after the outage",
        |p| (phase(p) == Some("Running")).then_some(()),
    )
    .await;
    let after = remote_pods(&remote_client, &ns, &node).await;
    assert_eq!(
        after
            .iter()
            .map(|p| p.metadata.uid.clone())
            .collect::<Vec<_>>(),
        before
            .iter()
            .map(|p| p.metadata.uid.clone())
            .collect::<Vec<_>>(),
        "the same remote pod"
    );
}
