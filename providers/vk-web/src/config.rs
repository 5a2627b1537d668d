//! vk-web's configuration (`--provider-config`, TOML or JSON by extension, overridden by
//! `VK_WEB_*` variables; loaded by [`vk_cli::load_provider_config`]).
//!
//! ```toml
//! endpoint = "https://bridge.example:8443"   # or WEB_ENDPOINT_URL, as upstream
//! bearer_token_file = "/run/secrets/bridge-token"
//! ca_file = "/etc/vk-web/bridge-ca.pem"
//! client_cert_file = "/etc/vk-web/client.pem"
//! client_key_file = "/etc/vk-web/client-key.pem"
//! protocol = "auto"                         # "v1", "v2" or "auto" (ask /v2/capabilities)
//! status_poll_interval = "5s"               # v1 bridges: how often pod status is polled
//! node_status_interval = "30s"              # capacity, conditions and addresses
//!
//! [timeouts]                                # per call, to the answer's headers
//! default = "30s"
//! create = "1m"
//! logs = "10s"
//! ```
//!
//! Secrets (the bearer token, the client key) are read at start and never appear in
//! `Debug` output or logs.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use vk_cli::{InvalidValue, ProviderConfig};

/// The environment variable upstream's web provider reads the bridge URL from.
pub const ENDPOINT_ENV: &str = "WEB_ENDPOINT_URL";

/// A secret string: deserialized like a string, shown as `"<redacted>"` by `Debug`.
///
/// ```
/// let token: vk_web::config::Secret = serde_json::from_str("\"s3cr3t\"").unwrap();
/// assert_eq!(token.expose(), "s3cr3t");
/// assert!(!format!("{token:?}").contains("s3cr3t"));
/// ```
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// Which protocol to speak to the bridge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolChoice {
    /// Ask `GET /v2/capabilities`; a bridge without it is a v1 bridge (the default).
    #[default]
    Auto,
    /// The original web provider's routes only; `/v2/*` is never called.
    V1,
    /// Require a v2 bridge (the node stays NotReady until the bridge advertises v2).
    V2,
}

/// Per-call timeouts: how long to wait for the answer's headers. A streamed body (logs
/// followed, the status watch) is never cut by them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// To open the TCP (and TLS) connection.
    #[serde(deserialize_with = "duration")]
    pub connect: Duration,
    /// Every call without its own setting below.
    #[serde(deserialize_with = "duration")]
    pub default: Duration,
    /// `POST /createPod`.
    #[serde(deserialize_with = "opt_duration")]
    pub create: Option<Duration>,
    /// `PUT /updatePod`.
    #[serde(deserialize_with = "opt_duration")]
    pub update: Option<Duration>,
    /// `DELETE /deletePod`.
    #[serde(deserialize_with = "opt_duration")]
    pub delete: Option<Duration>,
    /// `GET /getPod`, `GET /getPodStatus`.
    #[serde(deserialize_with = "opt_duration")]
    pub get: Option<Duration>,
    /// `GET /getPods`.
    #[serde(deserialize_with = "opt_duration")]
    pub list: Option<Duration>,
    /// Logs (to the first byte; a followed log then lasts as long as the client).
    #[serde(deserialize_with = "opt_duration")]
    pub logs: Option<Duration>,
    /// Node routes: capacity, conditions, addresses, ping, capabilities.
    #[serde(deserialize_with = "opt_duration")]
    pub node: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            default: Duration::from_secs(30),
            create: None,
            update: None,
            delete: None,
            get: None,
            list: None,
            logs: None,
            node: Some(Duration::from_secs(10)),
        }
    }
}

/// The kind of call a timeout applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// Create a pod.
    Create,
    /// Update a pod.
    Update,
    /// Delete a pod.
    Delete,
    /// Read one pod or its status.
    Get,
    /// List pods.
    List,
    /// Logs.
    Logs,
    /// Node status, ping, capabilities.
    Node,
}

impl Timeouts {
    /// The timeout of a call of `kind`.
    pub fn of(&self, kind: CallKind) -> Duration {
        let specific = match kind {
            CallKind::Create => self.create,
            CallKind::Update => self.update,
            CallKind::Delete => self.delete,
            CallKind::Get => self.get,
            CallKind::List => self.list,
            CallKind::Logs => self.logs,
            CallKind::Node => self.node,
        };
        specific.unwrap_or(self.default)
    }
}

/// The whole configuration. Only `endpoint` (or `WEB_ENDPOINT_URL`) is required.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// The bridge's base URL (`http://` or `https://`, optionally with a path prefix).
    /// Empty: `WEB_ENDPOINT_URL`.
    pub endpoint: String,
    /// Sent as `Authorization: Bearer <token>`.
    pub bearer_token: Option<Secret>,
    /// A file holding the bearer token (trailing whitespace ignored); read at start.
    pub bearer_token_file: Option<PathBuf>,
    /// PEM bundle of CAs to trust for an `https://` bridge (in addition to the system's
    /// roots unless `system_roots = false`).
    pub ca_file: Option<PathBuf>,
    /// Whether to trust the system's root certificates too (default true).
    pub system_roots: bool,
    /// Client certificate chain (PEM) for mutual TLS; needs `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub client_key_file: Option<PathBuf>,
    /// Accept any server certificate (insecure; logged as a warning).
    pub insecure_skip_verify: bool,
    /// v1, v2 or auto.
    pub protocol: ProtocolChoice,
    /// Per-call timeouts.
    pub timeouts: Timeouts,
    /// Attempts per call in all (retries on connection failures, 429 and, for
    /// idempotent calls, 502/503/504 and timeouts; `Retry-After` honoured).
    pub max_attempts: u32,
    /// v1 bridges: how often pod status is polled with `GET /getPods`.
    #[serde(deserialize_with = "duration")]
    pub status_poll_interval: Duration,
    /// How often capacity, conditions and addresses are read.
    #[serde(deserialize_with = "duration")]
    pub node_status_interval: Duration,
    /// v1 logs: the largest `GET /getContainerLogs` answer accepted, in bytes.
    pub max_log_bytes: u64,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            bearer_token: None,
            bearer_token_file: None,
            ca_file: None,
            system_roots: true,
            client_cert_file: None,
            client_key_file: None,
            insecure_skip_verify: false,
            protocol: ProtocolChoice::Auto,
            timeouts: Timeouts::default(),
            max_attempts: 4,
            status_poll_interval: Duration::from_secs(5),
            node_status_interval: Duration::from_secs(30),
            max_log_bytes: 16 * 1024 * 1024,
        }
    }
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("endpoint", &self.endpoint)
            .field("bearer_token", &self.bearer_token)
            .field("bearer_token_file", &self.bearer_token_file)
            .field("ca_file", &self.ca_file)
            .field("system_roots", &self.system_roots)
            .field("client_cert_file", &self.client_cert_file)
            .field("client_key_file", &self.client_key_file)
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .field("protocol", &self.protocol)
            .field("timeouts", &self.timeouts)
            .field("max_attempts", &self.max_attempts)
            .field("status_poll_interval", &self.status_poll_interval)
            .field("node_status_interval", &self.node_status_interval)
            .field("max_log_bytes", &self.max_log_bytes)
            .finish()
    }
}

impl WebConfig {
    /// A configuration for the bridge at `endpoint`, with every default.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            ..Self::default()
        }
    }

    /// Fills `endpoint` from `WEB_ENDPOINT_URL` when the configuration left it empty.
    pub fn with_env_endpoint(mut self) -> Self {
        if self.endpoint.is_empty()
            && let Ok(url) = std::env::var(ENDPOINT_ENV)
        {
            self.endpoint = url;
        }
        self
    }
}

impl ProviderConfig for WebConfig {
    fn validate(&self) -> Result<(), InvalidValue> {
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            return Err(InvalidValue::new(
                "client_cert_file",
                "client_cert_file and client_key_file go together",
            ));
        }
        if self.bearer_token.is_some() && self.bearer_token_file.is_some() {
            return Err(InvalidValue::new(
                "bearer_token",
                "set bearer_token or bearer_token_file, not both",
            ));
        }
        if self.status_poll_interval.is_zero() {
            return Err(InvalidValue::new(
                "status_poll_interval",
                "must be longer than zero",
            ));
        }
        if self.node_status_interval.is_zero() {
            return Err(InvalidValue::new(
                "node_status_interval",
                "must be longer than zero",
            ));
        }
        Ok(())
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Seconds(s) => Ok(Duration::from_secs(s)),
        Raw::Text(t) => vk_cli::parse_duration(&t).map_err(serde::de::Error::custom),
    }
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str, text: &str) -> Result<WebConfig, vk_cli::ProviderConfigError> {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        vk_cli::load_provider_config(Some(&path), "VK_WEB_TEST_UNUSED_")
    }

    #[test]
    fn toml_parses_with_durations_and_defaults() {
        let c = parse(
            "c.toml",
            "endpoint = \"http://127.0.0.1:9\"\nbearer_token = \"hunter2\"\nprotocol = \"v1\"\n\
             status_poll_interval = \"250ms\"\n[timeouts]\ndefault = 3\ncreate = \"1m\"\n",
        )
        .expect("toml");
        assert_eq!(c.endpoint, "http://127.0.0.1:9");
        assert_eq!(c.protocol, ProtocolChoice::V1);
        assert_eq!(c.status_poll_interval, Duration::from_millis(250));
        assert_eq!(c.timeouts.of(CallKind::Create), Duration::from_secs(60));
        assert_eq!(c.timeouts.of(CallKind::Get), Duration::from_secs(3));
        assert_eq!(c.timeouts.of(CallKind::Node), Duration::from_secs(10));
        assert_eq!(c.node_status_interval, Duration::from_secs(30));
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn invalid_combinations_and_keys_are_refused() {
        let e = parse("c.toml", "client_cert_file = \"/c.pem\"\n").expect_err("no key");
        assert!(e.to_string().contains("client_cert_file"), "{e}");
        let e = parse(
            "c.json",
            r#"{"bearer_token": "a", "bearer_token_file": "/t"}"#,
        )
        .expect_err("both");
        assert!(e.to_string().contains("bearer_token"), "{e}");
        let e = parse("c.toml", "endpoint_url = \"x\"\n").expect_err("unknown key");
        assert!(e.to_string().contains("endpoint_url"), "{e}");
        let e = parse("c.toml", "[timeouts]\nget = \"soon\"\n").expect_err("bad duration");
        assert!(
            e.to_string().contains("soon") || e.to_string().contains("get"),
            "{e}"
        );
    }
}
