//! Query parameters of the kubelet API, parsed and validated as the kubelet does.

use std::collections::HashMap;

use k8s_openapi::jiff::Timestamp;
use vk_core::capabilities::LogOptions;

use crate::error::ApiError;

/// Query parameters (first value of each name).
pub type Query = HashMap<String, String>;

/// Parses a raw query string into a [`Query`], percent-decoding names and values and
/// keeping the first value of a repeated name (as the kubelet's Go code reads them).
pub fn parse_query(raw: Option<&str>) -> Query {
    let mut query = Query::new();
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query
            .entry(decode_component(k))
            .or_insert_with(|| decode_component(v));
    }
    query
}

/// Go's `strconv.ParseBool`, which is what the kubelet uses for boolean parameters.
pub fn parse_bool(name: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" | "" => Ok(false),
        other => Err(ApiError::BadRequest(format!(
            "{name}: invalid boolean {other:?} (use true or false)"
        ))),
    }
}

fn int(name: &str, query: &Query) -> Result<Option<i64>, ApiError> {
    query
        .get(name)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| ApiError::BadRequest(format!("{name}: {v:?} is not an integer")))
        })
        .transpose()
}

fn flag(name: &str, query: &Query) -> Result<bool, ApiError> {
    query
        .get(name)
        .map(|v| parse_bool(name, v))
        .transpose()
        .map(|b| b.unwrap_or(false))
}

/// The seven log options: `follow`, `previous`, `timestamps`, `sinceSeconds`,
/// `sinceTime` (RFC 3339), `tailLines`, `limitBytes`. Invalid values, and
/// `sinceSeconds` together with `sinceTime`, are 400 as on a kubelet.
///
/// ```
/// # use vk_node_api::options::{log_options, Query};
/// let q: Query = [("tailLines".to_string(), "3".to_string()), ("follow".into(), "true".into())].into();
/// let o = log_options(&q).unwrap();
/// assert_eq!(o.tail_lines, Some(3));
/// assert!(o.follow);
/// ```
pub fn log_options(query: &Query) -> Result<LogOptions, ApiError> {
    let since_seconds = int("sinceSeconds", query)?;
    let since_time = query
        .get("sinceTime")
        .map(|v| {
            v.parse::<Timestamp>().map_err(|e| {
                ApiError::BadRequest(format!("sinceTime: {v:?} is not an RFC 3339 time: {e}"))
            })
        })
        .transpose()?;
    if since_seconds.is_some() && since_time.is_some() {
        return Err(ApiError::BadRequest(
            "at most one of `sinceTime` or `sinceSeconds` may be specified".into(),
        ));
    }
    if let Some(s) = since_seconds
        && s < 1
    {
        return Err(ApiError::BadRequest(
            "sinceSeconds: must be greater than 0".into(),
        ));
    }
    let tail_lines = int("tailLines", query)?;
    if let Some(t) = tail_lines
        && t < 0
    {
        return Err(ApiError::BadRequest(
            "tailLines: must be greater than or equal to 0".into(),
        ));
    }
    let limit_bytes = int("limitBytes", query)?;
    if let Some(l) = limit_bytes
        && l < 1
    {
        return Err(ApiError::BadRequest(
            "limitBytes: must be greater than 0".into(),
        ));
    }
    Ok(LogOptions {
        follow: flag("follow", query)?,
        previous: flag("previous", query)?,
        timestamps: flag("timestamps", query)?,
        since_seconds: since_seconds.and_then(|s| u64::try_from(s).ok()),
        since_time,
        tail_lines: tail_lines.and_then(|t| u64::try_from(t).ok()),
        limit_bytes: limit_bytes.and_then(|l| u64::try_from(l).ok()),
    })
}

/// Which streams an exec/attach request asks for (`stdin`, `stdout`, `stderr`, `tty`
/// as `1`/`true`). As on a kubelet, `tty` disables stderr and at least one stream is
/// required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// Client sends input.
    pub stdin: bool,
    /// Client wants output.
    pub stdout: bool,
    /// Client wants error output.
    pub stderr: bool,
    /// A terminal.
    pub tty: bool,
}

/// Parses the stream options of an exec/attach request.
///
/// The API server forwards kubectl's `stdin`/`stdout`/`stderr` as the kubelet's
/// `input`/`output`/`error` parameters (`=1`); both spellings are accepted so that
/// direct callers using the pod-API names work too. With a TTY there is no separate
/// stderr (the kubelet drops it the same way).
pub fn stream_options(query: &Query) -> Result<StreamOptions, ApiError> {
    let either = |kubelet: &str, api: &str| -> Result<bool, ApiError> {
        Ok(flag(kubelet, query)? || flag(api, query)?)
    };
    let tty = flag("tty", query)?;
    let stdin = either("input", "stdin")?;
    let stdout = either("output", "stdout")?;
    let stderr = either("error", "stderr")? && !tty;
    if !stdin && !stdout && !stderr {
        return Err(ApiError::BadRequest(
            "you must specify at least 1 of stdin, stdout, stderr (query parameters input=1, output=1, error=1)"
                .into(),
        ));
    }
    Ok(StreamOptions {
        stdin,
        stdout,
        stderr,
        tty,
    })
}

/// The `command` parameters of an exec request, in order (the parameter repeats, one
/// per argument).
pub fn command(raw_query: Option<&str>) -> Result<Vec<String>, ApiError> {
    let cmd: Vec<String> = raw_query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == "command").then(|| decode_component(v))
        })
        .collect();
    if cmd.is_empty() {
        return Err(ApiError::BadRequest("missing command".into()));
    }
    Ok(cmd)
}

/// Percent-decoding of a query component (`+` is a space; malformed escapes are kept
/// as written).
pub fn decode_component(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escaped = (b == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, escaped) {
            (_, Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (other, None) => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Query {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn all_seven_log_options() {
        let o = log_options(&q(&[
            ("follow", "true"),
            ("previous", "1"),
            ("timestamps", "True"),
            ("sinceSeconds", "3600"),
            ("tailLines", "3"),
            ("limitBytes", "100"),
        ]))
        .expect("valid");
        assert!(o.follow && o.previous && o.timestamps);
        assert_eq!(
            (o.since_seconds, o.tail_lines, o.limit_bytes),
            (Some(3600), Some(3), Some(100))
        );
        let t = log_options(&q(&[("sinceTime", "2026-01-02T03:04:05Z")])).expect("valid");
        assert_eq!(t.since_time.map(|t| t.as_second()), Some(1_767_323_045));
        assert_eq!(log_options(&q(&[])).expect("empty"), LogOptions::default());
    }

    #[test]
    fn invalid_log_options_are_400_like_the_kubelet() {
        for (pairs, want) in [
            (
                vec![
                    ("sinceSeconds", "10"),
                    ("sinceTime", "2026-01-02T03:04:05Z"),
                ],
                "at most one",
            ),
            (vec![("sinceSeconds", "0")], "sinceSeconds"),
            (vec![("tailLines", "-1")], "tailLines"),
            (vec![("limitBytes", "0")], "limitBytes"),
            (vec![("follow", "maybe")], "follow"),
            (vec![("sinceTime", "yesterday")], "sinceTime"),
            (vec![("tailLines", "x")], "tailLines"),
        ] {
            let e = log_options(&q(&pairs)).expect_err("invalid");
            assert_eq!(e.status(), 400, "{pairs:?}");
            assert!(e.to_string().contains(want), "{pairs:?}: {e}");
        }
    }

    #[test]
    fn stream_options_follow_the_kubelet() {
        let o = stream_options(&q(&[
            ("stdin", "1"),
            ("stdout", "1"),
            ("stderr", "1"),
            ("tty", "1"),
        ]))
        .expect("ok");
        assert!(o.tty && !o.stderr, "tty disables stderr");
        assert!(stream_options(&q(&[("tty", "1")])).is_err());
        let o = stream_options(&q(&[("output", "1"), ("stdout", "true")])).expect("ok");
        assert!(o.stdout && !o.stdin);
        let o = stream_options(&q(&[("input", "1"), ("output", "1"), ("error", "1")])).expect("ok");
        assert!(o.stdin && o.stdout && o.stderr && !o.tty);
        assert!(stream_options(&q(&[("error", "0")])).is_err());
        assert!(stream_options(&q(&[("output", "maybe")])).is_err());
    }

    #[test]
    fn repeated_parameters_keep_their_first_value() {
        let q = parse_query(Some("tailLines=1&tailLines=5&&follow&since%54ime=a%2Bb+c"));
        assert_eq!(q.get("tailLines").map(String::as_str), Some("1"));
        assert_eq!(q.get("follow").map(String::as_str), Some(""));
        assert_eq!(q.get("sinceTime").map(String::as_str), Some("a+b c"));
        assert!(parse_query(None).is_empty());
    }

    #[test]
    fn command_arguments_keep_order_and_decoding() {
        let c = command(Some(
            "command=sh&command=-c&command=echo+hi%20there%21&stdout=1",
        ))
        .expect("cmd");
        assert_eq!(c, ["sh", "-c", "echo hi there!"]);
        assert!(command(Some("stdout=1")).is_err());
        assert_eq!(decode_component("100%"), "100%");
        assert_eq!(decode_component("%zz"), "%zz");
    }
}
