//! What [`init`](crate::init) sets up.

use std::collections::BTreeMap;
use std::str::FromStr;

use crate::TraceError;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line, with the fields of the current span and its parents.
    Json,
}

impl FromStr for LogFormat {
    type Err = TraceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" | "human" | "plain" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(TraceError::InvalidSetting(format!(
                "--log-format {other:?}: must be text or json"
            ))),
        }
    }
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OtlpProtocol {
    /// gRPC (collector port 4317).
    Grpc,
    /// HTTP with protobuf bodies (collector port 4318, `/v1/traces`); the OTLP default.
    #[default]
    HttpProtobuf,
    /// HTTP with JSON bodies.
    HttpJson,
}

impl FromStr for OtlpProtocol {
    type Err = TraceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "grpc" => Ok(Self::Grpc),
            "http/protobuf" | "http" => Ok(Self::HttpProtobuf),
            "http/json" => Ok(Self::HttpJson),
            other => Err(TraceError::InvalidSetting(format!(
                "OTLP protocol {other:?}: must be grpc, http/protobuf or http/json"
            ))),
        }
    }
}

/// Where and how spans are exported.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    /// Collector URL, e.g. `http://127.0.0.1:4318` (HTTP: `/v1/traces` is appended when
    /// the URL has no path) or `http://127.0.0.1:4317` (gRPC).
    pub endpoint: String,
    /// Transport.
    pub protocol: OtlpProtocol,
    /// Extra request headers (e.g. an API key).
    pub headers: BTreeMap<String, String>,
    /// Fraction of new traces sampled, 0.0–1.0 (children follow their parent).
    pub sample_ratio: f64,
}

impl OtlpConfig {
    /// The configuration from the standard variables, `None` when no endpoint is set:
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (full URL) or `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// (base URL), `OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL`,
    /// `OTEL_EXPORTER_OTLP[_TRACES]_HEADERS` (`k=v,k2=v2`), and `OTEL_TRACES_SAMPLER_ARG`
    /// (ratio). `OTEL_SDK_DISABLED=true` turns export off. Invalid values are ignored
    /// with a message on stderr (logging is not set up yet).
    pub fn from_env(_service: &str) -> Option<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return None;
        }
        let full = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        let base = var("OTEL_EXPORTER_OTLP_ENDPOINT");
        let mut protocol = OtlpProtocol::default();
        if let Some(p) =
            var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        {
            match p.parse() {
                Ok(p) => protocol = p,
                Err(e) => eprintln!("ignoring OTEL_EXPORTER_OTLP_PROTOCOL: {e}"),
            }
        }
        // The signal-specific URL is used as is; the base URL gets the signal's path
        // for HTTP (gRPC endpoints have no path).
        let endpoint = match (full, base) {
            (Some(full), _) => full,
            (None, Some(base)) if protocol != OtlpProtocol::Grpc => {
                format!("{}/v1/traces", base.trim_end_matches('/'))
            }
            (None, Some(base)) => base,
            (None, None) => return None,
        };
        let mut config = Self {
            endpoint,
            protocol,
            headers: BTreeMap::new(),
            sample_ratio: 1.0,
        };
        if let Some(h) =
            var("OTEL_EXPORTER_OTLP_TRACES_HEADERS").or_else(|| var("OTEL_EXPORTER_OTLP_HEADERS"))
        {
            match parse_headers(&h) {
                Ok(h) => config.headers = h,
                Err(e) => eprintln!("ignoring OTEL_EXPORTER_OTLP_HEADERS: {e}"),
            }
        }
        if let Some(r) = var("OTEL_TRACES_SAMPLER_ARG") {
            match parse_ratio(&r) {
                Ok(r) => config.sample_ratio = r,
                Err(e) => eprintln!("ignoring OTEL_TRACES_SAMPLER_ARG: {e}"),
            }
        }
        Some(config)
    }

    /// The URL spans are sent to: HTTP endpoints without a path get `/v1/traces`.
    pub fn traces_url(&self) -> String {
        let e = self.endpoint.trim_end_matches('/');
        if self.protocol == OtlpProtocol::Grpc {
            return e.to_owned();
        }
        let after_scheme = e.split_once("://").map_or(e, |(_, rest)| rest);
        if after_scheme.contains('/') {
            e.to_owned()
        } else {
            format!("{e}/v1/traces")
        }
    }
}

/// Parses `k=v,k2=v2` (values may be percent-encoded as OTEL specifies).
pub(crate) fn parse_headers(s: &str) -> Result<BTreeMap<String, String>, TraceError> {
    s.split(',')
        .filter(|kv| !kv.trim().is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                TraceError::InvalidSetting(format!("OTLP header {kv:?}: expected key=value"))
            })?;
            Ok((k.trim().to_owned(), percent_decode(v.trim())))
        })
        .collect()
}

fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = v
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a sampling ratio in 0.0–1.0.
pub(crate) fn parse_ratio(s: &str) -> Result<f64, TraceError> {
    match s.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(TraceError::InvalidSetting(format!(
            "sample ratio {s:?}: must be a number from 0.0 to 1.0"
        ))),
    }
}

/// Everything [`init`](crate::init) needs.
#[derive(Debug, Clone)]
pub struct TraceConfig {
    /// Log line format.
    pub log_format: LogFormat,
    /// Initial filter in `RUST_LOG` syntax (see [`default_filter`](crate::default_filter)).
    pub log_filter: String,
    /// Span export, if any.
    pub otlp: Option<OtlpConfig>,
    /// `service.name` of exported spans (the binary's name).
    pub service_name: String,
}

impl OtlpConfig {
    /// Parses headers given on the command line (`k=v,k2=v2`).
    pub fn headers_from(s: &str) -> Result<BTreeMap<String, String>, TraceError> {
        parse_headers(s)
    }

    /// Parses a sample ratio given on the command line.
    pub fn ratio_from(s: &str) -> Result<f64, TraceError> {
        parse_ratio(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_protocols_and_urls() {
        assert_eq!("JSON".parse::<LogFormat>().expect("json"), LogFormat::Json);
        assert!("xml".parse::<LogFormat>().is_err());
        assert_eq!(
            "grpc".parse::<OtlpProtocol>().expect("grpc"),
            OtlpProtocol::Grpc
        );
        assert_eq!(
            "http/json".parse::<OtlpProtocol>().expect("json"),
            OtlpProtocol::HttpJson
        );
        let mut c = OtlpConfig {
            endpoint: "http://127.0.0.1:4318/".into(),
            protocol: OtlpProtocol::HttpProtobuf,
            headers: BTreeMap::new(),
            sample_ratio: 1.0,
        };
        assert_eq!(c.traces_url(), "http://127.0.0.1:4318/v1/traces");
        c.endpoint = "http://collector/custom/path".into();
        assert_eq!(c.traces_url(), "http://collector/custom/path");
        c.protocol = OtlpProtocol::Grpc;
        c.endpoint = "http://127.0.0.1:4317".into();
        assert_eq!(c.traces_url(), "http://127.0.0.1:4317");
    }

    #[test]
    fn headers_and_ratios() {
        let h = parse_headers("api-key=abc%20def, x=1").expect("headers");
        assert_eq!(h["api-key"], "abc def");
        assert_eq!(h["x"], "1");
        assert!(parse_headers("novalue").is_err());
        assert_eq!(parse_ratio("0.25").expect("ratio"), 0.25);
        assert!(parse_ratio("2").is_err());
        assert!(parse_ratio("x").is_err());
    }
}
