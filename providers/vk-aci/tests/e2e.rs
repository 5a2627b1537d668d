//! vk-aci (the release binary) against the real control plane and the fake Azure,
//! used through kubectl as a user would: a Deployment becomes container groups,
//! Secret env as secure values, GPU and rounding in the request, logs and exec,
//! delete, restart adoption without duplicate `PUT`s, a 429 storm, token expiry.
//!
//! Needs `cargo xtask cluster up`. Timings are never asserted; waits poll.

mod fake;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use fake::{CLIENT_ID, CLIENT_SECRET, FakeAzure, REGION, RESOURCE_GROUP, SUBSCRIPTION, TENANT};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use vk_testkit::wait::eventually;
use vk_testkit::{LocalCluster, TestContext, unique_name};

const BIN: &str = env!("CARGO_BIN_EXE_vk-aci");

struct Node {
    fake: FakeAzure,
    node: String,
    namespace: String,
    kubeconfig: PathBuf,
    port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The binary itself, at once: a lingering one re-creates the node deleted below.
            let _ = vk_testkit::tied::kill(&mut child);
        }
        let _ = vk_testkit::cluster::run_kubectl(
            &self.kubeconfig,
            None,
            &[],
            &[
                "delete",
                &format!("namespace/{}", self.namespace),
                &format!("node/{}", self.node),
                "--wait=false",
            ],
            None,
        );
    }
}

impl Node {
    async fn start(prefix: &str) -> Node {
        let ctx = TestContext::new().await.expect("control plane");
        let fake = FakeAzure::start();
        let node = unique_name(prefix);
        let namespace = unique_name(prefix);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let config = dir.join(format!("{node}.toml"));
        std::fs::write(
            &config,
            format!(
                r#"subscription_id = "{SUBSCRIPTION}"
resource_group = "{RESOURCE_GROUP}"
region = "{REGION}"
arm_endpoint = "{url}"
ip_address_type = "Private"
subnet_ids = ["/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/aci"]
status_poll_seconds = 1
operation_poll_seconds = 1
log_follow_poll_seconds = 1
[auth]
tenant_id = "{TENANT}"
client_id = "{CLIENT_ID}"
authority_host = "{url}"
managed_identity = false
[capacity]
cpu = "100"
memory = "400Gi"
pods = "100"
"nvidia.com/gpu" = "8"
"#,
                url = fake.url()
            ),
        )
        .expect("config");
        let mut n = Node {
            fake,
            log: dir.join(format!("{node}.log")),
            node,
            namespace,
            kubeconfig: ctx.kubeconfig().to_owned(),
            port: vk_testkit::free_port().expect("port"),
            config,
            child: None,
        };
        n.spawn();
        vk_testkit::conformance::harness::wait_node_ready(&ctx.client(), &n.node).await;
        let (code, _, err) = n.kubectl(&["create", "namespace", &n.namespace.clone()], None);
        assert_eq!(code, 0, "{err}");
        n
    }

    /// Starts the binary (again); the secret comes from the environment, as Azure
    /// tools take it.
    fn spawn(&mut self) {
        let cluster = LocalCluster::from_env().expect("layout");
        let pki = cluster.layout().pki();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        let child = vk_testkit::tied::command(BIN.as_ref())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args([
                "--nodename",
                &self.node,
                "--listen-port",
                &self.port.to_string(),
            ])
            .args(["--metrics-addr", "off"])
            .arg("--provider-config")
            .arg(&self.config)
            .arg("--tls-cert-file")
            .arg(pki.kubelet_serving().cert)
            .arg("--tls-private-key-file")
            .arg(pki.kubelet_serving().key)
            .arg("--client-ca-file")
            .arg(pki.ca().cert)
            .env("AZURE_CLIENT_SECRET", CLIENT_SECRET)
            .env("RUST_LOG", "info,vk_aci=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start vk-aci");
        self.child = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Gone before this returns: a restart must not overlap the old binary,
            // which would create the new pods too.
            vk_testkit::tied::kill(&mut child).expect("kill");
        }
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        let out = vk_testkit::cluster::run_kubectl(
            &self.kubeconfig,
            Some(&self.namespace),
            &[],
            args,
            stdin.map(str::as_bytes),
        )
        .expect("kubectl runs");
        (out.code, out.stdout, out.stderr)
    }

    fn apply(&self, object: Value) {
        let (code, _, err) = self.kubectl(&["apply", "-f", "-"], Some(&object.to_string()));
        assert_eq!(code, 0, "{err}");
    }

    fn tolerations() -> Value {
        json!([{"key": "virtual-kubelet.io/provider", "operator": "Exists"}])
    }

    fn apply_pod(&self, name: &str, mut spec: Value, annotations: Value) {
        spec["nodeName"] = json!(self.node);
        spec["tolerations"] = Self::tolerations();
        self.apply(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "annotations": annotations}, "spec": spec}));
    }

    async fn pods_where(&self, what: &str, selector: &str, f: impl Fn(&[Pod]) -> bool) -> Vec<Pod> {
        eventually(what, || {
            let (code, out, _) = self.kubectl(&["get", "pods", "-l", selector, "-o", "json"], None);
            let pods: Vec<Pod> = (code == 0)
                .then(|| serde_json::from_str::<Value>(&out).ok())
                .flatten()
                .and_then(|v| serde_json::from_value(v["items"].clone()).ok())
                .unwrap_or_default();
            let ok = f(&pods);
            async move { ok.then_some(pods) }
        })
        .await
    }

    async fn running(&self, name: &str) -> Pod {
        eventually(&format!("{name} Running with a podIP"), || {
            let (code, out, _) = self.kubectl(&["get", "pod", name, "-o", "json"], None);
            let pod = (code == 0)
                .then(|| serde_json::from_str::<Pod>(&out).ok())
                .flatten()
                .filter(is_running);
            async move { pod }
        })
        .await
    }

    fn puts(&self) -> usize {
        self.fake.puts().len()
    }
}

fn is_running(p: &Pod) -> bool {
    let s = p.status.as_ref();
    s.and_then(|s| s.phase.as_deref()) == Some("Running")
        && s.and_then(|s| s.pod_ip.as_ref()).is_some()
}

fn deployment(node: &str, name: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "tolerations": Node::tolerations(),
                    "containers": [{
                        "name": "web", "image": "nginx:1.25",
                        "ports": [{"containerPort": 80}],
                        "env": [
                            {"name": "MODE", "value": "prod"},
                            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
                        ],
                        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}
                    }]
                }
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_becomes_container_groups_with_secure_secret_env_and_delete_removes_them() {
    let n = Node::start("vk-aci-dep").await;
    n.apply(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                   "stringData": {"password": "correct-horse-battery"}}),
    );
    n.apply(deployment(&n.node, "web", 3));
    let pods = n
        .pods_where("3 Running pods with podIPs", "app=web", |pods| {
            pods.len() == 3 && pods.iter().all(is_running)
        })
        .await;
    let ips: std::collections::BTreeSet<_> = pods
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect();
    assert_eq!(ips.len(), 3, "distinct pod IPs: {ips:?}");
    assert_eq!(n.fake.groups_of_node(&n.node).len(), 3);
    // The Secret-sourced variable went as a secure value, never as a plain one.
    let puts = n.fake.puts();
    assert_eq!(puts.len(), 3, "one PUT per pod");
    for (_, body) in &puts {
        let env = &body["properties"]["containers"][0]["properties"]["environmentVariables"];
        assert!(
            env.as_array()
                .expect("env")
                .contains(&json!({"name": "DB_PASSWORD", "secureValue": "correct-horse-battery"})),
            "{env}"
        );
        assert!(
            env.as_array()
                .expect("env")
                .contains(&json!({"name": "MODE", "value": "prod"}))
        );
        assert_eq!(body["tags"]["vk-node"], json!(n.node));
    }
    // Status comes from list calls only: never one GET per group.
    let single_gets = n
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/containerGroups/"))
        .count();
    assert_eq!(
        single_gets, 0,
        "status is polled with one list call for all groups"
    );
    // Container statuses come from the instance view.
    let c = &pods[0]
        .status
        .as_ref()
        .expect("status")
        .container_statuses
        .as_ref()
        .expect("cs")[0];
    assert!(
        c.ready
            && c.container_id
                .as_deref()
                .is_some_and(|id| id.starts_with("aci://"))
    );

    let (code, _, err) = n.kubectl(&["delete", "deployment", "web"], None);
    assert_eq!(code, 0, "{err}");
    n.pods_where("pods gone", "app=web", <[Pod]>::is_empty)
        .await;
    eventually("container groups deleted", || {
        let left = n.fake.groups_of_node(&n.node);
        async move { left.is_empty().then_some(()) }
    })
    .await;
    let deletes = n
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .count();
    assert!(deletes >= 3, "one DELETE per pod at least: {deletes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_and_rounded_resources_produce_the_documented_request() {
    let n = Node::start("vk-aci-gpu").await;
    n.apply_pod(
        "train",
        json!({"containers": [{"name": "c", "image": "mcr.microsoft.com/azuredocs/samples-tf-mnist-demo:gpu",
            "resources": {"requests": {"cpu": "1500m", "memory": "1G"},
                          "limits": {"cpu": "2", "memory": "2Gi", "nvidia.com/gpu": "1"}}}]}),
        json!({"virtual-kubelet.io/gpu-type": "K80"}),
    );
    n.running("train").await;
    let (_, body) = n.fake.group_of(&n.namespace, "train").expect("group");
    assert_eq!(
        body["properties"]["containers"][0]["properties"]["resources"],
        json!({"requests": {"cpu": 1.5, "memoryInGB": 1.0, "gpu": {"count": 1, "sku": "K80"}},
               "limits": {"cpu": 2.0, "memoryInGB": 2.0}})
    );
    eventually("a ResourcesRounded warning event", || {
        let (_, out, _) = n.kubectl(
            &[
                "get",
                "events",
                "--field-selector",
                "reason=ResourcesRounded",
                "-o",
                "jsonpath={.items[*].message}",
            ],
            None,
        );
        async move { out.contains("requests.memory").then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_and_exec_reach_the_container_group() {
    let n = Node::start("vk-aci-io").await;
    n.apply_pod(
        "app",
        json!({"containers": [{"name": "c", "image": "busybox"}]}),
        json!({}),
    );
    n.running("app").await;
    let (group, _) = n.fake.group_of(&n.namespace, "app").expect("group");
    n.fake.append_log(&group, "c", "hello from aci");
    let (code, out, err) = n.kubectl(&["logs", "app"], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "container c started\nhello from aci\n");
    let (_, out, _) = n.kubectl(&["logs", "app", "--tail=1", "--timestamps"], None);
    let (stamp, text) = out.trim_end().split_once(' ').expect("timestamped");
    assert!(
        stamp.parse::<k8s_openapi::jiff::Timestamp>().is_ok() && text == "hello from aci",
        "{out}"
    );

    // `logs -f`: polled, new lines only.
    let mut follow = std::process::Command::new(vk_testkit::cluster::kubectl())
        .args(["--kubeconfig"])
        .arg(&n.kubeconfig)
        .args(["-n", &n.namespace, "logs", "-f", "--tail=1", "app"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl logs -f");
    let stdout = follow.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    assert_eq!(
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .expect("first line"),
        "hello from aci"
    );
    n.fake.append_log(&group, "c", "second line");
    assert_eq!(
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .expect("followed line"),
        "second line"
    );
    let _ = follow.kill();
    let _ = follow.wait();

    // Exec through ACI's WebSocket (password first), over both kubectl transports.
    for env in [
        ("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "true"),
        ("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false"),
    ] {
        let out = vk_testkit::cluster::run_kubectl(
            &n.kubeconfig,
            Some(&n.namespace),
            &[env],
            &["exec", "app", "--", "echo", "hi"],
            None,
        )
        .expect("kubectl");
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (0, "hi\r\n"),
            "{env:?}: {}",
            out.stderr
        );
    }
    let (code, out, err) = n.kubectl(&["exec", "-i", "app", "--", "sh"], Some("hello\nexit\n"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "HELLO\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_adopts_groups_without_duplicate_puts() {
    let mut n = Node::start("vk-aci-rst").await;
    for name in ["a", "b"] {
        n.apply_pod(
            name,
            json!({"containers": [{"name": "c", "image": "busybox"}]}),
            json!({}),
        );
    }
    n.running("a").await;
    n.running("b").await;
    let puts = n.puts();
    assert_eq!(puts, 2);
    n.stop();
    // A fresh kubelet port: the old one may linger in TIME_WAIT.
    n.port = vk_testkit::free_port().expect("port");
    n.spawn();
    // A new pod after the restart proves the node works again; by the time it runs,
    // the adopted pods have been reconciled (update without a PUT).
    n.apply_pod(
        "c",
        json!({"containers": [{"name": "c", "image": "busybox"}]}),
        json!({}),
    );
    n.running("c").await;
    eventually("the restarted node reconciled its pods", || {
        let log = std::fs::read_to_string(&n.log).unwrap_or_default();
        async move {
            log.contains("reconciled with the provider's pods")
                .then_some(())
        }
    })
    .await;
    n.running("a").await;
    n.running("b").await;
    assert_eq!(
        n.puts(),
        puts + 1,
        "only the new pod was PUT: {:?}",
        n.fake
            .requests()
            .iter()
            .filter(|r| r.method == "PUT")
            .map(|r| (&r.path, r.status))
            .collect::<Vec<_>>()
    );
    assert_eq!(n.fake.groups_of_node(&n.node).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_and_an_expired_token_are_absorbed() {
    let n = Node::start("vk-aci-thr").await;
    // Let the node settle, then throttle the next 15 requests.
    n.apply_pod(
        "warm",
        json!({"containers": [{"name": "c", "image": "busybox"}]}),
        json!({}),
    );
    n.running("warm").await;
    let before = n.fake.requests().len();
    n.fake.throttle(15, 1);
    n.fake.expire_tokens();
    n.apply(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                   "stringData": {"password": "pw"}}),
    );
    n.apply(deployment(&n.node, "storm", 2));
    n.pods_where("2 Running pods despite throttling", "app=storm", |pods| {
        pods.len() == 2 && pods.iter().all(is_running)
    })
    .await;
    let during: Vec<_> = n.fake.requests().into_iter().skip(before).collect();
    let throttled = during.iter().filter(|r| r.status == 429).count();
    assert_eq!(throttled, 15, "every throttled answer was waited out");
    // Each 429 waited its Retry-After: a few polls, creates and LRO polls, no storm.
    let others = during.len() - throttled;
    assert!(
        others < 60,
        "{others} requests besides the 429s while converging"
    );
    assert_eq!(
        n.fake.token_requests().len(),
        2,
        "the expired token was refreshed once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_failures_and_restarts_reach_the_pod_status() {
    let n = Node::start("vk-aci-st").await;
    // A regional core quota refuses the PUT: a QuotaExceeded warning, ProviderFailed,
    // and the pod runs once the quota allows it (the core retries).
    n.fake.set_core_quota(Some(0.5));
    n.apply_pod(
        "big",
        json!({"containers": [{"name": "c", "image": "busybox",
        "resources": {"requests": {"cpu": "1"}}}]}),
        json!({}),
    );
    eventually("big: ProviderFailed naming the quota", || {
        let (_, out, _) = n.kubectl(
            &[
                "get",
                "pod",
                "big",
                "-o",
                "jsonpath={.status.reason} {.status.message}",
            ],
            None,
        );
        async move {
            (out.starts_with("ProviderFailed") && out.contains("ContainerGroupQuotaReached"))
                .then_some(())
        }
    })
    .await;
    eventually("a QuotaExceeded warning event", || {
        let (_, out, _) = n.kubectl(
            &[
                "get",
                "events",
                "--field-selector",
                "reason=QuotaExceeded,type=Warning",
                "-o",
                "name",
            ],
            None,
        );
        async move { (!out.trim().is_empty()).then_some(()) }
    })
    .await;
    n.fake.set_core_quota(None);
    n.running("big").await;

    // A provisioning operation that fails asynchronously fails the pod.
    n.fake.fail_next_provisioning(
        "InaccessibleImage",
        "The image 'nope:latest' in container group is not accessible.",
    );
    n.apply_pod(
        "broken",
        json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": "nope:latest"}]}),
        json!({}),
    );
    eventually("broken: Failed with ProviderFailed", || {
        let (_, out, _) = n.kubectl(
            &[
                "get",
                "pod",
                "broken",
                "-o",
                "jsonpath={.status.phase} {.status.reason} {.status.message}",
            ],
            None,
        );
        async move {
            (out.starts_with("Failed ProviderFailed") && out.contains("InaccessibleImage"))
                .then_some(())
        }
    })
    .await;

    // Waiting -> Running -> Terminated: a finished job's exit code and phase.
    n.apply_pod(
        "job",
        json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}),
        json!({}),
    );
    n.running("job").await;
    let (job, _) = n.fake.group_of(&n.namespace, "job").expect("group");
    n.fake.exit_container(&job, "c", 3);
    eventually("job: Failed with exit code 3", || {
        let (_, out, _) = n.kubectl(
            &["get", "pod", "job", "-o",
              "jsonpath={.status.phase} {.status.containerStatuses[0].state.terminated.exitCode} {.status.containerStatuses[0].state.terminated.reason}"],
            None,
        );
        async move { (out == "Failed 3 Error").then_some(()) }
    })
    .await;

    // The instance view changes over time: a restart shows in restartCount/lastState.
    let (group, _) = n.fake.group_of(&n.namespace, "big").expect("group");
    n.fake.restart_container(&group, "c", 137);
    eventually("big: restartCount 1 with lastState exit 137", || {
        let (_, out, _) = n.kubectl(
            &["get", "pod", "big", "-o",
              "jsonpath={.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].lastState.terminated.exitCode}"],
            None,
        );
        async move { (out == "1 137").then_some(()) }
    })
    .await;
}
