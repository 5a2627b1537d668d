//! vk-process against the real control plane, used through kubectl as a user would:
//! crash loops with back-off and `logs --previous`, `restartPolicy: Never`, probes,
//! configMap updates on disk, exec exit codes over WebSocket and SPDY, deletion leaving
//! no process, adoption across a restart of the binary, and stats.
//!
//! Needs `cargo xtask cluster up`. Timings are never asserted; waits poll generously.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::OnceCell;
use vk_testkit::prometheus::Metrics;
use vk_testkit::wait::eventually;
use vk_testkit::{LocalCluster, TestContext, unique_name};

const BIN: &str = env!("CARGO_BIN_EXE_vk-process");

struct Node1 {
    node: String,
    namespace: String,
    kubeconfig: PathBuf,
}

static SHARED: OnceCell<Node1> = OnceCell::const_new();
static CHILDREN: Mutex<Vec<Child>> = Mutex::new(Vec::new());

fn free_port() -> u16 {
    vk_testkit::free_port().expect("a free port")
}

/// Where the node agent `node` listening on `port` logs.
fn log_path(node: &str, port: u16) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{node}-{port}.log"))
}

/// Starts a vk-process node (with its admin listener on `metrics_port`, if given);
/// returns the child (tied to this test process).
fn start_node(
    ctx_kubeconfig: &Path,
    node: &str,
    namespace: &str,
    port: u16,
    metrics_port: Option<u16>,
    state: &Path,
    cleanup_on_exit: bool,
) -> Child {
    let cluster = LocalCluster::from_env().expect("layout");
    let pki = cluster.layout().pki();
    let config = state.with_extension("toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\nvolume_refresh_seconds = 2\n",
            state.display().to_string()
        ),
    )
    .expect("config");
    let log = log_path(node, port);
    let metrics_addr = metrics_port.map_or_else(|| "off".to_owned(), |p| format!("127.0.0.1:{p}"));
    // When the test process ends: stop the container process groups a failed test may
    // have left (their PIDs are in the state directory; dash's `kill` takes no `--`),
    // then delete the objects.
    let cleanup = format!(
        "for f in $(find '{state}' -name '*.pid.json' 2>/dev/null); do \
           pid=$(sed -n 's/.*\"pid\":\\([0-9]*\\).*/\\1/p' \"$f\"); \
           [ -n \"$pid\" ] && kill -KILL -\"$pid\" 2>/dev/null; \
         done; \
         '{kubectl}' --kubeconfig '{kubeconfig}' delete namespace/{namespace} node/{node} --wait=false",
        state = state.display(),
        kubectl = vk_testkit::cluster::kubectl().display(),
        kubeconfig = ctx_kubeconfig.display()
    );
    // An instance that a test kills on purpose (to restart the binary) must not take
    // the pods and the node with it.
    let cleanup = if cleanup_on_exit {
        cleanup
    } else {
        String::new()
    };
    vk_testkit::tied::command_then(BIN.as_ref(), &cleanup)
        .arg("--kubeconfig")
        .arg(ctx_kubeconfig)
        .args([
            "--nodename",
            node,
            "--listen-port",
            &port.to_string(),
            "--metrics-addr",
            &metrics_addr,
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
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start vk-process")
}

async fn node_ready(client: &kube::Client, node: &str) {
    vk_testkit::conformance::harness::wait_node_ready(client, node).await;
}

async fn shared() -> &'static Node1 {
    SHARED
        .get_or_init(|| async {
            let ctx = TestContext::new().await.expect("control plane");
            let node = unique_name("vk-proc");
            let namespace = unique_name("vk-proc");
            let state = Path::new(env!("CARGO_TARGET_TMPDIR")).join(&node);
            let child = start_node(
                ctx.kubeconfig(),
                &node,
                &namespace,
                free_port(),
                None,
                &state,
                true,
            );
            CHILDREN.lock().expect("lock").push(child);
            node_ready(&ctx.client(), &node).await;
            let s = Node1 {
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
    s: &Node1,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: Option<&str>,
) -> (i32, String, String) {
    let out = vk_testkit::cluster::run_kubectl(
        &s.kubeconfig,
        Some(&s.namespace),
        env,
        args,
        stdin.map(str::as_bytes),
    )
    .expect("kubectl runs");
    (out.code, out.stdout, out.stderr)
}

/// Applies a pod on the shared node from its `spec` JSON.
fn apply_pod(s: &Node1, name: &str, spec: serde_json::Value) {
    let mut spec = spec;
    spec["nodeName"] = s.node.clone().into();
    spec["tolerations"] =
        serde_json::json!([{"key": "virtual-kubelet.io/provider", "operator": "Exists"}]);
    let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec});
    let (code, _, err) = kubectl(s, &[], &["apply", "-f", "-"], Some(&pod.to_string()));
    assert_eq!(code, 0, "{err}");
}

async fn pod_where<T>(s: &Node1, name: &str, what: &str, f: impl Fn(&Pod) -> Option<T>) -> T {
    // Through kubectl: a kube client would be tied to the runtime of the test that
    // created the shared node.
    eventually(&format!("{name}: {what}"), || {
        let (code, out, _) = kubectl(s, &[], &["get", "pod", name, "-o", "json"], None);
        let pod = (code == 0)
            .then(|| serde_json::from_str::<Pod>(&out).ok())
            .flatten();
        let result = pod.as_ref().and_then(&f);
        async move { result }
    })
    .await
}

fn container_pid(pod: &Pod, container: &str) -> Option<i32> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == container)?
        .container_id
        .as_deref()?
        .strip_prefix("process://")?
        .parse()
        .ok()
}

fn group_alive(pgid: i32) -> bool {
    vk_process::procfs::group_members(pgid)
        .into_iter()
        .next()
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_backs_off_and_keeps_the_previous_log() {
    let s = shared().await;
    apply_pod(
        s,
        "crash",
        serde_json::json!({
            "restartPolicy": "OnFailure",
            "containers": [{"name": "c", "image": "x", "command": ["sh", "-c", "echo start; sleep 1; exit 2"]}]
        }),
    );
    let last = pod_where(s, "crash", "restarted with lastState exit code 2", |p| {
        let c = p
            .status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .first()?
            .clone();
        let t = c.last_state?.terminated?;
        (c.restart_count >= 1 && t.exit_code == 2).then_some(t)
    })
    .await;
    assert_eq!(last.reason.as_deref(), Some("Error"));
    let (code, out, err) = kubectl(s, &[], &["logs", "crash", "--previous"], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "start\n");
    let (_, out, _) = kubectl(
        s,
        &[],
        &[
            "get",
            "pod",
            "crash",
            "-o",
            "jsonpath={.status.containerStatuses[0].state.waiting.reason}{.status.containerStatuses[0].state.running}",
        ],
        None,
    );
    assert!(!out.is_empty(), "waiting or running: {out}");
    // The first restart is immediate; after the second exit the container waits in
    // CrashLoopBackOff (10 s) as under a kubelet.
    let waiting = pod_where(s, "crash", "waiting in CrashLoopBackOff", |p| {
        let c = p
            .status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .first()?
            .clone();
        let w = c.state?.waiting?;
        (c.restart_count >= 1
            && w.reason.as_deref() == Some("CrashLoopBackOff")
            && w.message
                .as_deref()
                .is_some_and(|m| m.contains("back-off 10s")))
        .then_some(w)
    })
    .await;
    assert!(waiting.message.is_some());
    kubectl(s, &[], &["delete", "pod", "crash", "--wait=false"], None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_policy_never_ends_failed() {
    let s = shared().await;
    apply_pod(
        s,
        "never",
        serde_json::json!({
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "x", "command": ["sh", "-c", "echo start; exit 2"]}]
        }),
    );
    let code = pod_where(s, "never", "Failed", |p| {
        let st = p.status.as_ref()?;
        (st.phase.as_deref() == Some("Failed")).then(|| {
            st.container_statuses
                .as_ref()?
                .first()?
                .state
                .as_ref()?
                .terminated
                .as_ref()
                .map(|t| t.exit_code)
        })?
    })
    .await;
    assert_eq!(code, 2);
    let (_, out, _) = kubectl(s, &[], &["logs", "never"], None);
    assert_eq!(out, "start\n");
    kubectl(s, &[], &["delete", "pod", "never", "--wait=false"], None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_and_liveness_probes() {
    let s = shared().await;
    apply_pod(
        s,
        "probed",
        serde_json::json!({
            "containers": [
                {"name": "live", "image": "x", "command": ["sleep", "3600"],
                 "livenessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 2}},
                {"name": "unready", "image": "x", "command": ["sleep", "3600"],
                 "readinessProbe": {"tcpSocket": {"port": 1}, "periodSeconds": 1}}
            ]
        }),
    );
    pod_where(s, "probed", "liveness restarts the container", |p| {
        let cs = p.status.as_ref()?.container_statuses.as_ref()?;
        cs.iter()
            .find(|c| c.name == "live")
            .filter(|c| c.restart_count >= 1)
            .map(|_| ())
    })
    .await;
    let p = pod_where(s, "probed", "Running", |p| {
        (p.status.as_ref()?.phase.as_deref() == Some("Running")).then(|| p.clone())
    })
    .await;
    let st = p.status.expect("status");
    let ready = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .expect("Ready condition");
    assert_eq!(ready.status, "False");
    let unready = st
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == "unready")
        .expect("unready");
    assert!(!unready.ready);
    kubectl(s, &[], &["delete", "pod", "probed", "--wait=false"], None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_map_volumes_follow_edits() {
    let s = shared().await;
    let (code, _, err) = kubectl(
        s,
        &[],
        &["create", "configmap", "cfg", "--from-literal=app.conf=one"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    apply_pod(
        s,
        "mounted",
        serde_json::json!({
            "containers": [{"name": "c", "image": "x", "command": ["sleep", "3600"],
                "volumeMounts": [{"name": "cfg", "mountPath": "/etc/app"}]}],
            "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}]
        }),
    );
    pod_where(s, "mounted", "Running", |p| {
        (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
    let read = || {
        kubectl(
            s,
            &[],
            &[
                "exec",
                "mounted",
                "--",
                "sh",
                "-c",
                "cat \"$VK_MOUNT_ETC_APP/app.conf\"",
            ],
            None,
        )
    };
    assert_eq!(read().1, "one");
    let patch = r#"{"data":{"app.conf":"two"}}"#;
    let (code, _, err) = kubectl(s, &[], &["patch", "configmap", "cfg", "-p", patch], None);
    assert_eq!(code, 0, "{err}");
    eventually("the file changes on disk", || async {
        (read().1 == "two").then_some(())
    })
    .await;
    kubectl(s, &[], &["delete", "pod", "mounted", "--wait=false"], None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_exit_codes_tty_and_delete_leaves_no_process() {
    let s = shared().await;
    apply_pod(
        s,
        "shell",
        serde_json::json!({
            "terminationGracePeriodSeconds": 5,
            "containers": [{"name": "c", "image": "x", "command": ["sh", "-c", "trap '' TERM; sleep 3600 & wait"]}]
        }),
    );
    let pid = pod_where(s, "shell", "Running with a PID", |p| {
        (p.status.as_ref()?.phase.as_deref() == Some("Running")).then(|| container_pid(p, "c"))?
    })
    .await;
    assert!(group_alive(pid));
    for env in [
        &[][..],
        &[("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")][..],
    ] {
        let (code, _, err) = kubectl(s, env, &["exec", "shell", "--", "sh", "-c", "exit 7"], None);
        assert_eq!(code, 7, "{env:?}: {err}");
        let (code, out, _) = kubectl(
            s,
            env,
            &["exec", "-i", "shell", "--", "cat"],
            Some("piped\n"),
        );
        assert_eq!((code, out.as_str()), (0, "piped\n"), "{env:?}");
    }
    // A TTY: `tty` names a terminal device; `script` gives kubectl a terminal.
    let (code, out, err) = kubectl(
        s,
        &[],
        &["exec", "-i", "-t", "shell", "--", "sh", "-c", "tty; exit 3"],
        Some(""),
    );
    if err.contains("Unable to use a TTY") {
        // kubectl only allocates a TTY when its own stdin is one; then the remote
        // command still runs (without a terminal).
        assert_eq!(code, 3, "{err}");
    } else {
        assert!(out.contains("/dev/pts/"), "{out} {err}");
    }
    // The container ignores SIGTERM: deletion must SIGKILL the whole group.
    let (code, _, err) = kubectl(
        s,
        &[],
        &["delete", "pod", "shell", "--wait=true", "--timeout=120s"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    eventually("no process is left in the container's group", || async {
        (!group_alive(pid)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_show_a_busy_container() {
    let s = shared().await;
    apply_pod(
        s,
        "busy",
        serde_json::json!({
            "containers": [{"name": "spin", "image": "x", "command": ["sh", "-c", "while :; do :; done"]}]
        }),
    );
    pod_where(s, "busy", "Running", |p| {
        (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
    let path = format!("/api/v1/nodes/{}/proxy/stats/summary", s.node);
    eventually("non-zero CPU and memory for the busy container", || {
        let path = path.clone();
        async move {
            let (code, out, _) = kubectl(s, &[], &["get", "--raw", &path], None);
            if code != 0 {
                return None;
            }
            let v: serde_json::Value = serde_json::from_str(&out).ok()?;
            let pod = v["pods"]
                .as_array()?
                .iter()
                .find(|p| p["podRef"]["name"] == "busy")?
                .clone();
            let c = pod["containers"].as_array()?.first()?.clone();
            let cpu = c["cpu"]["usageCoreNanoSeconds"].as_u64()?;
            let mem = c["memory"]["workingSetBytes"].as_u64()?;
            (cpu > 0 && mem > 0).then_some(())
        }
    })
    .await;
    kubectl(s, &[], &["delete", "pod", "busy", "--wait=false"], None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_binary_adopts_running_processes() {
    let ctx = TestContext::new().await.expect("control plane");
    let node = unique_name("vk-proc-restart");
    let namespace = unique_name("vk-proc-restart");
    let state = Path::new(env!("CARGO_TARGET_TMPDIR")).join(&node);
    let port = free_port();
    let mut first = start_node(
        ctx.kubeconfig(),
        &node,
        &namespace,
        port,
        None,
        &state,
        false,
    );
    node_ready(&ctx.client(), &node).await;
    let s = Node1 {
        node: node.clone(),
        namespace: namespace.clone(),
        kubeconfig: ctx.kubeconfig().to_owned(),
    };
    kubectl(&s, &[], &["create", "namespace", &namespace], None);
    apply_pod(
        &s,
        "steady",
        serde_json::json!({
            "containers": [{"name": "c", "image": "x", "command": ["sleep", "3600"]}]
        }),
    );
    let pid = pod_where(&s, "steady", "Running with a PID", |p| {
        (p.status.as_ref()?.phase.as_deref() == Some("Running")).then(|| container_pid(p, "c"))?
    })
    .await;
    // Kill the node process with SIGKILL, as a crash would: first its watchdog (so
    // that the watchdog's clean-up does not run), then the node itself.
    let watchdog = i32::try_from(first.id()).expect("pid");
    // The watchdog's children are the node process and its guard (a shell).
    let agent = vk_process::procfs::all()
        .into_iter()
        .find(|p| {
            p.ppid == watchdog
                && std::fs::read_link(format!("/proc/{}/exe", p.pid))
                    .is_ok_and(|e| e.ends_with("vk-process"))
        })
        .expect("the node process")
        .pid;
    let status = Command::new("kill")
        .args(["-KILL", &agent.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let _ = first.kill();
    let _ = first.wait();
    eventually("the old node process is gone", || async {
        vk_process::procfs::stat(agent)
            .is_none_or(|p| p.state == 'Z')
            .then_some(())
    })
    .await;
    assert!(group_alive(pid), "the container survives the provider");
    let metrics_port = free_port();
    let second = start_node(
        ctx.kubeconfig(),
        &node,
        &namespace,
        port,
        Some(metrics_port),
        &state,
        true,
    );
    CHILDREN.lock().expect("lock").push(second);
    // The new binary could start the container again in two places: its supervisor,
    // when it takes the pod over from the state directory, and the core's first sync
    // of the pod (a create, had the core not adopted it). Rather than watching the pod
    // for a while and concluding from silence, wait for the events showing that both
    // have happened, then check what they did: the supervisor logs the PID it adopted,
    // and the core's metrics count the finished syncs (of `steady`, the node's only
    // pod) and the provider creates.
    let log = log_path(&node, port);
    let adopted = format!("pid={pid}");
    eventually(
        &format!("the new node process adopts the running container (pid {pid})"),
        || async {
            let text = std::fs::read_to_string(&log).ok()?;
            text.lines()
                .any(|l| {
                    l.contains("adopted running container")
                        && l.split_whitespace().any(|w| w == adopted)
                })
                .then_some(())
        },
    )
    .await;
    let metrics = eventually(
        "the new node's pod controller finishes a sync of steady",
        || async {
            let (code, body) = vk_testkit::http::get(metrics_port, "/metrics").await.ok()?;
            let m = Metrics::parse(&body).expect("the metrics text parses");
            (code == 200 && m.sum("vk_pod_sync_duration_seconds_count", &[]) >= 1.0).then_some(m)
        },
    )
    .await;
    assert_eq!(
        metrics.one("vk_pod_adopted_total", &[("node", &node)]),
        1.0,
        "the core adopts steady"
    );
    assert_eq!(
        metrics.one(
            "vk_pod_provider_calls_total",
            &[("node", &node), ("operation", "create")]
        ),
        0.0,
        "steady was created again after the restart"
    );
    // Still Running, same PID, no restart.
    let p = pod_where(&s, "steady", "Running", |p| {
        (p.status.as_ref()?.phase.as_deref() == Some("Running")).then(|| p.clone())
    })
    .await;
    assert_eq!(container_pid(&p, "c"), Some(pid));
    let restarts = p
        .status
        .and_then(|s| s.container_statuses)
        .and_then(|c| c.first().map(|c| c.restart_count));
    assert_eq!(restarts, Some(0));
    assert!(group_alive(pid));
    let (code, _, err) = kubectl(
        &s,
        &[],
        &["delete", "pod", "steady", "--wait=true", "--timeout=120s"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    eventually("the adopted process is stopped on delete", || async {
        (!group_alive(pid)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_deadline_fails_the_pod() {
    let s = shared().await;
    apply_pod(
        s,
        "deadline",
        serde_json::json!({
            "restartPolicy": "Never",
            "activeDeadlineSeconds": 2,
            "containers": [{"name": "c", "image": "x", "command": ["sleep", "3600"]}]
        }),
    );
    let pid = pod_where(s, "deadline", "running", |p| container_pid(p, "c")).await;
    let reason = pod_where(s, "deadline", "Failed by its deadline", |p| {
        let st = p.status.as_ref()?;
        (st.phase.as_deref() == Some("Failed")).then(|| st.reason.clone().unwrap_or_default())
    })
    .await;
    assert_eq!(reason, "DeadlineExceeded");
    eventually("the container's processes are gone", || {
        let alive = group_alive(pid);
        async move { (!alive).then_some(()) }
    })
    .await;
    kubectl(s, &[], &["delete", "pod", "deadline", "--wait=false"], None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_reaches_a_stdin_container() {
    let s = shared().await;
    let websocket: &[(&str, &str)] = &[];
    let spdy: &[(&str, &str)] = &[("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")];
    for (name, env) in [("attach-ws", websocket), ("attach-spdy", spdy)] {
        apply_pod(
            s,
            name,
            serde_json::json!({
                "restartPolicy": "Never",
                "containers": [{
                    "name": "c", "image": "x", "stdin": true,
                    "command": ["sh", "-c", "echo ready; read line; echo \"got $line\""]
                }]
            }),
        );
        pod_where(s, name, "running", |p| container_pid(p, "c")).await;
        // The container reads one line, answers, and exits: the session ends with it.
        let (code, out, err) = kubectl(
            s,
            env,
            &["attach", "-i", name, "-c", "c"],
            Some("hello attach\n"),
        );
        assert_eq!(code, 0, "{env:?}: {err}");
        assert!(out.contains("got hello attach"), "{env:?}: {out} / {err}");
        let (_, log, _) = kubectl(s, &[], &["logs", name], None);
        assert!(
            log.contains("ready") && log.contains("got hello attach"),
            "{log}"
        );
        kubectl(s, &[], &["delete", "pod", name, "--wait=false"], None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unenforceable_limits_raise_one_warning_event() {
    let s = shared().await;
    apply_pod(
        s,
        "limited",
        serde_json::json!({
            "containers": [{
                "name": "c", "image": "x", "command": ["sleep", "3600"],
                "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}}
            }]
        }),
    );
    pod_where(s, "limited", "running", |p| container_pid(p, "c")).await;
    let event = eventually("a ResourceLimitsNotEnforced Warning", || {
        let (code, out, _) = kubectl(
            s,
            &[],
            &[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=limited,reason=ResourceLimitsNotEnforced",
                "-o",
                "json",
            ],
            None,
        );
        let items = (code == 0)
            .then(|| serde_json::from_str::<serde_json::Value>(&out).ok())
            .flatten()
            .and_then(|v| v["items"].as_array().cloned())
            .unwrap_or_default();
        async move { items.into_iter().next() }
    })
    .await;
    assert_eq!(event["type"], "Warning");
    assert!(
        event["message"]
            .as_str()
            .is_some_and(|m| m.contains("not enforced")),
        "{event}"
    );
    kubectl(s, &[], &["delete", "pod", "limited", "--wait=false"], None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_a_running_container_until_it_exits() {
    let s = shared().await;
    // Three lines at once, then one more when the test creates `stop` (with exec, in
    // the container's working directory), then the container exits.
    apply_pod(
        s,
        "follow",
        serde_json::json!({
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "x", "command": ["sh", "-c",
                "for i in 1 2 3; do echo \"early $i\"; done; \
                 while [ ! -e stop ]; do sleep 0.1; done; echo late"]}]
        }),
    );
    pod_where(s, "follow", "running", |p| container_pid(p, "c")).await;
    let mut child = tokio::process::Command::new(vk_testkit::cluster::kubectl())
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args(["-n", &s.namespace, "logs", "-f", "follow", "--tail=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl logs -f");
    let mut out = vk_testkit::transcript::Transcript::new(child.stdout.take().expect("stdout"));
    out.wait_for("the last existing line", |t| t.contains("early 3\n"))
        .await;
    let (code, _, err) = kubectl(s, &[], &["exec", "follow", "--", "touch", "stop"], None);
    assert_eq!(code, 0, "{err}");
    // The followed log ends when the container does.
    let seen = out
        .wait_for_end("kubectl logs -f after the container exited")
        .await;
    assert_eq!(seen, "early 3\nlate\n");
    let _ = child.wait().await;
    // Every option on the finished log.
    let (_, out, _) = kubectl(
        s,
        &[],
        &["logs", "follow", "--tail=2", "--timestamps"],
        None,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for (line, text) in lines.iter().zip(["early 3", "late"]) {
        let (ts, rest) = line.split_once(' ').expect("a timestamp prefix");
        assert!(ts.parse::<k8s_openapi::jiff::Timestamp>().is_ok(), "{line}");
        assert_eq!(rest, text);
    }
    let (_, out, _) = kubectl(s, &[], &["logs", "follow", "--limit-bytes=9"], None);
    assert_eq!(out, "early 1\ne");
    let (_, out, _) = kubectl(s, &[], &["logs", "follow", "--since=1h"], None);
    assert_eq!(out, "early 1\nearly 2\nearly 3\nlate\n");
    kubectl(s, &[], &["delete", "pod", "follow", "--wait=false"], None);
}

/// `(restartCount, waiting in back-off)` of container `c` (regular or init).
fn backoff_state(pod: &Pod, init: bool) -> Option<(i32, bool)> {
    let status = pod.status.as_ref()?;
    let list = if init {
        status.init_container_statuses.as_ref()?
    } else {
        status.container_statuses.as_ref()?
    };
    let c = list.iter().find(|c| c.name == "c")?;
    let waiting = c
        .state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"));
    Some((c.restart_count, waiting))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_previous_logs_in_back_off_show_the_right_runs() {
    let s = shared().await;
    // Each run prints its own number (kept in a file of the container's working
    // directory, which survives restarts) and fails.
    let script = "n=$(cat runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > runs; \
                  echo \"run $n\"; exit 1";
    for (name, init) in [("backoff", false), ("backoff-init", true)] {
        let c = serde_json::json!({"name": "c", "image": "x", "command": ["sh", "-c", script]});
        let spec = if init {
            serde_json::json!({
                "restartPolicy": "Always",
                "initContainers": [c],
                "containers": [{"name": "main", "image": "x", "command": ["sleep", "3600"]}]
            })
        } else {
            serde_json::json!({"restartPolicy": "Always", "containers": [c]})
        };
        apply_pod(s, name, spec);
        // As on a kubelet: while waiting in back-off after restart N, `logs` shows the
        // run that just failed (N+1) and `--previous` the one before it (N).
        for restarts in [1, 2] {
            let (current, previous) = eventually(
                &format!("{name}: the logs while waiting after restart {restarts}"),
                || {
                    let state = |pod_json: &str| {
                        serde_json::from_str::<Pod>(pod_json)
                            .ok()
                            .and_then(|p| backoff_state(&p, init))
                    };
                    let (_, before, _) = kubectl(s, &[], &["get", "pod", name, "-o", "json"], None);
                    let mut result = None;
                    if state(&before) == Some((restarts, true)) {
                        let (_, current, _) = kubectl(s, &[], &["logs", name, "-c", "c"], None);
                        let (_, previous, _) =
                            kubectl(s, &[], &["logs", name, "-c", "c", "--previous"], None);
                        // Only an answer read within one back-off counts.
                        let (_, after, _) =
                            kubectl(s, &[], &["get", "pod", name, "-o", "json"], None);
                        if state(&after) == Some((restarts, true)) {
                            result = Some((current, previous));
                        }
                    }
                    async move { result }
                },
            )
            .await;
            assert_eq!(current, format!("run {}\n", restarts + 1), "{name} logs");
            assert_eq!(
                previous,
                format!("run {restarts}\n"),
                "{name} logs --previous"
            );
        }
        kubectl(s, &[], &["delete", "pod", name, "--wait=false"], None);
    }
}
