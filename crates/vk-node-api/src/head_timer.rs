//! The header-read and keep-alive idle timeouts of one HTTP/1 connection.
//!
//! hyper runs a single timer while it waits for a request head: from when it starts
//! waiting (after the TLS handshake, or after the previous response) until the head is
//! complete, and it closes the connection when the timer fires. [`HeadTimer`] is that
//! timer (a [`hyper::rt::Timer`] for one connection), with two durations as a kubelet's
//! Go server has them:
//!
//! * the **header-read timeout** bounds the first request's head from the start of
//!   the connection, and any later head from its first byte — a client trickling a
//!   head byte by byte (slowloris) is cut off;
//! * the **idle timeout** bounds how long a kept-alive connection may wait, silent,
//!   for its next request.
//!
//! While a request is being answered no timer runs (a quiet `logs --follow` stays
//! open), and an upgraded exec, attach or port-forward session has left hyper and
//! keeps only its own streaming idle timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

/// How many times bytes were read from a connection.
#[derive(Debug, Default)]
pub struct ReadCount(AtomicU64);

impl ReadCount {
    /// A count for a connection that has read nothing yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Records that bytes were read.
    pub fn touch(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// How many reads brought bytes so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// hyper's header-read timer for one connection (see the [module](self) docs).
///
/// ```
/// use std::time::Duration;
/// use vk_node_api::head_timer::{HeadTimer, ReadCount};
///
/// let reads = ReadCount::new(); // touched by the connection's reads
/// let timer = HeadTimer::new(reads, Duration::from_secs(30), Duration::from_secs(90));
/// let mut http = hyper::server::conn::http1::Builder::new();
/// http.timer(timer).header_read_timeout(Duration::from_secs(30));
/// ```
#[derive(Debug)]
pub struct HeadTimer {
    reads: Arc<ReadCount>,
    header_read: Duration,
    idle: Duration,
    first_request_seen: AtomicBool,
}

impl HeadTimer {
    /// The timer of the connection whose reads touch `reads`.
    pub fn new(reads: Arc<ReadCount>, header_read: Duration, idle: Duration) -> Self {
        Self {
            reads,
            header_read,
            idle,
            first_request_seen: AtomicBool::new(false),
        }
    }

    fn head_sleep(&self) -> HeadSleep {
        let now = Instant::now();
        let first = !self.first_request_seen.swap(true, Ordering::Relaxed);
        let (phase, deadline) = if first {
            (Phase::ReadingHead, now + self.header_read)
        } else {
            (Phase::AwaitingRequest, now + self.idle)
        };
        HeadSleep {
            reads_before: self.reads.get(),
            reads: Arc::clone(&self.reads),
            header_read: self.header_read,
            phase,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }
}

impl hyper::rt::Timer for HeadTimer {
    /// A plain sleep (hyper's HTTP/1 server asks only for head deadlines).
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(PlainSleep(Box::pin(tokio::time::sleep(duration))))
    }

    /// The head deadline: hyper asks for "now + header-read timeout" each time it
    /// starts waiting for a head; the first time that is the deadline, later it is
    /// the idle timeout until a byte arrives, then the header-read timeout from that
    /// byte.
    fn sleep_until(&self, _deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(self.head_sleep())
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: std::time::Instant) {
        *sleep = self.sleep_until(new_deadline);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing of the next request has arrived: the idle timeout runs.
    AwaitingRequest,
    /// The head is arriving: the header-read timeout runs.
    ReadingHead,
}

struct HeadSleep {
    reads: Arc<ReadCount>,
    reads_before: u64,
    header_read: Duration,
    phase: Phase,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Future for HeadSleep {
    type Output = ();

    /// hyper polls this after every read that did not complete the head, so the
    /// first byte is noticed as it arrives.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.phase == Phase::AwaitingRequest && this.reads.get() > this.reads_before {
            this.phase = Phase::ReadingHead;
            this.sleep.as_mut().reset(Instant::now() + this.header_read);
        }
        this.sleep.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for HeadSleep {}

struct PlainSleep(Pin<Box<tokio::time::Sleep>>);

impl Future for PlainSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for PlainSleep {}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Timer as _;

    const HEADER: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(90);

    /// Whether `sleep` fires within `within` from now (time is paused).
    async fn fires_within(sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, within: Duration) -> bool {
        tokio::time::timeout(within, sleep.as_mut()).await.is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_head_gets_the_header_read_timeout_from_the_start() {
        let timer = HeadTimer::new(ReadCount::new(), HEADER, IDLE);
        let mut sleep = timer.sleep_until(std::time::Instant::now());
        assert!(!fires_within(&mut sleep, HEADER - Duration::from_millis(1)).await);
        assert!(fires_within(&mut sleep, Duration::from_millis(1)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_alive_connection_may_wait_the_idle_timeout() {
        let reads = ReadCount::new();
        let timer = HeadTimer::new(Arc::clone(&reads), HEADER, IDLE);
        let _first = timer.sleep_until(std::time::Instant::now());
        reads.touch(); // the first request
        let mut next = timer.sleep_until(std::time::Instant::now());
        assert!(!fires_within(&mut next, IDLE - Duration::from_millis(1)).await);
        assert!(fires_within(&mut next, Duration::from_millis(1)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickled_head_gets_the_header_read_timeout_from_its_first_byte() {
        let reads = ReadCount::new();
        let timer = HeadTimer::new(Arc::clone(&reads), HEADER, IDLE);
        let _first = timer.sleep_until(std::time::Instant::now());
        let mut next = timer.sleep_until(std::time::Instant::now());
        assert!(!fires_within(&mut next, Duration::from_secs(30)).await);
        reads.touch(); // a first byte, then one more every second
        let mut seconds = 0;
        while !fires_within(&mut next, Duration::from_secs(1)).await {
            reads.touch();
            seconds += 1;
            assert!(seconds < 60, "never cut off");
        }
        assert_eq!(
            seconds, 9,
            "cut off 10 s after the first byte, bytes or not"
        );
    }
}
