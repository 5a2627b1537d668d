//! The `vk-nomad` binary against the fake Nomad agent and the real control plane, used
//! through kubectl as a user would: a Deployment becomes jobs and scales down by
//! deregistering them, batch pods end Succeeded/Failed with their exit codes, logs
//! (tail, follow) and exec (exit code, stdin) reach the tasks, a restarted binary
//! adopts its jobs without registering them again, an unmappable pod fails with a
//! Warning event, and an unreachable Nomad turns the node NotReady until it is back.
//!
//! Needs `cargo xtask cluster up`. Timings are never asserted; waits poll on conditions.

mod fake;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

use fake::{FakeNomad, FakeOptions};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use vk_testkit::wait::eventually;
use vk_testkit::{LocalCluster, TestContext, unique_name};

const BIN: &str = env!("CARGO_BIN_EXE_vk-nomad");

/// Starts a fake agent in a runtime of its own (tests come and go with theirs).
fn background_fake(options: FakeOptions) -> Arc<FakeNomad> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let fake = FakeNomad::start(options).await;
            tx.send(fake).expect("hand over the fake");
            std::future::pending::<()>().await;
        });
    });
    rx.recv().expect("the fake started")
}

struct Shared {
    fake: Arc<FakeNomad>,
    node: String,
    kubeconfig: PathBuf,
}

static SHARED: OnceCell<Shared> = OnceCell::const_new();
static CHILDREN: Mutex<Vec<Child>> = Mutex::new(Vec::new());

fn log_path(node: &str, port: u16) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{node}-{port}.log"))
}

/// Starts `vk-nomad` for `node` against `fake`; `cleanup` deletes the node when the
/// test process ends.
fn start_node(kubeconfig: &Path, node: &str, fake: &FakeNomad, cleanup: bool) -> Child {
    start_node_with_token(kubeconfig, node, fake, cleanup, None)
}

fn start_node_with_token(
    kubeconfig: &Path,
    node: &str,
    fake: &FakeNomad,
    cleanup: bool,
    token: Option<&str>,
) -> Child {
    let cluster = LocalCluster::from_env().expect("layout");
    let pki = cluster.layout().pki();
    let port = vk_testkit::free_port().expect("port");
    let cleanup = if cleanup {
        format!(
            "'{kubectl}' --kubeconfig '{kubeconfig}' delete node/{node} --wait=false",
            kubectl = vk_testkit::cluster::kubectl().display(),
            kubeconfig = kubeconfig.display()
        )
    } else {
        String::new()
    };
    let mut command = vk_testkit::tied::command_then(BIN.as_ref(), &cleanup);
    if let Some(token) = token {
        command.env("NOMAD_TOKEN", token);
    } else {
        command.env_remove("NOMAD_TOKEN");
    }
    command
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args([
            "--nodename",
            node,
            "--listen-port",
            &port.to_string(),
            "--metrics-addr",
            "off",
        ])
        .arg("--tls-cert-file")
        .arg(pki.kubelet_serving().cert)
        .arg("--tls-private-key-file")
        .arg(pki.kubelet_serving().key)
        .arg("--client-ca-file")
        .arg(pki.ca().cert)
        .env("NOMAD_ADDR", fake.address())
        .env_remove("NOMAD_NAMESPACE")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log_path(node, port)).expect("log"))
        .spawn()
        .expect("start vk-nomad")
}

async fn shared() -> &'static Shared {
    SHARED
        .get_or_init(|| async {
            let ctx = TestContext::new().await.expect("control plane");
            let fake = background_fake(FakeOptions::default());
            let node = unique_name("vk-nomad");
            let child = start_node(ctx.kubeconfig(), &node, &fake, true);
            CHILDREN.lock().expect("lock").push(child);
            let s = Shared {
                fake,
                node,
                kubeconfig: ctx.kubeconfig().to_owned(),
            };
            node_condition(&s.kubeconfig, &s.node, "True").await;
            s
        })
        .await
}

fn kubectl(
    kubeconfig: &Path,
    namespace: Option<&str>,
    args: &[&str],
    stdin: Option<&str>,
) -> (i32, String, String) {
    let out = vk_testkit::cluster::run_kubectl(
        kubeconfig,
        namespace,
        &[],
        args,
        stdin.map(str::as_bytes),
    )
    .expect("kubectl runs");
    (out.code, out.stdout, out.stderr)
}

/// A namespace of the test's own, deleted when the test ends (passed or failed).
struct Namespace {
    name: String,
    kubeconfig: PathBuf,
}

impl std::ops::Deref for Namespace {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Display for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = kubectl(
            &self.kubeconfig,
            None,
            &["delete", "namespace", &self.name, "--wait=false"],
            None,
        );
    }
}

fn namespace(s: &Shared, prefix: &str) -> Namespace {
    let name = unique_name(prefix);
    let (code, _, err) = kubectl(&s.kubeconfig, None, &["create", "namespace", &name], None);
    assert_eq!(code, 0, "{err}");
    Namespace {
        name,
        kubeconfig: s.kubeconfig.clone(),
    }
}

async fn node_condition(kubeconfig: &Path, node: &str, ready: &str) -> Node {
    eventually(&format!("node {node} Ready={ready}"), || {
        let (code, out, _) = kubectl(kubeconfig, None, &["get", "node", node, "-o", "json"], None);
        let node = (code == 0)
            .then(|| serde_json::from_str::<Node>(&out).ok())
            .flatten();
        let found = node.filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == ready))
        });
        async move { found }
    })
    .await
}

fn on_node(s: &Shared, spec: Value) -> Value {
    let mut spec = spec;
    spec["nodeName"] = json!(s.node);
    spec["tolerations"] = json!([{"key": "virtual-kubelet.io/provider", "operator": "Exists"}]);
    spec
}

fn apply(s: &Shared, ns: &str, object: &Value) {
    let (code, _, err) = kubectl(
        &s.kubeconfig,
        Some(ns),
        &["apply", "-f", "-"],
        Some(&object.to_string()),
    );
    assert_eq!(code, 0, "{err}");
}

fn apply_pod(s: &Shared, ns: &str, name: &str, spec: Value) {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": on_node(s, spec)});
    apply(s, ns, &pod);
}

async fn pod_where<T>(
    s: &Shared,
    ns: &str,
    name: &str,
    what: &str,
    f: impl Fn(&Pod) -> Option<T>,
) -> T {
    eventually(&format!("{ns}/{name}: {what}"), || {
        let (code, out, _) = kubectl(
            &s.kubeconfig,
            Some(ns),
            &["get", "pod", name, "-o", "json"],
            None,
        );
        let pod = (code == 0)
            .then(|| serde_json::from_str::<Pod>(&out).ok())
            .flatten();
        let result = pod.as_ref().and_then(&f);
        async move { result }
    })
    .await
}

fn phase(p: &Pod) -> Option<&str> {
    p.status.as_ref()?.phase.as_deref()
}

fn jobs_of(s: &Shared, ns: &str) -> Vec<String> {
    let prefix = format!("{ns}_");
    s.fake
        .job_ids("default")
        .into_iter()
        .filter(|id| id.starts_with(&prefix) && s.fake.job_stopped("default", id) == Some(false))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_runs_as_jobs_and_scaling_down_deregisters_them() {
    let s = shared().await;
    let ns = namespace(s, "vkn-deploy");
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": s.node},
                    "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{"name": "web", "image": "nginx:1.27", "command": ["sleep", "3600"]}]
                }
            }
        }
    });
    apply(s, &ns, &deployment);
    // The node describes the Nomad cluster: its client nodes' capacity, its namespace.
    let (code, out, err) = kubectl(
        &s.kubeconfig,
        None,
        &["get", "node", &s.node, "-o", "json"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let node: Value = serde_json::from_str(&out).expect("node JSON");
    assert_eq!(
        node["status"]["capacity"]["cpu"], "32",
        "32000 MHz at 1000 MHz per CPU"
    );
    assert_eq!(node["status"]["capacity"]["memory"], "15803Mi");
    assert_eq!(
        node["metadata"]["labels"]["nomad.virtual-kubelet.io/namespace"],
        "default"
    );
    let running = eventually("3 Running pods with podIPs", || {
        let (code, out, _) = kubectl(
            &s.kubeconfig,
            Some(&ns),
            &["get", "pods", "-l", "app=web", "-o", "json"],
            None,
        );
        let pods: Vec<Pod> = (code == 0)
            .then(|| serde_json::from_str::<Value>(&out).ok())
            .flatten()
            .and_then(|v| serde_json::from_value(v["items"].clone()).ok())
            .unwrap_or_default();
        let ok = pods
            .iter()
            .filter(|p| {
                phase(p) == Some("Running")
                    && p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some()
            })
            .count();
        async move { (ok == 3).then_some(pods) }
    })
    .await;
    let mut jobs = jobs_of(s, &ns);
    jobs.sort();
    let mut expected: Vec<String> = running
        .iter()
        .map(|p| format!("{ns}_{}", p.metadata.name.as_deref().unwrap_or_default()))
        .collect();
    expected.sort();
    assert_eq!(jobs, expected, "one Nomad job per pod");
    let job = s.fake.job("default", &jobs[0]).expect("job");
    assert_eq!(job["Type"], "service");
    assert_eq!(
        job["TaskGroups"][0]["Tasks"][0]["Config"]["image"],
        "nginx:1.27"
    );
    assert_eq!(
        job["TaskGroups"][0]["Tasks"][0]["KillTimeout"],
        5_000_000_000u64
    );

    let (code, _, err) = kubectl(
        &s.kubeconfig,
        Some(&ns),
        &["scale", "deployment/web", "--replicas=1"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    eventually("2 jobs deregistered and purged", || {
        let left = jobs_of(s, &ns).len();
        let purged = s
            .fake
            .purged()
            .iter()
            .filter(|(_, id)| id.starts_with(&format!("{ns}_")))
            .count();
        async move { (left == 1 && purged == 2).then_some(()) }
    })
    .await;
    for job in &jobs {
        assert_eq!(s.fake.registrations(job), 1, "{job} registered once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_pods_end_succeeded_or_failed_with_their_exit_code() {
    let s = shared().await;
    let ns = namespace(s, "vkn-batch");
    for (name, script) in [("ok", "exit 0"), ("bad", "exit 3")] {
        apply_pod(
            s,
            &ns,
            name,
            json!({"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}]}),
        );
    }
    pod_where(s, &ns, "ok", "Succeeded", |p| {
        (phase(p) == Some("Succeeded")).then_some(())
    })
    .await;
    let code = pod_where(s, &ns, "bad", "Failed", |p| {
        if phase(p) != Some("Failed") {
            return None;
        }
        p.status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .first()?
            .state
            .as_ref()?
            .terminated
            .as_ref()
            .map(|t| t.exit_code)
    })
    .await;
    assert_eq!(code, 3);
    assert_eq!(
        s.fake.job("default", &format!("{ns}_bad")).expect("job")["Type"],
        "batch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_and_exec_reach_the_task() {
    let s = shared().await;
    let ns = namespace(s, "vkn-io");
    apply_pod(
        s,
        &ns,
        "io",
        json!({"containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "echo one; echo two; exec sleep 3600"]}]}),
    );
    pod_where(s, &ns, "io", "Running", |p| {
        (phase(p) == Some("Running")).then_some(())
    })
    .await;
    let out = eventually("both lines logged", || {
        let (code, out, _) = kubectl(&s.kubeconfig, Some(&ns), &["logs", "io"], None);
        async move { (code == 0 && out == "one\ntwo\n").then_some(out) }
    })
    .await;
    assert_eq!(out, "one\ntwo\n");
    let (code, out, err) = kubectl(&s.kubeconfig, Some(&ns), &["logs", "io", "--tail=1"], None);
    assert_eq!((code, out.as_str()), (0, "two\n"), "{err}");
    let (code, out, err) = kubectl(
        &s.kubeconfig,
        Some(&ns),
        &["logs", "io", "--limit-bytes=5"],
        None,
    );
    assert_eq!((code, out.as_str()), (0, "one\nt"), "{err}");

    // Follow: a line written after kubectl started arrives, stamped with the time it
    // arrived (lines already in Nomad's files have no time: Nomad records none).
    let mut follow = std::process::Command::new(vk_testkit::cluster::kubectl())
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args(["-n", &ns, "logs", "io", "-f", "--tail=0", "--timestamps"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl logs -f");
    let mut stdout = follow.stdout.take().expect("stdout");
    let job = format!("{ns}_io");
    let alloc = s.fake.allocations("default", &job)[0]["ID"]
        .as_str()
        .expect("alloc")
        .to_owned();
    let fake = s.fake.clone();
    let reader = std::thread::spawn(move || {
        use std::io::Read as _;
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while !got.ends_with(b"three\n") {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got
    });
    // Written until kubectl's stream is surely open: each write is a new line.
    eventually("a followed line arrives", || {
        fake.state.append_log(&alloc, "main", false, b"three\n");
        let done = reader.is_finished();
        async move { done.then_some(()) }
    })
    .await;
    let lines = reader.join().expect("reader");
    let text = String::from_utf8_lossy(&lines).into_owned();
    let first = text.lines().next().unwrap_or_default();
    let (stamp, line) = first.split_once(' ').unwrap_or_default();
    assert_eq!(line, "three", "{text}");
    assert!(
        stamp.parse::<k8s_openapi::jiff::Timestamp>().is_ok() && stamp.ends_with('Z'),
        "an RFC 3339 timestamp: {text}"
    );
    let _ = follow.kill();
    let _ = follow.wait();

    let (code, out, err) = kubectl(
        &s.kubeconfig,
        Some(&ns),
        &[
            "exec",
            "io",
            "--",
            "sh",
            "-c",
            "echo hi; echo err >&2; exit 5",
        ],
        None,
    );
    assert_eq!(code, 5, "exit code passes through: {err}");
    assert_eq!(out, "hi\n");
    assert!(err.contains("err"), "{err}");
    let (code, out, err) = kubectl(
        &s.kubeconfig,
        Some(&ns),
        &["exec", "-i", "io", "--", "cat"],
        Some("from stdin\n"),
    );
    assert_eq!((code, out.as_str()), (0, "from stdin\n"), "{err}");

    // With a terminal: kubectl runs under `script`, which gives it a pseudo-terminal of
    // 100x30; the session asks Nomad for a TTY and passes the size on. kubectl sends the
    // size on its own stream, after the session started: the command waits for the
    // test's go (a file) so that the size can arrive while the session is open — a
    // command that exits at once races it, and the fake, like Nomad, ends the session
    // with the command.
    let go = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique_name("vkn-tty-go"));
    let kubectl_line = format!(
        "stty cols 100 rows 30; '{kubectl}' --kubeconfig '{kubeconfig}' -n {ns} exec -ti io -- sh -c 'echo in-tty; while [ ! -e {go} ]; do sleep 0.1; done; exit 2'",
        kubectl = vk_testkit::cluster::kubectl().display(),
        kubeconfig = s.kubeconfig.display(),
        go = go.display(),
    );
    let before = s.fake.exec_sessions.lock().expect("lock").len();
    let script = std::process::Command::new("script")
        .args(["-qec", &kubectl_line, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script runs kubectl");
    let frames = eventually("the terminal size reaches Nomad", || {
        let sessions = s.fake.exec_sessions.lock().expect("lock").clone();
        let frames = sessions
            .into_iter()
            .skip(before)
            .find(|(tty, _)| *tty)
            .map(|(_, frames)| frames)
            .filter(|frames| {
                frames
                    .iter()
                    .any(|f| f["tty_size"] == json!({"height": 30, "width": 100}))
            });
        async move { frames }
    })
    .await;
    std::fs::write(&go, b"").expect("the go file");
    let out = script.wait_with_output().expect("script ends");
    let _ = std::fs::remove_file(&go);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("in-tty"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "the exit code passes through a terminal session: {text} (frames: {frames:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmappable_pod_fails_with_a_warning_event() {
    let s = shared().await;
    let ns = namespace(s, "vkn-bad");
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "nocmd", "annotations": {"nomad.virtual-kubelet.io/driver": "exec"}},
        "spec": on_node(s, json!({"containers": [{"name": "main", "image": "busybox"}]}))
    });
    apply(s, &ns, &pod);
    let message = pod_where(s, &ns, "nocmd", "Failed with ProviderFailed", |p| {
        let st = p.status.as_ref()?;
        (st.phase.as_deref() == Some("Failed") && st.reason.as_deref() == Some("ProviderFailed"))
            .then(|| st.message.clone())
    })
    .await;
    assert!(message.unwrap_or_default().contains("has no command"));
    let event = eventually("a Warning ProviderFailed event", || {
        let (code, out, _) = kubectl(
            &s.kubeconfig,
            Some(&ns),
            &[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=nocmd,reason=ProviderFailed",
                "-o",
                "json",
            ],
            None,
        );
        let found = (code == 0)
            .then(|| serde_json::from_str::<Value>(&out).ok())
            .flatten()
            .and_then(|v| v["items"].as_array().and_then(|i| i.first().cloned()));
        async move { found }
    })
    .await;
    assert_eq!(event["type"], "Warning");
    assert!(
        event["message"]
            .as_str()
            .unwrap_or_default()
            .contains("has no command"),
        "{event}"
    );
    assert!(jobs_of(s, &ns).is_empty(), "nothing registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_binary_adopts_its_jobs_and_follows_nomad_health() {
    let ctx = TestContext::new().await.expect("control plane");
    let fake = background_fake(FakeOptions::default());
    let node = unique_name("vk-nomad-rs");
    let s = Shared {
        fake: fake.clone(),
        node: node.clone(),
        kubeconfig: ctx.kubeconfig().to_owned(),
    };
    let mut first = start_node(&s.kubeconfig, &node, &fake, false);
    node_condition(&s.kubeconfig, &node, "True").await;
    let ns = namespace(&s, "vkn-restart");
    apply_pod(
        &s,
        &ns,
        "keep",
        json!({"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]}),
    );
    pod_where(&s, &ns, "keep", "Running", |p| {
        (phase(p) == Some("Running")).then_some(())
    })
    .await;
    // Gone before the second starts: two binaries would both act on the next pods.
    vk_testkit::tied::kill(&mut first).expect("kill the first binary");

    let second = start_node(&s.kubeconfig, &node, &fake, true);
    CHILDREN.lock().expect("lock").push(second);
    node_condition(&s.kubeconfig, &node, "True").await;
    // The restarted binary follows the job again: a pod deleted now goes away in Nomad.
    apply_pod(
        &s,
        &ns,
        "after",
        json!({"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]}),
    );
    pod_where(&s, &ns, "after", "Running", |p| {
        (phase(p) == Some("Running")).then_some(())
    })
    .await;
    assert_eq!(
        fake.registrations(&format!("{ns}_keep")),
        1,
        "adopted, not registered again"
    );

    // Nomad goes away: the node turns NotReady, naming the cause; then Ready again.
    fake.go_away().await;
    let not_ready = node_condition(&s.kubeconfig, &node, "False").await;
    let condition = not_ready
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready condition");
    let said = format!("{:?} {:?}", condition.reason, condition.message);
    assert!(
        said.contains("/v1/status/leader") || said.contains("connecting"),
        "{said}"
    );
    fake.come_back().await;
    node_condition(&s.kubeconfig, &node, "True").await;

    let (code, _, err) = kubectl(
        &s.kubeconfig,
        Some(&ns),
        &["delete", "pod", "keep", "--wait=true", "--timeout=60s"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    eventually("the adopted job purged", || {
        let purged = fake
            .purged()
            .contains(&("default".to_owned(), format!("{ns}_keep")));
        async move { purged.then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_named_in_the_pod_events() {
    let ctx = TestContext::new().await.expect("control plane");
    let fake = background_fake(FakeOptions {
        token: Some("the-right-one".into()),
        ..Default::default()
    });
    let node = unique_name("vk-nomad-acl");
    let child = start_node_with_token(ctx.kubeconfig(), &node, &fake, true, Some("a-wrong-one"));
    CHILDREN.lock().expect("lock").push(child);
    let s = Shared {
        fake: fake.clone(),
        node: node.clone(),
        kubeconfig: ctx.kubeconfig().to_owned(),
    };
    // /v1/status/leader needs no token: the node is Ready.
    node_condition(&s.kubeconfig, &node, "True").await;
    let ns = namespace(&s, "vkn-acl");
    apply_pod(
        &s,
        &ns,
        "denied",
        json!({"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]}),
    );
    let event = eventually("a ProviderCreateFailed event naming the token", || {
        let (code, out, _) = kubectl(
            &s.kubeconfig,
            Some(&ns),
            &[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=denied,reason=ProviderCreateFailed",
                "-o",
                "json",
            ],
            None,
        );
        let found = (code == 0)
            .then(|| serde_json::from_str::<Value>(&out).ok())
            .flatten()
            .and_then(|v| v["items"].as_array().and_then(|i| i.first().cloned()));
        async move { found }
    })
    .await;
    let message = event["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("403") && message.contains("NOMAD_TOKEN"),
        "{message}"
    );
    assert!(
        !message.contains("a-wrong-one"),
        "the token itself is never shown: {message}"
    );
    assert_eq!(fake.total_registrations(), 0);
}
