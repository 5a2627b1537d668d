//! High availability on the real control plane: two vk-web processes started with
//! `--leader-elect` for one virtual node, both talking to ONE bridge (an axum server in
//! this test process) that counts `createPod` calls per pod across both processes.
//!
//! - The leader is SIGKILLed while it creates a batch of pods: the standby takes the
//!   election Lease over once it runs out, drives the node (its heartbeat Lease renews
//!   again, pods created after the failover run) and no pod is created twice in the
//!   bridge.
//! - The leader gets SIGTERM: it releases the Lease, exits 0, and the standby takes over
//!   at its next retry.
//! - Another holder takes the Lease: the leader stops and exits with an error.
//!
//! A standby answers `/readyz` with 200 (a rolling update waits for it).
//!
//! The observed failover times are printed (run with `--nocapture`), never asserted.
//! Needs `cargo xtask cluster up`.

mod v1_bridge;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::PostParams;
use v1_bridge::{PodStore, key_of, remove, running, update};
use vk_testkit::wait::{eventually, eventually_within};
use vk_testkit::{TestContext, unique_name};

const BIN: &str = env!("CARGO_BIN_EXE_vk-web");

/// Election timings of the test: shorter than the defaults (15 s / 10 s / 2 s) so that the
/// test is quick, with a renew deadline that a loaded machine still meets.
const LEASE_DURATION_S: u64 = 8;
const RENEW_DEADLINE: &str = "6s";
const RETRY_PERIOD: &str = "1s";

/// The bridge's pods, and how often each was asked to be created.
#[derive(Default)]
struct Backend {
    pods: BTreeMap<(String, String), serde_json::Value>,
    creates: BTreeMap<(String, String), u32>,
}

type Shared = Arc<Mutex<Backend>>;

impl PodStore for Backend {
    fn pods(&mut self) -> &mut BTreeMap<v1_bridge::Key, serde_json::Value> {
        &mut self.pods
    }
}

/// How long the bridge takes to answer a create it has already stored: a leader killed
/// meanwhile never learns that its create succeeded.
const CREATE_LATENCY: Duration = Duration::from_millis(400);

async fn create(State(s): State<Shared>, body: Bytes) -> Response {
    let pod: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let key = key_of(&pod);
    {
        let mut backend = s.lock().expect("lock");
        *backend.creates.entry(key.clone()).or_default() += 1;
        if backend.pods.contains_key(&key) {
            return (StatusCode::CONFLICT, "exists").into_response();
        }
        backend.pods.insert(key, running(pod));
    }
    tokio::time::sleep(CREATE_LATENCY).await;
    StatusCode::CREATED.into_response()
}

async fn one(s: Shared, q: BTreeMap<String, String>, status_only: bool) -> Response {
    let key = (
        q.get("namespace").cloned().unwrap_or_default(),
        q.get("name").cloned().unwrap_or_default(),
    );
    match s.lock().expect("lock").pods.get(&key) {
        Some(pod) if status_only => axum::Json(pod["status"].clone()).into_response(),
        Some(pod) => axum::Json(pod.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Starts the shared bridge; returns its URL and its state.
async fn start_bridge() -> (String, Shared) {
    let shared = Shared::default();
    let app = v1_bridge::with_node_routes(axum::Router::new())
        .route("/createPod", post(create))
        .route("/updatePod", put(update::<Backend>))
        .route("/deletePod", delete(remove::<Backend>))
        .route(
            "/getPod",
            get(
                |State(s): State<Shared>, Query(q): Query<BTreeMap<String, String>>| {
                    one(s, q, false)
                },
            ),
        )
        .route(
            "/getPodStatus",
            get(
                |State(s): State<Shared>, Query(q): Query<BTreeMap<String, String>>| {
                    one(s, q, true)
                },
            ),
        )
        .route(
            "/getPods",
            get(|State(s): State<Shared>| async move {
                let pods: Vec<_> = s.lock().expect("lock").pods.values().cloned().collect();
                axum::Json(pods)
            }),
        )
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, shared)
}

/// One replica: vk-web with leader election for `node`, identity `identity`, its admin
/// listener on `admin_port` and its kubelet API on `kubelet_port`.
fn start_replica(
    kubeconfig: &Path,
    node: &str,
    namespace: &str,
    url: &str,
    identity: &str,
    admin_port: u16,
    kubelet_port: u16,
) -> Child {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let config = dir.join(format!("{node}-{identity}.toml"));
    std::fs::write(
        &config,
        format!(
            "endpoint = {url:?}\nprotocol = \"v1\"\nstatus_poll_interval = \"500ms\"\nnode_status_interval = \"5s\"\n"
        ),
    )
    .expect("config");
    vk_testkit::tied::command(BIN.as_ref())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args([
            "--nodename",
            node,
            "--listen-port",
            &kubelet_port.to_string(),
            "--metrics-addr",
            &format!("127.0.0.1:{admin_port}"),
            "--leader-elect",
            "--leader-elect-lease-namespace",
            namespace,
            "--leader-elect-identity",
            identity,
            "--leader-elect-lease-duration",
            &format!("{LEASE_DURATION_S}s"),
            "--leader-elect-renew-deadline",
            RENEW_DEADLINE,
            "--leader-elect-retry-period",
            RETRY_PERIOD,
        ])
        .arg("--provider-config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{node}-{identity}.log"))).expect("log"))
        .spawn()
        .expect("start vk-web")
}

struct Setup {
    ctx: TestContext,
    namespace: vk_testkit::TestNamespace,
    node: String,
    backend: Shared,
    url: String,
}

impl Setup {
    async fn new(prefix: &str) -> Self {
        let ctx = TestContext::new().await.expect("control plane");
        let namespace = ctx.namespace(prefix).await.expect("namespace");
        let node = unique_name(prefix);
        ctx.delete_on_drop::<Node>(&node, None);
        let (url, backend) = start_bridge().await;
        Self {
            ctx,
            namespace,
            node,
            backend,
            url,
        }
    }

    /// Starts replica `identity`; returns it with its admin and kubelet API ports.
    fn replica(&self, identity: &str) -> (Child, u16, u16) {
        let admin_port = vk_testkit::free_port().expect("a free port");
        let kubelet_port = vk_testkit::free_port().expect("a free port");
        let child = start_replica(
            self.ctx.kubeconfig(),
            &self.node,
            self.namespace.name(),
            &self.url,
            identity,
            admin_port,
            kubelet_port,
        );
        (child, admin_port, kubelet_port)
    }

    fn log(&self, identity: &str) -> String {
        std::fs::read_to_string(
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-{identity}.log", self.node)),
        )
        .unwrap_or_default()
    }

    fn leases(&self) -> Api<Lease> {
        Api::namespaced(self.ctx.client(), self.namespace.name())
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.ctx.client(), self.namespace.name())
    }

    /// The election Lease's record.
    async fn election_record(&self) -> k8s_openapi::api::coordination::v1::LeaseSpec {
        let lease = self
            .leases()
            .get(&self.node)
            .await
            .expect("the election lease");
        lease.spec.expect("a record")
    }

    /// The election Lease's holder, as the replica's `--leader-elect-identity` (each
    /// process adds `_<random suffix>` to it, which this strips).
    async fn holder(&self) -> Option<String> {
        let lease = self.leases().get_opt(&self.node).await.ok()??;
        let holder = lease.spec?.holder_identity.filter(|h| !h.is_empty())?;
        Some(match holder.rsplit_once('_') {
            Some((base, suffix))
                if suffix.len() == 8 && suffix.chars().all(|c| c.is_ascii_hexdigit()) =>
            {
                base.to_owned()
            }
            _ => holder,
        })
    }

    async fn wait_holder(&self, who: &str, patience: Duration) {
        eventually_within(
            &format!("{who} holds the election lease"),
            patience,
            || async { (self.holder().await.as_deref() == Some(who)).then_some(()) },
        )
        .await;
    }

    /// The node heartbeat Lease's renewTime.
    async fn heartbeat(&self) -> Option<String> {
        let leases: Api<Lease> = Api::namespaced(self.ctx.client(), "kube-node-lease");
        let lease = leases.get_opt(&self.node).await.ok()??;
        Some(format!("{:?}", lease.spec?.renew_time?))
    }

    async fn create_pod(&self, name: &str) {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"app": "ha"}},
            "spec": {
                "nodeSelector": {"kubernetes.io/hostname": self.node},
                "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
                "containers": [{"name": "c", "image": "example/ha"}],
            }
        }))
        .expect("pod");
        vk_testkit::wait::eventually_ok(&format!("create pod {name}"), || async {
            self.pods().create(&PostParams::default(), &pod).await
        })
        .await;
    }

    /// Creates the pods `names`, then waits until each is Running.
    async fn run_pods(&self, names: &[String]) {
        for name in names {
            self.create_pod(name).await;
        }
        for name in names {
            self.wait_running(name).await;
        }
    }

    async fn wait_running(&self, name: &str) {
        eventually(&format!("pod {name} Running"), || async {
            let pod = self.pods().get_opt(name).await.ok()??;
            (pod.status?.phase.as_deref() == Some("Running")).then_some(())
        })
        .await;
    }

    /// Every pod was asked of the bridge exactly once, across both processes.
    fn assert_created_once(&self, names: &[String]) {
        let backend = self.backend.lock().expect("lock");
        let ns = self.namespace.name();
        for name in names {
            let creates = backend
                .creates
                .get(&(ns.to_owned(), name.clone()))
                .copied()
                .unwrap_or(0);
            assert_eq!(creates, 1, "pod {name}: {creates} createPod calls");
        }
        let all: u32 = backend.creates.values().sum();
        assert_eq!(all as usize, names.len(), "createPod calls in all: {all}");
    }
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Starts replica `a`, waits until it leads and the node is Ready, then starts `b` and
/// waits until it stands by — reporting ready on `/readyz` meanwhile, so that a rolling
/// update can go on, and with its kubelet API port closed. Returns both and `b`'s
/// kubelet API port.
async fn leader_and_standby(s: &Setup) -> (Child, Child, u16) {
    let (a, _, _) = s.replica("a");
    s.wait_holder("a", Duration::from_secs(60)).await;
    vk_testkit::conformance::harness::wait_node_ready(&s.ctx.client(), &s.node).await;
    let (b, b_admin, b_kubelet) = s.replica("b");
    eventually("b stands by", || async {
        s.log("b").contains("standing by").then_some(())
    })
    .await;
    eventually("the standby's /readyz answers 200", || async {
        let (code, _) = vk_testkit::http::get(b_admin, "/readyz").await.ok()?;
        (code == 200).then_some(())
    })
    .await;
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", b_kubelet))
            .await
            .is_err(),
        "a standby does not serve the kubelet API"
    );
    (a, b, b_kubelet)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_leader_hands_the_node_over_without_a_second_create() {
    let s = Setup::new("vk-ha-kill").await;
    let (mut a, mut b, b_kubelet) = leader_and_standby(&s).await;

    let before = names("before", 4);
    s.run_pods(&before).await;
    assert_eq!(s.holder().await.as_deref(), Some("a"), "b stood by");

    // A batch in flight when the leader dies.
    let during = names("during", 6);
    for name in &during {
        s.create_pod(name).await;
    }
    // Kill the leader while it has creates in flight (some stored by the bridge but not
    // yet answered), or failing that right after the batch was stored.
    let stored = |s: &Setup| {
        let backend = s.backend.lock().expect("lock");
        let ns = s.namespace.name().to_owned();
        during
            .iter()
            .filter(|n| backend.pods.contains_key(&(ns.clone(), (*n).clone())))
            .count()
    };
    eventually("the leader starts creating the batch", || async {
        (stored(&s) > 0).then_some(())
    })
    .await;
    // The watchdog delivers the SIGKILL up to a second after it is asked to.
    let kill_asked = Instant::now();
    vk_testkit::tied::kill(&mut a).expect("kill -9 the leader");
    let killed = Instant::now();
    let stored_at_kill = stored(&s);
    let beat_at_kill = s.heartbeat().await;
    let last_renewal = s.election_record().await.renew_time.expect("a renewed");

    s.wait_holder("b", Duration::from_secs(120)).await;
    let took_over = (killed.elapsed(), kill_asked.elapsed());
    let acquired = s.election_record().await.acquire_time.expect("b acquired");
    let after_last_renewal = acquired.0.duration_since(last_renewal.0);
    eventually(
        "the new leader renews the node's heartbeat lease",
        || async {
            let beat = s.heartbeat().await;
            (beat.is_some() && beat != beat_at_kill).then_some(())
        },
    )
    .await;
    vk_testkit::conformance::harness::wait_node_ready(&s.ctx.client(), &s.node).await;
    eventually("the new leader serves the kubelet API", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", b_kubelet))
            .await
            .ok()
    })
    .await;
    let node: Node = Api::all(s.ctx.client()).get(&s.node).await.expect("node");
    let endpoint = node
        .status
        .and_then(|st| st.daemon_endpoints?.kubelet_endpoint);
    assert_eq!(
        endpoint.map(|e| e.port),
        Some(i32::from(b_kubelet)),
        "the Node points at the new leader's kubelet API"
    );
    for name in &during {
        s.wait_running(name).await;
    }
    let after = names("after", 3);
    s.run_pods(&after).await;
    println!(
        "kill -9 failover: the standby took the election lease {after_last_renewal:#} after the \
         leader's last renewal, {:?} to {:?} after the kill (lease duration {LEASE_DURATION_S}s, \
         retry period {RETRY_PERIOD}); all pods Running {:?} after the kill; \
         {stored_at_kill} of the {} pods in flight were stored by the bridge at the kill",
        took_over.0,
        took_over.1,
        killed.elapsed(),
        during.len()
    );
    let all: Vec<String> = before.into_iter().chain(during).chain(after).collect();
    s.assert_created_once(&all);
    assert_eq!(
        b.try_wait().expect("b's status"),
        None,
        "the new leader keeps running"
    );
    vk_testkit::tied::kill(&mut b).expect("stop b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_of_the_leader_releases_the_lease_and_the_standby_takes_over_at_once() {
    let s = Setup::new("vk-ha-term").await;
    let (mut a, mut b, _) = leader_and_standby(&s).await;
    let before = names("before", 3);
    s.run_pods(&before).await;
    let watchdog = nix::unistd::Pid::from_raw(i32::try_from(a.id()).expect("pid"));
    nix::sys::signal::kill(watchdog, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let stopping = Instant::now();
    let status = a.wait().expect("a exits");
    let exited = stopping.elapsed();
    assert!(status.success(), "a graceful stop exits 0: {status}");
    s.wait_holder("b", Duration::from_secs(60)).await;
    let took_over = stopping.elapsed();
    let after = names("after", 3);
    s.run_pods(&after).await;
    println!(
        "SIGTERM hand-over: leader exited {exited:?} after SIGTERM; standby holds the lease \
         {took_over:?} after SIGTERM (retry period {RETRY_PERIOD}, lease duration {LEASE_DURATION_S}s)"
    );
    let all: Vec<String> = before.into_iter().chain(after).collect();
    s.assert_created_once(&all);
    vk_testkit::tied::kill(&mut b).expect("stop b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lease_is_taken_stops_driving_and_exits() {
    let s = Setup::new("vk-ha-fence").await;
    let (mut a, _, _) = s.replica("a");
    s.wait_holder("a", Duration::from_secs(60)).await;
    vk_testkit::conformance::harness::wait_node_ready(&s.ctx.client(), &s.node).await;
    s.run_pods(&names("before", 2)).await;

    // Someone else holds the election Lease now (as a standby would after a partition).
    vk_testkit::wait::eventually_ok("hand the lease to an intruder", || async {
        let mut lease = s.leases().get(&s.node).await?;
        let spec = lease.spec.get_or_insert_with(Default::default);
        spec.holder_identity = Some("intruder".to_owned());
        spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            k8s_openapi::jiff::Timestamp::now(),
        ));
        s.leases()
            .replace(&s.node, &PostParams::default(), &lease)
            .await
    })
    .await;
    let status = tokio::task::spawn_blocking(move || a.wait())
        .await
        .expect("join")
        .expect("a exits");
    assert!(
        !status.success(),
        "losing the lease is an error exit: {status}"
    );
    let log = s.log("a");
    assert!(log.contains("lost leadership"), "{log}");
    assert!(
        log.contains("lost the leader election lease of node"),
        "the exit names the node: {log}"
    );
    assert_eq!(s.holder().await.as_deref(), Some("intruder"));
}
