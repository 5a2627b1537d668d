//! The `vk-mock` binary as an operator runs it: flags, a config file, kubectl, signals.

use std::io::Read as _;
use std::process::{Child, Command, Stdio};

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use vk_testkit::wait::{eventually, eventually_ok};
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

fn kubectl(ctx: &TestContext, args: &[&str]) -> String {
    let out =
        vk_testkit::cluster::run_kubectl(ctx.kubeconfig(), None, &[], args, None).expect("kubectl");
    assert!(out.code == 0, "kubectl {args:?}: {}", out.stderr);
    out.stdout
}

#[test]
fn help_and_version_work() {
    let out = Command::new(BIN).arg("--version").output().expect("run");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("vk-mock {}", env!("CARGO_PKG_VERSION"))
    );
    let out = Command::new(BIN).arg("--help").output().expect("run");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--kubeconfig",
        "--nodename",
        "--provider-config",
        "--listen-port",
        "--pod-sync-workers",
        "--disable-taint",
        "--kube-api-qps",
        "--namespace",
        "--cluster-domain",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    // The effective defaults are shown; the Go project's flags are accepted but hidden.
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for default in [
        "[default: 10250]",
        "[default: virtual-kubelet]",
        "[default: mock]",
    ] {
        assert!(help.contains(default), "--help lacks {default}: {help}");
    }
    for hidden in ["--klog.v", "--enable-node-lease", "--trace-exporter"] {
        assert!(!help.contains(hidden), "--help shows {hidden}");
    }
}

/// Runs vk-mock with `args` and `envs` (and a harmless kubeconfig unless `envs` or
/// `args` name one) expecting it to fail at start; returns its stderr.
fn start_fails(args: &[&str], envs: &[(&str, &str)]) -> String {
    let kubeconfig = scratch_dir("vk-start-fails").join("empty.kubeconfig");
    std::fs::write(&kubeconfig, "").expect("write");
    let mut cmd = Command::new(BIN);
    for var in ["KUBECONFIG", "KUBELET_PORT", "VKUBELET_POD_IP"] {
        cmd.env_remove(var);
    }
    if !args.contains(&"--kubeconfig") && !envs.iter().any(|(k, _)| *k == "KUBECONFIG") {
        cmd.arg("--kubeconfig").arg(&kubeconfig);
    }
    let out = cmd
        .args(args)
        .args(["--metrics-addr", "off"])
        .envs(envs.iter().copied())
        .output()
        .expect("run");
    assert!(!out.status.success(), "{args:?} {envs:?} started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_values_from_the_environment_name_the_variable() {
    let err = start_fails(&[], &[("KUBELET_PORT", "abc")]);
    assert!(err.contains("KUBELET_PORT") && err.contains("abc"), "{err}");
    let err = start_fails(&[], &[("KUBELET_PORT", "0")]);
    assert!(
        err.contains("environment variable KUBELET_PORT (for --listen-port)"),
        "{err}"
    );
    let err = start_fails(&[], &[("VK_WORKER_THREADS", "0")]);
    assert!(
        err.contains("environment variable VK_WORKER_THREADS (for --worker-threads): \"0\""),
        "{err}"
    );
    let err = start_fails(&[], &[("VKUBELET_POD_IP", "nope")]);
    assert!(
        err.contains("environment variable VKUBELET_POD_IP (for --node-ip)"),
        "{err}"
    );
    let dir = scratch_dir("vk-kubeconfig-list");
    let present = dir.join("present");
    std::fs::write(&present, "").expect("write");
    let missing = dir.join("missing");
    let list = std::env::join_paths([&present, &missing]).expect("join");
    let err = start_fails(&[], &[("KUBECONFIG", list.to_str().expect("utf8"))]);
    assert!(
        err.contains("environment variable KUBECONFIG (for --kubeconfig)")
            && err.contains(&missing.display().to_string()),
        "{err}"
    );
}

#[test]
fn port_zero_and_another_provider_are_refused_at_start() {
    let err = start_fails(&["--listen-port", "0"], &[]);
    assert!(
        err.contains("--listen-port: \"0\"") && err.contains("daemonEndpoints"),
        "{err}"
    );
    // A chart written for another provider does not start this one.
    let err = start_fails(&["--provider", "azure"], &[]);
    assert!(
        err.contains("--provider: \"azure\"") && err.contains("vk-mock runs the mock provider"),
        "{err}"
    );
}

/// A fresh directory for one test's files.
fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique_name(name));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// Writes the admin kubeconfig as two files neither of which works alone (clusters and
/// contexts in one, users in the other) and returns them joined as a path list.
fn split_kubeconfig(ctx: &TestContext, dir: &std::path::Path) -> std::ffi::OsString {
    let full = kube::config::Kubeconfig::read_from(ctx.kubeconfig()).expect("kubeconfig");
    let clusters = kube::config::Kubeconfig {
        auth_infos: Vec::new(),
        ..full.clone()
    };
    let users = kube::config::Kubeconfig {
        clusters: Vec::new(),
        contexts: Vec::new(),
        current_context: None,
        ..full
    };
    let a = dir.join("clusters.kubeconfig");
    let b = dir.join("users.kubeconfig");
    // JSON is YAML.
    std::fs::write(&a, serde_json::to_vec(&clusters).expect("json")).expect("write");
    std::fs::write(&b, serde_json::to_vec(&users).expect("json")).expect("write");
    std::env::join_paths([a, b]).expect("join")
}

/// Waits for `name` to be Ready and returns it.
async fn ready_node(ctx: &TestContext, name: &str) -> Node {
    let nodes: Api<Node> = Api::all(ctx.client());
    eventually(&format!("node {name} registers and is Ready"), || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get_opt(name).await.ok()??;
            let ready = n
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            ready.then_some(n)
        }
    })
    .await
}

/// A pod bound to `node` in `namespace` (with the provider taint tolerated).
fn bound_pod(name: &str, node: &str) -> k8s_openapi::api::core::v1::Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
            "containers": [{"name": "c", "image": "busybox"}]
        }
    }))
    .expect("pod")
}

async fn create_pod(
    pods: &Api<k8s_openapi::api::core::v1::Pod>,
    pod: &k8s_openapi::api::core::v1::Pod,
) {
    eventually_ok("creating a pod", || {
        let pods = pods.clone();
        async move { pods.create(&Default::default(), pod).await }
    })
    .await;
}

async fn wait_running(pods: &Api<k8s_openapi::api::core::v1::Pod>, name: &str) {
    eventually(&format!("pod {name} Running"), || {
        let pods = pods.clone();
        async move {
            let p = pods.get_opt(name).await.ok()??;
            (p.status?.phase.as_deref() == Some("Running")).then_some(())
        }
    })
    .await;
}

/// The Go project's typical command line (node-cli with the mock provider, as in its
/// examples and skaffold manifests) starts this binary: Go-style booleans, klog flags,
/// node leases, a watched namespace, the OS spelled "Linux", a kubeconfig list, the port
/// from KUBELET_PORT and the metrics address as ":PORT".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_go_projects_command_line_starts_a_node() {
    let ctx = TestContext::new().await.expect("control plane");
    let node = unique_name("vk-go-cli");
    ctx.delete_on_drop::<Node>(&node, None);
    let watched = ctx.namespace("vk-go-cli").await.expect("namespace");
    let other = ctx.namespace("vk-go-other").await.expect("namespace");
    let dir = scratch_dir(&node);
    let kubeconfigs = split_kubeconfig(&ctx, &dir);
    let log = dir.join("vk-mock.log");
    let (port, metrics_port) = (free_port(), free_port());
    let child = Command::new(BIN)
        .args([
            "--provider",
            "mock",
            "--nodename",
            &node,
            "--disable-taint=false",
            "--enable-node-lease",
            "--klog.v",
            "2",
            "--klog.logtostderr",
            "--log-level",
            "debug",
            "--namespace",
            watched.name(),
            "--os",
            "Linux",
            "--startup-timeout",
            "2m",
            "--trace-sample-rate=always",
            "--metrics-addr",
            &format!(":{metrics_port}"),
        ])
        .arg("--kubeconfig")
        .arg(&kubeconfigs)
        .env("KUBELET_PORT", port.to_string())
        .env_remove("KUBECONFIG")
        .env_remove("MALLOC_ARENA_MAX")
        .env_remove("TOKIO_WORKER_THREADS")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start vk-mock");
    let pid = child.id();
    let _child = Running(child);

    let registered = ready_node(&ctx, &node).await;
    // jemalloc is the allocator (vk-cli's default feature), so the binary did not
    // execute itself again to cap glibc's arenas (vk_cli::arenas).
    assert_eq!(
        arena_max(pid).as_deref(),
        None,
        "MALLOC_ARENA_MAX of the running node"
    );
    let labels = registered.metadata.labels.unwrap_or_default();
    assert_eq!(labels["kubernetes.io/os"], "linux");
    let taints = registered.spec.and_then(|s| s.taints).unwrap_or_default();
    assert!(
        taints
            .iter()
            .any(|t| t.key == "virtual-kubelet.io/provider" && t.value.as_deref() == Some("mock")),
        "--disable-taint=false keeps the taint: {taints:?}"
    );
    let endpoint_port = registered
        .status
        .and_then(|s| s.daemon_endpoints)
        .and_then(|d| d.kubelet_endpoint)
        .map(|e| e.port);
    assert_eq!(endpoint_port, Some(i32::from(port)));
    assert_eq!(http_get(metrics_port, "/healthz").await.0, 200);

    // Only the watched namespace's pods are run: the one bound elsewhere first, then
    // the watched one; once that runs, the other has still not been touched.
    let other_pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(ctx.client(), other.name());
    create_pod(&other_pods, &bound_pod("elsewhere", &node)).await;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(ctx.client(), watched.name());
    create_pod(&pods, &bound_pod("watched", &node)).await;
    wait_running(&pods, "watched").await;
    let elsewhere = other_pods.get("elsewhere").await.expect("get");
    let status = elsewhere.status.unwrap_or_default();
    assert_eq!(status.phase.as_deref(), Some("Pending"), "{status:?}");
    assert_eq!(status.host_ip, None, "{status:?}");

    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        log.contains("--enable-node-lease=true is deprecated and ignored"),
        "{log}"
    );
    assert!(log.contains("--klog.logtostderr=true"), "{log}");
    // A single node gets tokio's default runtime: one worker per core.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(logged_workers(&log), Some(cores), "{log}");
}

/// The ACI chart's arguments and environment (virtual-kubelet/azure-aci helm chart, its
/// defaults, with our provider's name and no admin listener) start this binary, with
/// `KUBECONFIG` listing two files to merge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aci_charts_arguments_start_a_node_with_a_kubeconfig_list() {
    let ctx = TestContext::new().await.expect("control plane");
    let cluster = vk_testkit::LocalCluster::from_env().expect("layout");
    let pki = cluster.layout().pki();
    let node = unique_name("vk-aci-args");
    ctx.delete_on_drop::<Node>(&node, None);
    let ns = ctx.namespace("vk-aci-args").await.expect("namespace");
    let kubeconfigs = split_kubeconfig(&ctx, &scratch_dir(&node));
    let port = free_port();
    let (cert, key, ca) = (
        pki.kubelet_serving().cert,
        pki.kubelet_serving().key,
        pki.ca().cert,
    );
    let child = Command::new(BIN)
        .args([
            "--disable-taint",
            "true",
            "--provider",
            "mock",
            "--namespace",
            "",
        ])
        .args(["--nodename", &node, "--authentication-token-webhook=true"])
        .arg("--client-verify-ca")
        .arg(&ca)
        .args(["--no-verify-clients=false", "--os", "Linux"])
        .args(["--metrics-addr", "off"])
        .env("KUBECONFIG", &kubeconfigs)
        .env("KUBELET_PORT", port.to_string())
        .env("APISERVER_CERT_LOCATION", &cert)
        .env("APISERVER_KEY_LOCATION", &key)
        .env("VKUBELET_POD_IP", "127.0.0.1")
        .env("VKUBELET_TAINT_KEY", "virtual-kubelet.io/provider")
        .env("VKUBELET_TAINT_VALUE", "mock")
        .env("VKUBELET_TAINT_EFFECT", "NoSchedule")
        .env("MALLOC_ARENA_MAX", "4")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start vk-mock");
    let pid = child.id();
    let _child = Running(child);

    let registered = ready_node(&ctx, &node).await;
    assert_eq!(
        arena_max(pid).as_deref(),
        Some("4"),
        "an operator's MALLOC_ARENA_MAX is kept"
    );
    // The node lifecycle controller's own taints (`node.kubernetes.io/not-ready` until
    // it has seen the node Ready) come and go on their own: only ours must be absent.
    let taints: Vec<_> = registered
        .spec
        .and_then(|s| s.taints)
        .unwrap_or_default()
        .into_iter()
        .filter(|t| !t.key.starts_with("node.kubernetes.io/"))
        .collect();
    assert_eq!(taints, Vec::new(), "--disable-taint true");
    // `--namespace ""` watches every namespace; an untolerating pod runs (no taint).
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(ctx.client(), ns.name());
    let mut pod = bound_pod("plain", &node);
    if let Some(spec) = pod.spec.as_mut() {
        spec.tolerations = None;
    }
    create_pod(&pods, &pod).await;
    wait_running(&pods, "plain").await;
}

#[test]
fn invalid_values_fail_at_start_naming_the_flag() {
    let out = Command::new(BIN)
        .args(["--nodename", "Bad_Name", "--kubeconfig", "/dev/null"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--nodename") && err.contains("Bad_Name"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_provider_config_fails_naming_the_field() {
    let ctx = TestContext::new().await.expect("control plane");
    let dir = std::env::temp_dir().join(format!("vk-mock-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("bad.toml");
    std::fs::write(&cfg, "[faults]\nerror_rate = 7\n").expect("write");
    let out = Command::new(BIN)
        .arg("--provider-config")
        .arg(&cfg)
        .arg("--kubeconfig")
        .arg(ctx.kubeconfig())
        .args([
            "--nodename",
            &unique_name("never-registered"),
            "--metrics-addr",
            "off",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("faults.error_rate") && err.contains("between 0 and 1"),
        "{err}"
    );
    // A type error names the file and its line; a bad variable names the variable.
    std::fs::write(&cfg, "log_lines = []\n[faults]\nlatency_ms = \"slow\"\n").expect("write");
    let run = |envs: &[(&str, &str)]| {
        let out = Command::new(BIN)
            .arg("--provider-config")
            .arg(&cfg)
            .arg("--kubeconfig")
            .arg(ctx.kubeconfig())
            .args(["--nodename", &unique_name("never-registered")])
            .args(["--metrics-addr", "off"])
            .envs(envs.iter().copied())
            .output()
            .expect("run");
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&[]);
    assert!(
        err.contains("bad.toml, line 3: key `faults.latency_ms`"),
        "{err}"
    );
    std::fs::write(&cfg, "").expect("write");
    let err = run(&[("VK_MOCK_FAULTS__ERROR_RATE", "often")]);
    assert!(
        err.contains("environment variable VK_MOCK_FAULTS__ERROR_RATE")
            && err.contains("faults.error_rate"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_runs_a_node_that_kubectl_sees_and_stops_on_sigterm() {
    let ctx = TestContext::new().await.expect("control plane");
    let node = unique_name("vk-mock-bin");
    ctx.delete_on_drop::<Node>(&node, None);
    let ns = ctx.namespace("vk-mock-bin").await.expect("namespace");
    let dir = std::env::temp_dir().join(format!("{node}-cfg"));
    std::fs::create_dir_all(&dir).expect("dir");
    let metrics_port = free_port();
    let cfg = dir.join("mock.toml");
    std::fs::write(
        &cfg,
        "[capacity]\ncpu = \"7\"\nmemory = \"3Gi\"\npods = \"42\"\n",
    )
    .expect("write");
    let child = Command::new(BIN)
        .arg("--kubeconfig")
        .arg(ctx.kubeconfig())
        .args([
            "--nodename",
            &node,
            "--listen-port",
            "10777",
            "--startup-timeout",
            "2m",
        ])
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
        .arg("--provider-config")
        .arg(&cfg)
        .env("VK_WORKER_THREADS", "3")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vk-mock");
    let mut child = Running(child);

    let nodes: Api<Node> = Api::all(ctx.client());
    let registered = eventually("the node registers and is Ready", || {
        let nodes = nodes.clone();
        let node = node.clone();
        async move {
            let n = nodes.get_opt(&node).await.ok()??;
            let ready = n
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            ready.then_some(n)
        }
    })
    .await;
    let status = registered.status.expect("status");
    let cap = status.capacity.expect("capacity");
    assert_eq!(cap["cpu"].0, "7");
    assert_eq!(cap["pods"].0, "42");
    assert_eq!(
        status
            .daemon_endpoints
            .and_then(|d| d.kubelet_endpoint)
            .map(|e| e.port),
        Some(10777)
    );

    // A user deploys through kubectl and sees the pod Running on the node.
    let manifest = dir.join("pod.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hello\n  namespace: {ns}\nspec:\n  nodeSelector:\n    kubernetes.io/hostname: {node}\n  tolerations:\n  - key: virtual-kubelet.io/provider\n    operator: Exists\n  containers:\n  - name: hello\n    image: busybox\n",
            ns = ns.name()
        ),
    )
    .expect("write");
    let manifest_arg = manifest.to_string_lossy();
    eventually_ok("kubectl apply of the pod manifest", || async {
        let out = vk_testkit::cluster::run_kubectl(
            ctx.kubeconfig(),
            None,
            &[],
            &["apply", "-f", &manifest_arg],
            None,
        )
        .expect("kubectl");
        if out.code == 0 {
            Ok(())
        } else {
            Err(out.stderr)
        }
    })
    .await;
    eventually("kubectl shows hello Running on the node", || async {
        let wide = kubectl(
            &ctx,
            &[
                "get",
                "pod",
                "hello",
                "-n",
                ns.name(),
                "-o",
                "wide",
                "--no-headers",
            ],
        );
        (wide.contains("Running") && wide.contains(&node)).then_some(())
    })
    .await;

    // The admin listener: ready, and the API requests it made are counted.
    assert_eq!(
        http_get(metrics_port, "/readyz").await,
        (200, "ok".to_owned())
    );
    assert_eq!(http_get(metrics_port, "/healthz").await.0, 200);
    let (code, metrics) = http_get(metrics_port, "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains(&format!("vk_node_ready{{node=\"{node}\"}} 1")),
        "{metrics}"
    );
    let status_writes = metrics
        .lines()
        .find(|l| {
            l.starts_with(
                "vk_api_requests_total{verb=\"patch\",resource=\"pods/status\",code=\"200\"}",
            )
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        status_writes.is_some_and(|n| n >= 1),
        "no pod status patch counted:\n{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "vk_pod_provider_calls_total{{node=\"{node}\",operation=\"create\"}} 1"
        )),
        "{metrics}"
    );

    kubectl(&ctx, &["delete", "pod", "hello", "-n", ns.name()]);

    // SIGTERM: a clean exit with status 0.
    nix_kill(&child.0);
    let status = eventually("vk-mock exits after SIGTERM", || {
        let status = child.0.try_wait().expect("wait");
        async move { status }
    })
    .await;
    let mut stderr = String::new();
    if let Some(mut e) = child.0.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(status.success(), "exit status {status}; stderr:\n{stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");
    assert_eq!(
        logged_workers(&stderr),
        Some(3),
        "VK_WORKER_THREADS=3 gives the runtime three workers: {stderr}"
    );
}

fn nix_kill(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_runs_a_fleet_of_nodes_over_one_pod_watch() {
    let ctx = TestContext::new().await.expect("control plane");
    let base = unique_name("vk-fleet");
    let names: Vec<String> = (0..3).map(|i| format!("{base}-{i}")).collect();
    for n in &names {
        ctx.delete_on_drop::<Node>(n, None);
    }
    let ns = ctx.namespace("vk-fleet").await.expect("namespace");
    let log = scratch_dir(&base).join("vk-mock.log");
    let child = Command::new(BIN)
        .arg("--kubeconfig")
        .arg(ctx.kubeconfig())
        .args([
            "--nodename",
            &base,
            "--nodes",
            "3",
            "--listen-port",
            "10778",
            "--metrics-addr",
            "off",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start vk-mock");
    let _child = Running(child);
    let nodes: Api<Node> = Api::all(ctx.client());
    for n in &names {
        eventually(&format!("node {n} is Ready"), || {
            let nodes = nodes.clone();
            let n = n.clone();
            async move {
                let node = nodes.get_opt(&n).await.ok()??;
                node.status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
                    .then_some(())
            }
        })
        .await;
    }
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(ctx.client(), ns.name());
    for (i, n) in names.iter().enumerate() {
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("p{i}")},
            "spec": {
                "nodeName": n,
                "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
                "containers": [{"name": "c", "image": "i"}]
            }
        }))
        .expect("pod");
        eventually_ok(&format!("creating pod p{i}"), || {
            let (pods, pod) = (pods.clone(), &pod);
            async move { pods.create(&Default::default(), pod).await }
        })
        .await;
    }
    for i in 0..3 {
        let name = format!("p{i}");
        eventually(&format!("pod {name} Running"), || {
            let pods = pods.clone();
            let name = name.clone();
            async move {
                let p = pods.get_opt(&name).await.ok()??;
                (p.status?.phase.as_deref() == Some("Running")).then_some(())
            }
        })
        .await;
    }
    // A fleet runs on one runtime worker unless told otherwise (FLEET_WORKER_THREADS).
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(logged_workers(&log), Some(1), "{log}");
}

/// The runtime's worker count as the startup line logs it (`worker_threads=N`).
fn logged_workers(log: &str) -> Option<usize> {
    let (_, rest) = log.split_once("worker_threads=")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// `MALLOC_ARENA_MAX` in the environment of process `pid` (as it runs now).
fn arena_max(pid: u32) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("read environ");
    environ
        .split(|b| *b == 0)
        .filter_map(|v| std::str::from_utf8(v).ok())
        .find_map(|v| v.strip_prefix("MALLOC_ARENA_MAX="))
        .map(str::to_owned)
}

fn free_port() -> u16 {
    vk_testkit::free_port().expect("a free port")
}

async fn http_get(port: u16, path: &str) -> (u16, String) {
    vk_testkit::http::get(port, path).await.expect("HTTP GET")
}
