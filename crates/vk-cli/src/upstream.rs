//! The Go project's command line, accepted for operators who arrive with its charts and
//! scripts: the flags of virtual-kubelet's `node-cli` and of the providers' own
//! `virtual-kubelet` commands (the ACI chart's, for one) that have no flag of the same
//! name here.
//!
//! These flags are hidden from `--help`. Each is either mapped onto a setting of ours or
//! accepted as a no-op with a warning ([`UpstreamEffects::notices`]), so that a command
//! line written for the Go binary starts this one:
//!
//! | Go flag | Here |
//! |---|---|
//! | `--provider NAME` | must name this binary's provider (error otherwise) |
//! | `--enable-node-lease[=BOOL]` | no-op: node leases are always used |
//! | `--trace-exporter otlp` | OTLP span export (to `--otlp-endpoint`, `OTEL_EXPORTER_OTLP_*`, else `http://localhost:4318`) |
//! | `--trace-exporter jaeger,ocagent,zpages` | no-op: only OTLP is exported |
//! | `--trace-sample-rate always\|never\|0-100` | `--trace-sample-ratio` 1.0, 0.0 or percent/100 |
//! | `--trace-service-name NAME` | the exported `service.name` |
//! | `--trace-tag k=v` | no-op (use `OTEL_RESOURCE_ATTRIBUTES`) |
//! | `--klog.v N` | N ≥ 4: debug logs of the Kubernetes client; N ≥ 6: trace |
//! | other `--klog.*` | no-op: logs always go to stderr |
//! | `--no-verify-clients[=BOOL]` | no-op: client certificates are verified when presented |
//! | `--stream-creation-timeout`, `--authentication-token-webhook-cache-ttl`, `--authorization-webhook-cache-{authorized,unauthorized}-ttl` | no-op |
//! | `--log-level warning\|fatal\|panic` (logrus levels) | `warn`, `error`, `error` |
//!
//! Flags that exist here under another name are aliases of ours: `--taint`
//! (`--taint-key`), `--client-verify-ca` (`--client-ca-file`), `--stream-idle-timeout`
//! (`--streaming-connection-idle-timeout`).

use crate::settings::{SettingsError, invalid};

/// Parses a Go boolean (`strconv.ParseBool`): 1, t, T, TRUE, true, True, 0, f, F, FALSE,
/// false, False. Flags taking one accept it bare (`--disable-taint`), with `=`, or as the
/// next argument (`--disable-taint true`, as the ACI chart writes it).
///
/// ```
/// assert_eq!(vk_cli::go_bool("T"), Ok(true));
/// assert_eq!(vk_cli::go_bool("False"), Ok(false));
/// assert!(vk_cli::go_bool("yes").is_err());
/// ```
pub fn go_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("{text:?} is not a boolean (true or false)")),
    }
}

/// Flags of the Go project without a flag of the same name here (hidden from `--help`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct UpstreamFlags {
    /// Provider name: must be this binary's provider.
    #[arg(long, hide = true, value_name = "NAME")]
    pub provider: Option<String>,

    /// Node leases (always used here).
    #[arg(long, hide = true, value_name = "BOOL", num_args = 0..=1,
          default_missing_value = "true", value_parser = go_bool)]
    pub enable_node_lease: Option<bool>,

    /// Span exporters (comma-separated or repeated): otlp; jaeger, ocagent and zpages are
    /// not supported.
    #[arg(long, hide = true, value_name = "EXPORTER", value_delimiter = ',')]
    pub trace_exporter: Vec<String>,

    /// Sampling: always, never, or a percentage 0-100.
    #[arg(long, hide = true, value_name = "RATE")]
    pub trace_sample_rate: Option<String>,

    /// `service.name` of exported spans.
    #[arg(long, hide = true, value_name = "NAME")]
    pub trace_service_name: Option<String>,

    /// Span tags key=value (not supported: use OTEL_RESOURCE_ATTRIBUTES).
    #[arg(long, hide = true, value_name = "KEY=VALUE")]
    pub trace_tag: Vec<String>,

    /// Do not ask for client certificates (not supported).
    #[arg(long, hide = true, value_name = "BOOL", num_args = 0..=1,
          default_missing_value = "true", value_parser = go_bool)]
    pub no_verify_clients: Option<bool>,

    /// Stream creation timeout (fixed at 30 s here).
    #[arg(long, hide = true, value_name = "DURATION")]
    pub stream_creation_timeout: Option<String>,

    /// TokenReview cache TTL (not configurable here).
    #[arg(long, hide = true, value_name = "DURATION")]
    pub authentication_token_webhook_cache_ttl: Option<String>,

    /// SubjectAccessReview cache TTL for allowed requests (not configurable here).
    #[arg(long, hide = true, value_name = "DURATION")]
    pub authorization_webhook_cache_authorized_ttl: Option<String>,

    /// SubjectAccessReview cache TTL for denied requests (not configurable here).
    #[arg(long, hide = true, value_name = "DURATION")]
    pub authorization_webhook_cache_unauthorized_ttl: Option<String>,

    /// klog's flags (`--klog.v 2`, `--klog.logtostderr`...).
    #[command(flatten)]
    pub klog: KlogFlags,
}

/// klog's flags as the Go binaries register them (`klog.` + the Go flag name; the
/// dashed spellings are accepted too).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KlogFlags {
    /// Verbosity (0-10).
    #[arg(long = "klog.v", hide = true, value_name = "N")]
    pub v: Option<String>,
    /// Per-file verbosity.
    #[arg(long = "klog.vmodule", hide = true, value_name = "PATTERN=N")]
    pub vmodule: Option<String>,
    /// Log directory.
    #[arg(
        long = "klog.log_dir",
        alias = "klog.log-dir",
        hide = true,
        value_name = "DIR"
    )]
    pub log_dir: Option<String>,
    /// Log file.
    #[arg(
        long = "klog.log_file",
        alias = "klog.log-file",
        hide = true,
        value_name = "FILE"
    )]
    pub log_file: Option<String>,
    /// Log file size limit.
    #[arg(
        long = "klog.log_file_max_size",
        alias = "klog.log-file-max-size",
        hide = true,
        value_name = "MB"
    )]
    pub log_file_max_size: Option<String>,
    /// Severity copied to stderr.
    #[arg(long = "klog.stderrthreshold", hide = true, value_name = "SEVERITY")]
    pub stderrthreshold: Option<String>,
    /// Stack trace at a file:line.
    #[arg(
        long = "klog.log_backtrace_at",
        alias = "klog.log-backtrace-at",
        hide = true,
        value_name = "FILE:LINE"
    )]
    pub log_backtrace_at: Option<String>,
    /// Log to stderr instead of files.
    #[arg(long = "klog.logtostderr", hide = true, value_name = "BOOL", num_args = 0..=1,
          default_missing_value = "true", value_parser = go_bool)]
    pub logtostderr: Option<bool>,
    /// Log to stderr as well as files.
    #[arg(long = "klog.alsologtostderr", hide = true, value_name = "BOOL", num_args = 0..=1,
          default_missing_value = "true", value_parser = go_bool)]
    pub alsologtostderr: Option<bool>,
    /// No line headers.
    #[arg(long = "klog.skip_headers", alias = "klog.skip-headers", hide = true,
          value_name = "BOOL", num_args = 0..=1, default_missing_value = "true",
          value_parser = go_bool)]
    pub skip_headers: Option<bool>,
    /// No headers in log files.
    #[arg(long = "klog.skip_log_headers", alias = "klog.skip-log-headers", hide = true,
          value_name = "BOOL", num_args = 0..=1, default_missing_value = "true",
          value_parser = go_bool)]
    pub skip_log_headers: Option<bool>,
    /// File directory in headers.
    #[arg(long = "klog.add_dir_header", alias = "klog.add-dir-header", hide = true,
          value_name = "BOOL", num_args = 0..=1, default_missing_value = "true",
          value_parser = go_bool)]
    pub add_dir_header: Option<bool>,
    /// One output per severity.
    #[arg(long = "klog.one_output", alias = "klog.one-output", hide = true,
          value_name = "BOOL", num_args = 0..=1, default_missing_value = "true",
          value_parser = go_bool)]
    pub one_output: Option<bool>,
}

/// What the Go flags change, resolved by [`UpstreamFlags::resolve`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpstreamEffects {
    /// `--provider`, checked against the binary's provider by [`check_provider`].
    pub provider: Option<String>,
    /// `--trace-exporter otlp`: export spans even without an endpoint setting (to the
    /// OTLP default).
    pub otlp_export: bool,
    /// `--trace-sample-rate`, as a ratio.
    pub sample_ratio: Option<f64>,
    /// `--trace-service-name`.
    pub service_name: Option<String>,
    /// Log directives `--klog.v` adds (for the Kubernetes client's crates).
    pub log_directives: Option<&'static str>,
    /// Warnings for flags accepted as no-ops, logged once logging is up.
    pub notices: Vec<String>,
}

/// The OTLP endpoint `--trace-exporter otlp` exports to when nothing else names one
/// (OpenTelemetry's default for http/protobuf).
pub const OTLP_DEFAULT_ENDPOINT: &str = "http://localhost:4318";

/// Exporters of the Go binaries that have no equivalent here.
const UNSUPPORTED_EXPORTERS: [&str; 3] = ["jaeger", "ocagent", "zpages"];

impl UpstreamFlags {
    /// Maps the Go flags onto our settings; an unknown exporter or a bad sample rate or
    /// klog verbosity is an error naming the flag.
    pub fn resolve(&self) -> Result<UpstreamEffects, SettingsError> {
        let mut effects = UpstreamEffects {
            provider: self.provider.clone(),
            service_name: self.trace_service_name.clone(),
            ..Default::default()
        };
        self.resolve_tracing(&mut effects)?;
        self.resolve_no_ops(&mut effects);
        self.klog.resolve(&mut effects)?;
        Ok(effects)
    }

    /// `--trace-exporter`, `--trace-sample-rate`, `--trace-tag`.
    fn resolve_tracing(&self, effects: &mut UpstreamEffects) -> Result<(), SettingsError> {
        for exporter in self.trace_exporter.iter().map(|e| e.trim()) {
            match exporter {
                "" => {}
                "otlp" => effects.otlp_export = true,
                e if UNSUPPORTED_EXPORTERS.contains(&e) => effects.notices.push(format!(
                    "--trace-exporter {e} is not supported and is ignored: spans are exported \
                     with OTLP only (--trace-exporter otlp, --otlp-endpoint; Jaeger and the \
                     OpenTelemetry Collector accept OTLP)"
                )),
                e => {
                    return Err(invalid(
                        "trace-exporter",
                        e,
                        "is not an exporter (use otlp, with --otlp-endpoint)",
                    ));
                }
            }
        }
        if let Some(rate) = &self.trace_sample_rate {
            effects.sample_ratio = sample_rate(rate)?;
        }
        if !self.trace_tag.is_empty() {
            effects.notices.push(format!(
                "--trace-tag {} is ignored: set span resource attributes with \
                 OTEL_RESOURCE_ATTRIBUTES=key=value,...",
                self.trace_tag.join(",")
            ));
        }
        Ok(())
    }

    /// Flags accepted for compatibility that change nothing.
    fn resolve_no_ops(&self, effects: &mut UpstreamEffects) {
        if let Some(lease) = self.enable_node_lease {
            effects.notices.push(format!(
                "--enable-node-lease={lease} is deprecated and ignored: node leases are always used"
            ));
        }
        if self.no_verify_clients == Some(true) {
            effects.notices.push(
                "--no-verify-clients is ignored: client certificates are verified against \
                 --client-ca-file when a caller presents one (callers without one \
                 authenticate with a bearer token)"
                    .to_owned(),
            );
        }
        for (flag, value) in [
            ("stream-creation-timeout", &self.stream_creation_timeout),
            (
                "authentication-token-webhook-cache-ttl",
                &self.authentication_token_webhook_cache_ttl,
            ),
            (
                "authorization-webhook-cache-authorized-ttl",
                &self.authorization_webhook_cache_authorized_ttl,
            ),
            (
                "authorization-webhook-cache-unauthorized-ttl",
                &self.authorization_webhook_cache_unauthorized_ttl,
            ),
        ] {
            if let Some(v) = value {
                effects.notices.push(format!(
                    "--{flag} {v} is ignored: not configurable in this implementation"
                ));
            }
        }
    }
}

impl KlogFlags {
    /// `--klog.v` becomes log directives for the Kubernetes client (in the Go binaries
    /// klog carries client-go's logs); the other klog flags are no-ops.
    fn resolve(&self, effects: &mut UpstreamEffects) -> Result<(), SettingsError> {
        if let Some(v) = &self.v {
            let level: u8 = v
                .trim()
                .parse()
                .map_err(|_| invalid("klog.v", v, "is not a verbosity level (a number, e.g. 2)"))?;
            effects.log_directives = match level {
                0..=3 => None,
                4 | 5 => Some("kube_client=debug,kube_runtime=debug"),
                _ => Some("kube_client=trace,kube_runtime=trace"),
            };
        }
        let ignored: Vec<String> = [
            ("vmodule", self.vmodule.clone()),
            ("log_dir", self.log_dir.clone()),
            ("log_file", self.log_file.clone()),
            ("log_file_max_size", self.log_file_max_size.clone()),
            ("stderrthreshold", self.stderrthreshold.clone()),
            ("log_backtrace_at", self.log_backtrace_at.clone()),
            ("logtostderr", self.logtostderr.map(|b| b.to_string())),
            (
                "alsologtostderr",
                self.alsologtostderr.map(|b| b.to_string()),
            ),
            ("skip_headers", self.skip_headers.map(|b| b.to_string())),
            (
                "skip_log_headers",
                self.skip_log_headers.map(|b| b.to_string()),
            ),
            ("add_dir_header", self.add_dir_header.map(|b| b.to_string())),
            ("one_output", self.one_output.map(|b| b.to_string())),
        ]
        .into_iter()
        .filter_map(|(flag, value)| value.map(|v| format!("--klog.{flag}={v}")))
        .collect();
        if !ignored.is_empty() {
            effects.notices.push(format!(
                "{} ignored: logs always go to stderr, filtered by --log-level (or RUST_LOG)",
                ignored.join(" ")
            ));
        }
        Ok(())
    }
}

/// `--trace-sample-rate`: `always`, `never`, or a percentage from 0 to 100 (empty:
/// unset), as the Go binaries take it.
fn sample_rate(rate: &str) -> Result<Option<f64>, SettingsError> {
    match rate.trim().to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "always" => Ok(Some(1.0)),
        "never" => Ok(Some(0.0)),
        percent => match percent.parse::<f64>() {
            Ok(p) if (0.0..=100.0).contains(&p) => Ok(Some(p / 100.0)),
            _ => Err(invalid(
                "trace-sample-rate",
                rate,
                "must be always, never, or a percentage from 0 to 100",
            )),
        },
    }
}

/// `--provider` must name this binary's provider (case-insensitively): a chart written
/// for another provider must not start this one unnoticed.
pub fn check_provider(
    requested: Option<&str>,
    binary: &str,
    name: &str,
) -> Result<(), SettingsError> {
    match requested {
        Some(p) if !p.trim().eq_ignore_ascii_case(name) => Err(SettingsError::Invalid {
            flag: "provider",
            value: p.to_owned(),
            reason: format!(
                "names another provider: {binary} runs the {name} provider (pass --provider {name}, or leave it out)"
            ),
        }),
        _ => Ok(()),
    }
}

/// A logrus level of the Go binaries' `--log-level` in our terms (`warning` → `warn`,
/// `fatal` and `panic` → `error`); other values are returned as they are.
pub fn log_level(level: &str) -> &str {
    match level.trim() {
        l if l.eq_ignore_ascii_case("warning") => "warn",
        l if l.eq_ignore_ascii_case("fatal") || l.eq_ignore_ascii_case("panic") => "error",
        _ => level,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Only {
        #[command(flatten)]
        upstream: UpstreamFlags,
    }

    fn effects(args: &[&str]) -> Result<UpstreamEffects, SettingsError> {
        let mut all = vec!["vk"];
        all.extend_from_slice(args);
        Only::try_parse_from(all)
            .expect("parses")
            .upstream
            .resolve()
    }

    #[test]
    fn go_booleans() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(go_bool(t), Ok(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(go_bool(f), Ok(false), "{f}");
        }
        assert!(go_bool("yes").is_err());
        assert!(go_bool("").is_err());
    }

    #[test]
    fn no_upstream_flags_change_nothing() {
        assert_eq!(effects(&[]).expect("ok"), UpstreamEffects::default());
    }

    #[test]
    fn enable_node_lease_in_every_spelling_is_a_warned_no_op() {
        for (args, value) in [
            (&["--enable-node-lease"][..], "true"),
            (&["--enable-node-lease=true"][..], "true"),
            (&["--enable-node-lease=false"][..], "false"),
            (&["--enable-node-lease", "false"][..], "false"),
        ] {
            let e = effects(args).expect("ok");
            assert_eq!(e.notices.len(), 1, "{args:?}");
            assert!(
                e.notices[0].contains(&format!("--enable-node-lease={value}"))
                    && e.notices[0].contains("always"),
                "{args:?}: {:?}",
                e.notices
            );
        }
    }

    #[test]
    fn trace_exporters_map_to_otlp_or_are_warned_about() {
        let e = effects(&["--trace-exporter", "otlp"]).expect("ok");
        assert!(e.otlp_export);
        assert!(e.notices.is_empty());
        let e = effects(&[
            "--trace-exporter=jaeger,zpages",
            "--trace-exporter",
            "ocagent",
        ])
        .expect("ok");
        assert!(!e.otlp_export);
        assert_eq!(e.notices.len(), 3, "{:?}", e.notices);
        assert!(e.notices.iter().all(|n| n.contains("not supported")));
        let err = effects(&["--trace-exporter", "zipkin"])
            .expect_err("unknown exporter")
            .to_string();
        assert!(err.starts_with("--trace-exporter: \"zipkin\""), "{err}");
    }

    #[test]
    fn trace_sample_rate_is_a_percentage_or_always_or_never() {
        let ratio =
            |r: &str| effects(&[&format!("--trace-sample-rate={r}")]).map(|e| e.sample_ratio);
        assert_eq!(ratio("always").expect("ok"), Some(1.0));
        assert_eq!(ratio("Never").expect("ok"), Some(0.0));
        assert_eq!(ratio("25").expect("ok"), Some(0.25));
        assert_eq!(ratio("100").expect("ok"), Some(1.0));
        assert_eq!(ratio("").expect("ok"), None);
        for bad in ["101", "-1", "sometimes"] {
            let err = ratio(bad).expect_err(bad).to_string();
            assert!(err.starts_with("--trace-sample-rate"), "{err}");
        }
    }

    #[test]
    fn trace_service_name_and_tags() {
        let e = effects(&["--trace-service-name", "vk-aci", "--trace-tag", "team=a"]).expect("ok");
        assert_eq!(e.service_name.as_deref(), Some("vk-aci"));
        assert!(
            e.notices[0].contains("OTEL_RESOURCE_ATTRIBUTES"),
            "{:?}",
            e.notices
        );
    }

    #[test]
    fn klog_verbosity_raises_the_kubernetes_client_logs() {
        let directives = |v: &str| effects(&["--klog.v", v]).expect("ok").log_directives;
        assert_eq!(directives("2"), None);
        assert_eq!(
            directives("4"),
            Some("kube_client=debug,kube_runtime=debug")
        );
        assert_eq!(
            directives("8"),
            Some("kube_client=trace,kube_runtime=trace")
        );
        assert_eq!(
            effects(&["--klog.v=4"]).expect("ok").log_directives,
            Some("kube_client=debug,kube_runtime=debug")
        );
        let err = effects(&["--klog.v", "loud"]).expect_err("bad").to_string();
        assert!(err.starts_with("--klog.v: \"loud\""), "{err}");
    }

    #[test]
    fn other_klog_flags_are_warned_no_ops_in_both_spellings() {
        let e = effects(&[
            "--klog.logtostderr",
            "--klog.alsologtostderr=false",
            "--klog.log_dir",
            "/var/log",
            "--klog.log-file=/tmp/x",
            "--klog.skip_headers",
            "--klog.stderrthreshold",
            "ERROR",
        ])
        .expect("ok");
        assert_eq!(e.log_directives, None);
        assert_eq!(e.notices.len(), 1, "{:?}", e.notices);
        for flag in [
            "--klog.logtostderr=true",
            "--klog.alsologtostderr=false",
            "--klog.log_dir=/var/log",
            "--klog.log_file=/tmp/x",
            "--klog.skip_headers=true",
            "--klog.stderrthreshold=ERROR",
        ] {
            assert!(e.notices[0].contains(flag), "{flag}: {}", e.notices[0]);
        }
    }

    #[test]
    fn other_no_ops_are_warned_about() {
        let e = effects(&[
            "--no-verify-clients=false",
            "--stream-creation-timeout",
            "30s",
            "--authentication-token-webhook-cache-ttl=2m",
            "--authorization-webhook-cache-authorized-ttl=5m",
            "--authorization-webhook-cache-unauthorized-ttl=30s",
        ])
        .expect("ok");
        // --no-verify-clients=false is what we do anyway: nothing to warn about.
        assert_eq!(e.notices.len(), 4, "{:?}", e.notices);
        let e = effects(&["--no-verify-clients"]).expect("ok");
        assert!(e.notices[0].starts_with("--no-verify-clients is ignored"));
    }

    #[test]
    fn provider_must_be_this_binarys() {
        assert!(check_provider(None, "vk-mock", "mock").is_ok());
        assert!(check_provider(Some("mock"), "vk-mock", "mock").is_ok());
        assert!(check_provider(Some("Mock"), "vk-mock", "mock").is_ok());
        let err = check_provider(Some("azure"), "vk-mock", "mock")
            .expect_err("another provider")
            .to_string();
        assert!(
            err.starts_with("--provider: \"azure\"")
                && err.contains("vk-mock runs the mock provider"),
            "{err}"
        );
    }

    #[test]
    fn logrus_levels_map_to_ours() {
        assert_eq!(log_level("warning"), "warn");
        assert_eq!(log_level("fatal"), "error");
        assert_eq!(log_level("PANIC"), "error");
        assert_eq!(log_level("debug"), "debug");
        assert_eq!(log_level("vk_core=trace"), "vk_core=trace");
    }
}
