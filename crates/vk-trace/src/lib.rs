//! # vk-trace: tracing and OpenTelemetry setup for Virtual Kubelet binaries
//!
//! One place that configures `tracing` for every provider binary:
//!
//! * logs to stderr, human-readable or one JSON object per line ([`LogFormat`]), with
//!   the fields of the enclosing spans;
//! * an `RUST_LOG`-style filter that can be changed while the process runs
//!   ([`FilterHandle`]; `vk-cli` exposes it as `GET`/`PUT /debug/log-filter` on the
//!   admin listener);
//! * optionally, spans exported with OTLP (gRPC, HTTP/protobuf or HTTP/JSON) through
//!   `tracing-opentelemetry` ([`OtlpConfig`], configurable from flags or the standard
//!   `OTEL_*` variables), flushed by [`Telemetry::shutdown`];
//! * W3C trace context (`traceparent`) taken from incoming requests ([`propagation`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), vk_trace::TraceError> {
//! let telemetry = vk_trace::init(vk_trace::TraceConfig {
//!     log_format: vk_trace::LogFormat::Json,
//!     log_filter: "info,vk_core=debug".into(),
//!     otlp: vk_trace::OtlpConfig::from_env("vk-mock"),
//!     service_name: "vk-mock".into(),
//! })?;
//! telemetry.filter().set("debug")?; // takes effect at once
//! telemetry.shutdown().await; // flushes spans not yet exported
//! # Ok(()) }
//! ```
//!
//! # Span and field conventions
//!
//! Names are dotted, lowercase, and the same in every crate (the constants live in
//! `vk_core::trace_fields`), so logs, traces and dashboards can join on them:
//!
//! | span | level | fields | where |
//! |---|---|---|---|
//! | `pod.sync` | INFO | `pod.namespace`, `pod.name`, `pod.uid`, `node.name`, `vk.operation` (create/update/delete/status/none), `vk.result` (ok/requeue/retry) | one per sync of a pod by the pod controller |
//! | `provider.create_pod`, `provider.update_pod`, `provider.delete_pod`, `provider.get_pod_status` | INFO | the pod fields, `node.name`, `error.kind` on failure | each provider call; a child of `pod.sync` |
//! | `node.status_update`, `node.lease_renew` | DEBUG | `node.name` | node controller heartbeats |
//! | `kubelet_api.request` | INFO | `http.method`, `http.path`, `node.name`; parent from `traceparent` | every kubelet API request |
//!
//! Pod names never become metric labels; they are span fields only.

mod config;
mod filter;
mod otlp;
pub mod propagation;

pub use config::{LogFormat, OtlpConfig, OtlpProtocol, TraceConfig};
pub use filter::FilterHandle;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _, reload};

/// Why telemetry could not be set up or changed.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// A log filter does not parse.
    #[error("invalid log filter {filter:?}: {reason} (example: \"info,vk_core=debug\")")]
    ParseFilter {
        /// The filter as given.
        filter: String,
        /// The parser's complaint.
        reason: String,
    },
    /// Applying a new filter failed (the subscriber is gone).
    #[error("changing the log filter failed: {0}")]
    ReloadFilter(String),
    /// A setting is invalid (the message names it).
    #[error("{0}")]
    InvalidSetting(String),
    /// The OTLP exporter could not be built.
    #[error("building the OTLP exporter for {endpoint}: {reason}")]
    BuildExporter {
        /// The collector endpoint.
        endpoint: String,
        /// The exporter's complaint.
        reason: String,
    },
    /// A global subscriber was already installed.
    #[error("installing the tracing subscriber failed: {0}")]
    InstallSubscriber(String),
}

/// The installed telemetry: the filter handle and the span exporter to flush.
#[derive(Debug)]
pub struct Telemetry {
    filter: FilterHandle,
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// The runtime-adjustable log filter.
    pub fn filter(&self) -> FilterHandle {
        self.filter.clone()
    }

    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes and stops the span exporter (no-op without one).
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            // The batch processor's flush blocks until its task (on this runtime) has
            // exported; run it off the async worker.
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(e) = provider.shutdown() {
                    eprintln!("flushing spans failed: {e}");
                }
            })
            .await;
        }
    }
}

/// Installs the global subscriber. With OTLP configured it must be called inside a
/// Tokio runtime (the exporter runs on it).
pub fn init(config: TraceConfig) -> Result<Telemetry, TraceError> {
    let env_filter = filter::parse(&config.log_filter)?;
    let (filter_layer, handle) = reload::Layer::new(env_filter);
    let fmt = match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let (otel, provider) = match &config.otlp {
        Some(otlp) => {
            let (layer, provider) = otlp::layer(otlp, &config.service_name)?;
            (Some(layer), Some(provider))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(filter_layer)
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| TraceError::InstallSubscriber(e.to_string()))?;
    Ok(Telemetry {
        filter: FilterHandle::new(handle, config.log_filter.clone()),
        provider,
    })
}

/// A filter as `init` would use it: `RUST_LOG` when set and valid, else `level`.
pub fn default_filter(level: &str) -> String {
    std::env::var("RUST_LOG")
        .ok()
        .filter(|f| !f.trim().is_empty() && EnvFilter::try_new(f).is_ok())
        .unwrap_or_else(|| level.to_owned())
}
