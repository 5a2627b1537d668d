//! Sources of [`LogLine`]s: whole texts, timestamped texts and byte streams.

use std::io;
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt as _};
use k8s_openapi::jiff::Timestamp;

use super::LogLine;
use crate::capabilities::ByteStream;

/// The lines of a whole log `text`, all with time `time` (usually `None`: unknown).
/// A last line without a newline is kept as a partial line (shown without one).
///
/// ```
/// let lines = vk_core::logs::lines_from_text(b"a\nb", None);
/// assert_eq!(lines.len(), 2);
/// assert!(lines[0].complete && !lines[1].complete);
/// ```
pub fn lines_from_text(text: &[u8], time: Option<Timestamp>) -> Vec<LogLine> {
    let mut splitter = LineSplitter::new(Stamp::Fixed(time));
    let mut lines = splitter.push(text);
    lines.extend(splitter.finish());
    lines
}

/// The lines of a whole log whose lines start with an RFC 3339 time and a space
/// (`docker logs -t`, Azure Container Instances' `timestamps=true`, the kubelet's own
/// `timestamps=true` output). Lines without a parseable time keep their text, time
/// unknown.
///
/// ```
/// let lines = vk_core::logs::lines_from_timestamped_text(b"2024-01-01T00:00:01.5Z hi\nplain\n");
/// assert_eq!(lines[0].text, "hi");
/// assert_eq!(lines[0].time.map(|t| t.to_string()).as_deref(), Some("2024-01-01T00:00:01.5Z"));
/// assert_eq!((lines[1].time, &lines[1].text[..]), (None, &b"plain"[..]));
/// ```
pub fn lines_from_timestamped_text(text: &[u8]) -> Vec<LogLine> {
    let mut splitter = LineSplitter::new(Stamp::Parse);
    let mut lines = splitter.push(text);
    lines.extend(splitter.finish());
    lines
}

/// Splits one line (without its newline) into its leading RFC 3339 time and the rest.
/// Without a parseable time, the whole line is the text and the time is `None`.
pub fn parse_timestamped_line(line: &[u8], complete: bool) -> LogLine {
    let parsed = line.iter().position(|b| *b == b' ').and_then(|space| {
        let time = std::str::from_utf8(&line[..space]).ok()?.parse().ok()?;
        Some((time, &line[space + 1..]))
    });
    match parsed {
        Some((time, text)) => LogLine {
            time: Some(time),
            text: Bytes::copy_from_slice(text),
            complete,
        },
        None => LogLine {
            time: None,
            text: Bytes::copy_from_slice(line),
            complete,
        },
    }
}

/// How a [`LineSplitter`] gives its lines a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// Every line gets this time (`None`: unknown).
    Fixed(Option<Timestamp>),
    /// The time the line's first byte arrived: for live streams without times.
    Arrival,
    /// A leading RFC 3339 time and space, removed from the text
    /// ([`parse_timestamped_line`]).
    Parse,
}

/// Cuts bytes, arriving in chunks of any size, into lines.
///
/// ```
/// use vk_core::logs::{LineSplitter, Stamp};
///
/// let mut s = LineSplitter::new(Stamp::Fixed(None));
/// assert!(s.push(b"hel").is_empty());
/// let lines = s.push(b"lo\nwor");
/// assert_eq!(lines[0].text, "hello");
/// assert_eq!(s.finish().map(|l| l.text), Some("wor".into()));
/// ```
#[derive(Debug)]
pub struct LineSplitter {
    stamp: Stamp,
    pending: BytesMut,
    /// When the pending bytes started arriving.
    pending_since: Option<Timestamp>,
}

impl LineSplitter {
    /// A splitter stamping lines as `stamp` says.
    pub fn new(stamp: Stamp) -> Self {
        Self {
            stamp,
            pending: BytesMut::new(),
            pending_since: None,
        }
    }

    /// Adds `bytes`; returns the lines they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<LogLine> {
        if bytes.is_empty() {
            return Vec::new();
        }
        if self.pending.is_empty() && self.stamp == Stamp::Arrival {
            self.pending_since = Some(Timestamp::now());
        }
        self.pending.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(nl) = self.pending.iter().position(|b| *b == b'\n') {
            let mut line = self.pending.split_to(nl + 1);
            line.truncate(nl);
            lines.push(self.line(line.freeze(), true));
            if self.stamp == Stamp::Arrival {
                self.pending_since = (!self.pending.is_empty()).then(Timestamp::now);
            }
        }
        lines
    }

    /// The bytes after the last newline, as a partial line, if any.
    pub fn finish(&mut self) -> Option<LogLine> {
        if self.pending.is_empty() {
            return None;
        }
        let rest = self.pending.split().freeze();
        Some(self.line(rest, false))
    }

    fn line(&mut self, text: Bytes, complete: bool) -> LogLine {
        match self.stamp {
            Stamp::Fixed(time) => LogLine {
                time,
                text,
                complete,
            },
            Stamp::Arrival => LogLine {
                time: Some(self.pending_since.take().unwrap_or_else(Timestamp::now)),
                text,
                complete,
            },
            Stamp::Parse => parse_timestamped_line(&text, complete),
        }
    }
}

/// A stream of log lines.
pub type LineStream = Pin<Box<dyn Stream<Item = io::Result<LogLine>> + Send>>;

/// The lines of a byte stream (a remote backend's follow stream), stamped as `stamp`
/// says; a last partial line is delivered when the stream ends.
pub fn split_lines(bytes: ByteStream, stamp: Stamp) -> LineStream {
    let state = (bytes, LineSplitter::new(stamp), false);
    let lines = futures::stream::unfold(state, |(mut bytes, mut splitter, done)| async move {
        if done {
            return None;
        }
        loop {
            match bytes.next().await {
                Some(Ok(chunk)) => {
                    let lines = splitter.push(&chunk);
                    if !lines.is_empty() {
                        let out: Vec<io::Result<LogLine>> = lines.into_iter().map(Ok).collect();
                        return Some((out, (bytes, splitter, false)));
                    }
                }
                Some(Err(e)) => return Some((vec![Err(e)], (bytes, splitter, true))),
                None => {
                    let out: Vec<io::Result<LogLine>> =
                        splitter.finish().into_iter().map(Ok).collect();
                    return Some((out, (bytes, splitter, true)));
                }
            }
        }
    });
    Box::pin(lines.flat_map(futures::stream::iter))
}
