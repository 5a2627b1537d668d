//! Container logs from ACI: one `GET .../logs?timestamps=true` for the existing log,
//! and, with `follow`, the same request polled, each poll's new lines found by
//! de-duplication against what was already sent (ACI has no follow stream).
//!
//! ACI's `tail` is passed through (it is the kubelet's `tailLines`); `sinceSeconds`,
//! `sinceTime`, `limitBytes` and the timestamp prefix are applied by `vk_core::logs`,
//! which is why the timestamps are always asked for. `previous` is not available: ACI
//! keeps the current instance's log only.

use k8s_openapi::jiff::Timestamp;
use vk_core::logs::LogLine;

/// Where a followed log stands: the time of the last line sent, and how many lines
/// with exactly that time were sent (lines of one instant are told apart by order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowCursor {
    last: Option<Timestamp>,
    at_last: usize,
}

impl FollowCursor {
    /// The cursor after `lines` were sent.
    pub fn after(lines: &[LogLine]) -> Self {
        let mut cursor = Self::default();
        cursor.advance(lines);
        cursor
    }

    fn advance(&mut self, lines: &[LogLine]) {
        for line in lines {
            match (line.time, self.last) {
                (Some(t), Some(last)) if t == last => self.at_last += 1,
                (Some(t), _) => {
                    self.last = Some(t);
                    self.at_last = 1;
                }
                (None, _) => {}
            }
        }
    }

    /// The lines of a new fetch of the whole log that were not sent yet, and moves the
    /// cursor past them. Lines without a time cannot be placed and are skipped.
    pub fn new_lines(&mut self, fetched: Vec<LogLine>) -> Vec<LogLine> {
        let mut same_instant = 0usize;
        let fresh: Vec<LogLine> = fetched
            .into_iter()
            .filter(|line| {
                let Some(t) = line.time else { return false };
                match self.last {
                    None => true,
                    Some(last) if t > last => true,
                    Some(last) if t == last => {
                        same_instant += 1;
                        same_instant > self.at_last
                    }
                    Some(_) => false,
                }
            })
            .collect();
        self.advance(&fresh);
        fresh
    }
}

#[cfg(test)]
mod tests {
    use vk_core::logs::lines_from_timestamped_text;

    use super::*;

    #[test]
    fn polls_yield_only_new_lines_even_within_one_instant() {
        let first = lines_from_timestamped_text(
            b"2026-11-30T10:00:00Z a\n2026-11-30T10:00:01Z b\n2026-11-30T10:00:01Z c\n",
        );
        let mut cursor = FollowCursor::after(&first);
        let second = lines_from_timestamped_text(
            b"2026-11-30T10:00:00Z a\n2026-11-30T10:00:01Z b\n2026-11-30T10:00:01Z c\n\
              2026-11-30T10:00:01Z d\n2026-11-30T10:00:02Z e\n",
        );
        let fresh: Vec<_> = cursor
            .new_lines(second.clone())
            .into_iter()
            .map(|l| String::from_utf8_lossy(&l.text).into_owned())
            .collect();
        assert_eq!(fresh, ["d", "e"]);
        assert!(cursor.new_lines(second).is_empty(), "nothing twice");
        // A poll whose window (tail) no longer holds old lines still finds new ones.
        let third =
            lines_from_timestamped_text(b"2026-11-30T10:00:02Z e\n2026-11-30T10:00:03Z f\n");
        let fresh: Vec<_> = cursor
            .new_lines(third)
            .into_iter()
            .map(|l| l.text)
            .collect();
        assert_eq!(fresh, [bytes::Bytes::from_static(b"f")]);
    }
}
