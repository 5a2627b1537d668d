//! vk-web against the real control plane, used through kubectl as a user would, with
//! the Python reference bridge (`examples/python-bridge/bridge.py`) as a separate
//! process: a Deployment scaled to 5 replicas, `kubectl delete` stopping the bridge's
//! subprocesses, `kubectl logs` (tail, since, timestamps, follow), `kubectl exec` (echo,
//! exit code, stdin; WebSocket and SPDY), `kubectl port-forward`, and a node whose bridge
//! is down at start.
//!
//! Needs `cargo xtask cluster up`. Timings are never asserted; waits poll generously.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Node, Pod};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::OnceCell;
use vk_testkit::transcript::Transcript;
use vk_testkit::wait::{eventually, within};
use vk_testkit::{LocalCluster, TestContext, unique_name};

const BIN: &str = env!("CARGO_BIN_EXE_vk-web");
const BRIDGE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/python-bridge/bridge.py"
);
const WEBSOCKET: &[(&str, &str)] = &[];
const SPDY: &[(&str, &str)] = &[("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")];

struct Shared {
    node: String,
    namespace: String,
    kubeconfig: PathBuf,
}

static SHARED: OnceCell<Shared> = OnceCell::const_new();
static CHILDREN: Mutex<Vec<Child>> = Mutex::new(Vec::new());

fn free_port() -> u16 {
    vk_testkit::free_port().expect("a free port")
}

/// Starts the Python bridge on `port` (0: any); returns its URL and process.
fn start_bridge(port: u16) -> (String, Child) {
    let mut child = vk_testkit::tied::command("python3".as_ref())
        .arg(BRIDGE)
        .args([
            "--port",
            &port.to_string(),
            "--default-command",
            "sleep 3600",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the bridge");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the bridge's first line");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line from the bridge: {line:?}"))
        .to_owned();
    (url, child)
}

/// Starts a vk-web node for the bridge at `url`; it deletes its node and namespace
/// when it ends.
fn start_node(kubeconfig: &Path, node: &str, namespace: &str, url: &str) -> Child {
    let cluster = LocalCluster::from_env().expect("layout");
    let pki = cluster.layout().pki();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let config = dir.join(format!("{node}.toml"));
    std::fs::write(
        &config,
        format!("endpoint = {url:?}\nnode_status_interval = \"5s\"\n"),
    )
    .expect("config");
    let cleanup = format!(
        "'{kubectl}' --kubeconfig '{kubeconfig}' delete namespace/{namespace} node/{node} --wait=false",
        kubectl = vk_testkit::cluster::kubectl().display(),
        kubeconfig = kubeconfig.display()
    );
    vk_testkit::tied::command_then(BIN.as_ref(), &cleanup)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args([
            "--nodename",
            node,
            "--listen-port",
            &free_port().to_string(),
            "--metrics-addr",
            "off",
        ])
        .arg("--provider-config")
        .arg(&config)
        .arg("--tls-cert-file")
        .arg(pki.kubelet_serving().cert)
        .arg("--tls-private-key-file")
        .arg(pki.kubelet_serving().key)
        .arg("--client-ca-file")
        .arg(pki.ca().cert)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{node}.log"))).expect("log"))
        .spawn()
        .expect("start vk-web")
}

async fn shared() -> &'static Shared {
    SHARED
        .get_or_init(|| async {
            let ctx = TestContext::new().await.expect("control plane");
            let node = unique_name("vk-web");
            let namespace = unique_name("vk-web");
            let (url, bridge) = start_bridge(0);
            let child = start_node(ctx.kubeconfig(), &node, &namespace, &url);
            CHILDREN.lock().expect("lock").extend([bridge, child]);
            vk_testkit::conformance::harness::wait_node_ready(&ctx.client(), &node).await;
            let s = Shared {
                node,
                namespace,
                kubeconfig: ctx.kubeconfig().to_owned(),
            };
            let (code, _, err) = kubectl(&s, &[], &["create", "namespace", &s.namespace], None);
            assert_eq!(code, 0, "{err}");
            s
        })
        .await
}

fn kubectl(
    s: &Shared,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: Option<&[u8]>,
) -> (i32, String, String) {
    let out = vk_testkit::cluster::run_kubectl(&s.kubeconfig, Some(&s.namespace), env, args, stdin)
        .expect("kubectl runs");
    (out.code, out.stdout, out.stderr)
}

fn placement(s: &Shared) -> serde_json::Value {
    serde_json::json!({
        "nodeSelector": {"kubernetes.io/hostname": s.node},
        "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
    })
}

/// Applies pod `name` running `command` on the shared node.
fn apply_pod(s: &Shared, name: &str, command: &[&str]) {
    let mut spec = placement(s);
    spec["containers"] = serde_json::json!([{"name": "c", "image": "x", "command": command}]);
    let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec});
    let (code, _, err) = kubectl(
        s,
        &[],
        &["apply", "-f", "-"],
        Some(pod.to_string().as_bytes()),
    );
    assert_eq!(code, 0, "{err}");
}

fn pods_where(s: &Shared, selector: &str) -> Vec<Pod> {
    let (code, out, _) = kubectl(s, &[], &["get", "pods", "-l", selector, "-o", "json"], None);
    if code != 0 {
        return Vec::new();
    }
    serde_json::from_str::<serde_json::Value>(&out)
        .ok()
        .and_then(|v| serde_json::from_value::<Vec<Pod>>(v["items"].clone()).ok())
        .unwrap_or_default()
}

async fn running(s: &Shared, name: &str) -> Pod {
    eventually(&format!("pod {name} Running"), || {
        let (code, out, _) = kubectl(s, &[], &["get", "pod", name, "-o", "json"], None);
        let pod = (code == 0)
            .then(|| serde_json::from_str::<Pod>(&out).ok())
            .flatten()
            .filter(|p| p.status.as_ref().and_then(|st| st.phase.as_deref()) == Some("Running"));
        async move { pod }
    })
    .await
}

fn pid_of(pod: &Pod) -> Option<i32> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .container_id
        .as_deref()?
        .strip_prefix("process://")?
        .parse()
        .ok()
}

fn alive(pid: i32) -> bool {
    // A zombie still has /proc/PID; its state is Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_scales_to_five_and_delete_stops_the_processes() {
    let s = shared().await;
    let mut spec = placement(s);
    spec["containers"] =
        serde_json::json!([{"name": "c", "image": "x", "command": ["sleep", "3600"]}]);
    let deployment = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "five"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "five"}},
            "template": {"metadata": {"labels": {"app": "five"}}, "spec": spec}
        }
    });
    let (code, _, err) = kubectl(
        s,
        &[],
        &["apply", "-f", "-"],
        Some(deployment.to_string().as_bytes()),
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = kubectl(s, &[], &["scale", "deployment/five", "--replicas=5"], None);
    assert_eq!(code, 0, "{err}");
    let pods = eventually("5 replicas Running with a process each", || {
        let pods = pods_where(s, "app=five");
        let ready = pods.len() == 5
            && pods.iter().all(|p| {
                p.status.as_ref().and_then(|st| st.phase.as_deref()) == Some("Running")
                    && pid_of(p).is_some_and(alive)
            });
        async move { ready.then_some(pods) }
    })
    .await;
    let pids: Vec<i32> = pods.iter().filter_map(pid_of).collect();
    assert_eq!(pids.len(), 5);
    let (code, out, _) = kubectl(
        s,
        &[],
        &[
            "get",
            "deployment",
            "five",
            "-o",
            "jsonpath={.status.readyReplicas}",
        ],
        None,
    );
    assert_eq!((code, out.as_str()), (0, "5"));

    let (code, _, err) = kubectl(
        s,
        &[],
        &["delete", "deployment", "five", "--wait=false"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    eventually(
        "the pods gone from the API and their processes stopped",
        || {
            let done = pods_where(s, "app=five").is_empty() && !pids.iter().any(|p| alive(*p));
            async move { done.then_some(()) }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_honour_tail_since_timestamps_and_follow() {
    let s = shared().await;
    apply_pod(
        s,
        "five-lines",
        &[
            "sh",
            "-c",
            "for i in 1 2 3 4 5; do echo line $i; done; exec sleep 3600",
        ],
    );
    running(s, "five-lines").await;
    let all = eventually("all five lines logged", || {
        let (_, out, _) = kubectl(s, &[], &["logs", "five-lines"], None);
        async move { (out.lines().count() == 5).then_some(out) }
    })
    .await;
    assert_eq!(all, "line 1\nline 2\nline 3\nline 4\nline 5\n");
    let (code, out, err) = kubectl(s, &[], &["logs", "five-lines", "--tail=2"], None);
    assert_eq!((code, out.as_str()), (0, "line 4\nline 5\n"), "{err}");
    let (_, out, _) = kubectl(s, &[], &["logs", "five-lines", "--since=1h"], None);
    assert_eq!(out, all);
    let future = (k8s_openapi::jiff::Timestamp::now()
        + k8s_openapi::jiff::SignedDuration::from_secs(3600))
    .to_string();
    let (code, out, err) = kubectl(
        s,
        &[],
        &["logs", "five-lines", &format!("--since-time={future}")],
        None,
    );
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    let (_, out, _) = kubectl(
        s,
        &[],
        &["logs", "five-lines", "--timestamps", "--tail=1"],
        None,
    );
    let (stamp, rest) = out.split_once(' ').expect("a timestamp prefix");
    assert!(
        stamp.parse::<k8s_openapi::jiff::Timestamp>().is_ok(),
        "{out}"
    );
    assert_eq!(rest, "line 5\n");
    let (_, out, _) = kubectl(s, &[], &["logs", "five-lines", "--limit-bytes=9"], None);
    assert_eq!(out, "line 1\nli");

    apply_pod(
        s,
        "ticker",
        &[
            "sh",
            "-c",
            "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
        ],
    );
    running(s, "ticker").await;
    let mut child = tokio::process::Command::new(vk_testkit::cluster::kubectl())
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args(["-n", &s.namespace, "logs", "-f", "ticker", "--tail=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl logs -f");
    let mut out = Transcript::new(child.stdout.take().expect("stdout"));
    let seen = out
        .wait_for("three followed lines", |t| t.lines().count() >= 3)
        .await;
    let _ = child.kill().await;
    let ticks: Vec<u64> = seen
        .lines()
        .filter_map(|l| l.strip_prefix("tick ")?.parse().ok())
        .collect();
    assert!(ticks.len() >= 3, "{seen}");
    assert!(
        ticks.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive: {seen}"
    );
}

fn exec_suite(s: &Shared, env: &[(&str, &str)]) {
    let (code, out, err) = kubectl(s, env, &["exec", "shell", "--", "echo", "hi"], None);
    assert_eq!((code, out.as_str()), (0, "hi\n"), "{err}");
    let (code, _, _) = kubectl(s, env, &["exec", "shell", "--", "sh", "-c", "exit 3"], None);
    assert_eq!(code, 3);
    let (code, out, err) = kubectl(
        s,
        env,
        &["exec", "-i", "shell", "--", "cat"],
        Some(b"data\nmore data\n"),
    );
    assert_eq!((code, out.as_str()), (0, "data\nmore data\n"), "{err}");
    let (code, out, _) = kubectl(
        s,
        env,
        &["exec", "shell", "--", "sh", "-c", "echo out; echo err >&2"],
        None,
    );
    assert_eq!((code, out.as_str()), (0, "out\n"));
    let (code, _, err) = kubectl(
        s,
        env,
        &["exec", "shell", "--", "no-such-command-here"],
        None,
    );
    assert_ne!(code, 0);
    assert!(err.contains("no-such-command-here"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_over_websocket_and_spdy() {
    let s = shared().await;
    apply_pod(s, "shell", &["sleep", "3600"]);
    running(s, "shell").await;
    exec_suite(s, WEBSOCKET);
    exec_suite(s, SPDY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_reaches_the_pods_server() {
    let s = shared().await;
    let port = free_port();
    let port_text = port.to_string();
    apply_pod(
        s,
        "web",
        &[
            "python3",
            "-m",
            "http.server",
            &port_text,
            "--bind",
            "127.0.0.1",
        ],
    );
    running(s, "web").await;
    // The pod's process runs on this host: wait until it listens.
    eventually("the pod's HTTP server listening", || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
    })
    .await;
    let local = free_port();
    let mut child = tokio::process::Command::new(vk_testkit::cluster::kubectl())
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args([
            "-n",
            &s.namespace,
            "port-forward",
            "pod/web",
            &format!("{local}:{port}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("port-forward");
    let listening = format!("Forwarding from 127.0.0.1:{local}");
    let mut out = Transcript::new(child.stdout.take().expect("stdout"));
    out.wait_for("kubectl port-forward listening", |t| t.contains(&listening))
        .await;
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", local))
        .await
        .expect("connect to kubectl port-forward");
    conn.write_all(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")
        .await
        .expect("send");
    let mut answer = Vec::new();
    within(
        "the answer through the tunnel",
        conn.read_to_end(&mut answer),
    )
    .await
    .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    assert!(answer.contains("Directory listing"), "{answer}");
    let _ = child.kill().await;
}

fn ready_condition(node: &Node) -> Option<(String, String, String)> {
    let c = node
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?
        .clone();
    Some((
        c.status,
        c.reason.unwrap_or_default(),
        c.message.unwrap_or_default(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_down_at_start_is_not_ready_then_ready_when_it_answers() {
    let ctx = TestContext::new().await.expect("control plane");
    let node = unique_name("vk-web-late");
    let namespace = unique_name("vk-web-late");
    let port = free_port();
    let child = start_node(
        ctx.kubeconfig(),
        &node,
        &namespace,
        &format!("http://127.0.0.1:{port}"),
    );
    CHILDREN.lock().expect("lock").push(child);
    let nodes: kube::Api<Node> = kube::Api::all(ctx.client());
    let (_, reason, message) = eventually("the node registered NotReady", || {
        let nodes = nodes.clone();
        let node = node.clone();
        async move {
            let n = nodes.get_opt(&node).await.ok().flatten()?;
            ready_condition(&n).filter(|(status, _, _)| status == "False")
        }
    })
    .await;
    assert_eq!(reason, "ProviderPingFailed");
    assert!(
        message.contains(&format!("127.0.0.1:{port}")),
        "the message names the bridge: {message}"
    );
    let (_, bridge) = start_bridge(port);
    CHILDREN.lock().expect("lock").push(bridge);
    vk_testkit::conformance::harness::wait_node_ready(&ctx.client(), &node).await;
    // Capacity comes from the bridge once it answers.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    eventually("the bridge's capacity on the node", || {
        let nodes = nodes.clone();
        let node = node.clone();
        async move {
            let n = nodes.get_opt(&node).await.ok().flatten()?;
            let cpu = n.status?.capacity?.get("cpu")?.0.clone();
            (cpu == cpus.to_string()).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_streams_output_and_stats_reach_the_kubelet_api() {
    let s = shared().await;
    apply_pod(
        s,
        "attached",
        &[
            "sh",
            "-c",
            "i=0; while true; do echo beat $i; i=$((i+1)); sleep 0.2; done",
        ],
    );
    running(s, "attached").await;
    let mut child = tokio::process::Command::new(vk_testkit::cluster::kubectl())
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args(["-n", &s.namespace, "attach", "attached", "-c", "c"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl attach");
    let mut out = Transcript::new(child.stdout.take().expect("stdout"));
    let seen = out
        .wait_for("two beats through attach", |t| {
            t.lines().filter(|l| l.starts_with("beat ")).count() >= 2
        })
        .await;
    let _ = child.kill().await;
    assert!(seen.contains("beat "), "{seen}");

    let summary = eventually("the pod in /stats/summary", || {
        let (code, out, _) = kubectl(
            s,
            &[],
            &[
                "get",
                "--raw",
                &format!("/api/v1/nodes/{}/proxy/stats/summary", s.node),
            ],
            None,
        );
        let found = code == 0 && out.contains("\"attached\"");
        async move { found.then_some(out) }
    })
    .await;
    let summary: serde_json::Value = serde_json::from_str(&summary).expect("JSON");
    assert_eq!(summary["node"]["nodeName"], s.node.as_str());
    let (code, metrics, err) = kubectl(
        s,
        &[],
        &[
            "get",
            "--raw",
            &format!("/api/v1/nodes/{}/proxy/metrics/resource", s.node),
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        metrics.contains("pod_memory_working_set_bytes") && metrics.contains("pod=\"attached\""),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_container_keeps_its_previous_log() {
    let s = shared().await;
    apply_pod(s, "crash", &["sh", "-c", "echo run; sleep 1; exit 2"]);
    eventually("restarted after exit code 2", || {
        let (code, out, _) = kubectl(s, &[], &["get", "pod", "crash", "-o", "json"], None);
        let restarted = (code == 0)
            .then(|| serde_json::from_str::<Pod>(&out).ok())
            .flatten()
            .and_then(|p| p.status?.container_statuses?.into_iter().next())
            .filter(|c| {
                c.restart_count >= 1
                    && c.last_state
                        .as_ref()
                        .and_then(|l| l.terminated.as_ref())
                        .is_some_and(|t| t.exit_code == 2)
            });
        async move { restarted }
    })
    .await;
    let (code, out, err) = kubectl(s, &[], &["logs", "crash", "--previous"], None);
    assert_eq!((code, out.as_str()), (0, "run\n"), "{err}");
}
