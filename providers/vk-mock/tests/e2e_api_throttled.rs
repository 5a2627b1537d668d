//! A node whose API server is overloaded: API Priority and Fairness gives the node's
//! ServiceAccount a tiny concurrency budget and rejects the rest with 429. With default
//! flags the node honours the 429s (its own metrics count them, and the retries), all 500
//! pods converge to Running and are deleted again, each created and deleted exactly once
//! by the provider, and the node stays Ready.
//!
//! The budget: a PriorityLevelConfiguration with one assured-concurrency share (a few
//! seats out of the server's 600) and `limitResponse: Reject`, and a FlowSchema sending
//! every request of the node's ServiceAccount to it. The rest of the shared control plane
//! is untouched (admin requests are exempt from APF).

use std::process::Stdio;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Node, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use vk_testkit::prometheus::Metrics;
use vk_testkit::wait::eventually;
use vk_testkit::{TestContext, unique_name};

const BIN: &str = env!("CARGO_BIN_EXE_vk-mock");
const PODS: usize = 500;

async fn scrape(port: u16) -> Metrics {
    vk_testkit::prometheus::scrape(port)
        .await
        .expect("scrape /metrics")
}

fn kubectl(ctx: &TestContext, args: &[&str], stdin: Option<&str>) {
    let out = vk_testkit::cluster::run_kubectl(
        ctx.kubeconfig(),
        None,
        &[],
        args,
        stdin.map(str::as_bytes),
    )
    .expect("kubectl runs");
    assert_eq!(out.code, 0, "kubectl {args:?}: {}", out.stderr);
}

/// Deletes the APF objects (not in k8s-openapi's types for every version) on drop.
struct FlowControl<'a> {
    ctx: &'a TestContext,
    name: String,
}

impl Drop for FlowControl<'_> {
    fn drop(&mut self) {
        let _ = vk_testkit::cluster::run_kubectl(
            self.ctx.kubeconfig(),
            None,
            &[],
            &[
                "delete",
                "flowschemas.flowcontrol.apiserver.k8s.io,prioritylevelconfigurations.flowcontrol.apiserver.k8s.io",
                &self.name,
                "--ignore-not-found",
                "--wait=false",
            ],
            None,
        );
    }
}

fn flow_control_yaml(name: &str, namespace: &str, service_account: &str) -> String {
    format!(
        r#"apiVersion: flowcontrol.apiserver.k8s.io/v1beta1
kind: PriorityLevelConfiguration
metadata:
  name: {name}
spec:
  type: Limited
  limited:
    assuredConcurrencyShares: 1
    limitResponse:
      type: Reject
---
apiVersion: flowcontrol.apiserver.k8s.io/v1beta1
kind: FlowSchema
metadata:
  name: {name}
spec:
  priorityLevelConfiguration:
    name: {name}
  matchingPrecedence: 100
  distinguisherMethod:
    type: ByUser
  rules:
  - subjects:
    - kind: ServiceAccount
      serviceAccount:
        name: {service_account}
        namespace: {namespace}
    resourceRules:
    - verbs: ["*"]
      apiGroups: ["*"]
      resources: ["*"]
      clusterScope: true
      namespaces: ["*"]
    nonResourceRules:
    - verbs: ["*"]
      nonResourceURLs: ["*"]
"#
    )
}

/// The admin kubeconfig with its client certificate replaced by `token`.
fn token_kubeconfig(admin: &str, token: &str) -> String {
    let mut out = String::new();
    let mut replaced = false;
    for line in admin.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("client-certificate-data:")
            || trimmed.starts_with("client-key-data:")
        {
            if !replaced {
                let indent = &line[..line.len() - trimmed.len()];
                out.push_str(&format!("{indent}token: {token}\n"));
                replaced = true;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(replaced, "the admin kubeconfig has a client certificate");
    out
}

/// The ServiceAccount's token, from the Secret the token controller creates for it.
async fn service_account_token(ctx: &TestContext, namespace: &str, name: &str) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(ctx.client(), namespace);
    let secrets: Api<Secret> = Api::namespaced(ctx.client(), namespace);
    eventually("the ServiceAccount's token Secret", || {
        let accounts = accounts.clone();
        let secrets = secrets.clone();
        async move {
            let account = accounts.get(name).await.ok()?;
            let secret_name = account.secrets?.first()?.name.clone();
            let secret = secrets.get(secret_name.as_deref()?).await.ok()?;
            let token = secret.data?.get("token")?.0.clone();
            String::from_utf8(token).ok()
        }
    })
    .await
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_api_server_slows_the_node_and_nothing_is_lost() {
    let ctx = TestContext::new().await.expect("control plane");
    let node = unique_name("vk-apf");
    ctx.delete_on_drop::<Node>(&node, None);
    let ns = ctx.namespace("vk-apf").await.expect("namespace");
    let account = "vk-node";

    // The node's identity: a ServiceAccount with the rights of deploy/rbac.yaml's role
    // (cluster-admin here: the point is the flow, not the role).
    let accounts: Api<ServiceAccount> = Api::namespaced(ctx.client(), ns.name());
    let sa: ServiceAccount = serde_json::from_value(serde_json::json!({
        "metadata": {"name": account}
    }))
    .expect("service account");
    accounts
        .create(&PostParams::default(), &sa)
        .await
        .expect("create the ServiceAccount");
    let binding_name = unique_name("vk-apf");
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": binding_name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns.name()}],
    }))
    .expect("binding");
    Api::<ClusterRoleBinding>::all(ctx.client())
        .create(&PostParams::default(), &binding)
        .await
        .expect("bind the ServiceAccount");
    ctx.delete_on_drop::<ClusterRoleBinding>(&binding_name, None);

    // Its tiny budget.
    let flow = FlowControl {
        ctx: &ctx,
        name: unique_name("vk-apf"),
    };
    kubectl(
        &ctx,
        &["apply", "-f", "-"],
        Some(&flow_control_yaml(&flow.name, ns.name(), account)),
    );

    let token = service_account_token(&ctx, ns.name(), account).await;
    let admin = std::fs::read_to_string(ctx.kubeconfig()).expect("admin kubeconfig");
    let kubeconfig =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{node}.kubeconfig"));
    std::fs::write(&kubeconfig, token_kubeconfig(&admin, &token)).expect("node kubeconfig");

    // The node, with default flags (no --kube-api-qps/--kube-api-burst).
    let port = vk_testkit::free_port().expect("a free port");
    let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{node}.log"));
    let cleanup = format!(
        "'{}' --kubeconfig '{}' delete node/{node} --wait=false",
        vk_testkit::cluster::kubectl().display(),
        ctx.kubeconfig().display()
    );
    let mut child = vk_testkit::tied::command_then(BIN.as_ref(), &cleanup)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--nodename", &node, "--no-kubelet-api"])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start vk-mock");
    let nodes: Api<Node> = Api::all(ctx.client());
    eventually("the node is Ready", || {
        let nodes = nodes.clone();
        let node = node.clone();
        async move { nodes.get_opt(&node).await.ok()?.filter(node_ready) }
    })
    .await;

    // 500 pods at once (created by the admin, who is exempt from APF).
    let pods: Api<Pod> = Api::namespaced(ctx.client(), ns.name());
    futures::stream::iter(0..PODS)
        .for_each_concurrent(32, |i| {
            let pods = pods.clone();
            let node = node.clone();
            async move {
                let pod: Pod = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("p{i}")},
                    "spec": {
                        "nodeName": node,
                        "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
                        "containers": [{"name": "c", "image": "busybox"}],
                    }
                }))
                .expect("pod");
                pods.create(&PostParams::default(), &pod)
                    .await
                    .expect("create pod");
            }
        })
        .await;

    eventually("all 500 pods Running", || {
        let pods = pods.clone();
        async move {
            let list = pods.list(&ListParams::default()).await.ok()?;
            let running = list
                .items
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count();
            (running == PODS).then_some(())
        }
    })
    .await;

    let m = scrape(port).await;
    let rejected = m.sum("vk_api_requests_total", &[("code", "429")]);
    let retries = m.one("vk_api_retries_total", &[]);
    eprintln!(
        "{rejected} answers 429, {retries} retries, limit now {} requests/s",
        m.one("vk_api_client_rate_limit", &[])
    );
    assert!(
        rejected > 0.0,
        "the budget was meant to force 429s; none was counted"
    );
    assert!(
        retries >= rejected,
        "every 429 is retried ({retries} < {rejected})"
    );
    let n = node.as_str();
    assert_eq!(
        m.one(
            "vk_pod_provider_calls_total",
            &[("node", n), ("operation", "create")]
        ),
        PODS as f64,
        "each pod created once by the provider"
    );

    pods.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .expect("delete pods");
    eventually("the pods are gone from the API", || {
        let pods = pods.clone();
        async move {
            pods.list(&ListParams::default())
                .await
                .ok()?
                .items
                .is_empty()
                .then_some(())
        }
    })
    .await;
    let m = scrape(port).await;
    assert_eq!(
        m.one(
            "vk_pod_provider_calls_total",
            &[("node", n), ("operation", "delete")]
        ),
        PODS as f64,
        "each pod deleted once by the provider"
    );
    let still = nodes.get(&node).await.expect("the node");
    assert!(
        node_ready(&still),
        "the node stayed Ready: {:?}",
        still.status
    );
    let _ = child.kill();
    let _ = child.wait();
    drop(flow);
}
