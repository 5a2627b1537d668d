//! Applying the log options to lines: [`LogSelector`], [`select`], [`log_stream`].

use std::io;

use bytes::{BufMut as _, Bytes, BytesMut};
use futures::StreamExt as _;
use k8s_openapi::jiff::Timestamp;

use super::LogLine;
use super::lines::LineStream;
use crate::capabilities::{ByteStream, LogOptions};

/// `t` as the kubelet writes it with `timestamps=true`: RFC 3339 in UTC with up to nine
/// fractional digits, trailing zeros trimmed (Go's `RFC3339Nano`).
///
/// ```
/// use k8s_openapi::jiff::Timestamp;
/// let t: Timestamp = "2024-01-01T00:00:01.250Z".parse().unwrap();
/// assert_eq!(vk_core::logs::format_timestamp(t), "2024-01-01T00:00:01.25Z");
/// let t: Timestamp = "2024-01-01T00:00:01Z".parse().unwrap();
/// assert_eq!(vk_core::logs::format_timestamp(t), "2024-01-01T00:00:01Z");
/// ```
pub fn format_timestamp(t: Timestamp) -> String {
    let text = t.strftime("%Y-%m-%dT%H:%M:%S%.9f").to_string();
    let trimmed = match text.split_once('.') {
        Some((secs, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                secs.to_owned()
            } else {
                format!("{secs}.{frac}")
            }
        }
        None => text,
    };
    format!("{trimmed}Z")
}

/// Renders lines one at a time under `since`, `timestamps` and `limitBytes` (the
/// options that apply line by line; `tailLines` needs the whole log: see [`select`]).
///
/// ```
/// use k8s_openapi::jiff::Timestamp;
/// use vk_core::capabilities::LogOptions;
/// use vk_core::logs::{LogLine, LogSelector};
///
/// let mut sel = LogSelector::new(&LogOptions { limit_bytes: Some(4), ..Default::default() }, Timestamp::now());
/// assert_eq!(sel.render(&LogLine::new(None, "abc")).as_deref(), Some(&b"abc\n"[..]));
/// assert!(sel.exhausted());
/// ```
#[derive(Debug, Clone)]
pub struct LogSelector {
    since: Option<Timestamp>,
    timestamps: bool,
    remaining: Option<u64>,
    /// The previous line was partial: this one continues it (no prefix, same decision).
    continuing: Option<bool>,
}

impl LogSelector {
    /// A selector for `options`; `now` anchors `sinceSeconds`.
    pub fn new(options: &LogOptions, now: Timestamp) -> Self {
        Self {
            since: options.since(now),
            timestamps: options.timestamps,
            remaining: options.limit_bytes,
            continuing: None,
        }
    }

    /// Whether `limitBytes` is used up: nothing more will be rendered.
    pub fn exhausted(&self) -> bool {
        self.remaining == Some(0)
    }

    /// Whether `line` passes `since` (lines of unknown time do; a continuation follows
    /// the line it continues).
    fn keeps(&self, line: &LogLine) -> bool {
        match self.continuing {
            Some(kept) => kept,
            None => match (self.since, line.time) {
                (Some(since), Some(time)) => time >= since,
                _ => true,
            },
        }
    }

    /// The bytes to send for `line`, or `None` when it is filtered out or the limit is
    /// used up. The result is cut to the bytes left under `limitBytes`.
    pub fn render(&mut self, line: &LogLine) -> Option<Bytes> {
        let kept = self.keeps(line);
        let first_part = self.continuing.is_none();
        self.continuing = (!line.complete).then_some(kept);
        if !kept || self.exhausted() {
            return None;
        }
        let mut out = BytesMut::with_capacity(line.text.len() + 40);
        if self.timestamps
            && first_part
            && let Some(time) = line.time
        {
            out.put_slice(format_timestamp(time).as_bytes());
            out.put_u8(b' ');
        }
        out.put_slice(&line.text);
        if line.complete {
            out.put_u8(b'\n');
        }
        if let Some(left) = self.remaining.as_mut() {
            let take = usize::try_from(*left).unwrap_or(usize::MAX).min(out.len());
            out.truncate(take);
            *left -= take as u64;
        }
        (!out.is_empty()).then(|| out.freeze())
    }
}

/// The last `n` logical lines of `lines` (a partial line and those continuing it count
/// as one).
fn tail(lines: Vec<LogLine>, n: Option<u64>) -> Vec<LogLine> {
    let Some(n) = n else { return lines };
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    // Index where each logical line starts.
    let mut starts = Vec::new();
    let mut open = false;
    for (i, line) in lines.iter().enumerate() {
        if !open {
            starts.push(i);
        }
        open = !line.complete;
    }
    let keep_from = match starts.len().checked_sub(n) {
        Some(skip) => starts.get(skip).copied().unwrap_or(lines.len()),
        None => 0,
    };
    let mut lines = lines;
    lines.drain(..keep_from);
    lines
}

/// The output for `options` of a complete log (`follow` is ignored): the last
/// `tailLines` lines, then those since `sinceSeconds`/`sinceTime` (the kubelet's order),
/// with timestamps, cut at `limitBytes`.
pub fn select(
    lines: impl IntoIterator<Item = LogLine>,
    options: &LogOptions,
    now: Timestamp,
) -> Vec<u8> {
    let lines = tail(lines.into_iter().collect(), options.tail_lines);
    let mut selector = LogSelector::new(options, now);
    let mut out = Vec::new();
    for line in &lines {
        if let Some(bytes) = selector.render(line) {
            out.extend_from_slice(&bytes);
        }
        if selector.exhausted() {
            break;
        }
    }
    out
}

/// A log response: `head` (the existing log) selected as [`select`] does, then — when
/// `options.follow` — the lines of `follow` as they come, under the same `since`,
/// `timestamps` and the rest of `limitBytes`. The stream ends when `follow` ends, when
/// the limit is used up, or when the client drops it.
///
/// ```
/// # async fn demo() {
/// use futures::StreamExt as _;
/// use k8s_openapi::jiff::Timestamp;
/// use vk_core::capabilities::LogOptions;
/// use vk_core::logs::{LogLine, lines_from_text, log_stream};
///
/// let head = lines_from_text(b"old 1\nold 2\n", None);
/// let live = futures::stream::iter([Ok(LogLine::new(None, "new"))]);
/// let options = LogOptions { follow: true, tail_lines: Some(1), ..Default::default() };
/// let out: Vec<_> = log_stream(head, Some(Box::pin(live)), &options, Timestamp::now())
///     .collect().await;
/// let text: Vec<u8> = out.into_iter().flat_map(|c| c.unwrap().to_vec()).collect();
/// assert_eq!(text, b"old 2\nnew\n");
/// # }
/// ```
pub fn log_stream(
    head: Vec<LogLine>,
    follow: Option<LineStream>,
    options: &LogOptions,
    now: Timestamp,
) -> ByteStream {
    let head = tail(head, options.tail_lines);
    let mut selector = LogSelector::new(options, now);
    let mut first = BytesMut::new();
    for line in &head {
        if let Some(bytes) = selector.render(line) {
            first.put_slice(&bytes);
        }
        if selector.exhausted() {
            break;
        }
    }
    let first = (!first.is_empty()).then(|| Ok::<Bytes, io::Error>(first.freeze()));
    let head_stream = futures::stream::iter(first);
    let follow = match follow {
        Some(f) if options.follow && !selector.exhausted() => f,
        _ => return Box::pin(head_stream),
    };
    let rest = futures::stream::unfold(
        (follow, selector),
        |(mut follow, mut selector)| async move {
            loop {
                if selector.exhausted() {
                    return None;
                }
                match follow.next().await? {
                    Ok(line) => {
                        if let Some(bytes) = selector.render(&line) {
                            return Some((Ok(bytes), (follow, selector)));
                        }
                    }
                    Err(e) => return Some((Err(e), (follow, selector))),
                }
            }
        },
    );
    Box::pin(head_stream.chain(rest))
}
