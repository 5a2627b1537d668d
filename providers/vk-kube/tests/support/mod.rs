//! What the vk-kube end-to-end tests share: two real control planes and a real remote
//! node.
//!
//! * **home**: the shared default local cluster (`cargo xtask cluster up`), where the
//!   vk-kube virtual node registers;
//! * **remote**: the named local cluster `remote` (`cargo xtask cluster up --name
//!   remote`; another name with `VK_KUBE_REMOTE_CLUSTER`), started by the tests when it
//!   does not run (and left running, like the home one);
//! * a **vk-process** node registered in the remote cluster (a child process tied to
//!   the test process), so remote pods really run as local processes. Its binary is
//!   the workspace's `vk-process` next to `vk-kube` in the target directory: `cargo
//!   test --workspace` builds it; with `-p vk-kube` build it first (`cargo build -p
//!   vk-process`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::OnceCell;
use vk_testkit::cluster::Layout;
use vk_testkit::wait::eventually;
use vk_testkit::{LocalCluster, TestContext, UpOptions, unique_name};

/// The vk-kube binary under test.
pub const KUBE_BIN: &str = env!("CARGO_BIN_EXE_vk-kube");

/// The environment variable naming the remote cluster (default `remote`).
pub const REMOTE_CLUSTER_ENV: &str = "VK_KUBE_REMOTE_CLUSTER";

/// Children killed with the test process.
pub static CHILDREN: Mutex<Vec<Child>> = Mutex::new(Vec::new());

/// The remote cluster and its vk-process node.
pub struct Remote {
    /// The named cluster.
    pub cluster: LocalCluster,
    /// Its administrator kubeconfig.
    pub kubeconfig: PathBuf,
    /// The vk-process node registered there.
    pub node: String,
}

/// The vk-kube node most tests share.
pub struct Home {
    /// The home cluster's kubeconfig.
    pub kubeconfig: PathBuf,
    /// The vk-kube node's name.
    pub node: String,
}

static REMOTE: OnceCell<Remote> = OnceCell::const_new();
static SHARED: OnceCell<Home> = OnceCell::const_new();

/// The `vk-process` binary next to `vk-kube`.
pub fn process_bin() -> PathBuf {
    let path = Path::new(KUBE_BIN).with_file_name("vk-process");
    assert!(
        path.exists(),
        "the remote node runs {}: build it first (`cargo build -p vk-process`; `cargo test --workspace` does)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    vk_testkit::free_port().expect("a free port")
}

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// The remote cluster (started if it does not run) with a vk-process node.
pub async fn remote() -> &'static Remote {
    REMOTE
        .get_or_init(|| async {
            vk_testkit::install_crypto_provider();
            let name = std::env::var(REMOTE_CLUSTER_ENV)
                .ok()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "remote".to_owned());
            let cluster = LocalCluster::new(Layout::named(&name).expect("remote cluster layout"));
            cluster
                .up(UpOptions::default())
                .await
                .expect("starting the remote cluster");
            let kubeconfig = cluster.layout().kubeconfig();
            let node = unique_name("vk-kube-remote");
            let state = tmp(&node);
            let config = state.with_extension("toml");
            // Images of the conformance suite run `sleep 3600`; other pods give commands.
            std::fs::write(
                &config,
                format!(
                    "state_dir = {:?}\nvolume_refresh_seconds = 1\n[images]\n\
                     \"example.com/app:1\" = [\"sleep\", \"3600\"]\n\
                     \"nginx:1.25\" = [\"sleep\", \"3600\"]\n\"i\" = [\"sleep\", \"3600\"]\n",
                    state.display().to_string()
                ),
            )
            .expect("remote node config");
            let pki = cluster.layout().pki();
            let cleanup = format!(
                "for f in $(find '{state}' -name '*.pid.json' 2>/dev/null); do \
                   pid=$(sed -n 's/.*\"pid\":\\([0-9]*\\).*/\\1/p' \"$f\"); \
                   [ -n \"$pid\" ] && kill -KILL -\"$pid\" 2>/dev/null; \
                 done; \
                 '{kubectl}' --kubeconfig '{kubeconfig}' delete node/{node} --wait=false",
                state = state.display(),
                kubectl = vk_testkit::cluster::kubectl().display(),
                kubeconfig = kubeconfig.display()
            );
            let log = tmp(&format!("{node}.log"));
            let child = vk_testkit::tied::command_then(&process_bin(), &cleanup)
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args([
                    "--nodename",
                    &node,
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
                .stderr(std::fs::File::create(&log).expect("log"))
                .spawn()
                .expect("start vk-process in the remote cluster");
            CHILDREN.lock().expect("lock").push(child);
            let client = cluster.client().await.expect("remote client");
            vk_testkit::conformance::harness::wait_node_ready(&client, &node).await;
            Remote {
                cluster,
                kubeconfig,
                node,
            }
        })
        .await
}

/// The provider config of a vk-kube node offloading to `remote` through `kubeconfig`.
pub fn provider_config(remote: &Remote, kubeconfig: &Path) -> String {
    format!(
        "kubeconfig = {:?}\ncluster_name = \"remote\"\ndependency_refresh_seconds = 1\n\
         capacity_refresh_seconds = 2\nping_timeout_seconds = 2\n[scheduling]\n\
         add_node_selector = {{ \"kubernetes.io/hostname\" = \"{}\" }}\n\
         add_tolerations = [{{ key = \"virtual-kubelet.io/provider\", operator = \"Exists\" }}]\n",
        kubeconfig.display().to_string(),
        remote.node
    )
}

/// Starts vk-kube for home node `node` with `provider_config`; `cleanup` runs when it
/// ends (e.g. deleting the node). Returns the child (the watchdog shell).
pub fn start_kube(
    home_kubeconfig: &Path,
    node: &str,
    provider_config: &str,
    cleanup: &str,
) -> Child {
    let home = LocalCluster::from_env().expect("home layout");
    let pki = home.layout().pki();
    let config = tmp(&format!("{node}.toml"));
    std::fs::write(&config, provider_config).expect("vk-kube config");
    let log = tmp(&format!("{node}.log"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .expect("log");
    vk_testkit::tied::command_then(KUBE_BIN.as_ref(), cleanup)
        .arg("--kubeconfig")
        .arg(home_kubeconfig)
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
        .env(
            "RUST_LOG",
            "info,vk_kube=debug,vk_node_api::portforward=debug",
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start vk-kube")
}

/// The clean-up snippet deleting home node `node`.
pub fn delete_node_snippet(home_kubeconfig: &Path, node: &str) -> String {
    format!(
        "'{}' --kubeconfig '{}' delete node/{node} --wait=false",
        vk_testkit::cluster::kubectl().display(),
        home_kubeconfig.display()
    )
}

/// The shared vk-kube node (started once per test binary).
pub async fn shared() -> &'static Home {
    SHARED
        .get_or_init(|| async {
            let remote = remote().await;
            let ctx = TestContext::new().await.expect("home control plane");
            let node = unique_name("vk-kube");
            let child = start_kube(
                ctx.kubeconfig(),
                &node,
                &provider_config(remote, &remote.kubeconfig),
                &delete_node_snippet(ctx.kubeconfig(), &node),
            );
            CHILDREN.lock().expect("lock").push(child);
            vk_testkit::conformance::harness::wait_node_ready(&ctx.client(), &node).await;
            Home {
                kubeconfig: ctx.kubeconfig().to_owned(),
                node,
            }
        })
        .await
}

/// Runs kubectl against `kubeconfig` in `namespace`: (exit code, stdout, stderr).
pub fn kubectl(
    kubeconfig: &Path,
    namespace: &str,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: Option<&str>,
) -> (i32, String, String) {
    let out = vk_testkit::cluster::run_kubectl(
        kubeconfig,
        Some(namespace),
        env,
        args,
        stdin.map(str::as_bytes),
    )
    .expect("kubectl runs");
    (out.code, out.stdout, out.stderr)
}

/// Applies `manifest` (JSON) with kubectl.
pub fn apply(kubeconfig: &Path, namespace: &str, manifest: &serde_json::Value) {
    let (code, _, err) = kubectl(
        kubeconfig,
        namespace,
        &[],
        &["apply", "-f", "-"],
        Some(&manifest.to_string()),
    );
    assert_eq!(code, 0, "kubectl apply: {err}");
}

/// A pod manifest bound to vk-kube node `node` (tolerating its taint).
pub fn pod_on(node: &str, name: &str, spec: serde_json::Value) -> serde_json::Value {
    let mut spec = spec;
    spec["nodeName"] = node.into();
    spec["tolerations"] =
        serde_json::json!([{"key": "virtual-kubelet.io/provider", "operator": "Exists"}]);
    serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
}

/// A container running `script` with `sh -c`.
pub fn shell(script: &str) -> serde_json::Value {
    serde_json::json!({"name": "app", "image": "busybox", "command": ["sh", "-c", script]})
}

/// Waits until the pod `namespace/name` read through kubectl satisfies `f`.
pub async fn pod_where<T>(
    kubeconfig: &Path,
    namespace: &str,
    name: &str,
    what: &str,
    f: impl Fn(&Pod) -> Option<T>,
) -> T {
    eventually(&format!("{name}: {what}"), || {
        let (code, out, _) = kubectl(
            kubeconfig,
            namespace,
            &[],
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

/// The pod's phase.
pub fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

/// Deletes remote namespace `name` when dropped (the home one is the test context's).
pub struct RemoteNamespace {
    /// The remote kubeconfig.
    pub kubeconfig: PathBuf,
    /// The namespace.
    pub name: String,
}

impl Drop for RemoteNamespace {
    fn drop(&mut self) {
        let _ = vk_testkit::cluster::run_kubectl(
            &self.kubeconfig,
            None,
            &[],
            &[
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ],
            None,
        );
    }
}

/// The remote pods of home node `node` in remote namespace `namespace`.
pub async fn remote_pods(remote: &kube::Client, namespace: &str, node: &str) -> Vec<Pod> {
    let api: kube::Api<Pod> = kube::Api::namespaced(remote.clone(), namespace);
    api.list(&kube::api::ListParams::default().labels(&format!(
        "{}={}",
        vk_kube::naming::NODE_LABEL,
        vk_kube::naming::node_label_value(node)
    )))
    .await
    .map(|l| l.items)
    .unwrap_or_default()
}

/// The home UID a remote pod runs.
pub fn home_uid(remote: &Pod) -> Option<String> {
    remote
        .metadata
        .labels
        .as_ref()?
        .get(vk_kube::naming::HOME_UID_LABEL)
        .cloned()
}
