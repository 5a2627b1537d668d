//! The kubelet API of a vk-mock node, used as a user would: kubectl logs, exec, attach,
//! port-forward and `get --raw .../proxy/...` through the real API server (which checks
//! the node's serving certificate and presents its kubelet client certificate), over
//! WebSocket (kubectl's default) and SPDY; plus direct requests for authentication.

use std::process::{Child, Stdio};
use std::sync::OnceLock;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::Api;
use kube::api::PostParams;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::Command;
use tokio::sync::OnceCell;
use vk_testkit::kubelet_client::KubeletClient;
use vk_testkit::transcript::Transcript;
use vk_testkit::wait::{eventually, eventually_ok, within};
use vk_testkit::{LocalCluster, TestContext, unique_name};

const BIN: &str = env!("CARGO_BIN_EXE_vk-mock");

/// The node every test of this file uses: one vk-mock process, started once.
struct Shared {
    node: String,
    namespace: String,
    kubelet_port: u16,
    log: std::path::PathBuf,
    kubeconfig: std::path::PathBuf,
}

static NODE: OnceCell<Shared> = OnceCell::const_new();
static CHILD: OnceLock<std::sync::Mutex<Option<Child>>> = OnceLock::new();

fn free_port() -> u16 {
    vk_testkit::free_port().expect("a free port")
}

async fn shared() -> &'static Shared {
    NODE.get_or_init(|| async {
        let ctx = TestContext::new().await.expect("control plane");
        let cluster = LocalCluster::from_env().expect("layout");
        let pki = cluster.layout().pki();
        let node = unique_name("vk-api");
        let namespace = unique_name("vk-api");
        let port = free_port();
        let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{node}.log"));
        // Shared by every test of this binary and never killed by one of them; it goes
        // away with the test process, and then its node and namespace are deleted.
        let cleanup = format!(
            "'{}' --kubeconfig '{}' delete namespace/{namespace} node/{node} --wait=false",
            vk_testkit::cluster::kubectl().display(),
            ctx.kubeconfig().display()
        );
        let child = vk_testkit::tied::command_then(BIN.as_ref(), &cleanup)
            .arg("--kubeconfig")
            .arg(ctx.kubeconfig())
            .args(["--nodename", &node, "--listen-port", &port.to_string(), "--metrics-addr", "off"])
            .arg("--tls-cert-file")
            .arg(pki.kubelet_serving().cert)
            .arg("--tls-private-key-file")
            .arg(pki.kubelet_serving().key)
            .arg("--client-ca-file")
            .arg(pki.ca().cert)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start vk-mock");
        let _ = CHILD.set(std::sync::Mutex::new(Some(child)));
        vk_testkit::conformance::harness::wait_node_ready(&ctx.client(), &node).await;
        let ns: k8s_openapi::api::core::v1::Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": namespace, "labels": {"vk-testkit.io/test": "true"}}}))
                .expect("ns");
        Api::<k8s_openapi::api::core::v1::Namespace>::all(ctx.client())
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace");
        let pods: Api<Pod> = Api::namespaced(ctx.client(), &namespace);
        for name in ["web", "attachable"] {
            let pod: Pod = serde_json::from_value(serde_json::json!({
                "metadata": {"name": name},
                "spec": {
                    "nodeName": node,
                    "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
                    "containers": [{"name": "c", "image": "busybox", "stdin": true}]
                }
            }))
            .expect("pod");
            eventually_ok(&format!("creating pod {name}"), || {
                let (pods, pod) = (pods.clone(), &pod);
                async move { pods.create(&PostParams::default(), pod).await }
            })
            .await;
            eventually(&format!("{name} Running"), || {
                let pods = pods.clone();
                async move {
                    (pods.get_opt(name).await.ok()??.status?.phase.as_deref() == Some("Running")).then_some(())
                }
            })
            .await;
        }
        Shared {
            node,
            namespace,
            kubelet_port: port,
            log,
            kubeconfig: ctx.kubeconfig().to_owned(),
        }
    })
    .await
}

/// Runs kubectl; returns (exit code, stdout, stderr).
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

const WEBSOCKET: &[(&str, &str)] = &[];
const SPDY: &[(&str, &str)] = &[
    ("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false"),
    ("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false"),
];

fn node_log(s: &Shared) -> String {
    std::fs::read_to_string(&s.log).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_with_every_option() {
    let s = shared().await;
    let (code, out, err) = kubectl(s, &[], &["logs", "web"], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 10, "{out}");
    assert!(out.starts_with("mock log line 1\n"));
    let (_, out, _) = kubectl(s, &[], &["logs", "web", "--tail=3"], None);
    assert_eq!(out, "mock log line 8\nmock log line 9\nmock log line 10\n");
    let (_, out, _) = kubectl(s, &[], &["logs", "web", "--since=1h"], None);
    assert_eq!(out.lines().count(), 10);
    let (_, out, _) = kubectl(s, &[], &["logs", "web", "--timestamps", "--tail=1"], None);
    let (ts, rest) = out.trim_end().split_once(' ').expect("timestamp prefix");
    assert!(ts.parse::<k8s_openapi::jiff::Timestamp>().is_ok(), "{out}");
    assert_eq!(rest, "mock log line 10");
    let (_, out, _) = kubectl(s, &[], &["logs", "web", "--limit-bytes=20"], None);
    assert_eq!(out, "mock log line 1\nmock");
    let (code, _, err) = kubectl(s, &[], &["logs", "web", "--previous"], None);
    assert_ne!(code, 0);
    assert!(err.contains("previous terminated container"), "{err}");
    let (code, _, err) = kubectl(s, &[], &["logs", "web", "-c", "nope"], None);
    assert_ne!(code, 0);
    assert!(err.contains("not valid") || err.contains("nope"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_streams_lines_as_they_are_written() {
    let s = shared().await;
    let mut child = Command::new(vk_testkit::cluster::kubectl())
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args(["-n", &s.namespace, "logs", "-f", "web", "--tail=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl logs -f");
    let mut out = Transcript::new(child.stdout.take().expect("stdout"));
    let seen = out
        .wait_for("the second followed line", |t| {
            t.contains("mock follow line 2")
        })
        .await;
    let _ = child.kill().await;
    assert!(seen.starts_with("mock log line 10\n"), "{seen}");
    assert!(seen.contains("mock follow line 1\n"), "{seen}");
}

fn exec_suite(s: &Shared, env: &[(&str, &str)]) {
    let (code, out, err) = kubectl(s, env, &["exec", "web", "--", "echo", "hi"], None);
    assert_eq!((code, out.as_str()), (0, "hi\n"), "{err}");
    let (code, _, _) = kubectl(s, env, &["exec", "web", "--", "sh", "-c", "exit 3"], None);
    assert_eq!(code, 3);
    let (code, out, _) = kubectl(
        s,
        env,
        &["exec", "-i", "web", "--", "cat"],
        Some(b"data\nmore data\n"),
    );
    assert_eq!((code, out.as_str()), (0, "data\nmore data\n"));
    let (code, _, err) = kubectl(
        s,
        env,
        &["exec", "web", "--", "definitely-not-a-command"],
        None,
    );
    assert_eq!(code, 127);
    assert!(err.contains("command not found"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_over_websocket_and_spdy() {
    let s = shared().await;
    exec_suite(s, WEBSOCKET);
    exec_suite(s, SPDY);
    let log = node_log(s);
    assert!(
        log.contains("transport=\"websocket\""),
        "no WebSocket session in the node log:\n{log}"
    );
    assert!(
        log.contains("transport=\"spdy\""),
        "no SPDY session in the node log:\n{log}"
    );
}

/// `kubectl exec -it` under a real pseudo-terminal (`script` allocates it): each line
/// is typed once the shell has printed its prompt, i.e. once the session is up and the
/// previous command has finished. Returns what the terminal showed.
async fn tty_session(s: &Shared, env: &[(&str, &str)]) -> String {
    // The terminal is 30 rows by 100 columns (`script`'s own stdin is no terminal to
    // take the size from); kubectl sends that size to the shell.
    let inner = format!(
        "stty rows 30 cols 100 && exec {} --kubeconfig {} -n {} exec -it web -- sh",
        vk_testkit::cluster::kubectl().display(),
        s.kubeconfig.display(),
        s.namespace
    );
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c", &inner, "/dev/null"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("script");
    let mut input = child.stdin.take().expect("stdin");
    let mut screen = Transcript::new(child.stdout.take().expect("stdout"));
    let prompts = |n: usize| move |t: &str| t.matches("$ ").count() >= n;
    screen.wait_for("the shell's prompt", prompts(1)).await;
    for (line, prompt) in [("echo tty-ok", 2), ("stty size", 3)] {
        input
            .write_all(format!("{line}\r").as_bytes())
            .await
            .expect("type a line");
        screen
            .wait_for(&format!("the prompt after `{line}`"), prompts(prompt))
            .await;
    }
    input.write_all(b"exit 0\r").await.expect("type exit");
    drop(input);
    let shown = screen.wait_for_end("the session ends after `exit 0`").await;
    let status = within("script exits", child.wait())
        .await
        .expect("script's exit status");
    assert!(
        status.success(),
        "script: {status}; the terminal showed:\n{shown}"
    );
    shown
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_a_tty_over_websocket_and_spdy() {
    let s = shared().await;
    for env in [WEBSOCKET, SPDY] {
        let out = tty_session(s, env).await;
        // The shell echoes the typed line, then prints the command's output.
        assert!(
            out.contains("echo tty-ok\r\ntty-ok\r\n$ "),
            "TTY session ({env:?}):\n{out}"
        );
        assert!(
            out.contains("stty size\r\n30 100\r\n$ "),
            "the terminal's size reaches the shell ({env:?}):\n{out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_round_trips_stdin() {
    let s = shared().await;
    for env in [WEBSOCKET, SPDY] {
        let (code, out, err) = kubectl(
            s,
            env,
            &["attach", "-i", "attachable", "-c", "c"],
            Some(b"attached hello\n"),
        );
        assert_eq!(code, 0, "{env:?}: {err}");
        assert!(out.contains("attached hello"), "{env:?}: {out} / {err}");
    }
}

async fn port_forward_round_trip(s: &Shared, env: &[(&str, &str)]) {
    let local = free_port();
    let mut cmd = Command::new(vk_testkit::cluster::kubectl());
    cmd.arg("--kubeconfig").arg(&s.kubeconfig).args([
        "-n",
        &s.namespace,
        "port-forward",
        "pod/web",
        &format!("{local}:8080"),
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("port-forward");
    // kubectl prints this line once its local listener is bound. (The transcript stays
    // open until kubectl is killed: it writes a line per connection.)
    let listening = format!("Forwarding from 127.0.0.1:{local}");
    let mut out = Transcript::new(child.stdout.take().expect("stdout"));
    out.wait_for("kubectl port-forward listening", |t| t.contains(&listening))
        .await;
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", local))
        .await
        .expect("connect to kubectl port-forward");
    let payload = b"GET / HTTP/1.0\r\n\r\nping through the tunnel";
    conn.write_all(payload).await.expect("send");
    let mut got = vec![0u8; payload.len()];
    within("the echo through the tunnel", conn.read_exact(&mut got))
        .await
        .expect("echo");
    assert_eq!(got, payload);
    let _ = child.kill().await;
    drop(out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_over_websocket_and_spdy() {
    let s = shared().await;
    port_forward_round_trip(s, WEBSOCKET).await;
    port_forward_round_trip(s, SPDY).await;
    let log = node_log(s);
    assert!(log.contains("transport=\"websocket+spdy\""), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_metrics_and_pods_through_the_api_server() {
    let s = shared().await;
    let raw = |path: &str| {
        let (code, out, err) = kubectl(
            s,
            &[],
            &[
                "get",
                "--raw",
                &format!("/api/v1/nodes/{}/proxy/{path}", s.node),
            ],
            None,
        );
        assert_eq!(code, 0, "{path}: {err}");
        out
    };
    let summary: serde_json::Value =
        serde_json::from_str(&raw("stats/summary")).expect("summary JSON");
    assert_eq!(summary["node"]["nodeName"], s.node.as_str());
    let pods = summary["pods"].as_array().expect("pods");
    assert!(
        pods.iter()
            .any(|p| p["podRef"]["name"] == "web"
                && p["podRef"]["namespace"] == s.namespace.as_str())
    );
    assert!(
        pods[0]["containers"][0]["memory"]["workingSetBytes"]
            .as_u64()
            .is_some_and(|m| m > 0)
    );
    let metrics = raw("metrics/resource");
    assert!(
        metrics.contains("node_cpu_usage_seconds_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "container_memory_working_set_bytes{{container=\"c\",namespace=\"{}\",pod=\"web\"}}",
            s.namespace
        )),
        "{metrics}"
    );
    let list: serde_json::Value = serde_json::from_str(&raw("pods")).expect("pods JSON");
    assert_eq!(list["kind"], "PodList");
    assert!(
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|p| p["metadata"]["name"] == "web")
    );
}

/// `/pods` lists what the API server has bound to the node, as a kubelet does, including a
/// pod the provider never created (it waits for a missing mandatory Secret); `/runningpods/`
/// lists the provider's pods, so not that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_lists_the_api_view_and_runningpods_the_providers() {
    let s = shared().await;
    let ctx = TestContext::new().await.expect("control plane");
    let pods: Api<Pod> = Api::namespaced(ctx.client(), &s.namespace);
    let blocked: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "needs-secret"},
        "spec": {
            "nodeName": s.node,
            "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
            "containers": [{"name": "c", "image": "busybox", "env": [
                {"name": "X", "valueFrom": {"secretKeyRef": {"name": "absent-secret", "key": "k"}}}
            ]}]
        }
    }))
    .expect("pod");
    eventually_ok("creating pod needs-secret", || {
        let (pods, pod) = (pods.clone(), &blocked);
        async move { pods.create(&PostParams::default(), pod).await }
    })
    .await;
    // The node has processed it: refused to create it in the provider.
    eventually("needs-secret is marked ProviderFailed", || {
        let pods = pods.clone();
        async move {
            let reason = pods.get_opt("needs-secret").await.ok()??.status?.reason;
            (reason.as_deref() == Some("ProviderFailed")).then_some(())
        }
    })
    .await;
    let names = |path: &str| -> Vec<String> {
        let (code, out, err) = kubectl(
            s,
            &[],
            &[
                "get",
                "--raw",
                &format!("/api/v1/nodes/{}/proxy/{path}", s.node),
            ],
            None,
        );
        assert_eq!(code, 0, "{path}: {err}");
        let list: serde_json::Value = serde_json::from_str(&out).expect("PodList JSON");
        assert_eq!(list["kind"], "PodList", "{path}");
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|p| p["metadata"]["namespace"] == s.namespace.as_str())
            .map(|p| p["metadata"]["name"].as_str().expect("name").to_owned())
            .collect()
    };
    let listed = names("pods");
    assert!(
        listed.contains(&"needs-secret".to_owned()) && listed.contains(&"web".to_owned()),
        "/pods: {listed:?}"
    );
    let running = names("runningpods/");
    assert!(
        running.contains(&"web".to_owned()) && !running.contains(&"needs-secret".to_owned()),
        "/runningpods/: {running:?}"
    );
    pods.delete("needs-secret", &Default::default())
        .await
        .expect("delete needs-secret");
}

fn kubelet_client(identity: Option<(&str, &str)>) -> KubeletClient {
    let cluster = LocalCluster::from_env().expect("layout");
    let ca = std::fs::read_to_string(cluster.layout().pki().ca().cert).expect("CA");
    KubeletClient::new(&ca, identity).expect("kubelet client")
}

/// Direct requests on the kubelet port: 401 without credentials, 403 for a user the
/// API server's RBAC does not allow (decided by SubjectAccessReview with the kubelet's
/// subresource mapping), 200 once allowed; bearer tokens checked by TokenReview.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_port_authenticates_and_authorizes() {
    let s = shared().await;
    let port = s.kubelet_port;
    let ctx = TestContext::new().await.expect("control plane");

    let (code, body) = kubelet_client(None)
        .get(port, "/pods")
        .await
        .expect("anonymous");
    assert_eq!(code, 401, "{body}");

    let cluster = LocalCluster::from_env().expect("layout");
    let pki = cluster.layout().pki();
    let user = unique_name("alice");
    let (cert, key) = pki
        .issue_client_cert(&user, &["vk-e2e-developers"])
        .expect("client cert");
    let alice = kubelet_client(Some((&cert, &key)));
    let (code, body) = alice.get(port, "/pods").await.expect("alice");
    assert_eq!(code, 403, "{body}");
    assert!(body.contains(&user) && body.contains("proxy"), "{body}");

    // Allow alice nodes/stats only: stats become readable, /pods (nodes/proxy) stays 403.
    let role: ClusterRole = serde_json::from_value(serde_json::json!({
        "metadata": {"name": user},
        "rules": [{"apiGroups": [""], "resources": ["nodes/stats"], "verbs": ["get"]}]
    }))
    .expect("role");
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": user},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": user},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]
    }))
    .expect("binding");
    let roles: Api<ClusterRole> = Api::all(ctx.client());
    let bindings: Api<ClusterRoleBinding> = Api::all(ctx.client());
    roles
        .create(&PostParams::default(), &role)
        .await
        .expect("role");
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding");
    eventually("alice may read stats", || {
        let alice = alice.clone();
        async move {
            let (code, body) = alice.get(port, "/stats/summary").await.ok()?;
            (code == 200 && body.contains("nodeName")).then_some(())
        }
    })
    .await;
    let (code, _) = alice.get(port, "/pods").await.expect("alice");
    assert_eq!(code, 403);
    let _ = roles.delete(&user, &Default::default()).await;
    let _ = bindings.delete(&user, &Default::default()).await;

    // The cluster admin (group system:masters) may do everything.
    let admin = kubelet_client(Some((
        &std::fs::read_to_string(pki.admin().cert).expect("admin cert"),
        &std::fs::read_to_string(pki.admin().key).expect("admin key"),
    )));
    let (code, body) = admin.get(port, "/pods").await.expect("admin");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"PodList\""), "{body}");

    // A service account token: authenticated by TokenReview, then denied by RBAC.
    let sa_name = "default";
    let sas: Api<ServiceAccount> = Api::namespaced(ctx.client(), &s.namespace);
    let request: TokenRequest = serde_json::from_value(serde_json::json!({
        "spec": {"audiences": [], "expirationSeconds": 600}
    }))
    .expect("token request");
    let token = eventually_ok("a token for the default ServiceAccount", || {
        let (sas, request) = (sas.clone(), &request);
        async move {
            sas.create_subresource::<TokenRequest, TokenRequest>(
                "token",
                sa_name,
                &PostParams::default(),
                request,
            )
            .await
        }
    })
    .await
    .status
    .expect("a token in the status")
    .token;
    let anonymous = kubelet_client(None);
    let (code, body) = anonymous
        .get_with_token(port, "/pods", Some(&token))
        .await
        .expect("token");
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains(&format!("system:serviceaccount:{}:{sa_name}", s.namespace)),
        "{body}"
    );
    let (code, _) = anonymous
        .get_with_token(port, "/pods", Some("not-a-valid-token"))
        .await
        .expect("bad token");
    assert_eq!(code, 401);
}

async fn admin_kube_client(port: u16) -> kube::Client {
    let cluster = LocalCluster::from_env().expect("layout");
    let pki = cluster.layout().pki();
    let kubeconfig: kube::config::Kubeconfig = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubelet", "cluster": {
            "server": format!("https://127.0.0.1:{port}"),
            "certificate-authority": pki.ca().cert,
        }}],
        "users": [{"name": "admin", "user": {
            "client-certificate": pki.admin().cert,
            "client-key": pki.admin().key,
        }}],
        "contexts": [{"name": "kubelet", "context": {"cluster": "kubelet", "user": "admin"}}],
        "current-context": "kubelet",
    }))
    .expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    kube::Client::try_from(config).expect("client")
}

/// kube-rs' kubelet client straight on the kubelet port: it offers v5 and v4 over
/// WebSocket and gets v5; stdout, stdin and the exit status round-trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_client_exec_directly_on_the_kubelet_port() {
    use kube::api::AttachParams;
    use kube::core::kubelet_debug::KubeletDebugParams;
    let s = shared().await;
    let client = admin_kube_client(s.kubelet_port).await;
    let params = KubeletDebugParams {
        name: "web",
        namespace: &s.namespace,
        ..Default::default()
    };
    let mut attached = client
        .kubelet_node_exec(
            &params,
            "c",
            vec!["echo", "direct", "hello"],
            &AttachParams::default().stderr(false),
        )
        .await
        .expect("exec");
    let mut out = String::new();
    attached
        .stdout()
        .expect("stdout")
        .read_to_string(&mut out)
        .await
        .expect("read");
    let status = attached
        .take_status()
        .expect("status")
        .await
        .expect("a status");
    attached.join().await.expect("join");
    assert_eq!(out, "direct hello\n");
    assert_eq!(status.status.as_deref(), Some("Success"));

    let mut attached = client
        .kubelet_node_exec(
            &params,
            "c",
            vec!["sh", "-c", "cat"],
            &AttachParams::default().stdin(true).stderr(false),
        )
        .await
        .expect("exec cat");
    let mut stdin = attached.stdin().expect("stdin");
    let mut stdout = attached.stdout().expect("stdout");
    stdin.write_all(b"through kube-rs\n").await.expect("write");
    // EOF on stdin: kube-rs sends v5's close signal for channel 0.
    stdin.shutdown().await.expect("close stdin");
    let mut out = String::new();
    stdout.read_to_string(&mut out).await.expect("read");
    assert_eq!(out, "through kube-rs\n");
    attached.join().await.expect("join");

    let attached = client
        .kubelet_node_exec(
            &params,
            "c",
            vec!["sh", "-c", "exit 7"],
            &AttachParams::default().stderr(false),
        )
        .await
        .expect("exec exit");
    let mut attached = attached;
    let status = attached
        .take_status()
        .expect("status")
        .await
        .expect("a status");
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    let causes = status.details.and_then(|d| d.causes).unwrap_or_default();
    assert!(
        causes
            .iter()
            .any(|c| c.reason.as_deref() == Some("ExitCode") && c.message.as_deref() == Some("7")),
        "{causes:?}"
    );
}

/// WebSocket `v4.channel.k8s.io` (no close signal, JSON status on channel 3) and the
/// base64 protocol, with a client offering only that protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_v4_and_base64_directly_on_the_kubelet_port() {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let s = shared().await;
    let cluster = LocalCluster::from_env().expect("layout");
    let pki = cluster.layout().pki();
    let admin = kubelet_client(Some((
        &std::fs::read_to_string(pki.admin().cert).expect("admin cert"),
        &std::fs::read_to_string(pki.admin().key).expect("admin key"),
    )));
    let path = format!(
        "/exec/{}/web/c?command=sh&command=-c&command=exit+4&input=1&output=1&error=1",
        s.namespace
    );

    let (mut ws, chosen) = admin
        .websocket(s.kubelet_port, &path, &["v4.channel.k8s.io"])
        .await
        .expect("v4 upgrade");
    assert_eq!(chosen.as_deref(), Some("v4.channel.k8s.io"));
    ws.send(Message::Binary(vec![0u8].into()))
        .await
        .expect("stdin channel");
    let mut status = None;
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Binary(data) = msg
            && data.first() == Some(&3)
            && data.len() > 1
        {
            status =
                Some(serde_json::from_slice::<serde_json::Value>(&data[1..]).expect("JSON status"));
        }
    }
    let status = status.expect("a status on the error channel");
    assert_eq!(status["reason"], "NonZeroExitCode", "{status}");
    assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "4");

    let path = format!(
        "/exec/{}/web/c?command=echo&command=b64&output=1",
        s.namespace
    );
    let (mut ws, chosen) = admin
        .websocket(s.kubelet_port, &path, &["base64.channel.k8s.io"])
        .await
        .expect("base64 upgrade");
    assert_eq!(chosen.as_deref(), Some("base64.channel.k8s.io"));
    let mut stdout = Vec::new();
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Text(text) = msg
            && let Some(b64) = text.strip_prefix('1')
        {
            use base64::Engine as _;
            stdout.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .expect("base64"),
            );
        }
    }
    assert_eq!(String::from_utf8_lossy(&stdout), "b64\n");
}
