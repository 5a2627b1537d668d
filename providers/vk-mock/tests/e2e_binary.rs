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
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
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
        .stderr(Stdio::null())
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
}

fn free_port() -> u16 {
    vk_testkit::free_port().expect("a free port")
}

async fn http_get(port: u16, path: &str) -> (u16, String) {
    vk_testkit::http::get(port, path).await.expect("HTTP GET")
}
