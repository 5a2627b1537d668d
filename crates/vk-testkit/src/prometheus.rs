//! Reading the Prometheus text exposition format a node's admin listener serves, so
//! that tests can wait on and assert about its counters.
//!
//! ```
//! let m = vk_testkit::prometheus::Metrics::parse(
//!     "# TYPE vk_pod_adopted_total counter\nvk_pod_adopted_total{node=\"n1\"} 2\n",
//! )?;
//! assert_eq!(m.one("vk_pod_adopted_total", &[("node", "n1")]), 2.0);
//! assert_eq!(m.sum("vk_pod_adopted_total", &[("node", "n2")]), 0.0);
//! # Ok::<(), vk_testkit::prometheus::ParseError>(())
//! ```

use std::collections::BTreeMap;

/// A line of the exposition text that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Reading a sample's labels failed (unclosed braces or quotes, no `=`).
    #[error("reading the labels of line {line:?}")]
    Labels {
        /// The line.
        line: String,
    },
    /// Reading a sample's value failed (missing or not a number).
    #[error("reading the value of line {line:?}")]
    Value {
        /// The line.
        line: String,
    },
}

/// Scraping a listener's `/metrics` failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// The HTTP request failed (nothing listening, connection reset...).
    #[error("requesting /metrics on port {port}")]
    Request {
        /// The port.
        port: u16,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The listener answered with a status other than 200.
    #[error("/metrics on port {port} answered {status}: {body}")]
    Status {
        /// The port.
        port: u16,
        /// The HTTP status.
        status: u16,
        /// The answer's body.
        body: String,
    },
    /// The answer is not exposition text.
    #[error("parsing /metrics of port {port}")]
    Parse {
        /// The port.
        port: u16,
        /// What could not be read.
        #[source]
        source: ParseError,
    },
}

/// GETs `/metrics` from a listener on `127.0.0.1:port` and parses it.
///
/// ```no_run
/// # async fn demo() -> Result<(), vk_testkit::prometheus::ScrapeError> {
/// let m = vk_testkit::prometheus::scrape(10255).await?;
/// assert!(m.sum("vk_api_retries_total", &[]) >= 0.0);
/// # Ok(()) }
/// ```
pub async fn scrape(port: u16) -> Result<Metrics, ScrapeError> {
    let (status, body) = crate::http::get(port, "/metrics")
        .await
        .map_err(|source| ScrapeError::Request { port, source })?;
    if status != 200 {
        return Err(ScrapeError::Status { port, status, body });
    }
    Metrics::parse(&body).map_err(|source| ScrapeError::Parse { port, source })
}

/// One sample: a series and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name (with the `_total`, `_count`, `_bucket`... suffix as exposed).
    pub name: String,
    /// Label names and values.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// Every sample of one scrape.
#[derive(Debug, Clone, Default)]
pub struct Metrics(Vec<Sample>);

impl Metrics {
    /// Parses exposition `text` (comments and blank lines skipped; timestamps ignored).
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(parse_sample)
            .collect::<Result<Vec<_>, _>>()
            .map(Metrics)
    }

    /// Every sample, in the order of the text.
    pub fn samples(&self) -> &[Sample] {
        &self.0
    }

    /// Samples of `name` whose labels include every pair of `with`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        with: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.0.iter().filter(move |s| {
            s.name == name
                && with
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// Sum of the matching samples (0 when there are none).
    pub fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.matching(name, with).map(|s| s.value).sum()
    }

    /// The value of the one matching sample; panics (for tests) when there is not
    /// exactly one.
    pub fn one(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self.matching(name, with).collect();
        assert_eq!(found.len(), 1, "one sample of {name}{with:?}: {found:?}");
        found[0].value
    }
}

fn parse_sample(line: &str) -> Result<Sample, ParseError> {
    let labels_err = || ParseError::Labels {
        line: line.to_owned(),
    };
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inner).ok_or_else(labels_err)?;
        labels = parsed;
        rest = after;
    }
    let value = rest
        .split_whitespace()
        .next()
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| ParseError::Value {
            line: line.to_owned(),
        })?;
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses `k="v",...}` (after the opening brace); returns the labels and what follows
/// the closing brace.
fn parse_labels(mut s: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start_matches([',', ' ']);
        if let Some(after) = s.strip_prefix('}') {
            return Some((labels, after));
        }
        let (key, after) = s.split_once('=')?;
        let mut chars = after.strip_prefix('"')?.char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.trim().to_owned(), value);
        s = &after[1 + end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_labels_and_values() {
        let m = Metrics::parse(
            "# HELP x help\n\
             up 1\n\
             vk_pod_sync_duration_seconds_bucket{le=\"+Inf\",operation=\"create\",result=\"ok\"} 3\n\
             odd{msg=\"a, \\\"quoted\\\" b\",k=\"v\"} 2.5 1700000000\n",
        )
        .expect("parse");
        assert_eq!(m.samples().len(), 3);
        assert_eq!(m.one("up", &[]), 1.0);
        assert_eq!(
            m.one(
                "vk_pod_sync_duration_seconds_bucket",
                &[("le", "+Inf"), ("operation", "create")]
            ),
            3.0
        );
        assert_eq!(m.one("odd", &[("msg", "a, \"quoted\" b"), ("k", "v")]), 2.5);
        assert_eq!(m.sum("missing", &[]), 0.0);
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(matches!(
            Metrics::parse("x{a=\"1\" 2"),
            Err(ParseError::Labels { .. })
        ));
        assert!(matches!(
            Metrics::parse("x{a=\"1\"}"),
            Err(ParseError::Value { .. })
        ));
        assert!(matches!(
            Metrics::parse("x nope"),
            Err(ParseError::Value { .. })
        ));
    }
}
