//! # vk-cli: the command line of provider binaries
//!
//! A provider binary's `main()` hands [`main`] its name and a factory that builds the
//! provider for each virtual node; `vk-cli` does the rest: flags, environment and config
//! file ([`Flags`], [`Settings`]), logging, the Kubernetes client (with QPS/burst
//! limits), building and running the node(s), and a clean shutdown on Ctrl-C/SIGTERM.
//!
//! ```no_run
//! use std::sync::Arc;
//! # struct MyProvider;
//! # #[async_trait::async_trait]
//! # impl vk_core::PodLifecycleHandler for MyProvider {
//! #   async fn create_pod(&self, _: &k8s_openapi::api::core::v1::Pod) -> vk_errdefs::Result<()> { Ok(()) }
//! #   async fn update_pod(&self, _: &k8s_openapi::api::core::v1::Pod) -> vk_errdefs::Result<()> { Ok(()) }
//! #   async fn delete_pod(&self, _: &k8s_openapi::api::core::v1::Pod) -> vk_errdefs::Result<()> { Ok(()) }
//! #   async fn get_pod(&self, _: &str, _: &str) -> vk_errdefs::Result<Option<k8s_openapi::api::core::v1::Pod>> { Ok(None) }
//! #   async fn get_pod_status(&self, _: &str, _: &str) -> vk_errdefs::Result<Option<k8s_openapi::api::core::v1::PodStatus>> { Ok(None) }
//! #   async fn get_pods(&self) -> vk_errdefs::Result<Vec<k8s_openapi::api::core::v1::Pod>> { Ok(vec![]) }
//! # }
//! fn main() -> std::process::ExitCode {
//!     vk_cli::main(
//!         vk_cli::ProviderInfo { name: "example", binary: "vk-example", version: "0.1.0", about: "An example." },
//!         |ctx: vk_cli::ProviderContext| async move {
//!             Ok(vk_cli::Provider { template: ctx.template, pods: Arc::new(MyProvider), node: None })
//!         },
//!     )
//! }
//! ```
//!
//! ## The binary chooses the Kubernetes version
//!
//! `vk-cli` and the other library crates depend on `k8s-openapi` without a version
//! feature. A provider binary must enable exactly one in its own `Cargo.toml` —
//! usually `earliest`, the oldest API server it supports — or `k8s-openapi` refuses to
//! build ("None of the v1_* features are enabled"):
//!
//! ```toml
//! [dependencies]
//! vk-cli = "0.1"
//! k8s-openapi = { version = "0.29", default-features = false, features = ["std", "earliest"] }
//! ```
//!
//! A library built on `vk-cli` enables a version only in `[dev-dependencies]` (and in
//! `[package.metadata.docs.rs]` for its documentation). `cargo xtask new-provider` writes
//! a `Cargo.toml` that follows this rule (see the workspace README, "Writing a provider").

pub mod admin;
pub mod allocator;
pub mod arenas;
mod command_line;
mod duration;
mod election;
mod kubelet_api;
pub mod node_meta;
pub mod pod_root;
pub mod provider_config;
mod settings;
pub mod upstream;

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Taint;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use vk_core::node::{NodeControllerConfig, NodeTemplate};
use vk_core::pod::PodControllerConfig;
use vk_core::runtime::{Fleet, VirtualNode};
use vk_core::{ResourceAccess, SharedNodeProvider, SharedPodHandler};

pub use command_line::{NamesEnv, command, parse_command_line};
pub use duration::parse_duration;
pub use provider_config::{
    InvalidValue, ProviderConfig, ProviderConfigError, env_prefix, load_provider_config,
};
pub use settings::{
    FLEET_WORKER_THREADS, Flags, MAX_WORKER_THREADS, Resolved, Settings, SettingsError,
};
pub use upstream::go_bool;

/// A boxed error from a provider factory.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Who the binary is.
#[derive(Debug, Clone, Copy)]
pub struct ProviderInfo {
    /// Provider name (`mock`, `process`...): the default taint value and node info.
    pub name: &'static str,
    /// Binary name for `--help`.
    pub binary: &'static str,
    /// Version for `--version`.
    pub version: &'static str,
    /// One paragraph for `--help`.
    pub about: &'static str,
}

/// What a provider factory gets for each virtual node.
#[derive(Debug)]
pub struct ProviderContext {
    /// The provider's name ([`ProviderInfo::name`]).
    pub provider: &'static str,
    /// The node's name.
    pub node_name: String,
    /// How many nodes this process runs.
    pub node_count: usize,
    /// `--provider-config`.
    pub provider_config: Option<PathBuf>,
    /// The node as it will be registered: set capacity, labels... here.
    pub template: NodeTemplate,
    /// Read access to ConfigMaps, Secrets, Services and the Node.
    pub resources: ResourceAccess,
    /// The API server this binary talks to (`https://host:port/`), e.g. for a provider
    /// that gives its pods an address of the API server they can reach.
    pub api_server: String,
    /// Kubernetes events of this node (the core records its own through the same
    /// publisher); e.g. `events.record(vk_core::events::pod_ref(&pod), true, "Reason",
    /// "Action", "what happened")`.
    pub events: vk_core::events::EventSink,
    /// All settings.
    pub settings: Settings,
}

impl ProviderContext {
    /// The provider's configuration: `--provider-config` (TOML, or JSON by extension)
    /// under the `VK_<PROVIDER>_*` environment variables, checked by
    /// [`ProviderConfig::validate`]; without a file, the type's defaults and the
    /// variables. See [`provider_config`].
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, Default)] #[serde(default)] struct MyConfig { region: String }
    /// # impl vk_cli::ProviderConfig for MyConfig {}
    /// # async fn factory(ctx: vk_cli::ProviderContext) -> Result<(), vk_cli::BoxError> {
    /// let config: MyConfig = ctx.load_config()?;
    /// # Ok(()) }
    /// ```
    pub fn load_config<T: ProviderConfig>(&self) -> Result<T, ProviderConfigError> {
        load_provider_config(self.provider_config.as_deref(), &env_prefix(self.provider))
    }
}

/// What a provider factory returns.
pub struct Provider {
    /// The node template (usually the context's, with capacity filled in).
    pub template: NodeTemplate,
    /// Pod operations.
    pub pods: SharedPodHandler,
    /// Node hooks (ping, pushed status); `None` for the naive default.
    pub node: Option<SharedNodeProvider>,
}

/// Errors that stop the binary.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad settings.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// No usable kubeconfig.
    #[error(
        "loading the Kubernetes client configuration failed: {0} (pass --kubeconfig or set KUBECONFIG)"
    )]
    KubeConfig(String),
    /// The client could not be built.
    #[error("creating the Kubernetes client failed: {0}")]
    Client(#[from] kube::Error),
    /// The provider factory failed.
    #[error("starting the {provider} provider for node {node} failed: {source}")]
    Provider {
        /// Provider name.
        provider: &'static str,
        /// Node name.
        node: String,
        /// Cause.
        source: BoxError,
    },
    /// The node could not be built.
    #[error(transparent)]
    Build(#[from] vk_core::runtime::BuildError),
    /// The node did not become ready in time.
    #[error("the node(s) did not register and sync within --startup-timeout {0:?}")]
    StartupTimeout(Duration),
    /// Logging or span export could not be set up.
    #[error("telemetry: {0}")]
    Telemetry(#[from] vk_trace::TraceError),
    /// The kubelet API could not be set up.
    #[error("kubelet API: {0}")]
    KubeletApi(String),
    /// The admin listener could not bind.
    #[error("--metrics-addr {addr}: cannot listen: {source} (pick another address or \"off\")")]
    Admin {
        /// The address.
        addr: std::net::SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The async runtime could not start.
    #[error("starting the async runtime failed: {0}")]
    Runtime(std::io::Error),
    /// The task running the nodes panicked or was cancelled.
    #[error("running the virtual node(s) failed: their task ended abnormally: {0}")]
    NodesTask(tokio::task::JoinError),
    /// Leader election could not be set up.
    #[error(transparent)]
    LeaderElection(#[from] vk_core::election::ElectionError),
    /// This process lost the election Lease of a node it led: it stopped driving the
    /// node(s) and exits, so that it restarts as a standby.
    #[error(
        "lost the leader election lease of node {node}: stopped driving it (another replica takes over)"
    )]
    LeadershipLost {
        /// The node.
        node: String,
    },
}

/// Parses the command line and runs the provider; returns the process exit code.
/// Without the `jemalloc` feature ([`allocator`]), on glibc, it first caps malloc's
/// arenas ([`arenas`]) by executing the binary again with `MALLOC_ARENA_MAX=2` unless
/// the variable is set.
pub fn main<F, Fut>(info: ProviderInfo, factory: F) -> ExitCode
where
    F: Fn(ProviderContext) -> Fut,
    Fut: Future<Output = Result<Provider, BoxError>>,
{
    // Before any thread exists (see the module). jemalloc has no use for it.
    #[cfg(not(feature = "jemalloc"))]
    arenas::cap_glibc_arenas();
    let flags = match parse_command_line(&info, std::env::args_os()) {
        Ok(f) => f,
        Err(e) => e.exit(),
    };
    match run(info, flags, factory) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: error: {e}", info.binary);
            ExitCode::FAILURE
        }
    }
}

/// Runs the provider with already-parsed flags (what [`main`] does after parsing).
pub fn run<F, Fut>(info: ProviderInfo, flags: Flags, factory: F) -> Result<(), CliError>
where
    F: Fn(ProviderContext) -> Fut,
    Fut: Future<Output = Result<Provider, BoxError>>,
{
    let resolved = Settings::load(&flags)?;
    upstream::check_provider(resolved.provider.as_deref(), info.binary, info.name)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = resolved.settings.runtime_workers() {
        builder.worker_threads(workers);
    }
    let runtime = builder.enable_all().build().map_err(CliError::Runtime)?;
    runtime.block_on(async {
        // Inside the runtime: the OTLP exporter runs on it.
        let telemetry = init_telemetry(&info, &resolved)?;
        for notice in &resolved.notices {
            warn!("{notice}");
        }
        let filter = telemetry.as_ref().map(vk_trace::Telemetry::filter);
        let result = run_async(info, resolved, factory, filter).await;
        if let Some(t) = telemetry {
            t.shutdown().await;
        }
        result
    })
}

/// Logging and span export from the settings. A process that already has a global
/// subscriber (several runs in one test process) keeps it and gets no filter handle.
fn init_telemetry(
    info: &ProviderInfo,
    resolved: &Resolved,
) -> Result<Option<vk_trace::Telemetry>, CliError> {
    let config = vk_trace::TraceConfig {
        log_format: resolved.log_format,
        log_filter: vk_trace::default_filter(&resolved.log_filter),
        otlp: resolved.otlp.clone(),
        service_name: resolved
            .service_name
            .clone()
            .unwrap_or_else(|| info.binary.to_owned()),
    };
    let otlp = config.otlp.clone();
    match vk_trace::init(config) {
        Ok(t) => {
            if let Some(o) = otlp {
                info!(endpoint = %o.traces_url(), protocol = ?o.protocol, sample_ratio = o.sample_ratio, "exporting spans with OTLP");
            }
            Ok(Some(t))
        }
        Err(vk_trace::TraceError::InstallSubscriber(_)) => Ok(None),
        Err(e) => Err(CliError::Telemetry(e)),
    }
}

/// The client configuration: the kubeconfig file(s) of the settings, merged in order as
/// kubectl merges a `KUBECONFIG` list (the first to set a value wins), else the
/// ServiceAccount of the pod root when run as a pod without a mount namespace
/// ([`pod_root`]), else kube's inference (~/.kube/config, then the in-cluster service
/// account).
async fn kube_config(settings: &Settings) -> Result<kube::Config, CliError> {
    let paths = settings.kubeconfig_paths();
    if paths.is_empty()
        && let Some(dir) = pod_root::service_account_dir()
    {
        info!(dir = %dir.display(), "in-cluster configuration from the pod root's ServiceAccount");
        return pod_root::in_cluster_config(&dir)
            .await
            .map_err(|e| CliError::KubeConfig(e.to_string()));
    }
    if paths.is_empty() {
        return kube::Config::infer()
            .await
            .map_err(|e| CliError::KubeConfig(e.to_string()));
    }
    let mut merged = kube::config::Kubeconfig::default();
    for path in &paths {
        let next = kube::config::Kubeconfig::read_from(path)
            .map_err(|e| CliError::KubeConfig(format!("{}: {e}", path.display())))?;
        merged = merged
            .merge(next)
            .map_err(|e| CliError::KubeConfig(format!("merging {}: {e}", path.display())))?;
    }
    kube::Config::from_custom_kubeconfig(merged, &Default::default())
        .await
        .map_err(|e| CliError::KubeConfig(e.to_string()))
}

/// Runs the process's virtual nodes until a signal, a fatal start-up error or the end of
/// every node: client, nodes (each with its provider and kubelet API), admin listener,
/// then the fleet.
async fn run_async<F, Fut>(
    info: ProviderInfo,
    resolved: Resolved,
    factory: F,
    log_filter: Option<vk_trace::FilterHandle>,
) -> Result<(), CliError>
where
    F: Fn(ProviderContext) -> Fut,
    Fut: Future<Output = Result<Provider, BoxError>>,
{
    let settings = &resolved.settings;
    let config = kube_config(settings).await?;
    let api_server = config.cluster_url.to_string();
    let client_ca = if settings.no_kubelet_api {
        None
    } else {
        kubelet_api::client_ca(&resolved, &config)?
    };
    let (client, api_stats) = vk_core::client::build(config, client_limits(settings))?;
    let api = Api {
        client,
        server: api_server,
    };
    let names = node_names(settings);
    let tls = if settings.no_kubelet_api {
        None
    } else {
        Some(kubelet_api::tls_config(&resolved, &names, client_ca)?)
    };
    let mut nodes = Vec::with_capacity(names.len());
    let mut endpoints = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (node, endpoint) =
            build_node(&info, &resolved, &api, &factory, name, i, tls.as_ref()).await?;
        nodes.push(node);
        endpoints.push(endpoint);
    }
    let electors = match resolved.leader_election {
        Some(config) => Some(election::electors(&api.client, settings, config, &names)?),
        None => None,
    };
    // Without election every kubelet API listens from the start (a port that is taken
    // stops the binary here); with election, a node's opens when this process leads it.
    let mut listening = Vec::new();
    if electors.is_none() {
        for endpoint in endpoints.drain(..).flatten() {
            listening.push(endpoint.bind().await?);
        }
    }

    let shutdown = cancel_on_signal();
    let nodes = Arc::new(nodes);
    let ready = ready_check(&nodes, electors.as_deref());
    let admin = start_admin(&resolved, api_stats, &nodes, ready, log_filter, &shutdown).await?;
    info!(
        nodes = names.len(),
        provider = info.name,
        leader_elect = electors.is_some(),
        // What the runtime has, not what was asked for (`--worker-threads`).
        worker_threads = tokio::runtime::Handle::current().metrics().num_workers(),
        "starting virtual node(s)"
    );
    // The nodes run as a task on the runtime's workers, not on the thread blocked in
    // `block_on`: polled there, every wake-up of a node (a lease tick, a response) would
    // hop between that thread and the workers that run the client's connections (an idle
    // 1,000-node vk-mock: 2.67 → 1.84 CPU-s/min, 1,411 → 484 context switches a second).
    let task_shutdown = shutdown.clone();
    let run = tokio::spawn(async move {
        let shutdown = task_shutdown;
        match electors {
            Some(electors) => {
                election::run_elected(electors, &nodes, endpoints, &resolved, &shutdown).await
            }
            None => {
                for endpoint in listening {
                    tokio::spawn(endpoint.serve(shutdown.clone()));
                }
                run_nodes(&nodes, &names, &resolved, &shutdown).await
            }
        }
    });
    let result = run.await.unwrap_or_else(|e| Err(CliError::NodesTask(e)));
    shutdown.cancel();
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    result
}

/// The client-side rate limit: client-go's fixed QPS and burst when either flag is set
/// (50 QPS / burst 100 per node for the one not set, as the kubelet); otherwise the
/// adaptive limit ([`vk_core::client::ClientLimits::adaptive_for_nodes`]), which never
/// throttles a healthy API server and slows down when it answers 429.
fn client_limits(settings: &Settings) -> vk_core::client::ClientLimits {
    let scale = u32::try_from(settings.nodes).unwrap_or(u32::MAX);
    if settings.kube_api_qps.is_none() && settings.kube_api_burst.is_none() {
        return vk_core::client::ClientLimits::adaptive_for_nodes(scale);
    }
    vk_core::client::ClientLimits::Fixed {
        qps: settings.kube_api_qps.unwrap_or(50.0 * scale as f32),
        burst: settings
            .kube_api_burst
            .unwrap_or(100u32.saturating_mul(scale)),
    }
}

/// The names of the nodes: `--nodename`, or `NAME-0` ... `NAME-(N-1)` with `--nodes N`.
fn node_names(settings: &Settings) -> Vec<String> {
    match settings.nodes {
        1 => vec![settings.nodename.clone()],
        n => (0..n)
            .map(|i| format!("{}-{i}", settings.nodename))
            .collect(),
    }
}

/// The node as the settings describe it, before the provider adds its capacity.
fn node_template(info: &ProviderInfo, resolved: &Resolved, name: &str, port: u16) -> NodeTemplate {
    let settings = &resolved.settings;
    let mut template = NodeTemplate::new(name.to_owned(), info.name);
    // Kubernetes spells the OS in lowercase (the Go charts pass "Linux").
    template.set_os(settings.os.to_ascii_lowercase());
    template.internal_ip = Some(settings.node_ip.clone());
    template.kubelet_port = i32::from(port);
    template.taints = if settings.disable_taint {
        Vec::new()
    } else {
        vec![Taint {
            key: settings.taint_key.clone(),
            value: Some(
                settings
                    .taint_value
                    .clone()
                    .unwrap_or_else(|| info.name.to_owned()),
            ),
            effect: settings.taint_effect.clone(),
            time_added: None,
        }]
    };
    // The kubelet's --node-labels and --register-with-taints (the user's win over ours).
    template.labels.extend(resolved.node_labels.clone());
    template.taints.retain(|t| {
        !resolved
            .register_with_taints
            .iter()
            .any(|r| r.key == t.key && r.effect == t.effect)
    });
    template
        .taints
        .extend(resolved.register_with_taints.iter().cloned());
    template
}

/// The process's Kubernetes client and the API server it talks to.
struct Api {
    client: kube::Client,
    server: String,
}

/// Node `index` of the process: asks the factory for its provider, then builds the
/// virtual node and (unless `--no-kubelet-api`) its kubelet API endpoint.
async fn build_node<F, Fut>(
    info: &ProviderInfo,
    resolved: &Resolved,
    api: &Api,
    factory: &F,
    name: &str,
    index: usize,
    tls: Option<&Arc<rustls::ServerConfig>>,
) -> Result<(VirtualNode, Option<kubelet_api::Endpoint>), CliError>
where
    F: Fn(ProviderContext) -> Fut,
    Fut: Future<Output = Result<Provider, BoxError>>,
{
    let settings = &resolved.settings;
    let client = &api.client;
    let port = node_port(settings.listen_port, index)?;
    let template = node_template(info, resolved, name, port);
    let builder = VirtualNode::builder(client.clone(), template.clone());
    let events = vk_core::events::EventSink::start(client.clone(), name);
    let ctx = ProviderContext {
        provider: info.name,
        events: events.clone(),
        node_name: name.to_owned(),
        node_count: settings.nodes,
        provider_config: settings.provider_config.clone(),
        template,
        resources: builder.resources(),
        api_server: api.server.clone(),
        settings: settings.clone(),
    };
    let provider = factory(ctx).await.map_err(|source| CliError::Provider {
        provider: info.name,
        node: name.to_owned(),
        source,
    })?;
    let pods = Arc::clone(&provider.pods);
    // The factory may have changed the template (capacity); build with its version.
    let mut builder = VirtualNode::builder(client.clone(), provider.template)
        .event_sink(events)
        .pod_handler(provider.pods)
        .pod_config(PodControllerConfig {
            workers: settings.pod_sync_workers,
            dangling_check_interval: resolved.resync,
            success_events: !settings.no_success_events,
            ..Default::default()
        })
        .node_config(NodeControllerConfig::default());
    if let Some(node_provider) = provider.node {
        builder = builder.node_provider(node_provider);
    }
    let node = builder.build()?;
    // `/pods` lists what the pod controller sees in the API, as a kubelet does.
    let lister = node.pods().lister();
    let endpoint = match tls {
        Some(tls) => Some(
            kubelet_api::endpoint(
                resolved,
                name,
                port,
                pods,
                move || lister.list(),
                client.clone(),
                Arc::clone(tls),
            )
            .await?,
        ),
        None => None,
    };
    Ok((node, endpoint))
}

/// A token cancelled at Ctrl-C or SIGTERM.
fn cancel_on_signal() -> CancellationToken {
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutting down");
        token.cancel();
    });
    shutdown
}

/// What `/readyz` reports: every node ready; with leader election, every node this
/// process leads (a standby is ready: it is healthy and waiting, and a rolling update
/// must be able to replace it).
fn ready_check(
    nodes: &Arc<Vec<VirtualNode>>,
    electors: Option<&[vk_core::election::LeaderElector]>,
) -> Box<dyn Fn() -> bool + Send + Sync> {
    let nodes = Arc::clone(nodes);
    match electors {
        None => Box::new(move || nodes.iter().all(VirtualNode::is_ready)),
        Some(electors) => {
            let leading: Vec<_> = electors.iter().map(|e| e.leading()).collect();
            Box::new(move || {
                nodes
                    .iter()
                    .zip(&leading)
                    .all(|(node, leading)| !*leading.borrow() || node.is_ready())
            })
        }
    }
}

/// Starts the admin listener (`--metrics-addr`) unless it is off.
async fn start_admin(
    resolved: &Resolved,
    api_stats: vk_core::client::ApiStats,
    nodes: &Arc<Vec<VirtualNode>>,
    ready: Box<dyn Fn() -> bool + Send + Sync>,
    log_filter: Option<vk_trace::FilterHandle>,
    shutdown: &CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<()>>, CliError> {
    let Some(addr) = resolved.metrics_addr else {
        return Ok(None);
    };
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(vk_core::metrics::ApiCollector(api_stats)));
    registry.register_collector(Box::new(vk_core::metrics::NodeCollector::new(nodes)));
    let state = Arc::new(admin::AdminState {
        registry,
        ready,
        log_filter,
    });
    let server = admin::bind(addr, state, shutdown.clone())
        .await
        .map_err(|source| CliError::Admin { addr, source })?;
    info!(%addr, "admin listener: /metrics /healthz /readyz /debug/log-filter");
    Ok(Some(tokio::spawn(server)))
}

/// Runs the fleet (watching the pods of `--namespace`, or all) until `shutdown` or its
/// end; fails (after stopping the fleet) when the nodes are not ready within
/// `--startup-timeout`.
async fn run_nodes(
    nodes: &[VirtualNode],
    names: &[String],
    resolved: &Resolved,
    shutdown: &CancellationToken,
) -> Result<(), CliError> {
    let startup_timeout = resolved.startup_timeout;
    let run = Fleet::run_in_namespace(nodes, resolved.namespace.as_deref(), shutdown.clone());
    tokio::pin!(run);
    let ready = async {
        futures::future::join_all(nodes.iter().map(VirtualNode::ready)).await;
        info!(nodes = ?names, "virtual node(s) ready");
    };
    let ready = async {
        match startup_timeout {
            Some(t) => tokio::time::timeout(t, ready)
                .await
                .map_err(|_| CliError::StartupTimeout(t)),
            None => {
                ready.await;
                Ok(())
            }
        }
    };
    tokio::select! {
        r = ready => {
            if let Err(e) = r {
                error!("{e}");
                shutdown.cancel();
                run.await;
                return Err(e);
            }
        }
        () = &mut run => return Ok(()),
    }
    run.await;
    Ok(())
}

/// The kubelet API port of node `i` of a fleet.
fn node_port(base: u16, i: usize) -> Result<u16, CliError> {
    u16::try_from(i)
        .ok()
        .and_then(|i| base.checked_add(i))
        .ok_or_else(|| {
            CliError::KubeletApi(format!(
                "--listen-port {base} + node index {i} exceeds 65535"
            ))
        })
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vk_core::client::ClientLimits;

    #[test]
    fn the_client_limit_is_adaptive_unless_a_flag_fixes_it() {
        let mut settings = Settings::default();
        assert_eq!(
            client_limits(&settings),
            ClientLimits::adaptive_for_nodes(1)
        );
        settings.nodes = 3;
        assert_eq!(
            client_limits(&settings),
            ClientLimits::adaptive_for_nodes(3)
        );
        settings.kube_api_qps = Some(20.0);
        assert_eq!(
            client_limits(&settings),
            ClientLimits::Fixed {
                qps: 20.0,
                burst: 300
            }
        );
        settings.kube_api_qps = None;
        settings.kube_api_burst = Some(7);
        assert_eq!(
            client_limits(&settings),
            ClientLimits::Fixed {
                qps: 150.0,
                burst: 7
            }
        );
    }
}
