//! Flags, environment variables and the config file, layered as
//! **defaults < config file < environment < flags**.
//!
//! Every setting has a flag; upstream virtual-kubelet's environment variables are honoured
//! (`KUBELET_PORT`, `VKUBELET_POD_IP`, `VKUBELET_TAINT_KEY/VALUE/EFFECT`,
//! `APISERVER_CERT_LOCATION`, `APISERVER_KEY_LOCATION`, `APISERVER_CA_CERT_LOCATION`,
//! `KUBECONFIG`, which may list several files, `a:b`, merged as kubectl does). The config
//! file (`--config`, TOML or JSON) uses the flag names with dashes as keys, e.g.
//! `nodename = "vk-1"`, `pod-sync-workers = 20`.
//!
//! A bad value names where it came from: the flag (`--listen-port`), or the environment
//! variable it was read from (`KUBELET_PORT`). The Go project's flags are accepted too
//! (see [`crate::upstream`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use figment::Figment;
use figment::providers::{Format as _, Json, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::command_line::NamesEnv;
use crate::duration::parse_duration;
use crate::upstream::{self, UpstreamFlags, go_bool};

/// Command-line flags (all optional: unset flags fall through to env, file, defaults).
#[derive(Debug, Clone, Default, Parser, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Flags {
    /// Config file (TOML, or JSON with a .json extension) with any of these settings,
    /// keyed by flag name.
    #[arg(long, value_name = "FILE", env = "VK_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// kubeconfig to use (a list of files separated by ':' is merged, as kubectl merges
    /// $KUBECONFIG); without it, ~/.kube/config, then the in-cluster service account.
    #[arg(long, value_name = "FILE[:FILE...]", env = "KUBECONFIG")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,

    /// Name of the virtual node (with --nodes N > 1, nodes are named NAME-0 ... NAME-(N-1)).
    #[arg(long, value_name = "NAME", env = "DEFAULT_NODE_NAME")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodename: Option<String>,

    /// How many virtual nodes this process runs (sharing one client and one pod watch).
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<usize>,

    /// Operating system the node reports (linux, windows; any case).
    #[arg(long, value_name = "OS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,

    /// Watch pods in this namespace only (empty: all namespaces). Pods bound to the node
    /// in other namespaces are then ignored.
    #[arg(long, value_name = "NAMESPACE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// The cluster's DNS domain. Accepted for compatibility with upstream's flag and
    /// handed to the provider in its settings; the core does not use it.
    #[arg(long, value_name = "DOMAIN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_domain: Option<String>,

    /// The provider's own config file.
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_config: Option<PathBuf>,

    /// Port of the kubelet API (published in the node's daemonEndpoints; 1-65535).
    #[arg(long, value_name = "PORT", env = "KUBELET_PORT",
          value_parser = NamesEnv(clap::value_parser!(u16)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen_port: Option<u16>,

    /// The node's InternalIP, where the API server reaches the kubelet API.
    #[arg(long, value_name = "IP", env = "VKUBELET_POD_IP")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_ip: Option<String>,

    /// Concurrent pod sync workers.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_sync_workers: Option<usize>,

    /// Threads running the process's async work: the nodes, their API client and the
    /// kubelet API (default: one per core for a single node; 1 with --nodes N > 1, where
    /// an idle fleet spends least on one thread; raise it when the process uses a whole
    /// core).
    #[arg(long, value_name = "N", env = "VK_WORKER_THREADS",
          value_parser = NamesEnv(clap::builder::RangedU64ValueParser::<usize>::new()))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_threads: Option<usize>,

    /// How often provider pods are checked against the API for dangling pods (e.g. 1m).
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_resync_period: Option<String>,

    /// How long to wait for the node to register and the pod cache to sync before giving
    /// up (0 waits forever).
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startup_timeout: Option<String>,

    /// Do not taint the node (pods then need no toleration): bare, =true or =false.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true",
          value_parser = go_bool)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_taint: Option<bool>,

    /// Taint key.
    #[arg(long, value_name = "KEY", env = "VKUBELET_TAINT_KEY", alias = "taint")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taint_key: Option<String>,

    /// Taint value (default: the provider name).
    #[arg(long, value_name = "VALUE", env = "VKUBELET_TAINT_VALUE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taint_value: Option<String>,

    /// Taint effect: NoSchedule, PreferNoSchedule or NoExecute.
    #[arg(long, value_name = "EFFECT", env = "VKUBELET_TAINT_EFFECT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taint_effect: Option<String>,

    /// Extra node labels, key=value[,key=value] (as the kubelet's flag; kubernetes.io and
    /// k8s.io labels only where a kubelet may set them). Labels this node set before and
    /// no longer sets are removed; labels set by others are kept.
    #[arg(long, value_name = "LABELS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_labels: Option<String>,

    /// Extra taints, key=value:Effect or key:Effect, comma-separated (as the kubelet's
    /// flag), besides the provider taint (--disable-taint removes only that one).
    #[arg(long, value_name = "TAINTS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub register_with_taints: Option<String>,

    /// Fixed client-side request rate limit toward the API server (per second; 0 = no
    /// limit). Unset (with --kube-api-burst unset too): adaptive, up to 1000/s per node,
    /// halved whenever the API server answers 429 and grown back while it does not; 429,
    /// 503 and 504 are retried after the server's Retry-After either way.
    #[arg(long, value_name = "QPS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_api_qps: Option<f32>,

    /// Requests allowed in a burst above --kube-api-qps; setting it makes the limit fixed
    /// (default with only --kube-api-qps set: 100 per node, as the kubelet).
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_api_burst: Option<u32>,

    /// Log filter: error, warn, info, debug, trace, or a tracing directive
    /// (RUST_LOG wins when set).
    #[arg(long, value_name = "LEVEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,

    /// Log line format: text (human-readable) or json (one object per line, with span
    /// fields).
    #[arg(long, value_name = "FORMAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,

    /// Export spans with OTLP to this collector URL (e.g. http://127.0.0.1:4318);
    /// default from OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT;
    /// unset = no export.
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,

    /// OTLP transport: grpc, http/protobuf or http/json (default from
    /// OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf).
    #[arg(long, value_name = "PROTOCOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_protocol: Option<String>,

    /// Extra OTLP request headers, key=value[,key=value] (default from
    /// OTEL_EXPORTER_OTLP_HEADERS).
    #[arg(long, value_name = "HEADERS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_headers: Option<String>,

    /// Fraction of traces exported, 0.0-1.0 (default from OTEL_TRACES_SAMPLER_ARG, else
    /// 1.0).
    #[arg(long, value_name = "RATIO")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_sample_ratio: Option<f64>,

    /// Serving certificate of the kubelet API (PEM).
    #[arg(long, value_name = "FILE", env = "APISERVER_CERT_LOCATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,

    /// Private key of the serving certificate (PEM).
    #[arg(long, value_name = "FILE", env = "APISERVER_KEY_LOCATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_private_key_file: Option<PathBuf>,

    /// CA bundle that client certificates of kubelet API callers must chain to.
    #[arg(
        long,
        value_name = "FILE",
        env = "APISERVER_CA_CERT_LOCATION",
        alias = "client-verify-ca"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,

    /// Plain-HTTP admin listener for /metrics (Prometheus), /healthz and /readyz
    /// ("off" disables it).
    #[arg(long, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_addr: Option<String>,

    /// Address the kubelet API listens on (its port is --listen-port; with --nodes N,
    /// node i listens on --listen-port + i).
    #[arg(long, value_name = "IP")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,

    /// Do not serve the kubelet API at all (logs, exec... then fail through the API
    /// server).
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_kubelet_api: bool,

    /// Let kubelet API requests without credentials through as system:anonymous.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub anonymous_auth: bool,

    /// Check bearer tokens of kubelet API callers with TokenReview (true/false).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true",
          value_parser = go_bool)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication_token_webhook: Option<bool>,

    /// Kubelet API authorization: Webhook (SubjectAccessReview) or AlwaysAllow.
    #[arg(long, value_name = "MODE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_mode: Option<String>,

    /// Close exec/attach/port-forward sessions idle for this long.
    #[arg(long, value_name = "DURATION", alias = "stream-idle-timeout")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub streaming_connection_idle_timeout: Option<String>,

    /// Do not record Normal events for successful provider operations (saves one API
    /// write per operation).
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_success_events: bool,

    /// Elect one leader per virtual node among the replicas of this deployment, through
    /// a Lease named after the node in --leader-elect-lease-namespace: only the leader
    /// registers and drives the node and serves its kubelet API; the others stand by
    /// (bare, =true or =false).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true",
          value_parser = go_bool)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_elect: Option<bool>,

    /// Namespace of the election Leases (default: the client's namespace — in a pod, its
    /// own).
    #[arg(long, value_name = "NAMESPACE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_elect_lease_namespace: Option<String>,

    /// How long a standby waits after the leader's last renewal before it takes over
    /// (whole seconds).
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_elect_lease_duration: Option<String>,

    /// How long the leader retries renewing before it stops driving the node and exits;
    /// shorter than the lease duration.
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_elect_renew_deadline: Option<String>,

    /// Pause between attempts to acquire or renew the lease; shorter than the renew
    /// deadline.
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_elect_retry_period: Option<String>,

    /// This replica's name in the election Leases, to which every process adds a random
    /// suffix, so that replicas sharing a configuration stay distinct (default: the host
    /// name, i.e. the pod name).
    #[arg(long, value_name = "ID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_elect_identity: Option<String>,

    /// The Go project's flags without a counterpart of the same name (hidden).
    #[command(flatten)]
    #[serde(skip)]
    pub upstream: UpstreamFlags,

    /// Settings whose value was read from an environment variable: flag name (e.g.
    /// `listen-port`) to variable (`KUBELET_PORT`). Filled by
    /// [`parse_command_line`](crate::parse_command_line), so that an invalid value names
    /// the variable.
    #[arg(skip)]
    #[serde(skip)]
    pub from_env: BTreeMap<String, String>,
}

/// Runtime workers of a process running several nodes (`--nodes N > 1`) when
/// `--worker-threads` is not set; a single node gets tokio's default (one per core, or
/// `TOKIO_WORKER_THREADS`). See [`Settings::runtime_workers`].
///
/// Why one for a fleet: its work is the nodes' periodic requests (Lease renewals,
/// pings, status writes), mostly waiting on the network, and a second worker costs
/// every wake-up a hand-over between threads (tokio wakes a parked worker to share the
/// tasks one wake-up readies). An idle 1,000-node fleet spent 0.96 and 1.04 CPU-s/min
/// with one worker, 1.06 and 1.11 with two (99 against 176 context switches a second;
/// runs alternated on one machine, 2026-12-02), and filled 100,000 pods at 0.85 × the
/// API server's ceiling with one.
///
/// Why not for a single node: its idle cost is a thousandth of that either way, and its
/// work can be local and bursty — 200 pods started as processes by vk-process reached
/// Running with a p99 of 1,040 ms on one worker, 715 ms on two.
pub const FLEET_WORKER_THREADS: usize = 1;

/// Most `--worker-threads` accepted: far more than any machine's cores, so a typo (an
/// extra digit) is refused rather than starting thousands of threads.
pub const MAX_WORKER_THREADS: usize = 1024;

/// The effective settings after layering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Settings {
    /// See [`Flags::kubeconfig`].
    pub kubeconfig: Option<PathBuf>,
    /// See [`Flags::nodename`].
    pub nodename: String,
    /// See [`Flags::nodes`].
    pub nodes: usize,
    /// See [`Flags::os`].
    pub os: String,
    /// See [`Flags::namespace`] (empty: all namespaces).
    pub namespace: String,
    /// See [`Flags::cluster_domain`].
    pub cluster_domain: String,
    /// See [`Flags::provider_config`].
    pub provider_config: Option<PathBuf>,
    /// See [`Flags::listen_port`].
    pub listen_port: u16,
    /// See [`Flags::node_ip`].
    pub node_ip: String,
    /// See [`Flags::pod_sync_workers`].
    pub pod_sync_workers: usize,
    /// See [`Flags::worker_threads`] (`None`: chosen by [`Settings::runtime_workers`]).
    pub worker_threads: Option<usize>,
    /// See [`Flags::full_resync_period`].
    pub full_resync_period: String,
    /// See [`Flags::startup_timeout`].
    pub startup_timeout: String,
    /// See [`Flags::disable_taint`].
    pub disable_taint: bool,
    /// See [`Flags::taint_key`].
    pub taint_key: String,
    /// See [`Flags::taint_value`].
    pub taint_value: Option<String>,
    /// See [`Flags::taint_effect`].
    pub taint_effect: String,
    /// See [`Flags::node_labels`].
    pub node_labels: String,
    /// See [`Flags::register_with_taints`].
    pub register_with_taints: String,
    /// See [`Flags::kube_api_qps`].
    pub kube_api_qps: Option<f32>,
    /// See [`Flags::kube_api_burst`].
    pub kube_api_burst: Option<u32>,
    /// See [`Flags::log_level`].
    pub log_level: String,
    /// See [`Flags::log_format`].
    pub log_format: String,
    /// See [`Flags::otlp_endpoint`].
    pub otlp_endpoint: Option<String>,
    /// See [`Flags::otlp_protocol`].
    pub otlp_protocol: Option<String>,
    /// See [`Flags::otlp_headers`].
    pub otlp_headers: Option<String>,
    /// See [`Flags::trace_sample_ratio`].
    pub trace_sample_ratio: Option<f64>,
    /// See [`Flags::tls_cert_file`].
    pub tls_cert_file: Option<PathBuf>,
    /// See [`Flags::tls_private_key_file`].
    pub tls_private_key_file: Option<PathBuf>,
    /// See [`Flags::client_ca_file`].
    pub client_ca_file: Option<PathBuf>,
    /// See [`Flags::metrics_addr`].
    pub metrics_addr: String,
    /// See [`Flags::address`].
    pub address: String,
    /// See [`Flags::no_kubelet_api`].
    pub no_kubelet_api: bool,
    /// See [`Flags::anonymous_auth`].
    pub anonymous_auth: bool,
    /// See [`Flags::authentication_token_webhook`].
    pub authentication_token_webhook: bool,
    /// See [`Flags::authorization_mode`].
    pub authorization_mode: String,
    /// See [`Flags::streaming_connection_idle_timeout`].
    pub streaming_connection_idle_timeout: String,
    /// See [`Flags::no_success_events`].
    pub no_success_events: bool,
    /// See [`Flags::leader_elect`].
    pub leader_elect: bool,
    /// See [`Flags::leader_elect_lease_namespace`] (empty: the client's namespace).
    pub leader_elect_lease_namespace: String,
    /// See [`Flags::leader_elect_lease_duration`].
    pub leader_elect_lease_duration: String,
    /// See [`Flags::leader_elect_renew_deadline`].
    pub leader_elect_renew_deadline: String,
    /// See [`Flags::leader_elect_retry_period`].
    pub leader_elect_retry_period: String,
    /// See [`Flags::leader_elect_identity`] (empty: generated).
    pub leader_elect_identity: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            nodename: "virtual-kubelet".into(),
            nodes: 1,
            os: "linux".into(),
            namespace: String::new(),
            cluster_domain: "cluster.local".into(),
            provider_config: None,
            listen_port: 10250,
            node_ip: "127.0.0.1".into(),
            pod_sync_workers: 32,
            worker_threads: None,
            full_resync_period: "1m".into(),
            startup_timeout: "0".into(),
            disable_taint: false,
            taint_key: vk_core::node::keys::PROVIDER_TAINT.into(),
            taint_value: None,
            taint_effect: "NoSchedule".into(),
            node_labels: String::new(),
            register_with_taints: String::new(),
            kube_api_qps: None,
            kube_api_burst: None,
            log_level: "info".into(),
            log_format: "text".into(),
            otlp_endpoint: None,
            otlp_protocol: None,
            otlp_headers: None,
            trace_sample_ratio: None,
            tls_cert_file: None,
            tls_private_key_file: None,
            client_ca_file: None,
            metrics_addr: "127.0.0.1:10255".into(),
            address: "0.0.0.0".into(),
            no_kubelet_api: false,
            anonymous_auth: false,
            authentication_token_webhook: true,
            authorization_mode: "Webhook".into(),
            streaming_connection_idle_timeout: "4h".into(),
            no_success_events: false,
            leader_elect: false,
            leader_elect_lease_namespace: String::new(),
            leader_elect_lease_duration: "15s".into(),
            leader_elect_renew_deadline: "10s".into(),
            leader_elect_retry_period: "2s".into(),
            leader_elect_identity: String::new(),
        }
    }
}

/// A setting with a bad value.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The config file or a value in it does not parse.
    #[error("configuration: {0}")]
    Layering(#[from] Box<figment::Error>),
    /// A value parses but is not acceptable.
    #[error("--{flag}: {value:?} {reason}")]
    Invalid {
        /// The flag (also the config key).
        flag: &'static str,
        /// The value given.
        value: String,
        /// What is wrong and what to do instead.
        reason: String,
    },
    /// A value read from an environment variable parses but is not acceptable.
    #[error("environment variable {variable} (for --{flag}): {value:?} {reason}")]
    InvalidFromEnv {
        /// The variable.
        variable: String,
        /// The flag it stands for.
        flag: &'static str,
        /// The value given.
        value: String,
        /// What is wrong and what to do instead.
        reason: String,
    },
}

impl SettingsError {
    /// Names the environment variable when the bad value came from one (`from_env`:
    /// flag name to variable, see [`Flags::from_env`]).
    fn attributed(self, from_env: &BTreeMap<String, String>) -> Self {
        match self {
            SettingsError::Invalid {
                flag,
                value,
                reason,
            } => match from_env.get(flag) {
                Some(variable) => SettingsError::InvalidFromEnv {
                    variable: variable.clone(),
                    flag,
                    value,
                    reason,
                },
                None => SettingsError::Invalid {
                    flag,
                    value,
                    reason,
                },
            },
            other => other,
        }
    }
}

/// Settings validated and converted to their types.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The raw layered settings.
    pub settings: Settings,
    /// `full-resync-period`.
    pub resync: Duration,
    /// `startup-timeout` (`None` = wait forever).
    pub startup_timeout: Option<Duration>,
    /// `metrics-addr` (`None` = off).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// `address`.
    pub address: std::net::IpAddr,
    /// `streaming-connection-idle-timeout`.
    pub streaming_idle_timeout: Duration,
    /// `log-format`.
    pub log_format: vk_trace::LogFormat,
    /// Span export (`otlp-*` flags or `OTEL_*` variables), if configured.
    pub otlp: Option<vk_trace::OtlpConfig>,
    /// `namespace` (`None`: all namespaces).
    pub namespace: Option<String>,
    /// The initial log filter: `log-level` plus what `--klog.v` adds.
    pub log_filter: String,
    /// `service.name` of exported spans (`--trace-service-name`), if not the binary's.
    pub service_name: Option<String>,
    /// `--provider`, to check against the binary's provider
    /// ([`upstream::check_provider`]).
    pub provider: Option<String>,
    /// Warnings about accepted flags that change nothing, to log once logging is up.
    pub notices: Vec<String>,
    /// `node-labels`, parsed.
    pub node_labels: std::collections::BTreeMap<String, String>,
    /// `register-with-taints`, parsed.
    pub register_with_taints: Vec<k8s_openapi::api::core::v1::Taint>,
    /// The `leader-elect-*` timings when `leader-elect` is on.
    pub leader_election: Option<vk_core::election::ElectionConfig>,
}

impl Settings {
    /// Layers defaults < `flags.config` file < env/flags (clap has already merged env and
    /// flags, flags winning).
    pub fn load(flags: &Flags) -> Result<Resolved, SettingsError> {
        let upstream = flags.upstream.resolve()?;
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = &flags.config {
            figment = match path.extension().and_then(|e| e.to_str()) {
                Some("json") => figment.merge(Json::file_exact(path)),
                _ => figment.merge(Toml::file_exact(path)),
            };
        }
        figment = figment.merge(Serialized::defaults(flags));
        let mut settings: Settings = figment.extract().map_err(Box::new)?;
        settings.apply_upstream(&upstream);
        settings.resolve_in_pod_root(crate::pod_root::pod_root().as_deref());
        let mut resolved = settings
            .validate()
            .map_err(|e| e.attributed(&flags.from_env))?;
        if let Some(directives) = upstream.log_directives {
            resolved.log_filter = format!("{},{directives}", resolved.log_filter);
        }
        resolved.service_name = upstream.service_name;
        resolved.provider = upstream.provider;
        resolved.notices = upstream.notices;
        Ok(resolved)
    }

    /// The files of `kubeconfig`: one path, or several separated as in `$PATH` (empty
    /// entries skipped). Empty when no kubeconfig is set.
    pub fn kubeconfig_paths(&self) -> Vec<PathBuf> {
        self.kubeconfig
            .as_ref()
            .map(|list| {
                std::env::split_paths(list)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The runtime's worker count: `worker-threads` when set, [`FLEET_WORKER_THREADS`]
    /// for a process running several nodes, else `None` (tokio's default: one per core,
    /// or `TOKIO_WORKER_THREADS`).
    ///
    /// ```
    /// let mut s = vk_cli::Settings::default();
    /// assert_eq!(s.runtime_workers(), None);
    /// s.nodes = 1000;
    /// assert_eq!(s.runtime_workers(), Some(vk_cli::FLEET_WORKER_THREADS));
    /// s.worker_threads = Some(4);
    /// assert_eq!(s.runtime_workers(), Some(4));
    /// ```
    pub fn runtime_workers(&self) -> Option<usize> {
        self.worker_threads
            .or((self.nodes > 1).then_some(FLEET_WORKER_THREADS))
    }

    /// Reads the files of the flags inside `root` (see [`crate::pod_root`]): a provider
    /// binary run as a pod without a mount namespace gets in-pod absolute paths.
    fn resolve_in_pod_root(&mut self, root: Option<&Path>) {
        for file in [
            &mut self.tls_cert_file,
            &mut self.tls_private_key_file,
            &mut self.client_ca_file,
            &mut self.provider_config,
        ]
        .into_iter()
        .flatten()
        {
            *file = crate::pod_root::resolve_in(root, file);
        }
    }

    /// Folds in what the Go project's flags map to, beneath our own settings: the
    /// sample rate unless a sample ratio is set, OTLP export to the default endpoint
    /// when `--trace-exporter otlp` is given and nothing names an endpoint, and logrus
    /// level names.
    fn apply_upstream(&mut self, upstream: &upstream::UpstreamEffects) {
        if self.trace_sample_ratio.is_none() {
            self.trace_sample_ratio = upstream.sample_ratio;
        }
        if upstream.otlp_export
            && self.otlp_endpoint.is_none()
            && vk_trace::OtlpConfig::from_env("").is_none()
        {
            self.otlp_endpoint = Some(upstream::OTLP_DEFAULT_ENDPOINT.to_owned());
        }
        self.log_level = upstream::log_level(&self.log_level).to_owned();
    }

    /// Checks every setting and converts the typed ones, reporting the first bad value
    /// (in this order: timings, node, API client, files, TLS pairing, serving, telemetry).
    fn validate(self) -> Result<Resolved, SettingsError> {
        let (resync, startup_timeout) = self.controller_timings()?;
        self.check_node()?;
        let node_labels = crate::node_meta::parse_labels(&self.node_labels)
            .map_err(|e| invalid("node-labels", &self.node_labels, &e))?;
        let register_with_taints = crate::node_meta::parse_taints(&self.register_with_taints)
            .map_err(|e| invalid("register-with-taints", &self.register_with_taints, &e))?;
        self.check_api_client()?;
        self.check_files_exist()?;
        self.check_tls_pairing()?;
        let serving = self.serving()?;
        let log_format = self.log_format()?;
        let otlp = self.otlp_config()?;
        let leader_election = self.leader_election()?;
        Ok(Resolved {
            leader_election,
            log_format,
            otlp,
            namespace: (!self.namespace.is_empty()).then(|| self.namespace.clone()),
            log_filter: self.log_level.clone(),
            service_name: None,
            provider: None,
            notices: Vec::new(),
            node_labels,
            register_with_taints,
            address: serving.address,
            streaming_idle_timeout: serving.streaming_idle_timeout,
            metrics_addr: serving.metrics_addr,
            startup_timeout,
            resync,
            settings: self,
        })
    }

    /// `full-resync-period` (at least 1s) and `startup-timeout` (0 = wait forever).
    fn controller_timings(&self) -> Result<(Duration, Option<Duration>), SettingsError> {
        let resync = parse_duration(&self.full_resync_period)
            .map_err(|e| invalid("full-resync-period", &self.full_resync_period, &e))?;
        if resync < Duration::from_secs(1) {
            return Err(invalid(
                "full-resync-period",
                &self.full_resync_period,
                "must be at least 1s",
            ));
        }
        let startup = parse_duration(&self.startup_timeout)
            .map_err(|e| invalid("startup-timeout", &self.startup_timeout, &e))?;
        Ok((resync, (!startup.is_zero()).then_some(startup)))
    }

    /// The node's name, count, workers, taint effect and IP.
    fn check_node(&self) -> Result<(), SettingsError> {
        if self.nodename.is_empty() || !is_dns_subdomain(&self.nodename) {
            return Err(invalid(
                "nodename",
                &self.nodename,
                "is not a valid node name (lowercase letters, digits, '-' and '.', at most 253 characters)",
            ));
        }
        if self.nodes == 0 {
            return Err(invalid("nodes", "0", "must be at least 1"));
        }
        if self.pod_sync_workers == 0 {
            return Err(invalid("pod-sync-workers", "0", "must be at least 1"));
        }
        if let Some(n) = self.worker_threads
            && !(1..=MAX_WORKER_THREADS).contains(&n)
        {
            return Err(invalid(
                "worker-threads",
                &n.to_string(),
                &format!(
                    "must be 1-{MAX_WORKER_THREADS} (about one per core the process may use; unset: one per core for one node, {FLEET_WORKER_THREADS} for a fleet)"
                ),
            ));
        }
        if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&self.taint_effect.as_str()) {
            return Err(invalid(
                "taint-effect",
                &self.taint_effect,
                "must be NoSchedule, PreferNoSchedule or NoExecute",
            ));
        }
        if self.node_ip.parse::<std::net::IpAddr>().is_err() {
            return Err(invalid("node-ip", &self.node_ip, "is not an IP address"));
        }
        if self.listen_port == 0 {
            return Err(invalid(
                "listen-port",
                "0",
                "is not a port: the node publishes it in daemonEndpoints for the API server to \
                 connect to (use 1-65535, e.g. 10250)",
            ));
        }
        if !self.namespace.is_empty() && !is_dns_label(&self.namespace) {
            return Err(invalid(
                "namespace",
                &self.namespace,
                "is not a namespace name (lowercase letters, digits and '-', at most 63 characters; empty for all)",
            ));
        }
        if !is_dns_subdomain(&self.cluster_domain) {
            return Err(invalid(
                "cluster-domain",
                &self.cluster_domain,
                "is not a DNS domain (e.g. cluster.local)",
            ));
        }
        Ok(())
    }

    /// The Kubernetes client's rate limit (`kube-api-qps`).
    fn check_api_client(&self) -> Result<(), SettingsError> {
        if let Some(qps) = self.kube_api_qps
            && (!qps.is_finite() || qps < 0.0)
        {
            return Err(invalid(
                "kube-api-qps",
                &qps.to_string(),
                "must be a non-negative number (0 disables the limit)",
            ));
        }
        Ok(())
    }

    /// Every file given (TLS, client CA, provider config, each kubeconfig of the list)
    /// is an existing file.
    fn check_files_exist(&self) -> Result<(), SettingsError> {
        let kubeconfigs = self.kubeconfig_paths();
        let files = [
            ("tls-cert-file", self.tls_cert_file.as_ref()),
            ("tls-private-key-file", self.tls_private_key_file.as_ref()),
            ("client-ca-file", self.client_ca_file.as_ref()),
            ("provider-config", self.provider_config.as_ref()),
        ]
        .into_iter()
        .chain(kubeconfigs.iter().map(|p| ("kubeconfig", Some(p))));
        for (flag, path) in files {
            if let Some(p) = path
                && !Path::new(p).is_file()
            {
                return Err(invalid(
                    flag,
                    &p.display().to_string(),
                    "does not exist or is not a file",
                ));
            }
        }
        Ok(())
    }

    /// `tls-cert-file` and `tls-private-key-file` come together or not at all.
    fn check_tls_pairing(&self) -> Result<(), SettingsError> {
        if self.tls_cert_file.is_some() != self.tls_private_key_file.is_some() {
            return Err(invalid(
                "tls-cert-file",
                &format!("{:?}", self.tls_cert_file),
                "and --tls-private-key-file must be given together",
            ));
        }
        Ok(())
    }

    /// The listeners and the kubelet API's authorization mode and streaming timeout.
    fn serving(&self) -> Result<Serving, SettingsError> {
        let metrics_addr = match self.metrics_addr.as_str() {
            "" | "off" => None,
            // Go's ":10255": every interface.
            addr if addr.starts_with(':') => {
                Some(format!("0.0.0.0{addr}").parse().map_err(|_| {
                    invalid(
                        "metrics-addr",
                        addr,
                        "is not an address:port (e.g. 127.0.0.1:10255, or \"off\")",
                    )
                })?)
            }
            addr => Some(addr.parse().map_err(|_| {
                invalid(
                    "metrics-addr",
                    addr,
                    "is not an address:port (e.g. 127.0.0.1:10255, or \"off\")",
                )
            })?),
        };
        let address = self.address.parse().map_err(|_| {
            invalid(
                "address",
                &self.address,
                "is not an IP address (e.g. 0.0.0.0)",
            )
        })?;
        if !["Webhook", "AlwaysAllow"].contains(&self.authorization_mode.as_str()) {
            return Err(invalid(
                "authorization-mode",
                &self.authorization_mode,
                "must be Webhook or AlwaysAllow",
            ));
        }
        let streaming_idle_timeout = parse_duration(&self.streaming_connection_idle_timeout)
            .map_err(|e| {
                invalid(
                    "streaming-connection-idle-timeout",
                    &self.streaming_connection_idle_timeout,
                    &e,
                )
            })?;
        Ok(Serving {
            metrics_addr,
            address,
            streaming_idle_timeout,
        })
    }

    /// The election timings (`leader-elect-*`), checked against each other, when
    /// `leader-elect` is on.
    fn leader_election(&self) -> Result<Option<vk_core::election::ElectionConfig>, SettingsError> {
        if !self.leader_elect {
            return Ok(None);
        }
        if !self.leader_elect_lease_namespace.is_empty()
            && !is_dns_label(&self.leader_elect_lease_namespace)
        {
            return Err(invalid(
                "leader-elect-lease-namespace",
                &self.leader_elect_lease_namespace,
                "is not a namespace name",
            ));
        }
        let duration = |flag: &'static str, value: &str| {
            parse_duration(value).map_err(|e| invalid(flag, value, &e))
        };
        let config = vk_core::election::ElectionConfig {
            lease_duration: duration(
                "leader-elect-lease-duration",
                &self.leader_elect_lease_duration,
            )?,
            renew_deadline: duration(
                "leader-elect-renew-deadline",
                &self.leader_elect_renew_deadline,
            )?,
            retry_period: duration("leader-elect-retry-period", &self.leader_elect_retry_period)?,
        };
        config.validate().map_err(|e| {
            invalid(
                "leader-elect-renew-deadline",
                &self.leader_elect_renew_deadline,
                &e.to_string(),
            )
        })?;
        Ok(Some(config))
    }

    /// `log-format`.
    fn log_format(&self) -> Result<vk_trace::LogFormat, SettingsError> {
        self.log_format
            .parse::<vk_trace::LogFormat>()
            .map_err(|_| invalid("log-format", &self.log_format, "must be text or json"))
    }
}

impl Settings {
    /// Span export: the OTLP flags, each falling back to the standard `OTEL_*` variable.
    fn otlp_config(&self) -> Result<Option<vk_trace::OtlpConfig>, SettingsError> {
        let from_env = vk_trace::OtlpConfig::from_env("");
        let mut config = match (&self.otlp_endpoint, from_env) {
            (Some(e), env) if !e.trim().is_empty() => {
                let mut c = env.unwrap_or(vk_trace::OtlpConfig {
                    endpoint: String::new(),
                    protocol: vk_trace::OtlpProtocol::default(),
                    headers: Default::default(),
                    sample_ratio: 1.0,
                });
                c.endpoint = e.trim().to_owned();
                c
            }
            (_, Some(env)) => env,
            (_, None) => return Ok(None),
        };
        if !(config.endpoint.starts_with("http://") || config.endpoint.starts_with("https://")) {
            return Err(invalid(
                "otlp-endpoint",
                &config.endpoint,
                "must be an http:// or https:// URL (e.g. http://127.0.0.1:4318)",
            ));
        }
        if let Some(p) = &self.otlp_protocol {
            config.protocol = p.parse().map_err(|_| {
                invalid(
                    "otlp-protocol",
                    p,
                    "must be grpc, http/protobuf or http/json",
                )
            })?;
        }
        if let Some(h) = &self.otlp_headers {
            config.headers = vk_trace::OtlpConfig::headers_from(h)
                .map_err(|e| invalid("otlp-headers", h, &e.to_string()))?;
        }
        if let Some(r) = self.trace_sample_ratio {
            config.sample_ratio =
                vk_trace::OtlpConfig::ratio_from(&r.to_string()).map_err(|_| {
                    invalid(
                        "trace-sample-ratio",
                        &r.to_string(),
                        "must be from 0.0 to 1.0",
                    )
                })?;
        }
        Ok(Some(config))
    }
}

/// A [`SettingsError::Invalid`] for `flag`.
pub(crate) fn invalid(flag: &'static str, value: &str, reason: &str) -> SettingsError {
    SettingsError::Invalid {
        flag,
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

/// The serving settings [`Settings::serving`] resolves.
struct Serving {
    metrics_addr: Option<std::net::SocketAddr>,
    address: std::net::IpAddr,
    streaming_idle_timeout: Duration,
}

fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label)
}

/// An RFC 1123 label (a namespace name).
fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Flags {
        let mut all = vec!["vk"];
        all.extend_from_slice(args);
        Flags::try_parse_from(all).expect("flags")
    }

    #[test]
    fn defaults_are_upstream_compatible() {
        let r = Settings::load(&flags(&[])).expect("load");
        assert_eq!(r.settings.nodename, "virtual-kubelet");
        assert_eq!(r.settings.listen_port, 10250);
        assert_eq!(r.settings.pod_sync_workers, 32);
        assert_eq!(r.settings.worker_threads, None);
        assert_eq!(r.settings.runtime_workers(), None);
        assert_eq!(r.resync, Duration::from_secs(60));
        assert_eq!(r.startup_timeout, None);
    }

    #[test]
    fn file_is_overridden_by_flags() {
        let dir = std::env::temp_dir().join(format!("vk-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "nodename = \"from-file\"\npod-sync-workers = 3\nlisten-port = 10333\nworker-threads = 4\n",
        )
        .expect("write");
        let p = path.to_str().expect("utf8");
        let r = Settings::load(&flags(&["--config", p, "--listen-port", "10444"])).expect("load");
        assert_eq!(r.settings.nodename, "from-file");
        assert_eq!(r.settings.pod_sync_workers, 3);
        assert_eq!(r.settings.worker_threads, Some(4));
        assert_eq!(r.settings.listen_port, 10444);
    }

    #[test]
    fn bad_values_name_the_flag() {
        let cases: [(&[&str], &str); 14] = [
            (&["--nodename", "Not_Valid"], "--nodename"),
            (&["--worker-threads", "0"], "--worker-threads"),
            (&["--worker-threads", "20000"], "--worker-threads"),
            (&["--log-format", "xml"], "--log-format"),
            (&["--otlp-endpoint", "collector:4317"], "--otlp-endpoint"),
            (
                &["--otlp-endpoint", "http://c:4318", "--otlp-protocol", "udp"],
                "--otlp-protocol",
            ),
            (
                &[
                    "--otlp-endpoint",
                    "http://c:4318",
                    "--otlp-headers",
                    "novalue",
                ],
                "--otlp-headers",
            ),
            (
                &[
                    "--otlp-endpoint",
                    "http://c:4318",
                    "--trace-sample-ratio",
                    "1.5",
                ],
                "--trace-sample-ratio",
            ),
            (
                &["--authorization-mode", "Sometimes"],
                "--authorization-mode",
            ),
            (&["--address", "everywhere"], "--address"),
            (&["--full-resync-period", "soon"], "--full-resync-period"),
            (&["--taint-effect", "Sometimes"], "--taint-effect"),
            (&["--node-ip", "nope"], "--node-ip"),
            (
                &["--tls-cert-file", "/definitely/missing.pem"],
                "--tls-cert-file",
            ),
        ];
        for (args, want) in cases {
            let e = Settings::load(&flags(args))
                .expect_err("invalid")
                .to_string();
            assert!(e.starts_with(want), "{args:?}: {e}");
        }
    }

    #[test]
    fn telemetry_flags_resolve() {
        let r = Settings::load(&flags(&[
            "--log-format",
            "json",
            "--otlp-endpoint",
            "http://127.0.0.1:4317",
            "--otlp-protocol",
            "grpc",
            "--otlp-headers",
            "api-key=s3cret",
            "--trace-sample-ratio",
            "0.1",
        ]))
        .expect("load");
        assert_eq!(r.log_format, vk_trace::LogFormat::Json);
        let otlp = r.otlp.expect("otlp");
        assert_eq!(otlp.protocol, vk_trace::OtlpProtocol::Grpc);
        assert_eq!(otlp.headers["api-key"], "s3cret");
        assert_eq!(otlp.sample_ratio, 0.1);
        assert_eq!(otlp.traces_url(), "http://127.0.0.1:4317");
    }

    fn load(args: &[&str]) -> Resolved {
        Settings::load(&flags(args)).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn load_err(args: &[&str]) -> String {
        Settings::load(&flags(args))
            .expect_err("invalid")
            .to_string()
    }

    #[test]
    fn node_labels_and_taints_are_parsed_and_errors_name_the_flag() {
        let r = load(&[
            "--node-labels",
            "team=blue,example.com/tier=gold",
            "--register-with-taints",
            "gpu=true:NoSchedule",
        ]);
        assert_eq!(r.node_labels["team"], "blue");
        assert_eq!(r.register_with_taints[0].key, "gpu");
        let e = load_err(&["--node-labels", "kubernetes.io/role=master"]);
        assert!(e.starts_with("--node-labels:"), "{e}");
        let e = load_err(&["--register-with-taints", "gpu:Sometimes"]);
        assert!(
            e.starts_with("--register-with-taints:") && e.contains("effect"),
            "{e}"
        );
    }

    #[test]
    fn go_flag_names_are_aliases_of_ours() {
        let ca = tempfile::NamedTempFile::new().expect("temp file");
        let ca_path = ca.path().to_str().expect("utf8");
        let r = load(&[
            "--taint",
            "example.com/vk",
            "--client-verify-ca",
            ca_path,
            "--stream-idle-timeout",
            "30s",
        ]);
        assert_eq!(r.settings.taint_key, "example.com/vk");
        assert_eq!(r.settings.client_ca_file.as_deref(), Some(ca.path()));
        assert_eq!(r.streaming_idle_timeout, Duration::from_secs(30));
    }

    #[test]
    fn disable_taint_takes_a_go_boolean_in_every_spelling() {
        assert!(!load(&[]).settings.disable_taint);
        for (args, want) in [
            (&["--disable-taint"][..], true),
            (&["--disable-taint=true"][..], true),
            (&["--disable-taint", "true"][..], true),
            (&["--disable-taint=false"][..], false),
            (&["--disable-taint", "False"][..], false),
            (&["--disable-taint", "--nodename", "n"][..], true),
        ] {
            assert_eq!(load(args).settings.disable_taint, want, "{args:?}");
        }
        let e = Flags::try_parse_from(["vk", "--disable-taint=maybe"])
            .expect_err("not a boolean")
            .to_string();
        assert!(e.contains("--disable-taint"), "{e}");
        // An explicit false overrides the config file's true.
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "disable-taint = true\n").expect("write");
        let p = path.to_str().expect("utf8");
        assert!(load(&["--config", p]).settings.disable_taint);
        assert!(
            !load(&["--config", p, "--disable-taint=false"])
                .settings
                .disable_taint
        );
    }

    #[test]
    fn token_webhook_takes_a_bare_or_explicit_boolean() {
        assert!(load(&[]).settings.authentication_token_webhook);
        assert!(
            load(&["--authentication-token-webhook"])
                .settings
                .authentication_token_webhook
        );
        assert!(
            !load(&["--authentication-token-webhook=false"])
                .settings
                .authentication_token_webhook
        );
    }

    #[test]
    fn namespace_restricts_the_watch_and_empty_means_all() {
        assert_eq!(load(&[]).namespace, None);
        assert_eq!(load(&["--namespace", ""]).namespace, None);
        assert_eq!(
            load(&["--namespace", "team-a"]).namespace.as_deref(),
            Some("team-a")
        );
        let e = load_err(&["--namespace", "Team_A"]);
        assert!(e.starts_with("--namespace: \"Team_A\""), "{e}");
    }

    #[test]
    fn cluster_domain_is_accepted_and_checked() {
        assert_eq!(load(&[]).settings.cluster_domain, "cluster.local");
        assert_eq!(
            load(&["--cluster-domain", "corp.example"])
                .settings
                .cluster_domain,
            "corp.example"
        );
        let e = load_err(&["--cluster-domain", "not a domain"]);
        assert!(e.starts_with("--cluster-domain"), "{e}");
    }

    #[test]
    fn listen_port_zero_is_refused() {
        let e = load_err(&["--listen-port", "0"]);
        assert!(
            e.starts_with("--listen-port: \"0\"") && e.contains("daemonEndpoints"),
            "{e}"
        );
    }

    #[test]
    fn metrics_addr_takes_go_s_port_only_form() {
        assert_eq!(
            load(&["--metrics-addr", ":10255"]).metrics_addr,
            Some("0.0.0.0:10255".parse().expect("addr"))
        );
        let e = load_err(&["--metrics-addr", ":port"]);
        assert!(e.starts_with("--metrics-addr"), "{e}");
    }

    #[test]
    fn log_level_takes_logrus_names_and_klog_v_adds_client_logs() {
        assert_eq!(load(&[]).log_filter, "info");
        assert_eq!(load(&["--log-level", "warning"]).log_filter, "warn");
        assert_eq!(load(&["--log-level", "fatal"]).log_filter, "error");
        assert_eq!(
            load(&["--log-level", "debug", "--klog.v", "4"]).log_filter,
            "debug,kube_client=debug,kube_runtime=debug"
        );
        assert_eq!(
            load(&["--klog.v=2", "--klog.logtostderr"]).log_filter,
            "info"
        );
        assert_eq!(load(&["--klog.logtostderr"]).notices.len(), 1);
        let e = load_err(&["--klog.v", "loud"]);
        assert!(e.starts_with("--klog.v"), "{e}");
    }

    #[test]
    fn leader_election_is_off_by_default_and_its_timings_must_leave_a_margin() {
        assert_eq!(load(&[]).leader_election, None);
        let r = load(&["--leader-elect"]);
        assert_eq!(
            r.leader_election,
            Some(vk_core::election::ElectionConfig::default())
        );
        let r = load(&[
            "--leader-elect=true",
            "--leader-elect-lease-duration=6s",
            "--leader-elect-renew-deadline=4s",
            "--leader-elect-retry-period=500ms",
            "--leader-elect-lease-namespace=vk-system",
        ]);
        let config = r.leader_election.expect("on");
        assert_eq!(config.lease_duration, Duration::from_secs(6));
        assert_eq!(config.renew_deadline, Duration::from_secs(4));
        assert_eq!(config.retry_period, Duration::from_millis(500));
        assert_eq!(r.settings.leader_elect_lease_namespace, "vk-system");
        let e = load_err(&["--leader-elect", "--leader-elect-renew-deadline=15s"]);
        assert!(e.starts_with("--leader-elect-renew-deadline"), "{e}");
        assert!(e.contains("shorter than the lease duration"), "{e}");
        let e = load_err(&["--leader-elect", "--leader-elect-retry-period=soon"]);
        assert!(e.starts_with("--leader-elect-retry-period"), "{e}");
        // Timings are not checked while election is off.
        assert!(
            load(&["--leader-elect-renew-deadline=1h"])
                .leader_election
                .is_none()
        );
    }

    #[test]
    fn trace_flags_map_to_the_otlp_settings() {
        let r = load(&[
            "--otlp-endpoint",
            "http://127.0.0.1:4318",
            "--trace-sample-rate",
            "25",
            "--trace-service-name",
            "vk-aci",
        ]);
        let otlp = r.otlp.expect("otlp");
        assert_eq!(otlp.sample_ratio, 0.25);
        assert_eq!(r.service_name.as_deref(), Some("vk-aci"));
        // Our own ratio wins over the Go rate.
        let r = load(&[
            "--otlp-endpoint",
            "http://127.0.0.1:4318",
            "--trace-sample-rate",
            "always",
            "--trace-sample-ratio",
            "0.1",
        ]);
        assert_eq!(r.otlp.expect("otlp").sample_ratio, 0.1);
        // --trace-exporter otlp exports to the named endpoint, or the OTLP default.
        let r = load(&[
            "--trace-exporter",
            "otlp",
            "--otlp-endpoint",
            "http://c:4318",
        ]);
        assert_eq!(r.otlp.expect("otlp").endpoint, "http://c:4318");
        if vk_trace::OtlpConfig::from_env("").is_none() {
            let r = load(&["--trace-exporter=otlp"]);
            assert_eq!(
                r.otlp.expect("otlp").endpoint,
                crate::upstream::OTLP_DEFAULT_ENDPOINT
            );
            assert!(load(&["--trace-exporter=jaeger"]).otlp.is_none());
        }
        let e = load_err(&["--trace-sample-rate", "half"]);
        assert!(e.starts_with("--trace-sample-rate"), "{e}");
        let e = load_err(&["--trace-exporter", "zipkin"]);
        assert!(e.starts_with("--trace-exporter"), "{e}");
    }

    #[test]
    fn provider_is_carried_for_the_binary_to_check() {
        assert_eq!(load(&[]).provider, None);
        assert_eq!(
            load(&["--provider", "mock"]).provider.as_deref(),
            Some("mock")
        );
    }

    #[test]
    fn no_op_go_flags_are_accepted_with_a_warning() {
        let r = load(&[
            "--enable-node-lease",
            "--no-verify-clients=true",
            "--stream-creation-timeout",
            "30s",
        ]);
        assert_eq!(r.notices.len(), 3, "{:?}", r.notices);
        assert!(
            r.notices[0].contains("--enable-node-lease"),
            "{:?}",
            r.notices
        );
    }

    #[test]
    fn the_go_projects_command_lines_load() {
        // node-cli's typical command line (the mock provider, as in its examples).
        let r = load(&[
            "--provider",
            "mock",
            "--nodename",
            "vkubelet-mock-0",
            "--startup-timeout",
            "10s",
            "--klog.v",
            "2",
            "--klog.logtostderr",
            "--log-level",
            "debug",
            "--disable-taint=false",
            "--enable-node-lease",
            "--namespace",
            "default",
            "--os",
            "Linux",
            "--trace-exporter=jaeger",
            "--trace-sample-rate=always",
        ]);
        assert_eq!(r.settings.nodename, "vkubelet-mock-0");
        assert_eq!(r.startup_timeout, Some(Duration::from_secs(10)));
        assert_eq!(r.log_filter, "debug");
        assert_eq!(r.namespace.as_deref(), Some("default"));
        // The ACI chart's arguments, with its default values.
        let r = load(&[
            "--disable-taint",
            "true",
            "--provider",
            "azure",
            "--namespace",
            "",
            "--nodename",
            "virtual-node-aci-linux-helm",
            "--authentication-token-webhook=true",
            "--no-verify-clients=false",
            "--os",
            "Linux",
        ]);
        assert!(r.settings.disable_taint);
        assert_eq!(r.namespace, None);
        assert_eq!(r.provider.as_deref(), Some("azure"));
    }

    #[test]
    fn a_bad_value_from_the_environment_names_the_variable() {
        let mut f = flags(&["--listen-port", "0"]);
        f.from_env
            .insert("listen-port".into(), "KUBELET_PORT".into());
        let e = Settings::load(&f).expect_err("port 0").to_string();
        assert!(
            e.starts_with("environment variable KUBELET_PORT (for --listen-port): \"0\""),
            "{e}"
        );
        let mut f = flags(&["--node-ip", "nope"]);
        f.from_env
            .insert("node-ip".into(), "VKUBELET_POD_IP".into());
        let e = Settings::load(&f).expect_err("bad IP").to_string();
        assert!(
            e.starts_with("environment variable VKUBELET_POD_IP (for --node-ip): \"nope\""),
            "{e}"
        );
    }

    #[test]
    fn flag_files_are_read_inside_the_pod_root() {
        let root = tempfile::tempdir().expect("root");
        let tls = root.path().join("etc/vk/tls");
        std::fs::create_dir_all(&tls).expect("mkdir");
        std::fs::write(tls.join("tls.crt"), "").expect("crt");
        let mut settings = Settings {
            tls_cert_file: Some("/etc/vk/tls/tls.crt".into()),
            provider_config: Some("/etc/vk/provider.toml".into()),
            ..Settings::default()
        };
        settings.resolve_in_pod_root(Some(root.path()));
        assert_eq!(settings.tls_cert_file, Some(tls.join("tls.crt")));
        // Not in the pod root: unchanged (and reported missing as before).
        assert_eq!(
            settings.provider_config,
            Some(PathBuf::from("/etc/vk/provider.toml"))
        );
        settings.resolve_in_pod_root(None);
        assert_eq!(settings.tls_cert_file, Some(tls.join("tls.crt")));
    }

    #[test]
    fn kubeconfig_may_be_a_list_of_files() {
        let dir = tempfile::tempdir().expect("dir");
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, "").expect("write");
        std::fs::write(&b, "").expect("write");
        let list = std::env::join_paths([&a, &b]).expect("join");
        let list = list.to_str().expect("utf8");
        let r = load(&["--kubeconfig", list]);
        assert_eq!(r.settings.kubeconfig_paths(), [a.clone(), b.clone()]);
        // Empty entries are skipped, as kubectl does.
        let with_empty = format!("{}::{}:", a.display(), b.display());
        assert_eq!(
            load(&["--kubeconfig", &with_empty])
                .settings
                .kubeconfig_paths()
                .len(),
            2
        );
        // A missing file of the list is named.
        let missing = dir.path().join("missing");
        let list = format!("{}:{}", a.display(), missing.display());
        let e = load_err(&["--kubeconfig", &list]);
        assert!(
            e.starts_with("--kubeconfig") && e.contains(&missing.display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_in_the_file_are_rejected_by_name() {
        let dir = std::env::temp_dir().join(format!("vk-cli-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("c.toml");
        std::fs::write(&path, "nodname = \"typo\"\n").expect("write");
        let e = Settings::load(&flags(&["--config", path.to_str().expect("utf8")]))
            .expect_err("unknown key")
            .to_string();
        assert!(e.contains("nodname"), "{e}");
    }
}
