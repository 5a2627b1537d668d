//! A provider's own configuration (`--provider-config`), loaded the same way by every
//! provider: TOML or JSON by extension, overridden by environment variables with the
//! provider's prefix, checked by the provider, with errors that name the file, the line
//! and the key (or the environment variable) to fix.
//!
//! # Layers
//!
//! **the type's serde defaults < the file < `VK_<PROVIDER>_*` variables.** Nested keys
//! are joined with a double underscore: for vk-mock (prefix `VK_MOCK_`),
//! `VK_MOCK_FAULTS__ERROR_RATE=0.2` sets `faults.error_rate`. A variable's value is text,
//! read as a number or a boolean where the key wants one; lists and tables belong in
//! the file.
//!
//! ```
//! use serde::Deserialize;
//!
//! #[derive(Debug, Default, Deserialize)]
//! #[serde(default, deny_unknown_fields)]
//! struct AcmeConfig {
//!     region: String,
//!     max_pods: u32,
//! }
//!
//! impl vk_cli::ProviderConfig for AcmeConfig {
//!     fn validate(&self) -> Result<(), vk_cli::InvalidValue> {
//!         if self.max_pods == 0 {
//!             return Err(vk_cli::InvalidValue::new("max_pods", "must be at least 1"));
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("acme.toml");
//! std::fs::write(&path, "region = \"eu\"\nmax_pods = \"many\"\n").unwrap();
//! let err = vk_cli::load_provider_config::<AcmeConfig>(Some(&path), "VK_ACME_").unwrap_err();
//! // "provider config /tmp/.../acme.toml, line 2: key `max_pods`: invalid type: ..."
//! assert!(err.to_string().contains("line 2: key `max_pods`"), "{err}");
//! ```

use std::path::{Path, PathBuf};

use figment::providers::{Format as _, Json, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::de::DeserializeOwned;

/// A provider's configuration type: any serde type, plus the checks serde cannot make.
pub trait ProviderConfig: DeserializeOwned {
    /// Checks values after loading (ranges, combinations). The default accepts all.
    fn validate(&self) -> Result<(), InvalidValue> {
        Ok(())
    }
}

/// A value that parses but is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidValue {
    /// The key, dotted for nested ones (`faults.error_rate`).
    pub key: String,
    /// What is wrong and what to do instead.
    pub reason: String,
}

impl InvalidValue {
    /// `key` is invalid because of `reason`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Why a provider configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ProviderConfigError {
    /// The file could not be read.
    #[error("reading provider config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML/JSON.
    #[error("parsing provider config {path}, line {line}, column {column}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser says.
        message: String,
    },
    /// A value has the wrong type, a key is unknown or a required key is missing.
    #[error("provider config {origin}{}: key `{key}`: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Value {
        /// Where the value came from: the file, or the environment variable.
        origin: String,
        /// The line in the file, when known.
        line: Option<usize>,
        /// The dotted key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The provider rejected a value.
    #[error("provider config {origin}: key `{key}` {reason}", key = .invalid.key, reason = .invalid.reason)]
    Invalid {
        /// The file (or "defaults and environment" without one).
        origin: String,
        /// The key and the reason.
        invalid: InvalidValue,
    },
}

/// The format of a config file, from its extension: `.json` is JSON, anything else TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Toml,
    Json,
}

impl Format {
    fn of(path: &Path) -> Self {
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            Format::Json
        } else {
            Format::Toml
        }
    }
}

/// The environment prefix of provider `name`: `VK_` + the name in upper case, `-` as
/// `_`, + `_` (`mock` → `VK_MOCK_`).
pub fn env_prefix(provider: &str) -> String {
    format!("VK_{}_", provider.to_ascii_uppercase().replace('-', "_"))
}

/// Loads `T` from `path` (when given) and the variables starting with `env_prefix`,
/// then runs [`ProviderConfig::validate`]. See the [module docs](self) for the layers.
pub fn load_provider_config<T: ProviderConfig>(
    path: Option<&Path>,
    env_prefix: &str,
) -> Result<T, ProviderConfigError> {
    let mut figment = Figment::new();
    let mut file = None;
    if let Some(path) = path {
        let text = std::fs::read_to_string(path).map_err(|source| ProviderConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let format = Format::of(path);
        check_syntax(path, &text, format)?;
        figment = match format {
            Format::Toml => figment.merge(Toml::file_exact(path)),
            Format::Json => figment.merge(Json::file_exact(path)),
        };
        file = Some((path, text, format));
    }
    figment = figment.merge(EnvStrings {
        prefix: env_prefix.to_owned(),
    });
    // Lossy: a variable's text becomes a number or a boolean where the type wants one.
    let config: T = figment
        .extract_lossy()
        .map_err(|e| value_error::<T>(&e, file.as_ref()))?;
    config
        .validate()
        .map_err(|invalid| ProviderConfigError::Invalid {
            origin: path.map_or_else(
                || format!("(defaults and {env_prefix}* variables)"),
                |p| p.display().to_string(),
            ),
            invalid,
        })?;
    Ok(config)
}

/// Rejects a file that is not valid TOML/JSON at all, with its line and column.
fn check_syntax(path: &Path, text: &str, format: Format) -> Result<(), ProviderConfigError> {
    let syntax = |line: usize, column: usize, message: String| ProviderConfigError::Syntax {
        path: path.to_owned(),
        line,
        column,
        message,
    };
    match format {
        Format::Toml => match text.parse::<toml::Table>() {
            Ok(_) => Ok(()),
            Err(e) => {
                let (line, column) = e
                    .span()
                    .map_or((1, 1), |span| line_and_column(text, span.start));
                Err(syntax(line, column, e.message().to_owned()))
            }
        },
        Format::Json => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(_) => Ok(()),
            Err(e) => Err(syntax(e.line(), e.column(), e.to_string())),
        },
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The `PREFIX*` environment variables as a figment source: `PREFIX_A__B=text` sets key
/// `a.b` to the string `text` (typed later by the lossy extraction, so that a string
/// field may hold `8` and a number field `0.5`). Its metadata names the variable of a
/// key, for errors.
struct EnvStrings {
    prefix: String,
}

impl EnvStrings {
    fn insert(dict: &mut Dict, path: &[String], value: String) {
        match path {
            [] => {}
            [last] => {
                dict.insert(last.clone(), Value::from(value));
            }
            [first, rest @ ..] => {
                let entry = dict
                    .entry(first.clone())
                    .or_insert_with(|| Value::from(Dict::new()));
                if !matches!(entry, Value::Dict(..)) {
                    *entry = Value::from(Dict::new());
                }
                if let Value::Dict(_, inner) = entry {
                    Self::insert(inner, rest, value);
                }
            }
        }
    }
}

impl Provider for EnvStrings {
    fn metadata(&self) -> Metadata {
        let prefix = self.prefix.clone();
        Metadata::named(format!("`{}*` environment variables", self.prefix)).interpolater(
            move |_: &Profile, keys: &[&str]| {
                format!(
                    "environment variable {prefix}{}",
                    keys.join("__").to_ascii_uppercase()
                )
            },
        )
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (name, value) in std::env::vars() {
            let Some(rest) = name.strip_prefix(&self.prefix) else {
                continue;
            };
            let path: Vec<String> = rest
                .split("__")
                .map(str::to_ascii_lowercase)
                .filter(|k| !k.is_empty())
                .collect();
            Self::insert(&mut dict, &path, value);
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// Turns figment's first error into one naming the origin (file or variable), the line
/// when the file is the origin, and the dotted key.
fn value_error<T: DeserializeOwned>(
    error: &figment::Error,
    file: Option<&(&Path, String, Format)>,
) -> ProviderConfigError {
    let mut key_path = error.path.clone();
    let field = match &error.kind {
        figment::error::Kind::MissingField(field) => Some(field.to_string()),
        figment::error::Kind::UnknownField(field, _) => Some(field.clone()),
        _ => None,
    };
    if let Some(field) = field
        && key_path.last() != Some(&field)
    {
        key_path.push(field);
    }
    let key = key_path.join(".");
    let message = error.kind.to_string();
    let from_file = error
        .metadata
        .as_ref()
        .and_then(|m| m.source.as_ref())
        .is_some_and(|s| matches!(s, figment::Source::File(_)));
    let origin = match (&error.metadata, from_file, file) {
        (_, true, Some((path, _, _))) => path.display().to_string(),
        (Some(meta), false, _) => {
            let profile = error.profile.clone().unwrap_or_default();
            meta.interpolate(&profile, &key_path)
        }
        (None, _, Some((path, _, _))) => path.display().to_string(),
        _ => "(defaults and environment)".to_owned(),
    };
    let line = match file {
        Some((_, text, format)) if from_file || error.metadata.is_none() => {
            file_line::<T>(text, *format, &key_path)
        }
        _ => None,
    };
    ProviderConfigError::Value {
        origin,
        line,
        key,
        message,
    }
}

/// The line of the bad value in the file: from the format's own deserializer (which
/// knows spans), else the first line that defines the key's last segment.
fn file_line<T: DeserializeOwned>(
    text: &str,
    format: Format,
    key_path: &[String],
) -> Option<usize> {
    let direct = match format {
        Format::Toml => toml::from_str::<T>(text)
            .err()
            .and_then(|e| e.span())
            .map(|span| line_and_column(text, span.start).0),
        Format::Json => serde_json::from_str::<T>(text)
            .err()
            .filter(|e| e.line() > 0)
            .map(|e| e.line()),
    };
    direct.or_else(|| {
        let last = key_path.last()?;
        text.lines()
            .position(|l| {
                let l = l.trim_start();
                let l = l.strip_prefix('"').unwrap_or(l);
                l.strip_prefix(last.as_str())
                    .is_some_and(|rest| rest.trim_start().starts_with(['=', ':', '"']))
            })
            .map(|i| i + 1)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Faults {
        error_rate: f64,
        latency_ms: u64,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Sample {
        name: String,
        capacity: BTreeMap<String, String>,
        faults: Faults,
        tags: Vec<String>,
    }

    impl ProviderConfig for Sample {
        fn validate(&self) -> Result<(), InvalidValue> {
            if !(0.0..=1.0).contains(&self.faults.error_rate) {
                return Err(InvalidValue::new(
                    "faults.error_rate",
                    "must be between 0 and 1",
                ));
            }
            Ok(())
        }
    }

    #[derive(Debug, Deserialize)]
    struct Required {
        #[allow(dead_code)]
        endpoint: String,
    }
    impl ProviderConfig for Required {}

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    /// A prefix no other test (or the environment) uses.
    fn prefix(test: &str) -> String {
        format!("VK_CFGTEST_{}_", test.to_ascii_uppercase())
    }

    #[test]
    fn toml_and_json_load_with_defaults() {
        let dir = tempfile::tempdir().expect("dir");
        let toml = write(&dir, "c.toml", "name = \"n\"\n[faults]\nerror_rate = 0.5\n");
        let c: Sample = load_provider_config(Some(&toml), &prefix("a")).expect("toml");
        assert_eq!(c.name, "n");
        assert_eq!(c.faults.error_rate, 0.5);
        assert_eq!(c.faults.latency_ms, 0);
        let json = write(&dir, "c.json", r#"{"capacity": {"cpu": "4"}}"#);
        let c: Sample = load_provider_config(Some(&json), &prefix("a")).expect("json");
        assert_eq!(c.capacity["cpu"], "4");
        let none: Sample = load_provider_config(None, &prefix("a")).expect("defaults");
        assert_eq!(none, Sample::default());
    }

    #[test]
    // figment's Jail (the safe way to set variables in a test) returns its large error.
    #[allow(clippy::result_large_err)]
    fn environment_overrides_the_file_with_nested_keys() {
        let dir = tempfile::tempdir().expect("dir");
        let path = write(
            &dir,
            "c.toml",
            "name = \"file\"\n[faults]\nlatency_ms = 5\n",
        );
        let p = prefix("env");
        figment::Jail::expect_with(|jail| {
            jail.set_env(format!("{p}NAME"), "from-env");
            jail.set_env(format!("{p}FAULTS__ERROR_RATE"), "0.25");
            jail.set_env(format!("{p}CAPACITY__CPU"), "8");
            let c: Sample = load_provider_config(Some(&path), &p).expect("loads");
            assert_eq!(c.name, "from-env");
            assert_eq!(c.faults.error_rate, 0.25);
            assert_eq!(c.faults.latency_ms, 5, "the file's value stays");
            assert_eq!(c.capacity["cpu"], "8");
            Ok(())
        });
    }

    #[test]
    fn syntax_errors_name_the_file_line_and_column() {
        let dir = tempfile::tempdir().expect("dir");
        let path = write(&dir, "c.toml", "name = \"n\"\n[faults\nerror_rate = 1\n");
        let e = load_provider_config::<Sample>(Some(&path), &prefix("s"))
            .expect_err("bad toml")
            .to_string();
        assert!(e.contains("c.toml, line 2"), "{e}");
        let json = write(&dir, "c.json", "{\n  \"name\": \"n\",\n  oops\n}");
        let e = load_provider_config::<Sample>(Some(&json), &prefix("s"))
            .expect_err("bad json")
            .to_string();
        assert!(e.contains("c.json, line 3"), "{e}");
    }

    #[test]
    fn type_errors_name_the_file_line_and_key() {
        let dir = tempfile::tempdir().expect("dir");
        let path = write(
            &dir,
            "c.toml",
            "name = \"n\"\n\n[faults]\nerror_rate = \"high\"\n",
        );
        let e = load_provider_config::<Sample>(Some(&path), &prefix("t"))
            .expect_err("bad type")
            .to_string();
        assert!(e.contains("c.toml, line 4: key `faults.error_rate`"), "{e}");
        let json = write(
            &dir,
            "c.json",
            "{\n  \"capacity\": {\n    \"cpu\": 4\n  }\n}",
        );
        let e = load_provider_config::<Sample>(Some(&json), &prefix("t"))
            .expect_err("bad type")
            .to_string();
        assert!(e.contains("c.json, line 3: key `capacity.cpu`"), "{e}");
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let dir = tempfile::tempdir().expect("dir");
        let path = write(&dir, "c.toml", "name = \"n\"\n[faults]\nerror_rat = 0.1\n");
        let e = load_provider_config::<Sample>(Some(&path), &prefix("u"))
            .expect_err("unknown")
            .to_string();
        assert!(e.contains("line 3: key `faults.error_rat`"), "{e}");
        assert!(
            e.contains("error_rate"),
            "the message lists the known keys: {e}"
        );
    }

    #[test]
    // figment's Jail (the safe way to set variables in a test) returns its large error.
    #[allow(clippy::result_large_err)]
    fn bad_environment_values_name_the_variable() {
        let p = prefix("badenv");
        figment::Jail::expect_with(|jail| {
            jail.set_env(format!("{p}FAULTS__LATENCY_MS"), "soon");
            let e = load_provider_config::<Sample>(None, &p)
                .expect_err("bad env")
                .to_string();
            assert!(
                e.contains(&format!("environment variable {p}FAULTS__LATENCY_MS")),
                "{e}"
            );
            assert!(e.contains("key `faults.latency_ms`"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn missing_required_keys_and_rejected_values_are_named() {
        let e = load_provider_config::<Required>(None, &prefix("req"))
            .expect_err("missing")
            .to_string();
        assert!(e.contains("key `endpoint`"), "{e}");
        let dir = tempfile::tempdir().expect("dir");
        let path = write(&dir, "c.toml", "[faults]\nerror_rate = 2.0\n");
        let e = load_provider_config::<Sample>(Some(&path), &prefix("req"))
            .expect_err("invalid")
            .to_string();
        assert!(
            e.contains("c.toml: key `faults.error_rate` must be between 0 and 1"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_file_is_a_read_error() {
        let e = load_provider_config::<Sample>(Some(Path::new("/nonexistent/x.toml")), "VK_X_")
            .expect_err("missing file")
            .to_string();
        assert!(
            e.starts_with("reading provider config /nonexistent/x.toml"),
            "{e}"
        );
    }

    #[test]
    fn prefixes_follow_the_provider_name() {
        assert_eq!(env_prefix("mock"), "VK_MOCK_");
        assert_eq!(env_prefix("my-cloud"), "VK_MY_CLOUD_");
    }
}
