//! The container log format (the CRI's): one record per line,
//! `<RFC 3339 time with nanoseconds> <stdout|stderr> <F|P> <text>`, where `P` marks a
//! partial line continued by the next record. And the selection of records for a log
//! request (`since`, `tail`, `limit-bytes`, `timestamps`).

use k8s_openapi::jiff::Timestamp;
use vk_core::capabilities::LogOptions;

/// The current time as the log writes it.
pub fn now_rfc3339() -> String {
    format_time(Timestamp::now())
}

/// `t` as `2006-01-02T15:04:05.000000000Z`.
pub fn format_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

/// Encodes one record (with its trailing newline).
///
/// ```
/// let rec = vk_process::logfmt::encode_line("stdout", b"hello", true);
/// let text = String::from_utf8(rec).unwrap();
/// assert!(text.ends_with(" stdout F hello\n"));
/// ```
pub fn encode_line(stream: &str, text: &[u8], complete: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 48);
    out.extend_from_slice(now_rfc3339().as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_bytes());
    out.extend_from_slice(if complete { b" F " } else { b" P " });
    out.extend_from_slice(text);
    out.push(b'\n');
    out
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// When it was written.
    pub time: Timestamp,
    /// The time as written.
    pub time_text: &'a str,
    /// `stdout` or `stderr`.
    pub stream: &'a str,
    /// Whether the line is complete (`F`) or continues in the next record (`P`).
    pub complete: bool,
    /// The text, without the newline.
    pub text: &'a [u8],
}

/// Decodes one record (without its newline); `None` for malformed lines.
pub fn decode_line(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time_text = std::str::from_utf8(parts.next()?).ok()?;
    let stream = std::str::from_utf8(parts.next()?).ok()?;
    let tag = parts.next()?;
    let text = parts.next().unwrap_or_default();
    Some(Record {
        time: time_text.parse().ok()?,
        time_text,
        stream,
        complete: tag != b"P",
        text,
    })
}

/// What the client sees of a record: the text (with a newline when complete),
/// prefixed by its time when `timestamps`.
pub fn render(record: &Record<'_>, timestamps: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(record.text.len() + 32);
    if timestamps {
        out.extend_from_slice(record.time_text.as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(record.text);
    if record.complete {
        out.push(b'\n');
    }
    out
}

/// The rendered output of `content` (a whole log file) for `options`, except `follow`
/// and `limit_bytes`: records since `options.since(now)`, the last `tail_lines` lines.
pub fn select(content: &[u8], options: &LogOptions, now: Timestamp) -> Vec<u8> {
    let since = options.since(now);
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut open = false;
    for raw in content.split(|b| *b == b'\n') {
        let Some(rec) = decode_line(raw) else {
            continue;
        };
        if since.is_some_and(|s| rec.time < s) {
            continue;
        }
        let rendered = render(&rec, options.timestamps && !open);
        if open && let Some(last) = lines.last_mut() {
            last.extend_from_slice(&rendered);
        } else {
            lines.push(rendered);
        }
        open = !rec.complete;
    }
    if let Some(n) = options.tail_lines {
        let skip = lines
            .len()
            .saturating_sub(usize::try_from(n).unwrap_or(usize::MAX));
        lines.drain(..skip);
    }
    lines.concat()
}

/// Cuts `bytes` so that at most `remaining` more bytes are sent; updates `remaining`.
pub fn limit(mut bytes: Vec<u8>, remaining: &mut Option<u64>) -> Vec<u8> {
    if let Some(left) = remaining.as_mut() {
        let take = usize::try_from(*left)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        bytes.truncate(take);
        *left -= take as u64;
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> Vec<u8> {
        b"2024-01-01T00:00:01.000000000Z stdout F one\n\
          2024-01-01T00:00:02.000000000Z stderr P tw\n\
          2024-01-01T00:00:02.500000000Z stderr F o\n\
          garbage\n\
          2024-01-01T00:00:03.000000000Z stdout F three\n"
            .to_vec()
    }

    fn now() -> Timestamp {
        "2024-01-01T00:00:04Z".parse().expect("time")
    }

    #[test]
    fn records_round_trip() {
        let rec = encode_line("stderr", b"a b c", false);
        let decoded = decode_line(&rec[..rec.len() - 1]).expect("decodes");
        assert_eq!(decoded.stream, "stderr");
        assert!(!decoded.complete);
        assert_eq!(decoded.text, b"a b c");
    }

    #[test]
    fn selection_honours_every_option() {
        let all = select(&log(), &LogOptions::default(), now());
        assert_eq!(all, b"one\ntwo\nthree\n");
        let tail = select(
            &log(),
            &LogOptions {
                tail_lines: Some(2),
                ..Default::default()
            },
            now(),
        );
        assert_eq!(tail, b"two\nthree\n");
        let since = select(
            &log(),
            &LogOptions {
                since_seconds: Some(2),
                ..Default::default()
            },
            now(),
        );
        assert_eq!(since, b"two\nthree\n");
        let ts = select(
            &log(),
            &LogOptions {
                timestamps: true,
                tail_lines: Some(1),
                ..Default::default()
            },
            now(),
        );
        assert_eq!(ts, b"2024-01-01T00:00:03.000000000Z three\n");
        let mut left = Some(5);
        assert_eq!(limit(all.clone(), &mut left), b"one\nt");
        assert_eq!(left, Some(0));
        assert_eq!(limit(all, &mut left), b"");
    }
}
