//! What the operator configures is what the node shows, across restarts of the binary:
//! `--disable-taint` removes our taint but keeps an admin's (`kubectl taint`),
//! `--node-labels` changes add and remove exactly our labels and keep `kubectl label`
//! ones, `--register-with-taints` taints appear with their effect.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use vk_testkit::wait::eventually;
use vk_testkit::{TestContext, unique_name};

const BIN: &str = env!("CARGO_BIN_EXE_vk-mock");

/// Kills the child on drop (a failing test must not leave a node agent running).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(ctx: &TestContext, node: &str, port: u16, extra: &[&str]) -> Running {
    let child = Command::new(BIN)
        .arg("--kubeconfig")
        .arg(ctx.kubeconfig())
        .args(["--nodename", node, "--metrics-addr", "off"])
        .args(["--listen-port", &port.to_string()])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start vk-mock");
    Running(child)
}

fn kubectl(ctx: &TestContext, args: &[&str]) {
    let out = vk_testkit::cluster::run_kubectl(ctx.kubeconfig(), None, &[], args, None)
        .expect("kubectl runs");
    assert_eq!(out.code, 0, "kubectl {args:?}: {}", out.stderr);
}

fn labels(node: &Node) -> BTreeMap<String, String> {
    node.metadata.labels.clone().unwrap_or_default()
}

/// `key=value:Effect` (or `key:Effect`) of every taint, sorted.
fn taints(node: &Node) -> Vec<String> {
    let mut out: Vec<String> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|t| match t.value {
            Some(v) => format!("{}={v}:{}", t.key, t.effect),
            None => format!("{}:{}", t.key, t.effect),
        })
        .collect();
    out.sort();
    out
}

/// Waits until the Node satisfies `check` (the binary registers it asynchronously).
async fn node_where(
    ctx: &TestContext,
    name: &str,
    what: &str,
    check: impl Fn(&Node) -> bool,
) -> Node {
    let nodes: Api<Node> = Api::all(ctx.client());
    eventually(&format!("node {name}: {what}"), || {
        let nodes = nodes.clone();
        let check = &check;
        async move { nodes.get_opt(name).await.ok()?.filter(|n| check(n)) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_labels_and_taints_follow_restarts_and_leave_admin_ones_alone() {
    let ctx = TestContext::new().await.expect("control plane");
    let node = unique_name("vk-meta");
    ctx.delete_on_drop::<Node>(&node, None);
    let port = vk_testkit::free_port().expect("a free port");
    let ours = "virtual-kubelet.io/provider=mock:NoSchedule";

    // 1. Defaults plus one label and one extra taint.
    let first = start(
        &ctx,
        &node,
        port,
        &[
            "--node-labels",
            "example.com/team=blue,example.com/tier=gold",
            "--register-with-taints",
            "example.com/gpu=true:NoExecute",
        ],
    );
    node_where(&ctx, &node, "our labels and taints", |n| {
        let l = labels(n);
        l.get("example.com/team").map(String::as_str) == Some("blue")
            && taints(n) == ["example.com/gpu=true:NoExecute", ours]
    })
    .await;
    // An admin adds their own.
    kubectl(
        &ctx,
        &["label", "node", &node, "admin.example.com/owner=ops"],
    );
    kubectl(
        &ctx,
        &[
            "taint",
            "node",
            &node,
            "admin.example.com/maintenance=soon:PreferNoSchedule",
        ],
    );
    drop(first);

    // 2. Restarted with other labels, no provider taint, no extra taint.
    let second = start(
        &ctx,
        &node,
        port,
        &[
            "--node-labels",
            "example.com/tier=silver,example.com/zone=z1",
            "--disable-taint",
        ],
    );
    let n = node_where(&ctx, &node, "the new configuration applied", |n| {
        let l = labels(n);
        !l.contains_key("example.com/team")
            && l.get("example.com/tier").map(String::as_str) == Some("silver")
            && l.get("example.com/zone").map(String::as_str) == Some("z1")
            && !taints(n)
                .iter()
                .any(|t| t.starts_with("virtual-kubelet.io/provider"))
    })
    .await;
    let l = labels(&n);
    assert_eq!(
        l.get("admin.example.com/owner").map(String::as_str),
        Some("ops"),
        "the admin's label is kept: {l:?}"
    );
    assert_eq!(l.get("type").map(String::as_str), Some("virtual-kubelet"));
    assert_eq!(
        taints(&n),
        ["admin.example.com/maintenance=soon:PreferNoSchedule"],
        "only the admin's taint is left"
    );
    drop(second);

    // 3. Back to the defaults: the provider taint returns, the admin's stays, our
    //    configured labels are gone.
    let _third = start(&ctx, &node, port, &[]);
    let n = node_where(&ctx, &node, "the provider taint back", |n| {
        taints(n).iter().any(|t| t == ours)
    })
    .await;
    assert_eq!(
        taints(&n),
        [
            "admin.example.com/maintenance=soon:PreferNoSchedule".to_owned(),
            ours.to_owned()
        ]
    );
    let l = labels(&n);
    assert!(
        !l.contains_key("example.com/tier") && !l.contains_key("example.com/zone"),
        "{l:?}"
    );
    assert_eq!(
        l.get("admin.example.com/owner").map(String::as_str),
        Some("ops")
    );
}
