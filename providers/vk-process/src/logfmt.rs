//! The container log format (the CRI's): one record per line,
//! `<RFC 3339 time with nanoseconds> <stdout|stderr> <F|P> <text>`, where `P` marks a
//! partial line continued by the next record. Records become [`LogLine`]s, which the
//! core's log kit ([`vk_core::logs`]) selects for a request.

use bytes::Bytes;
use k8s_openapi::jiff::Timestamp;
use vk_core::logs::LogLine;

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

impl Record<'_> {
    /// The record as a log line (its time, text and completeness).
    pub fn to_log_line(&self) -> LogLine {
        LogLine {
            time: Some(self.time),
            text: Bytes::copy_from_slice(self.text),
            complete: self.complete,
        }
    }
}

/// The lines of a whole log file; malformed records are skipped.
pub fn decode_all(content: &[u8]) -> Vec<LogLine> {
    content
        .split(|b| *b == b'\n')
        .filter_map(decode_line)
        .map(|rec| rec.to_log_line())
        .collect()
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
    fn a_file_decodes_to_lines_with_partials_kept() {
        let lines = decode_all(&log());
        let texts: Vec<&[u8]> = lines.iter().map(|l| &l.text[..]).collect();
        assert_eq!(texts, [&b"one"[..], b"tw", b"o", b"three"]);
        assert!(!lines[1].complete && lines[2].complete);
        // The kit joins the partial record: tail 2 is "two" and "three".
        let out = vk_core::logs::select(
            lines,
            &vk_core::capabilities::LogOptions {
                tail_lines: Some(2),
                timestamps: true,
                ..Default::default()
            },
            now(),
        );
        assert_eq!(
            out,
            b"2024-01-01T00:00:02Z two\n2024-01-01T00:00:03Z three\n"
        );
    }
}
