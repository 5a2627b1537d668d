//! A fleet of nodes in one `vk-mock` process (one shared Node watch) puts back a Node an
//! admin deleted, twice in a row, and a Lease deleted alone, without touching the
//! other nodes. Prints how long each re-creation took.

use std::process::{Child, Command, Stdio};
use std::time::Instant;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::DeleteParams;
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

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn lease_owner(lease: &Lease) -> Option<String> {
    lease
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "Node")
        .map(|o| o.uid.clone())
}

/// Waits until Node `name` is Ready under a UID other than `old` (any UID when `old` is
/// `None`) and its Lease is owned by that UID; returns the UID.
async fn wait_node_and_lease(ctx: &TestContext, name: &str, old: Option<&str>) -> String {
    let nodes: Api<Node> = Api::all(ctx.client());
    let leases: Api<Lease> = Api::namespaced(ctx.client(), "kube-node-lease");
    eventually(
        &format!("node {name} Ready under a new UID, with its Lease owned by it"),
        || {
            let (nodes, leases) = (nodes.clone(), leases.clone());
            async move {
                let node = nodes.get_opt(name).await.ok()??;
                let uid = node.metadata.uid.clone()?;
                if old == Some(uid.as_str()) || !is_ready(&node) {
                    return None;
                }
                let lease = leases.get_opt(name).await.ok()??;
                (lease_owner(&lease).as_deref() == Some(uid.as_str())).then_some(uid)
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_puts_back_a_deleted_node_and_a_deleted_lease() {
    let ctx = TestContext::new().await.expect("control plane");
    let base = unique_name("vk-recreate");
    let names: Vec<String> = (0..3).map(|i| format!("{base}-{i}")).collect();
    for n in &names {
        ctx.delete_on_drop::<Node>(n, None);
    }
    let port = vk_testkit::free_port().expect("a free port");
    let child = Command::new(BIN)
        .arg("--kubeconfig")
        .arg(ctx.kubeconfig())
        .args(["--nodename", &base, "--nodes", "3", "--metrics-addr", "off"])
        .args(["--listen-port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start vk-mock");
    let _child = Running(child);
    let mut uids = Vec::new();
    for n in &names {
        uids.push(wait_node_and_lease(&ctx, n, None).await);
    }

    let nodes: Api<Node> = Api::all(ctx.client());
    let victim = &names[1];
    let mut old = uids[1].clone();
    // Twice: the second deletion is seen by the same watch, on the re-created Node.
    for round in 1..=2 {
        let deleted_at = Instant::now();
        nodes
            .delete(victim, &DeleteParams::default())
            .await
            .expect("delete node");
        let new = wait_node_and_lease(&ctx, victim, Some(&old)).await;
        eprintln!(
            "fleet: deletion {round} of {victim}: back (new UID, Ready, Lease owned by it) {:?} after the delete call",
            deleted_at.elapsed()
        );
        old = new;
    }

    // A Lease deleted alone comes back owned by the same Node.
    let leases: Api<Lease> = Api::namespaced(ctx.client(), "kube-node-lease");
    let lonely = &names[2];
    let before = leases
        .get_opt(lonely)
        .await
        .expect("read lease")
        .and_then(|l| l.metadata.uid)
        .expect("the lease exists");
    let deleted_at = Instant::now();
    leases
        .delete(lonely, &DeleteParams::default())
        .await
        .expect("delete lease");
    eventually("the deleted Lease is back, owned by the same Node", || {
        let leases = leases.clone();
        let (before, uid) = (before.clone(), uids[2].clone());
        async move {
            let lease = leases.get_opt(lonely).await.ok()??;
            (lease.metadata.uid != Some(before) && lease_owner(&lease) == Some(uid)).then_some(())
        }
    })
    .await;
    eprintln!(
        "fleet: the Lease of {lonely}, deleted alone, was back {:?} after the delete call",
        deleted_at.elapsed()
    );

    // The other nodes were left alone.
    for i in [0, 2] {
        let node = nodes
            .get_opt(&names[i])
            .await
            .expect("read node")
            .expect("the node exists");
        assert_eq!(
            node.metadata.uid.as_deref(),
            Some(uids[i].as_str()),
            "node {} was re-created",
            names[i]
        );
    }
}
