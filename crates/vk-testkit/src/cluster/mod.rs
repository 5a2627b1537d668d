//! A real Kubernetes control plane on loopback: etcd, kube-apiserver,
//! kube-controller-manager and kube-scheduler, started as background processes that
//! outlive the command that started them.
//!
//! # Flow of [`LocalCluster::up`]
//!
//! 1. take the cluster lock (so parallel test binaries do not start it twice);
//! 2. if every component recorded in the PID files is alive and `/readyz` answers `ok`,
//!    return at once;
//! 3. otherwise stop whatever half of a cluster is left (only processes we recorded),
//!    install/build what is missing (the `toolchain` module), create certificates if needed,
//!    check the ports are free, then start etcd → kube-apiserver → controller-manager and
//!    scheduler, waiting for each to be healthy; finally wait for the `default`
//!    ServiceAccount, which proves the controller-manager works.
//!
//! Every component writes to its own log under the state directory; a failure to start
//! reports the end of that log.

mod daemon;
mod error;
mod fsutil;
mod kubeconfig;
mod layout;
mod pki;
mod progress;
mod toolchain;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;

pub use daemon::{Daemon, DaemonState};
pub use error::ClusterError;
pub use kubeconfig::CONTEXT;
pub use layout::{
    CLUSTER_NAME_ENV, DEFAULT_CLUSTER, KUBERNETES_VERSION, Layout, Ports, validate_cluster_name,
};
pub use pki::{CertPair, Pki};
pub use toolchain::{CONTROL_PLANE_BINARIES, ensure_command};

/// The kubectl tests should run: the one on `PATH`, or the one this crate built into
/// the cache when the machine has none (see `LocalCluster::up`).
pub fn kubectl() -> PathBuf {
    toolchain::which("kubectl")
        .or_else(|| {
            let cached = Layout::from_env().ok()?.bin_dir().join("kubectl");
            cached.is_file().then_some(cached)
        })
        .unwrap_or_else(|| PathBuf::from("kubectl"))
}

/// What a kubectl run printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubectlOutput {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs [`kubectl`] with `--kubeconfig kubeconfig`, `-n namespace` (when given), the
/// extra environment `env`, `args`, and `stdin` piped in (or no stdin at all).
///
/// ```no_run
/// let out = vk_testkit::cluster::run_kubectl("admin.kubeconfig".as_ref(), Some("default"), &[], &["get", "pods"], None)
///     .expect("kubectl runs");
/// assert_eq!(out.code, 0, "{}", out.stderr);
/// ```
pub fn run_kubectl(
    kubeconfig: &Path,
    namespace: Option<&str>,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: Option<&[u8]>,
) -> std::io::Result<KubectlOutput> {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut cmd = std::process::Command::new(kubectl());
    cmd.arg("--kubeconfig").arg(kubeconfig);
    if let Some(ns) = namespace {
        cmd.args(["-n", ns]);
    }
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    if let (Some(data), Some(mut input)) = (stdin, child.stdin.take()) {
        input.write_all(data)?;
    }
    let out = child.wait_with_output()?;
    Ok(KubectlOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

use fsutil::{create_dir, remove_all, tail};
use progress::{Progress, format_elapsed};

/// The components in start order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// The key-value store.
    Etcd,
    /// The API server.
    ApiServer,
    /// ServiceAccounts, ReplicaSets, garbage collection, node lifecycle...
    ControllerManager,
    /// Binds pods to nodes.
    Scheduler,
}

impl Component {
    /// All components, in start order.
    pub const ALL: [Component; 4] = [
        Component::Etcd,
        Component::ApiServer,
        Component::ControllerManager,
        Component::Scheduler,
    ];

    /// The process name, also used for its PID and log files.
    pub fn name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::ApiServer => "kube-apiserver",
            Component::ControllerManager => "kube-controller-manager",
            Component::Scheduler => "kube-scheduler",
        }
    }

    /// The port it listens on (health checks go there).
    pub fn port(self, ports: &Ports) -> u16 {
        match self {
            Component::Etcd => ports.etcd_client,
            Component::ApiServer => ports.apiserver,
            Component::ControllerManager => ports.controller_manager,
            Component::Scheduler => ports.scheduler,
        }
    }
}

/// Options of [`LocalCluster::up`].
#[derive(Debug, Clone, Copy, Default)]
pub struct UpOptions {
    /// When the cluster is not already running, start from empty etcd data instead of
    /// resuming the previous state. A running cluster is never wiped.
    pub fresh: bool,
}

/// What [`LocalCluster::up`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpOutcome {
    /// Everything was already running and ready.
    AlreadyRunning,
    /// The control plane was started by this call.
    Started,
}

/// One component's line in [`ClusterStatus`].
#[derive(Debug, Clone)]
pub struct ComponentStatus {
    /// Which component.
    pub component: Component,
    /// What its PID file says.
    pub state: DaemonState,
    /// Its port.
    pub port: u16,
    /// Its log file.
    pub log: PathBuf,
}

/// What runs, as reported by `cargo xtask cluster status`.
#[derive(Debug, Clone)]
pub struct ClusterStatus {
    /// Per component.
    pub components: Vec<ComponentStatus>,
    /// `Ok(())` when `/readyz` said ok, otherwise why not.
    pub apiserver_ready: Result<(), String>,
    /// The administrator kubeconfig.
    pub kubeconfig: PathBuf,
    /// The binaries' directory and whether they are built.
    pub binaries: (PathBuf, bool),
}

impl fmt::Display for ClusterStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Kubernetes {KUBERNETES_VERSION} local control plane")?;
        for c in &self.components {
            let state = match c.state {
                DaemonState::Running { pid } => format!("running (pid {pid})"),
                DaemonState::Stale { pid } => format!("dead (stale pid {pid})"),
                DaemonState::Stopped => "stopped".to_owned(),
            };
            writeln!(
                f,
                "  {:<24} {:<22} port {:<5}  log {}",
                c.component.name(),
                state,
                c.port,
                c.log.display()
            )?;
        }
        match &self.apiserver_ready {
            Ok(()) => writeln!(f, "  /readyz: ok")?,
            Err(e) => writeln!(f, "  /readyz: not ready ({e})")?,
        }
        writeln!(f, "  kubeconfig: {}", self.kubeconfig.display())?;
        let (bin, built) = &self.binaries;
        writeln!(
            f,
            "  binaries:   {} ({})",
            bin.display(),
            if *built { "built" } else { "not built yet" }
        )
    }
}

/// The local control plane described by a [`Layout`].
///
/// ```no_run
/// # async fn demo() -> Result<(), vk_testkit::ClusterError> {
/// let cluster = vk_testkit::LocalCluster::from_env()?;
/// cluster.up(Default::default()).await?;
/// let client = cluster.client().await?;
/// # let _ = client;
/// println!("export KUBECONFIG={}", cluster.layout().kubeconfig().display());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct LocalCluster {
    layout: Layout,
}

impl LocalCluster {
    /// The cluster at the default (or environment-chosen) location.
    pub fn from_env() -> Result<Self, ClusterError> {
        Ok(Self::new(Layout::from_env()?))
    }

    /// The cluster described by `layout`.
    pub fn new(layout: Layout) -> Self {
        Self { layout }
    }

    /// Its files and ports.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn daemon(&self, c: Component) -> Daemon {
        Daemon::new(c.name(), &self.layout.run_dir(), &self.layout.log_dir())
    }

    /// A client authenticated as the cluster administrator.
    pub async fn client(&self) -> Result<kube::Client, ClusterError> {
        client_from_kubeconfig(&self.layout.kubeconfig()).await
    }

    /// Starts the control plane unless it already runs; see the module documentation.
    pub async fn up(&self, options: UpOptions) -> Result<UpOutcome, ClusterError> {
        let layout = self.layout.clone();
        let lock = blocking("take the cluster lock", move || lock(&layout)).await?;

        // Everything alive: give a busy API server some time before concluding it is
        // broken and restarting the whole control plane.
        if Component::ALL.iter().all(|c| self.daemon(*c).is_running())
            && self
                .wait_ready(Component::ApiServer, Duration::from_secs(30), || {
                    self.apiserver_ready()
                })
                .await
                .is_ok()
        {
            drop(lock);
            return Ok(UpOutcome::AlreadyRunning);
        }
        let started = Instant::now();
        let this = self.clone();
        let bin = blocking("prepare the control plane", move || this.prepare(options)).await?;

        self.start(Component::Etcd, &bin).await?;
        self.wait_ready(Component::Etcd, Duration::from_secs(60), || {
            self.healthy(Component::Etcd)
        })
        .await?;
        self.start(Component::ApiServer, &bin).await?;
        self.wait_ready(Component::ApiServer, Duration::from_secs(180), || {
            self.healthy(Component::ApiServer)
        })
        .await?;
        self.start(Component::ControllerManager, &bin).await?;
        self.start(Component::Scheduler, &bin).await?;
        for c in [Component::ControllerManager, Component::Scheduler] {
            self.wait_ready(c, Duration::from_secs(60), || self.healthy(c))
                .await?;
        }
        let client = self.client().await?;
        self.wait_ready(
            Component::ControllerManager,
            Duration::from_secs(120),
            || default_service_account(&client),
        )
        .await?;
        eprintln!(
            "==> local control plane {KUBERNETES_VERSION} ready in {} (export KUBECONFIG={})",
            format_elapsed(started.elapsed()),
            self.layout.kubeconfig().display()
        );
        drop(lock);
        Ok(UpOutcome::Started)
    }

    /// Blocking part of `up`: stop leftovers, binaries, PKI, kubeconfigs, port checks.
    fn prepare(&self, options: UpOptions) -> Result<PathBuf, ClusterError> {
        let l = &self.layout;
        // Whatever is left of an earlier cluster (some components alive, some dead, PID
        // files of killed processes) is stopped and cleaned before starting afresh.
        self.stop_all()?;
        for dir in [l.state().to_owned(), l.run_dir(), l.log_dir()] {
            create_dir(&dir)?;
        }
        if options.fresh {
            remove_all(l.etcd_data())?;
        }
        create_dir(l.etcd_data())?;
        let bin = toolchain::ensure_binaries(l)?;
        let kubectl = toolchain::ensure_kubectl(l)?;
        if kubectl.starts_with(l.bin_dir()) {
            eprintln!(
                "    no kubectl on PATH; using {} (v1.20.2, without WebSocket streaming)",
                kubectl.display()
            );
        }
        let pki = l.pki();
        if !pki.is_complete() {
            let p = Progress::start("generating certificates", None);
            pki.generate()?;
            p.finish();
        }
        let server = l.server_url();
        kubeconfig::write_kubeconfig(&l.kubeconfig(), &server, &pki.ca().cert, &pki.admin())?;
        for (name, pair) in [
            ("controller-manager", pki.controller_manager()),
            ("scheduler", pki.scheduler()),
        ] {
            kubeconfig::write_kubeconfig(
                &l.component_kubeconfig(name),
                &server,
                &pki.ca().cert,
                &pair,
            )?;
        }
        let ports = &l.ports;
        let mut needed: Vec<(&'static str, u16)> = Component::ALL
            .iter()
            .map(|c| (c.name(), c.port(ports)))
            .collect();
        needed.push(("etcd (peer)", ports.etcd_peer));
        for (component, port) in needed {
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
                return Err(ClusterError::PortInUse { component, port });
            }
        }
        Ok(bin)
    }

    async fn start(&self, c: Component, bin: &Path) -> Result<(), ClusterError> {
        let (program, args) = self.command(c, bin);
        let daemon = self.daemon(c);
        // Mark where this start begins in the (appended) log.
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(daemon.log())
            .and_then(|mut f| {
                use std::io::Write as _;
                writeln!(f, "---- vk-testkit: starting {} ----", c.name())
            });
        let pid = daemon.start(&program, &args)?;
        eprintln!("    started {} (pid {pid})", c.name());
        Ok(())
    }

    /// Program and arguments of a component.
    fn command(&self, c: Component, bin: &Path) -> (PathBuf, Vec<String>) {
        let l = &self.layout;
        let p = &l.ports;
        let pki = l.pki();
        let path = |p: &Path| p.display().to_string();
        let etcd_url = format!("http://127.0.0.1:{}", p.etcd_client);
        let peer_url = format!("http://127.0.0.1:{}", p.etcd_peer);
        let issuer = "https://kubernetes.default.svc.cluster.local";
        match c {
            Component::Etcd => (
                toolchain::which("etcd").unwrap_or_else(|| "etcd".into()),
                vec![
                    "--name=vk-local".into(),
                    format!("--data-dir={}", path(l.etcd_data())),
                    format!("--listen-client-urls={etcd_url}"),
                    format!("--advertise-client-urls={etcd_url}"),
                    format!("--listen-peer-urls={peer_url}"),
                    format!("--initial-advertise-peer-urls={peer_url}"),
                    format!("--initial-cluster=vk-local={peer_url}"),
                    "--quota-backend-bytes=4294967296".into(),
                    "--logger=zap".into(),
                ],
            ),
            Component::ApiServer => (
                bin.join(c.name()),
                vec![
                    "--advertise-address=127.0.0.1".into(),
                    "--bind-address=127.0.0.1".into(),
                    format!("--secure-port={}", p.apiserver),
                    "--insecure-port=0".into(),
                    format!("--etcd-servers={etcd_url}"),
                    format!("--client-ca-file={}", path(&pki.ca().cert)),
                    format!("--tls-cert-file={}", path(&pki.apiserver().cert)),
                    format!("--tls-private-key-file={}", path(&pki.apiserver().key)),
                    format!(
                        "--kubelet-client-certificate={}",
                        path(&pki.apiserver_kubelet_client().cert)
                    ),
                    format!(
                        "--kubelet-client-key={}",
                        path(&pki.apiserver_kubelet_client().key)
                    ),
                    format!("--kubelet-certificate-authority={}", path(&pki.ca().cert)),
                    "--kubelet-preferred-address-types=InternalIP,Hostname".into(),
                    format!(
                        "--service-account-key-file={}",
                        path(&pki.service_account_pub())
                    ),
                    format!(
                        "--service-account-signing-key-file={}",
                        path(&pki.service_account_key())
                    ),
                    format!("--service-account-issuer={issuer}"),
                    "--service-cluster-ip-range=10.0.0.0/24".into(),
                    "--authorization-mode=Node,RBAC".into(),
                    "--enable-admission-plugins=NodeRestriction,ServiceAccount".into(),
                    "--allow-privileged=true".into(),
                    "--event-ttl=1h".into(),
                    format!("--cert-dir={}", path(&l.state().join("apiserver-certs"))),
                    "--profiling=false".into(),
                ],
            ),
            Component::ControllerManager => (
                bin.join(c.name()),
                vec![
                    format!(
                        "--kubeconfig={}",
                        path(&l.component_kubeconfig("controller-manager"))
                    ),
                    "--address=127.0.0.1".into(),
                    format!("--port={}", p.controller_manager),
                    "--secure-port=0".into(),
                    format!(
                        "--service-account-private-key-file={}",
                        path(&pki.service_account_key())
                    ),
                    format!("--root-ca-file={}", path(&pki.ca().cert)),
                    format!("--cluster-signing-cert-file={}", path(&pki.ca().cert)),
                    format!("--cluster-signing-key-file={}", path(&pki.ca().key)),
                    "--use-service-account-credentials=true".into(),
                    "--leader-elect=false".into(),
                    "--cluster-name=vk-local".into(),
                    "--profiling=false".into(),
                ],
            ),
            Component::Scheduler => (
                bin.join(c.name()),
                vec![
                    format!(
                        "--kubeconfig={}",
                        path(&l.component_kubeconfig("scheduler"))
                    ),
                    "--address=127.0.0.1".into(),
                    format!("--port={}", p.scheduler),
                    "--secure-port=0".into(),
                    "--leader-elect=false".into(),
                    "--profiling=false".into(),
                ],
            ),
        }
    }

    /// Polls `check` until it succeeds, the component's process dies, or `timeout`.
    async fn wait_ready<F, Fut>(
        &self,
        c: Component,
        timeout: Duration,
        mut check: F,
    ) -> Result<(), ClusterError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let daemon = self.daemon(c);
        let deadline = Instant::now() + timeout;
        loop {
            if !daemon.is_running() {
                return Err(ClusterError::Exited {
                    component: c.name(),
                    log: daemon.log().to_owned(),
                    tail: tail(daemon.log(), 30),
                });
            }
            let last_error = match check().await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(ClusterError::NotReady {
                    component: c.name(),
                    seconds: timeout.as_secs(),
                    last_error,
                    log: daemon.log().to_owned(),
                    tail: tail(daemon.log(), 30),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `Ok` when component `c` answers its health check: etcd's `/health`, the API
    /// server's `/readyz`, the controller-manager's and scheduler's `/healthz`.
    async fn healthy(&self, c: Component) -> Result<(), String> {
        match c {
            Component::Etcd => http_health(self.layout.ports.etcd_client, "/health", "true").await,
            Component::ApiServer => self.apiserver_ready().await,
            Component::ControllerManager | Component::Scheduler => {
                http_health(c.port(&self.layout.ports), "/healthz", "ok").await
            }
        }
    }

    /// Kills one component with SIGKILL, as a crash would, and leaves the others
    /// running; [`LocalCluster::start_component`] starts it again. For fault tests, on a
    /// cluster of their own (never one that others use).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), vk_testkit::ClusterError> {
    /// use vk_testkit::cluster::Component;
    /// let cluster = vk_testkit::LocalCluster::new(vk_testkit::Layout::named("faults")?);
    /// cluster.kill_component(Component::ApiServer)?;
    /// // ... observe what the clients do while the API server is gone ...
    /// cluster.start_component(Component::ApiServer).await?;
    /// # Ok(()) }
    /// ```
    pub fn kill_component(&self, c: Component) -> Result<(), ClusterError> {
        let _lock = lock(&self.layout)?;
        self.daemon(c).kill()
    }

    /// The process id of a running component (`None` when it is not running), e.g. to
    /// sample the API server's CPU and memory during a benchmark.
    ///
    /// ```no_run
    /// use vk_testkit::cluster::Component;
    /// let cluster = vk_testkit::LocalCluster::from_env()?;
    /// if let Some(pid) = cluster.component_pid(Component::ApiServer) {
    ///     println!("kube-apiserver runs as {pid}");
    /// }
    /// # Ok::<(), vk_testkit::ClusterError>(())
    /// ```
    pub fn component_pid(&self, c: Component) -> Option<u32> {
        match self.daemon(c).state() {
            DaemonState::Running { pid } => u32::try_from(pid).ok(),
            _ => None,
        }
    }

    /// Stops one component cleanly (SIGTERM, SIGKILL after 10 s) and leaves the others
    /// running; [`LocalCluster::start_component`] starts it again with the same data.
    pub fn stop_component(&self, c: Component) -> Result<(), ClusterError> {
        let _lock = lock(&self.layout)?;
        if let DaemonState::Running { pid } = self.daemon(c).state() {
            eprintln!("    stopping {} (pid {pid})", c.name());
        }
        self.daemon(c).stop(Duration::from_secs(10))
    }

    /// Starts one component that was killed or stopped (same arguments, data and
    /// ports; nothing if it runs) and waits until it is healthy (up to 3 minutes).
    pub async fn start_component(&self, c: Component) -> Result<(), ClusterError> {
        let layout = self.layout.clone();
        let lock = blocking("take the cluster lock", move || lock(&layout)).await?;
        if !self.daemon(c).is_running() {
            self.start(c, &self.layout.bin_dir()).await?;
        }
        self.wait_ready(c, Duration::from_secs(180), || self.healthy(c))
            .await?;
        drop(lock);
        Ok(())
    }

    /// `Ok` when kube-apiserver's `/readyz` says `ok`.
    pub async fn apiserver_ready(&self) -> Result<(), String> {
        if !self.layout.kubeconfig().is_file() {
            return Err("no kubeconfig yet".into());
        }
        let client = self.client().await.map_err(|e| e.to_string())?;
        let request = http::Request::get("/readyz")
            .body(Vec::new())
            .map_err(|e| e.to_string())?;
        let body = tokio::time::timeout(Duration::from_secs(5), client.request_text(request))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        if body.trim() == "ok" {
            Ok(())
        } else {
            Err(body)
        }
    }

    /// Stops every component this cluster recorded (reverse start order) and, with
    /// `wipe`, deletes its state (certificates, kubeconfigs, logs, etcd data). The
    /// binary cache is kept.
    pub fn down(&self, wipe: bool) -> Result<(), ClusterError> {
        let l = &self.layout;
        if l.state().exists() {
            let _lock = lock(l)?;
            self.stop_all()?;
        }
        if wipe {
            remove_all(l.etcd_data())?;
            remove_all(l.state())?;
        }
        Ok(())
    }

    fn stop_all(&self) -> Result<(), ClusterError> {
        for c in Component::ALL.iter().rev() {
            let daemon = self.daemon(*c);
            if let DaemonState::Running { pid } = daemon.state() {
                eprintln!("    stopping {} (pid {pid})", c.name());
            }
            daemon.stop(Duration::from_secs(10))?;
        }
        Ok(())
    }

    /// What runs.
    pub async fn status(&self) -> ClusterStatus {
        let l = &self.layout;
        let components = Component::ALL
            .iter()
            .map(|c| {
                let d = self.daemon(*c);
                ComponentStatus {
                    component: *c,
                    state: d.state(),
                    port: c.port(&l.ports),
                    log: d.log().to_owned(),
                }
            })
            .collect();
        let bin = l.bin_dir();
        let built = CONTROL_PLANE_BINARIES.iter().all(|b| bin.join(b).is_file());
        ClusterStatus {
            components,
            apiserver_ready: self.apiserver_ready().await,
            kubeconfig: l.kubeconfig(),
            binaries: (bin, built),
        }
    }
}

/// A client from a kubeconfig file (its current context).
pub async fn client_from_kubeconfig(path: &Path) -> Result<kube::Client, ClusterError> {
    crate::install_crypto_provider();
    let err = |reason: String| ClusterError::Client {
        kubeconfig: path.to_owned(),
        reason,
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| err(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| err(e.to_string()))
}

/// Takes the exclusive cluster lock (blocking until another `up`/`down` finishes).
fn lock(layout: &Layout) -> Result<std::fs::File, ClusterError> {
    create_dir(layout.state())?;
    let path = layout.lock_file();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| ClusterError::Io {
            operation: "open lock file",
            path: path.clone(),
            source,
        })?;
    file.lock().map_err(|source| ClusterError::Io {
        operation: "lock",
        path,
        source,
    })?;
    Ok(file)
}

async fn blocking<T, F>(operation: &'static str, f: F) -> Result<T, ClusterError>
where
    F: FnOnce() -> Result<T, ClusterError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ClusterError::Interrupted {
            operation,
            reason: e.to_string(),
        })?
}

/// A plain-HTTP GET on loopback that must answer 200 with `expect` in the body.
async fn http_health(port: u16, path: &str, expect: &str) -> Result<(), String> {
    let (code, body) = tokio::time::timeout(Duration::from_secs(5), crate::http::get(port, path))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    if code == 200 && body.contains(expect) {
        Ok(())
    } else {
        Err(format!("HTTP {code}: {}", body.trim()))
    }
}

async fn default_service_account(client: &kube::Client) -> Result<(), String> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    match api.get_opt("default").await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err("ServiceAccount default/default does not exist yet".into()),
        Err(e) => Err(e.to_string()),
    }
}
