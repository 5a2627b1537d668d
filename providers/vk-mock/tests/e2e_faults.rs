//! The `vk-mock` binary under the faults a probe found (issue 17): pod IPs across a
//! restart with a state file, `kubectl exec` of a `sleep` whose interval does not fit,
//! and a `state_file` the provider could never write.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use vk_testkit::wait::{eventually, eventually_ok};
use vk_testkit::{LocalCluster, TestContext, unique_name};

const BIN: &str = env!("CARGO_BIN_EXE_vk-mock");

/// A vk-mock process, stopped (SIGKILL) on drop if still running.
struct Running(Child);

impl Running {
    /// Stops the process with SIGTERM (a clean shutdown, which writes the state file)
    /// and waits for it to exit.
    async fn terminate(mut self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = eventually("vk-mock exits after SIGTERM", || {
            let exited = self.0.try_wait().expect("wait");
            async move { exited }
        })
        .await;
        assert!(exit.success(), "vk-mock exited with {exit}");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A node's files: its provider config and its log.
struct NodeFiles {
    dir: PathBuf,
}

impl NodeFiles {
    fn new(node: &str) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(node);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("node dir");
        Self { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.join("mock.toml")
    }

    fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
}

/// Starts vk-mock as node `node` with `config`, serving the kubelet API with the
/// certificates the API server trusts (so kubectl exec works); stderr goes to `log`.
fn start(ctx: &TestContext, node: &str, config: &Path, log: &Path) -> Running {
    let cluster = LocalCluster::from_env().expect("layout");
    let pki = cluster.layout().pki();
    let port = vk_testkit::free_port().expect("a free port");
    let child = vk_testkit::tied::command(BIN.as_ref())
        .arg("--kubeconfig")
        .arg(ctx.kubeconfig())
        .args(["--nodename", node, "--listen-port", &port.to_string()])
        .args(["--metrics-addr", "off"])
        .arg("--provider-config")
        .arg(config)
        .arg("--tls-cert-file")
        .arg(pki.kubelet_serving().cert)
        .arg("--tls-private-key-file")
        .arg(pki.kubelet_serving().key)
        .arg("--client-ca-file")
        .arg(pki.ca().cert)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .expect("log"),
        )
        .spawn()
        .expect("start vk-mock");
    Running(child)
}

fn pod(name: &str, node: &str) -> Pod {
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

/// Creates pod `name` on `node` and waits until it runs; returns its IP.
async fn run_pod(pods: &Api<Pod>, name: &str, node: &str) -> String {
    let manifest = pod(name, node);
    eventually_ok(&format!("creating pod {name}"), || {
        let (pods, manifest) = (pods.clone(), &manifest);
        async move { pods.create(&PostParams::default(), manifest).await }
    })
    .await;
    eventually(&format!("{name} Running with an IP"), || {
        let pods = pods.clone();
        async move {
            let status = pods.get_opt(name).await.ok()??.status?;
            if status.phase.as_deref() != Some("Running") {
                return None;
            }
            status.pod_ip
        }
    })
    .await
}

/// Deletes pod `name` and waits until the API no longer has it.
async fn delete_pod(pods: &Api<Pod>, name: &str) {
    eventually_ok(&format!("deleting pod {name}"), || {
        let pods = pods.clone();
        async move { pods.delete(name, &DeleteParams::default()).await }
    })
    .await;
    eventually(&format!("{name} gone"), || {
        let pods = pods.clone();
        async move { matches!(pods.get_opt(name).await, Ok(None)).then_some(()) }
    })
    .await;
}

/// Finding 4: the IP allocator restarted at "stored pods + 1", so after pods were
/// deleted and the node restarted, new pods got the IPs of pods still running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_ips_stay_distinct_across_a_restart_with_a_state_file() {
    let ctx = TestContext::new().await.expect("control plane");
    let node = unique_name("vk-mock-ips");
    ctx.delete_on_drop::<k8s_openapi::api::core::v1::Node>(&node, None);
    let ns = ctx.namespace("vk-mock-ips").await.expect("namespace");
    let files = NodeFiles::new(&node);
    std::fs::write(
        files.config(),
        format!("state_file = {:?}\n", files.state().display().to_string()),
    )
    .expect("config");
    let log = files.dir.join("vk-mock.log");
    let pods: Api<Pod> = Api::namespaced(ctx.client(), ns.name());

    let first = start(&ctx, &node, &files.config(), &log);
    vk_testkit::conformance::harness::wait_node_ready(&ctx.client(), &node).await;
    // One at a time, so that each takes the next IP: the survivor holds the highest.
    let mut before = Vec::new();
    for name in ["a1", "a2", "a3"] {
        before.push(run_pod(&pods, name, &node).await);
    }
    delete_pod(&pods, "a1").await;
    delete_pod(&pods, "a2").await;
    eventually("the state file holds a3 alone", || {
        let text = std::fs::read_to_string(files.state()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let alone = lines.len() == 1 && lines[0].contains("\"name\":\"a3\"");
        async move { alone.then_some(()) }
    })
    .await;
    first.terminate().await;

    let _second = start(&ctx, &node, &files.config(), &log);
    let mut after = Vec::new();
    for name in ["b1", "b2", "b3", "b4"] {
        after.push(run_pod(&pods, name, &node).await);
    }
    let a3 = pods
        .get("a3")
        .await
        .expect("a3")
        .status
        .and_then(|s| s.pod_ip)
        .expect("a3 keeps an IP");
    assert_eq!(a3, before[2], "a3 kept its IP across the restart");
    let running: Vec<&String> = std::iter::once(&a3).chain(&after).collect();
    let distinct: HashSet<&&String> = running.iter().collect();
    assert_eq!(
        distinct.len(),
        running.len(),
        "two running pods share an IP: a3 {a3}, b1..b4 {after:?} (before the restart: {before:?})"
    );
}

/// Finding 5: `sleep 1e300` panicked in the provider's exec and kubectl reported
/// success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_sleep_with_an_interval_out_of_range_exits_1() {
    let ctx = TestContext::new().await.expect("control plane");
    let node = unique_name("vk-mock-sleep");
    ctx.delete_on_drop::<k8s_openapi::api::core::v1::Node>(&node, None);
    let ns = ctx.namespace("vk-mock-sleep").await.expect("namespace");
    let files = NodeFiles::new(&node);
    std::fs::write(files.config(), "").expect("config");
    let log = files.dir.join("vk-mock.log");
    let _running = start(&ctx, &node, &files.config(), &log);
    vk_testkit::conformance::harness::wait_node_ready(&ctx.client(), &node).await;
    let pods: Api<Pod> = Api::namespaced(ctx.client(), ns.name());
    run_pod(&pods, "sleeper", &node).await;

    let exec = |env: &[(&str, &str)], interval: &str| {
        vk_testkit::cluster::run_kubectl(
            ctx.kubeconfig(),
            Some(ns.name()),
            env,
            &["exec", "sleeper", "--", "sleep", interval],
            None,
        )
        .expect("kubectl runs")
    };
    for env in [
        &[][..],
        &[("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")][..],
    ] {
        let ok = exec(env, "0.01");
        assert_eq!(ok.code, 0, "a valid sleep works ({env:?}): {}", ok.stderr);
        for interval in ["1e300", "inf", "-1"] {
            let out = exec(env, interval);
            assert_eq!(
                out.code, 1,
                "sleep {interval} ({env:?}): stdout {:?}, stderr {:?}",
                out.stdout, out.stderr
            );
            assert!(
                out.stderr.contains("sleep: invalid time interval"),
                "sleep {interval} ({env:?}): {}",
                out.stderr
            );
        }
    }
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!log_text.contains("panicked"), "{log_text}");
}

/// Finding 6: a `state_file` in a directory that does not exist was accepted, then
/// failed every second while nothing was persisted. Now the binary refuses to start,
/// naming `state_file` and the fix; so does a state file with a line that is not a pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_the_provider_cannot_use_fails_at_start() {
    let ctx = TestContext::new().await.expect("control plane");
    let node = unique_name("never-registered");
    let files = NodeFiles::new(&node);
    // Returns vk-mock's stderr once it has exited (failing if it keeps running).
    let run = async |state: &Path| {
        std::fs::write(
            files.config(),
            format!("state_file = {:?}\n", state.display().to_string()),
        )
        .expect("config");
        let stderr = files.dir.join("stderr");
        let mut child = Running(
            vk_testkit::tied::command(BIN.as_ref())
                .arg("--kubeconfig")
                .arg(ctx.kubeconfig())
                .args(["--nodename", &node, "--metrics-addr", "off"])
                .arg("--provider-config")
                .arg(files.config())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&stderr).expect("stderr"))
                .spawn()
                .expect("start vk-mock"),
        );
        let exit = eventually(&format!("vk-mock refuses state_file {state:?}"), || {
            let exited = child.0.try_wait().expect("wait");
            async move { exited }
        })
        .await;
        assert!(!exit.success(), "vk-mock started with {state:?}");
        std::fs::read_to_string(&stderr).expect("stderr")
    };

    let missing = files.dir.join("no-such-dir").join("state.json");
    let err = run(&missing).await;
    assert!(
        err.contains(&format!("key `state_file` is {}", missing.display()))
            && err.contains(&format!(
                "directory {} does not exist; create it",
                files.dir.join("no-such-dir").display()
            )),
        "{err}"
    );

    let corrupt = files.state();
    std::fs::write(&corrupt, "{\"metadata\":{\"name\":\"ok\"}}\nnot a pod\n").expect("write");
    let err = run(&corrupt).await;
    assert!(
        err.contains("state_file") && err.contains("line 2 is not a JSON pod"),
        "{err}"
    );
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(ctx.client());
    assert!(
        nodes.get_opt(&node).await.expect("get").is_none(),
        "no node was registered"
    );
}
