//! Log selection: the kubelet's log options (`tailLines`, `sinceSeconds`/`sinceTime`,
//! `timestamps`, `limitBytes`, `follow`, `previous`) applied to a provider's log, once,
//! for every provider.
//!
//! A provider's [`ContainerLogs`](crate::capabilities::ContainerLogs) must honour every
//! option itself (only it knows when lines were written). This module does the work
//! given the lines:
//!
//! * [`LogLine`]: one line with its time, when known.
//! * Sources: [`lines_from_text`] (a whole log as text, e.g. a remote API's answer),
//!   [`lines_from_timestamped_text`] (each line prefixed by an RFC 3339 time, as
//!   `docker logs -t` or Azure's `timestamps=true` return them), [`split_lines`] (a byte
//!   stream, e.g. a remote follow stream, cut into lines stamped on arrival) and
//!   [`follow_file`] (a growing file, following rotation and truncation).
//! * Selection: [`select`] for a complete log, [`log_stream`] for a head plus an optional
//!   followed tail, both through one [`LogSelector`] (since, timestamps, limit).
//!
//! `previous` chooses *which* log to read (the previous container instance); that
//! choice is the provider's, before the lines reach this module.
//!
//! # Semantics (as the kubelet's)
//!
//! * `tailLines`: the last N lines of the existing log; 0 shows none (with `follow`,
//!   only new lines); more than there are shows all. Partial lines (`complete: false`)
//!   join the line that completes them and count once.
//! * `sinceSeconds`/`sinceTime`: lines written at or after that time. Lines whose time
//!   is unknown ([`LogLine::time`] `None`) are kept: a backend that cannot say when a
//!   line was written cannot filter by it, and dropping its whole log would be worse.
//!   A time in the future selects nothing of the existing log; followed lines appear
//!   once they are newer.
//! * `timestamps`: each line is prefixed by its time in RFC 3339 with nanoseconds,
//!   trailing zeros trimmed (Go's `RFC3339Nano`, the kubelet's output format) and a
//!   space; lines of unknown time get no prefix.
//! * `limitBytes`: output stops after exactly that many bytes, as the kubelet's limit
//!   writer does — even inside a line or a multi-byte UTF-8 character (the limit is a
//!   byte count, and clients reading binary logs rely on it).
//!
//! ```
//! use k8s_openapi::jiff::Timestamp;
//! use vk_core::capabilities::LogOptions;
//! use vk_core::logs::{lines_from_text, select};
//!
//! let lines = lines_from_text(b"one\ntwo\nthree\n", None);
//! let options = LogOptions { tail_lines: Some(2), limit_bytes: Some(6), ..Default::default() };
//! assert_eq!(select(lines, &options, Timestamp::now()), b"two\nth");
//! ```

mod follow;
mod lines;
mod select;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use k8s_openapi::jiff::Timestamp;

pub use follow::{FollowConfig, follow_file};
pub use lines::{
    LineSplitter, LineStream, Stamp, lines_from_text, lines_from_timestamped_text,
    parse_timestamped_line, split_lines,
};
pub use select::{LogSelector, format_timestamp, log_stream, select};

/// One line of a container's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When it was written, if known.
    pub time: Option<Timestamp>,
    /// The text, without its line ending.
    pub text: Bytes,
    /// Whether the line ended (`false`: a partial line that the next one continues, like
    /// the CRI log format's `P` records, or the last bytes of a log without a final
    /// newline).
    pub complete: bool,
}

impl LogLine {
    /// A complete line written at `time`.
    ///
    /// ```
    /// let line = vk_core::logs::LogLine::new(None, "hello");
    /// assert!(line.complete && line.text == "hello");
    /// ```
    pub fn new(time: Option<Timestamp>, text: impl Into<Bytes>) -> Self {
        Self {
            time,
            text: text.into(),
            complete: true,
        }
    }

    /// A partial line (continued by the next one).
    pub fn partial(time: Option<Timestamp>, text: impl Into<Bytes>) -> Self {
        Self {
            complete: false,
            ..Self::new(time, text)
        }
    }
}
