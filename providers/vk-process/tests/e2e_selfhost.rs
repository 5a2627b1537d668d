//! Self-hosted end to end: the Helm chart (deploy/helm/virtual-kubelet), installed with
//! a real Helm 3 into the real control plane, runs its virtual kubelet pod on a
//! vk-process node (the chart's image maps to this crate's binary). That pod — itself
//! vk-process, configured through the chart's `providerConfig` ConfigMap — runs as the
//! chart's ServiceAccount with an in-cluster configuration, serves its kubelet API with
//! the chart's TLS Secret, and registers a second virtual node; a pod scheduled there
//! runs and answers `kubectl logs` and `kubectl exec` (API server → nested kubelet API).
//! `helm upgrade` replaces the pod (the new one adopts the running pod), `helm
//! uninstall` removes the chart's objects; the Node and its Lease stay, as documented
//! in deploy/README.md, until the Node is deleted.
//!
//! Needs `cargo xtask cluster up` and Helm (`cargo xtask helm`: the test runs the
//! `xtask` binary next to this crate's, or `$VK_HELM`).

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use vk_testkit::wait::eventually;
use vk_testkit::{LocalCluster, TestContext, unique_name};

const BIN: &str = env!("CARGO_BIN_EXE_vk-process");
const CHART_IMAGE: &str = "local/vk-process";
const CHART_TAG: &str = "selfhost";
const TAINT_KEY: &str = "virtual-kubelet.io/provider";
/// The node label that places the chart's pod and the test pod.
const NODE_LABEL: &str = "vk-selfhost.example.com/node";

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/helm/virtual-kubelet")
}

/// Helm: `$VK_HELM`, else `cargo xtask helm` through the xtask binary built next to
/// ours (`cargo xtask ci` builds every binary of the workspace).
fn helm(kubeconfig: &Path) -> Command {
    let mut cmd = match std::env::var_os("VK_HELM") {
        Some(helm) => Command::new(helm),
        None => {
            let xtask = Path::new(BIN).with_file_name("xtask");
            assert!(
                xtask.is_file(),
                "{} missing: `cargo build -p xtask` (or set VK_HELM)",
                xtask.display()
            );
            let mut cmd = Command::new(xtask);
            cmd.args(["helm", "--"]);
            cmd
        }
    };
    cmd.env("KUBECONFIG", kubeconfig);
    cmd
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Kubectl {
    kubeconfig: PathBuf,
    namespace: String,
}

impl Kubectl {
    /// `kubectl` in the test namespace: (exit code, stdout, stderr).
    fn run(&self, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
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

    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (code, out, err) = self.run(args, stdin);
        assert_eq!(code, 0, "kubectl {args:?}: {err}");
        out
    }

    /// Deletes the Node of a node process already stopped. The watchdog's cleanup
    /// (`start_outer`) deletes it too once the process is gone; whichever runs second
    /// finds it absent.
    fn delete_stopped_node(&self, node: &str) {
        self.ok(
            &["delete", "node", node, "--wait=false", "--ignore-not-found"],
            None,
        );
    }

    /// Waits until `kubectl args` succeeds and `f` accepts its output.
    async fn until<T>(&self, what: &str, args: &[&str], f: impl Fn(&str) -> Option<T>) -> T {
        eventually(what, || {
            let (code, out, _) = self.run(args, None);
            let found = (code == 0).then(|| f(&out)).flatten();
            async move { found }
        })
        .await
    }

    async fn node_ready(&self, node: &str) {
        self.until(
            &format!("node {node} Ready"),
            &[
                "get",
                "node",
                node,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ],
            |s| (s.trim() == "True").then_some(()),
        )
        .await;
    }

    /// The name of `release`'s pod once one that is not `old` is Running and Ready.
    async fn vk_pod_ready(&self, release: &str, old: Option<&str>) -> String {
        self.until(
            "the chart's virtual kubelet pod Running and Ready",
            &[
                "get",
                "pods",
                "-l",
                &format!("app.kubernetes.io/instance={release}"),
                "-o",
                "json",
            ],
            |out| {
                let list: serde_json::Value = serde_json::from_str(out).ok()?;
                let pods = list["items"].as_array()?;
                // During a Recreate the old pod goes first: exactly one new, ready pod.
                let [pod] = pods.as_slice() else {
                    return None;
                };
                let name = pod["metadata"]["name"].as_str()?;
                let ready = pod["status"]["conditions"]
                    .as_array()?
                    .iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                (ready && Some(name) != old && pod["metadata"]["deletionTimestamp"].is_null())
                    .then(|| name.to_owned())
            },
        )
        .await
    }
}

/// A directory the chart's pod (user 65532, as the chart sets) can traverse or write.
fn shared_dir(mode: u32) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("vk-selfhost-")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).expect("chmod");
    dir
}

/// The outer vk-process node: the chart's image runs this crate's binary. Tied to the
/// test process; on exit it kills whatever container process groups are left in
/// `states` and deletes `namespace` and both nodes.
fn start_outer(
    kubeconfig: &Path,
    node: &str,
    state: &Path,
    states: &[&Path],
    cleanup_objects: &str,
) -> Child {
    let pki = LocalCluster::from_env().expect("layout").layout().pki();
    let config = state.join("outer.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\nvolume_refresh_seconds = 2\n[images]\n{:?} = [{BIN:?}]\n",
            state.join("state").display().to_string(),
            format!("{CHART_IMAGE}:{CHART_TAG}"),
        ),
    )
    .expect("config");
    let dirs: Vec<String> = states
        .iter()
        .map(|s| format!("'{}'", s.display()))
        .collect();
    let cleanup = format!(
        "for f in $(find {dirs} -name '*.pid.json' 2>/dev/null); do \
           pid=$(sed -n 's/.*\"pid\":\\([0-9]*\\).*/\\1/p' \"$f\"); \
           [ -n \"$pid\" ] && kill -KILL -\"$pid\" 2>/dev/null; \
         done; \
         '{kubectl}' --kubeconfig '{kubeconfig}' delete {cleanup_objects} --wait=false",
        dirs = dirs.join(" "),
        kubectl = vk_testkit::cluster::kubectl().display(),
        kubeconfig = kubeconfig.display()
    );
    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{node}.log"));
    vk_testkit::tied::command_then(BIN.as_ref(), &cleanup)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--nodename", node])
        .args(["--listen-port", &free_port().to_string()])
        .args(["--metrics-addr", "off"])
        .arg(format!("--node-labels={NODE_LABEL}={node}"))
        .arg("--provider-config")
        .arg(&config)
        .args(pki.kubelet_api_flags())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start vk-process")
}

fn free_port() -> u16 {
    vk_testkit::free_port().expect("a free port")
}

#[tokio::test]
async fn the_chart_runs_on_a_vk_process_node_and_its_node_serves_pods() {
    let ctx = TestContext::new().await.expect("control plane");
    let kubeconfig = ctx.kubeconfig().to_owned();
    let outer = unique_name("vk-selfhost-out");
    let inner = unique_name("vk-selfhost-in");
    let namespace = unique_name("vk-selfhost");
    // The chart's ClusterRole is cluster-wide: a release name of this run.
    let release = unique_name("vk-selfhost");
    let k = Kubectl {
        kubeconfig: kubeconfig.clone(),
        namespace: namespace.clone(),
    };
    // The outer node's state (traversed by user 65532 to its volumes) and the inner
    // node's (written by it).
    let outer_state = shared_dir(0o755);
    let inner_state = shared_dir(0o1777);
    let mut outer_node = start_outer(
        &kubeconfig,
        &outer,
        outer_state.path(),
        &[outer_state.path(), inner_state.path()],
        &format!(
            "namespace/{namespace} node/{outer} node/{inner} clusterrole/{release}-process clusterrolebinding/{release}-process"
        ),
    );
    k.node_ready(&outer).await;

    // The kubelet serving certificate the API server trusts (cluster CA), as a Secret.
    let pki = LocalCluster::from_env().expect("layout").layout().pki();
    k.ok(&["create", "namespace", &namespace], None);
    let from_file = |key: &str, path: PathBuf| format!("--from-file={key}={}", path.display());
    k.ok(
        &[
            "create",
            "secret",
            "generic",
            "kubelet-tls",
            &from_file("tls.crt", pki.kubelet_serving().cert),
            &from_file("tls.key", pki.kubelet_serving().key),
            &from_file("ca.crt", pki.ca().cert),
        ],
        None,
    );

    let values = serde_json::json!({
        "provider": "process",
        "nodeName": inner,
        "image": {"repository": CHART_IMAGE, "tag": CHART_TAG, "pullPolicy": "Never"},
        // Ports of their own: other nodes listen on this host too.
        "kubeletPort": free_port(),
        "metrics": {"port": free_port()},
        "kubeletTls": {"existingSecret": "kubelet-tls", "clientCaKey": "ca.crt"},
        "providerConfig": {"inline": format!(
            "state_dir = {:?}\nvolume_refresh_seconds = 2\n",
            inner_state.path().display().to_string()
        )},
        "nodeLabels": {NODE_LABEL: inner},
        "nodeSelector": {NODE_LABEL: outer},
        "tolerations": [{"key": TAINT_KEY, "operator": "Exists"}],
    });
    let values_file = outer_state.path().join("values.json");
    std::fs::write(&values_file, values.to_string()).expect("values");
    ok(helm(&kubeconfig)
        .args(["install", &release])
        .arg(chart())
        .args(["--namespace", &namespace, "--values"])
        .arg(&values_file));

    let vk_pod = k.vk_pod_ready(&release, None).await;
    k.node_ready(&inner).await;
    // It runs as the chart's ServiceAccount, from the pod root's credentials.
    let vk_log = k.ok(&["logs", &vk_pod], None);
    assert!(
        vk_log.contains("in-cluster configuration from the pod root's ServiceAccount"),
        "{vk_log}"
    );
    let account = k.ok(
        &[
            "get",
            "pod",
            &vk_pod,
            "-o",
            "jsonpath={.spec.serviceAccountName}",
        ],
        None,
    );
    assert_eq!(account, format!("{release}-process"));

    // A pod on the nested node: Running, logs and exec through the API server.
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hello"},
        "spec": {
            "nodeSelector": {NODE_LABEL: inner},
            "tolerations": [{"key": TAINT_KEY, "operator": "Exists"}],
            "terminationGracePeriodSeconds": 2,
            "containers": [{"name": "hello", "image": "busybox",
                "command": ["sh", "-c", "echo hello from the nested node; exec sleep 3600"]}]
        }
    });
    k.ok(&["apply", "-f", "-"], Some(&pod.to_string()));
    k.until(
        "hello Running on the nested node",
        &[
            "get",
            "pod",
            "hello",
            "-o",
            "jsonpath={.status.phase} {.spec.nodeName}",
        ],
        |s| (s.trim() == format!("Running {inner}")).then_some(()),
    )
    .await;
    k.until("hello's log", &["logs", "hello"], |s| {
        s.contains("hello from the nested node").then_some(())
    })
    .await;
    let exec = k.ok(
        &["exec", "hello", "--", "sh", "-c", "echo exec-ok; id -u"],
        None,
    );
    assert_eq!(exec, "exec-ok\n65532\n", "the chart's runAsUser");

    // An upgrade replaces the pod (Recreate); the new one adopts the running pod.
    ok(helm(&kubeconfig)
        .args(["upgrade", &release])
        .arg(chart())
        .args([
            "--namespace",
            &namespace,
            "--reuse-values",
            "--set",
            "log.level=debug",
        ]));
    let upgraded = k.vk_pod_ready(&release, Some(&vk_pod)).await;
    let args = k.ok(
        &[
            "get",
            "pod",
            &upgraded,
            "-o",
            "jsonpath={.spec.containers[0].args}",
        ],
        None,
    );
    assert!(args.contains("--log-level=debug"), "{args}");
    k.until(
        "hello answers exec after the upgrade",
        &["exec", "hello", "--", "echo", "again"],
        |s| (s == "again\n").then_some(()),
    )
    .await;

    // Pods first (their processes end with them), then the release.
    k.ok(&["delete", "pod", "hello", "--wait=true"], None);
    ok(helm(&kubeconfig).args(["uninstall", &release, "--namespace", &namespace, "--wait"]));
    k.until(
        "no pod of the release",
        &["get", "pods", "-o", "name"],
        |s| s.trim().is_empty().then_some(()),
    )
    .await;
    let fullname = format!("{release}-process");
    for object in [
        format!("deployment/{fullname}"),
        format!("serviceaccount/{fullname}"),
        format!("configmap/{fullname}-config"),
        format!("clusterrole/{fullname}"),
        format!("clusterrolebinding/{fullname}"),
    ] {
        let left = k.ok(&["get", &object, "--ignore-not-found", "-o", "name"], None);
        assert_eq!(left.trim(), "", "{object} left behind");
    }
    // Documented: the Node and its Lease were the process's, not Helm's; deleting the
    // Node removes the Lease (its owner).
    k.ok(&["get", "node", &inner], None);
    k.ok(&["delete", "node", &inner], None);
    k.until(
        "the nested node's Lease garbage-collected",
        &[
            "get",
            "lease",
            &inner,
            "-n",
            "kube-node-lease",
            "--ignore-not-found",
            "-o",
            "name",
        ],
        |s| s.trim().is_empty().then_some(()),
    )
    .await;

    vk_testkit::tied::kill(&mut outer_node).expect("stop the outer node");
    k.delete_stopped_node(&outer);
    let _ = k.run(&["delete", "namespace", &namespace, "--wait=false"], None);
}

/// A projected `serviceAccountToken` source (what the ServiceAccount admission adds
/// from Kubernetes 1.21 on; the local 1.20 control plane still mounts token Secrets)
/// is a real token from the TokenRequest API, bound to the pod; the pod reaches the
/// API server at the address the node uses.
#[tokio::test]
async fn projected_service_account_tokens_come_from_the_token_request_api() {
    let ctx = TestContext::new().await.expect("control plane");
    let kubeconfig = ctx.kubeconfig().to_owned();
    let node = unique_name("vk-selfhost-tok");
    let namespace = unique_name("vk-selfhost-tok");
    let k = Kubectl {
        kubeconfig: kubeconfig.clone(),
        namespace: namespace.clone(),
    };
    let state = shared_dir(0o755);
    let mut child = start_outer(
        &kubeconfig,
        &node,
        state.path(),
        &[state.path()],
        &format!("namespace/{namespace} node/{node}"),
    );
    k.node_ready(&node).await;
    k.ok(&["create", "namespace", &namespace], None);
    k.ok(&["create", "serviceaccount", "robot"], None);
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "tok"},
        "spec": {
            "nodeName": node,
            "serviceAccountName": "robot",
            "automountServiceAccountToken": false,
            "tolerations": [{"key": TAINT_KEY, "operator": "Exists"}],
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"],
                "volumeMounts": [{"name": "access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]}],
            "volumes": [{"name": "access", "projected": {"sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}
            ]}}]
        }
    });
    // kube-root-ca.crt is published into new namespaces by the controller-manager.
    k.until(
        "kube-root-ca.crt in the namespace",
        &["get", "configmap", "kube-root-ca.crt", "-o", "name"],
        |s| (!s.trim().is_empty()).then_some(()),
    )
    .await;
    k.ok(&["apply", "-f", "-"], Some(&pod.to_string()));
    k.until(
        "tok Running",
        &["get", "pod", "tok", "-o", "jsonpath={.status.phase}"],
        |s| (s == "Running").then_some(()),
    )
    .await;
    let in_pod = |file: &str| {
        k.ok(
            &[
                "exec",
                "tok",
                "--",
                "sh",
                "-c",
                &format!(
                    "cat \"$VK_POD_ROOT/var/run/secrets/kubernetes.io/serviceaccount/{file}\""
                ),
            ],
            None,
        )
    };
    assert_eq!(in_pod("namespace"), namespace);
    assert!(in_pod("ca.crt").contains("BEGIN CERTIFICATE"));
    let token = in_pod("token");

    // The API server authenticates it as the ServiceAccount, bound to this pod.
    let review = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token}
    });
    let reviewed: serde_json::Value = serde_json::from_str(&k.ok(
        &["create", "-f", "-", "-o", "json"],
        Some(&review.to_string()),
    ))
    .expect("TokenReview JSON");
    let status = &reviewed["status"];
    assert_eq!(status["authenticated"], true, "{reviewed}");
    assert_eq!(
        status["user"]["username"],
        format!("system:serviceaccount:{namespace}:robot")
    );
    assert_eq!(
        status["user"]["extra"]["authentication.kubernetes.io/pod-name"][0], "tok",
        "{reviewed}"
    );

    // The address is the API server's own, not the Service's ClusterIP.
    let server = k.ok(
        &[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ],
        None,
    );
    let address = k.ok(
        &[
            "exec",
            "tok",
            "--",
            "sh",
            "-c",
            "echo \"https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT\"",
        ],
        None,
    );
    assert_eq!(address.trim(), server.trim_end_matches('/'));

    k.ok(&["delete", "pod", "tok", "--wait=true"], None);
    vk_testkit::tied::kill(&mut child).expect("stop the node");
    k.delete_stopped_node(&node);
    let _ = k.run(&["delete", "namespace", &namespace, "--wait=false"], None);
}
