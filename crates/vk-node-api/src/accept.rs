//! What an accept loop does when `accept(2)` fails. Out of file descriptors
//! (`EMFILE`, `ENFILE`) the pending connection stays queued and the next accept fails
//! at once, so retrying straight away spins a core and floods the log: the loop pauses
//! instead, longer while the failures go on (up to a second), and the failures are
//! logged at most once per interval with a count.

use std::io;
use std::time::Duration;

use crate::rate_limit::LogThrottle;

/// The first pause after a failed accept; it doubles while failures go on.
const FIRST_PAUSE: Duration = Duration::from_millis(5);
/// The longest pause.
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// How often failures are logged at most.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The pauses of one accept loop.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// use vk_node_api::accept::AcceptBackoff;
///
/// let mut backoff = AcceptBackoff::new("kubelet API");
/// let emfile = std::io::Error::from_raw_os_error(24);
/// assert_eq!(backoff.failed(&emfile), Duration::from_millis(5));
/// assert_eq!(backoff.failed(&emfile), Duration::from_millis(10));
/// backoff.accepted();
/// assert_eq!(backoff.failed(&emfile), Duration::from_millis(5));
/// # }
/// ```
#[derive(Debug)]
pub struct AcceptBackoff {
    listener: &'static str,
    consecutive: u32,
    log: LogThrottle,
}

impl AcceptBackoff {
    /// The backoff of listener `listener` (named in the log).
    pub fn new(listener: &'static str) -> Self {
        Self {
            listener,
            consecutive: 0,
            log: LogThrottle::new(LOG_EVERY),
        }
    }

    /// A connection was accepted: the next failure pauses briefly again.
    pub fn accepted(&mut self) {
        self.consecutive = 0;
    }

    /// Accepting failed with `error`: logs it (throttled) and says how long to pause.
    pub fn failed(&mut self, error: &io::Error) -> Duration {
        let pause = FIRST_PAUSE
            .saturating_mul(1 << self.consecutive.min(16))
            .min(MAX_PAUSE);
        self.consecutive = self.consecutive.saturating_add(1);
        if let Some(held_back) = self.log.allow() {
            if out_of_descriptors(error) {
                tracing::warn!(
                    listener = self.listener,
                    error = %error,
                    failures_since_last_report = held_back + 1,
                    pause_ms = pause.as_millis(),
                    "accepting connections failed: out of file descriptors (raise the open-file limit or lower the connection cap); pausing accept"
                );
            } else {
                tracing::warn!(
                    listener = self.listener,
                    error = %error,
                    failures_since_last_report = held_back + 1,
                    pause_ms = pause.as_millis(),
                    "accepting a connection failed; pausing accept"
                );
            }
        }
        pause
    }
}

/// Whether `error` says the process or the system has no file descriptor left
/// (`EMFILE`, `ENFILE`).
pub fn out_of_descriptors(error: &io::Error) -> bool {
    let code = error.raw_os_error();
    code == Some(rustix::io::Errno::MFILE.raw_os_error())
        || code == Some(rustix::io::Errno::NFILE.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pauses_double_up_to_a_second_and_reset_after_an_accept() {
        let mut backoff = AcceptBackoff::new("test");
        let emfile = io::Error::from_raw_os_error(24);
        let pauses: Vec<u128> = (0..12)
            .map(|_| backoff.failed(&emfile).as_millis())
            .collect();
        assert_eq!(
            pauses,
            [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000]
        );
        backoff.accepted();
        assert_eq!(backoff.failed(&emfile), FIRST_PAUSE);
        // However long the failures last, the shift never overflows.
        for _ in 0..100 {
            backoff.failed(&emfile);
        }
        assert_eq!(backoff.failed(&emfile), MAX_PAUSE);
    }

    #[test]
    fn emfile_and_enfile_are_out_of_descriptors() {
        assert!(out_of_descriptors(&io::Error::from_raw_os_error(24)));
        assert!(out_of_descriptors(&io::Error::from_raw_os_error(23)));
        assert!(!out_of_descriptors(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
    }
}
