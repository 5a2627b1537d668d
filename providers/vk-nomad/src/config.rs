//! vk-nomad's configuration: the `--provider-config` file (TOML or JSON, overridden by
//! `VK_NOMAD_*` variables, loaded by [`vk_cli::load_provider_config`]) and the
//! environment variables every Nomad user already has set.
//!
//! # Where the connection settings come from
//!
//! Each connection setting is taken from the provider config when it is set there,
//! otherwise from the variable the `nomad` CLI reads, otherwise from the CLI's default:
//!
//! | config key | variable | default |
//! |---|---|---|
//! | `address` | `NOMAD_ADDR` | `http://127.0.0.1:4646` |
//! | `token` | `NOMAD_TOKEN` (sent as `X-Nomad-Token`) | none |
//! | `namespace` | `NOMAD_NAMESPACE` | `default` |
//! | `region` | `NOMAD_REGION` | the agent's region |
//! | `ca_cert` | `NOMAD_CACERT` | system roots |
//! | `client_cert` / `client_key` | `NOMAD_CLIENT_CERT` / `NOMAD_CLIENT_KEY` | none |
//! | `skip_verify` | `NOMAD_SKIP_VERIFY` | `false` |
//!
//! The token is never logged: [`Token`]'s `Debug` output is redacted and the HTTP
//! client marks the header sensitive.
//!
//! ```toml
//! address = "https://nomad.example:4646"
//! namespace = "k8s"
//! driver = "docker"
//! datacenters = ["dc1", "dc2"]
//! node_pool = "virtual"
//! cpu_mhz_per_core = 2400
//! watch = "events"     # or "blocking_queries"
//!
//! [[constraints]]
//! attribute = "${attr.kernel.name}"
//! operator = "="
//! value = "linux"
//!
//! [capacity]          # overrides what the Nomad cluster's client nodes add up to
//! pods = "500"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vk_cli::ProviderConfig;

use crate::error::NomadError;

/// The Nomad API address the `nomad` CLI uses when `NOMAD_ADDR` is unset.
pub const DEFAULT_ADDRESS: &str = "http://127.0.0.1:4646";

/// An ACL token's secret ID. Its `Debug` output never shows the value.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    /// Wraps a secret ID.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret ID, to send as `X-Nomad-Token`.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Token(<empty>)"
        } else {
            "Token(<redacted>)"
        })
    }
}

/// The Nomad task driver that runs a pod's containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Driver {
    /// `docker`: the container image runs; `command` is the entrypoint.
    Docker,
    /// `exec`: `command` + `args` run isolated on the Nomad client (no image).
    Exec,
    /// `raw_exec`: `command` + `args` run unisolated on the Nomad client (no image).
    RawExec,
}

impl Driver {
    /// The driver's name in a Nomad task.
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Docker => "docker",
            Driver::Exec => "exec",
            Driver::RawExec => "raw_exec",
        }
    }

    /// Parses a driver name as Nomad spells it.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "docker" => Some(Driver::Docker),
            "exec" => Some(Driver::Exec),
            "raw_exec" => Some(Driver::RawExec),
            _ => None,
        }
    }
}

/// How the provider learns about allocation changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Watch {
    /// Nomad's event stream (`/v1/event/stream`, topics Allocation and Job); falls
    /// back to blocking queries when the agent refuses it (event broker disabled, a
    /// token without the needed policy).
    Events,
    /// Blocking queries on `/v1/allocations` (`index` + `wait`).
    BlockingQueries,
}

/// A placement constraint added to every job (Nomad's `constraint` block).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstraintConfig {
    /// `attribute` (Nomad's `LTarget`), e.g. `${attr.kernel.name}`.
    pub attribute: String,
    /// `operator` (`Operand`): `=`, `!=`, `regexp`, `version`, `distinct_hosts`...
    #[serde(default = "default_operator")]
    pub operator: String,
    /// `value` (`RTarget`).
    #[serde(default)]
    pub value: String,
}

fn default_operator() -> String {
    "=".to_owned()
}

/// The whole provider configuration; every field has a default.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NomadConfig {
    /// The Nomad HTTP API address (overrides `NOMAD_ADDR`).
    pub address: Option<String>,
    /// The ACL token (overrides `NOMAD_TOKEN`).
    pub token: Option<Token>,
    /// The Nomad namespace the jobs are registered in (overrides `NOMAD_NAMESPACE`).
    pub namespace: Option<String>,
    /// The Nomad region (overrides `NOMAD_REGION`).
    pub region: Option<String>,
    /// A PEM CA bundle for the agent's certificate (overrides `NOMAD_CACERT`).
    pub ca_cert: Option<PathBuf>,
    /// A PEM client certificate for mutual TLS (overrides `NOMAD_CLIENT_CERT`).
    pub client_cert: Option<PathBuf>,
    /// The client certificate's PEM key (overrides `NOMAD_CLIENT_KEY`).
    pub client_key: Option<PathBuf>,
    /// Skip TLS verification (overrides `NOMAD_SKIP_VERIFY`). Insecure.
    pub skip_verify: Option<bool>,
    /// The default task driver (a pod chooses another with the
    /// `nomad.virtual-kubelet.io/driver` annotation).
    pub driver: Driver,
    /// The datacenters jobs may run in (`["*"]`: all, Nomad 1.5+).
    pub datacenters: Vec<String>,
    /// The node pool jobs run in, if not Nomad's default.
    pub node_pool: Option<String>,
    /// Constraints added to every job.
    pub constraints: Vec<ConstraintConfig>,
    /// How many MHz one Kubernetes CPU is worth (Nomad reserves CPU in MHz).
    pub cpu_mhz_per_core: u32,
    /// The group network mode (`host`, `bridge`, `none`, `cni/<name>`).
    pub network_mode: String,
    /// A prefix for the job IDs (`<prefix><namespace>_<name>`).
    pub job_prefix: String,
    /// The job priority, if not Nomad's default (50).
    pub priority: Option<i32>,
    /// Node capacity overrides (`cpu`, `memory`, `pods`...); the rest is the sum of
    /// the Nomad cluster's ready, eligible client nodes.
    pub capacity: BTreeMap<String, String>,
    /// How allocation changes are followed (`events` or `blocking_queries`).
    pub watch: Watch,
    /// The longest a blocking query waits before Nomad answers without a change.
    pub blocking_wait_seconds: u64,
    /// Request timeout for ordinary (non-blocking) API calls.
    pub request_timeout_seconds: u64,
}

impl Default for NomadConfig {
    fn default() -> Self {
        Self {
            address: None,
            token: None,
            namespace: None,
            region: None,
            ca_cert: None,
            client_cert: None,
            client_key: None,
            skip_verify: None,
            driver: Driver::Docker,
            datacenters: vec!["*".to_owned()],
            node_pool: None,
            constraints: Vec::new(),
            cpu_mhz_per_core: 1000,
            network_mode: "host".to_owned(),
            job_prefix: String::new(),
            priority: None,
            capacity: BTreeMap::new(),
            watch: Watch::Events,
            blocking_wait_seconds: 300,
            request_timeout_seconds: 30,
        }
    }
}

impl ProviderConfig for NomadConfig {}

/// The connection settings after the environment is applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    /// The API address.
    pub address: String,
    /// The ACL token, if any.
    pub token: Option<Token>,
    /// The namespace jobs live in.
    pub namespace: String,
    /// The region to address, if not the agent's.
    pub region: Option<String>,
    /// CA bundle path.
    pub ca_cert: Option<PathBuf>,
    /// Client certificate and key paths.
    pub client_identity: Option<(PathBuf, PathBuf)>,
    /// Whether TLS verification is off.
    pub skip_verify: bool,
    /// Timeout for ordinary calls.
    pub request_timeout: Duration,
    /// The blocking-query `wait`.
    pub blocking_wait: Duration,
}

impl NomadConfig {
    /// The connection settings from this config and the process environment.
    pub fn connection(&self) -> Result<Connection, NomadError> {
        self.connection_with(|name| std::env::var(name).ok())
    }

    /// The connection settings from this config and the variables `env` returns
    /// (`NOMAD_ADDR`...); config values win, empty variables count as unset.
    ///
    /// ```
    /// let config = vk_nomad::NomadConfig::default();
    /// let c = config
    ///     .connection_with(|name| (name == "NOMAD_NAMESPACE").then(|| "k8s".to_owned()))
    ///     .unwrap();
    /// assert_eq!(c.namespace, "k8s");
    /// assert_eq!(c.address, "http://127.0.0.1:4646");
    /// ```
    pub fn connection_with(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Connection, NomadError> {
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        let path = |set: &Option<PathBuf>, name: &str| {
            set.clone().or_else(|| var(name).map(PathBuf::from))
        };
        let skip_verify = match self.skip_verify {
            Some(skip) => skip,
            None => match var("NOMAD_SKIP_VERIFY") {
                Some(text) => parse_go_bool(&text).ok_or_else(|| NomadError::Config {
                    key: "NOMAD_SKIP_VERIFY".to_owned(),
                    reason: format!("{text:?} is not a boolean"),
                })?,
                None => false,
            },
        };
        let cert = path(&self.client_cert, "NOMAD_CLIENT_CERT");
        let key = path(&self.client_key, "NOMAD_CLIENT_KEY");
        let client_identity = match (cert, key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                return Err(NomadError::Config {
                    key: "client_cert/client_key".to_owned(),
                    reason: "a client certificate needs its key and a key its certificate \
                             (NOMAD_CLIENT_CERT and NOMAD_CLIENT_KEY)"
                        .to_owned(),
                });
            }
        };
        if self.cpu_mhz_per_core == 0 {
            return Err(NomadError::Config {
                key: "cpu_mhz_per_core".to_owned(),
                reason: "must be at least 1".to_owned(),
            });
        }
        Ok(Connection {
            address: self
                .address
                .clone()
                .or_else(|| var("NOMAD_ADDR"))
                .unwrap_or_else(|| DEFAULT_ADDRESS.to_owned()),
            token: self
                .token
                .clone()
                .filter(|t| !t.0.is_empty())
                .or_else(|| var("NOMAD_TOKEN").map(Token)),
            namespace: self
                .namespace
                .clone()
                .or_else(|| var("NOMAD_NAMESPACE"))
                .unwrap_or_else(|| "default".to_owned()),
            region: self.region.clone().or_else(|| var("NOMAD_REGION")),
            ca_cert: path(&self.ca_cert, "NOMAD_CACERT"),
            client_identity,
            skip_verify,
            request_timeout: Duration::from_secs(self.request_timeout_seconds.max(1)),
            blocking_wait: Duration::from_secs(self.blocking_wait_seconds.clamp(1, 600)),
        })
    }
}

/// Go's `strconv.ParseBool`, which the `nomad` CLI uses for `NOMAD_SKIP_VERIFY`.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn environment_is_used_and_config_wins() {
        let env = env_of(&[
            ("NOMAD_ADDR", "https://n:4646"),
            ("NOMAD_TOKEN", "s3cret"),
            ("NOMAD_NAMESPACE", "ns1"),
            ("NOMAD_REGION", "eu"),
            ("NOMAD_CACERT", "/ca.pem"),
            ("NOMAD_CLIENT_CERT", "/c.pem"),
            ("NOMAD_CLIENT_KEY", "/k.pem"),
            ("NOMAD_SKIP_VERIFY", "t"),
        ]);
        let c = NomadConfig::default().connection_with(&env).expect("env");
        assert_eq!(c.address, "https://n:4646");
        assert_eq!(c.token, Some(Token::new("s3cret")));
        assert_eq!(c.namespace, "ns1");
        assert_eq!(c.region.as_deref(), Some("eu"));
        assert_eq!(c.ca_cert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(
            c.client_identity,
            Some((PathBuf::from("/c.pem"), PathBuf::from("/k.pem")))
        );
        assert!(c.skip_verify);

        let config = NomadConfig {
            address: Some("http://other:1".into()),
            token: Some(Token::new("mine")),
            namespace: Some("k8s".into()),
            skip_verify: Some(false),
            ..Default::default()
        };
        let c = config.connection_with(&env).expect("config");
        assert_eq!(c.address, "http://other:1");
        assert_eq!(c.token, Some(Token::new("mine")));
        assert_eq!(c.namespace, "k8s");
        assert!(!c.skip_verify);
    }

    #[test]
    fn defaults_match_the_nomad_cli() {
        let c = NomadConfig::default()
            .connection_with(env_of(&[("NOMAD_TOKEN", "")]))
            .expect("defaults");
        assert_eq!(c.address, DEFAULT_ADDRESS);
        assert_eq!(c.namespace, "default");
        assert_eq!(c.token, None);
        assert!(!c.skip_verify);
    }

    #[test]
    fn bad_values_are_named() {
        let e = NomadConfig::default()
            .connection_with(env_of(&[("NOMAD_SKIP_VERIFY", "yes")]))
            .expect_err("not a Go bool");
        assert!(e.to_string().contains("NOMAD_SKIP_VERIFY"), "{e}");
        let e = NomadConfig::default()
            .connection_with(env_of(&[("NOMAD_CLIENT_CERT", "/c.pem")]))
            .expect_err("cert without key");
        assert!(e.to_string().contains("NOMAD_CLIENT_KEY"), "{e}");
    }

    #[test]
    fn token_is_redacted_in_debug_output() {
        let config = NomadConfig {
            token: Some(Token::new("s3cret-value")),
            ..Default::default()
        };
        let shown = format!("{config:?} {:?}", config.connection_with(|_| None));
        assert!(!shown.contains("s3cret-value"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn file_keys_parse_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "driver = \"raw_exec\"\ndatacenters = [\"dc1\"]\ncpu_mhz_per_core = 2400\n\
             [[constraints]]\nattribute = \"${attr.kernel.name}\"\nvalue = \"linux\"\n",
        )
        .expect("write");
        let c: NomadConfig =
            vk_cli::load_provider_config(Some(&path), "VK_NOMAD_TEST_UNSET_").expect("parse");
        assert_eq!(c.driver, Driver::RawExec);
        assert_eq!(c.datacenters, ["dc1"]);
        assert_eq!(c.cpu_mhz_per_core, 2400);
        assert_eq!(c.constraints[0].operator, "=");
        std::fs::write(&path, "adress = \"x\"\n").expect("write");
        let e = vk_cli::load_provider_config::<NomadConfig>(Some(&path), "VK_NOMAD_TEST_UNSET_")
            .expect_err("typo");
        assert!(e.to_string().contains("adress"), "{e}");
    }
}
