//! A TCP proxy placed between the provider and the API server, to make the network
//! between them slow or cut it.
//!
//! It forwards bytes without looking at them (TLS stays end to end: the provider's
//! kubeconfig just names the proxy's port on the same address). In [`Mode::Delay`] every
//! chunk read on either side is written to the other side that much later, in order
//! and without holding back the chunks behind it — added latency, not a bandwidth cap.
//! In [`Mode::Cut`] every open connection is closed and the listening socket too, so new
//! connections are refused, until another mode lets them through again on the same port.
//!
//! ```no_run
//! # async fn demo(upstream: std::net::SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use crate::faults::proxy::{Mode, Proxy};
//! let proxy = Proxy::start(upstream).await?;
//! proxy.set_mode(Mode::Delay(Duration::from_millis(200))).await?;
//! proxy.set_mode(Mode::Cut).await?; // connections dropped, new ones refused
//! proxy.set_mode(Mode::Pass).await?;
//! println!("{} connections cut", proxy.stats().cut);
//! # Ok(()) }
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward at once.
    Pass,
    /// Forward every chunk this much later (in both directions).
    Delay(Duration),
    /// Close every connection and refuse new ones.
    Cut,
}

impl Mode {
    /// The delay a chunk read now gets.
    fn delay(self) -> Duration {
        match self {
            Mode::Delay(d) => d,
            Mode::Pass | Mode::Cut => Duration::ZERO,
        }
    }
}

/// A failed proxy operation.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The listening socket could not be (re)opened.
    #[error("listening on {addr} for the proxy failed: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The proxy's task is gone (it panicked or the runtime is shutting down).
    #[error("the proxy task has stopped")]
    Stopped,
}

/// Counts of what the proxy did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProxyStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed by a cut.
    pub cut: u64,
    /// Accepted connections whose upstream connection failed.
    pub upstream_failures: u64,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    cut: AtomicU64,
    upstream_failures: AtomicU64,
}

type Command = (Mode, oneshot::Sender<Result<(), ProxyError>>);

/// A running proxy; dropping it closes the listener and every connection.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    control: mpsc::Sender<Command>,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `upstream` on a free port of 127.0.0.1, in [`Mode::Pass`].
    pub async fn start(upstream: SocketAddr) -> Result<Self, ProxyError> {
        let listener = listen(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr().map_err(|source| ProxyError::Listen {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            source,
        })?;
        let (control, commands) = mpsc::channel(4);
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(serve(
            listener,
            addr,
            upstream,
            commands,
            Arc::clone(&counters),
        ));
        Ok(Self {
            addr,
            control,
            counters,
            task,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches to `mode`; returns once it applies (after a cut: every connection
    /// closed and the port refusing connections; after a cut ends: listening again).
    pub async fn set_mode(&self, mode: Mode) -> Result<(), ProxyError> {
        let (ack, done) = oneshot::channel();
        self.control
            .send((mode, ack))
            .await
            .map_err(|_| ProxyError::Stopped)?;
        done.await.map_err(|_| ProxyError::Stopped)?
    }

    /// What it did so far.
    pub fn stats(&self) -> ProxyStats {
        ProxyStats {
            accepted: self.counters.accepted.load(Ordering::Relaxed),
            cut: self.counters.cut.load(Ordering::Relaxed),
            upstream_failures: self.counters.upstream_failures.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // The task owns the listener and, in a JoinSet, every connection: aborting it
        // closes them all.
        self.task.abort();
    }
}

/// A listening socket on `addr` with SO_REUSEADDR, so the port can be opened again
/// right after a cut closed it.
fn listen(addr: SocketAddr) -> Result<TcpListener, ProxyError> {
    let err = |source| ProxyError::Listen { addr, source };
    let socket = TcpSocket::new_v4().map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(1024).map_err(err)
}

async fn accept(listener: Option<&TcpListener>) -> io::Result<TcpStream> {
    match listener {
        Some(l) => l.accept().await.map(|(stream, _)| stream),
        None => std::future::pending().await,
    }
}

/// The proxy's task: accepts connections, and applies mode changes.
async fn serve(
    listener: TcpListener,
    addr: SocketAddr,
    upstream: SocketAddr,
    mut commands: mpsc::Receiver<Command>,
    counters: Arc<Counters>,
) {
    let mut listener = Some(listener);
    let (mode_tx, mode_rx) = watch::channel(Mode::Pass);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            command = commands.recv() => {
                let Some((mode, ack)) = command else { return };
                let result = match mode {
                    Mode::Cut => {
                        listener = None;
                        counters.cut.fetch_add(connections.len() as u64, Ordering::Relaxed);
                        connections.shutdown().await;
                        Ok(())
                    }
                    Mode::Pass | Mode::Delay(_) if listener.is_none() => {
                        listen(addr).map(|l| listener = Some(l))
                    }
                    Mode::Pass | Mode::Delay(_) => Ok(()),
                };
                if result.is_ok() {
                    mode_tx.send_replace(mode);
                }
                let _ = ack.send(result);
            }
            accepted = accept(listener.as_ref()) => {
                let Ok(client) = accepted else { continue };
                counters.accepted.fetch_add(1, Ordering::Relaxed);
                let counters = Arc::clone(&counters);
                let mode = mode_rx.clone();
                connections.spawn(async move {
                    match TcpStream::connect(upstream).await {
                        Ok(server) => forward(client, server, mode).await,
                        Err(_) => {
                            counters.upstream_failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Forwards both directions until both ends have closed (or one fails).
async fn forward(client: TcpStream, server: TcpStream, mode: watch::Receiver<Mode>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let _ = tokio::join!(
        pump(client_read, server_write, mode.clone()),
        pump(server_read, client_write, mode),
    );
}

/// One direction: a reader that stamps each chunk with the time it is due, and a writer
/// that writes it then; end of input is passed on (as a write shutdown) in turn.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mode: watch::Receiver<Mode>,
) -> io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(64);
    let reader = async move {
        let mut buf = vec![0; 16 * 1024];
        loop {
            let n = from.read(&mut buf).await?;
            let due = Instant::now() + mode.borrow().delay();
            // An empty chunk marks the end of input.
            if tx.send((due, buf[..n].to_vec())).await.is_err() || n == 0 {
                return Ok::<_, io::Error>(());
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if chunk.is_empty() {
                return to.shutdown().await;
            }
            to.write_all(&chunk).await?;
        }
        Ok(())
    };
    tokio::try_join!(reader, writer).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on a free port; it runs until the test's runtime ends.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> Vec<u8> {
        stream.write_all(message).await.expect("write");
        let mut back = vec![0; message.len()];
        stream.read_exact(&mut back).await.expect("read the echo");
        back
    }

    #[tokio::test]
    async fn passes_bytes_both_ways() {
        let proxy = Proxy::start(echo_server().await).await.expect("proxy");
        let mut s = TcpStream::connect(proxy.addr()).await.expect("connect");
        assert_eq!(round_trip(&mut s, b"hello").await, b"hello");
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(round_trip(&mut s, &big).await, big);
        assert_eq!(proxy.stats().accepted, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn delay_applies_to_each_direction() {
        let proxy = Proxy::start(echo_server().await).await.expect("proxy");
        proxy
            .set_mode(Mode::Delay(Duration::from_millis(200)))
            .await
            .expect("delay");
        let mut s = TcpStream::connect(proxy.addr()).await.expect("connect");
        let start = Instant::now();
        assert_eq!(round_trip(&mut s, b"ping").await, b"ping");
        // Request and echo are each held back 200 ms (the paused clock only moves on
        // when the proxy's timers are due).
        assert!(
            start.elapsed() >= Duration::from_millis(400),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn end_of_input_is_passed_on_after_the_data() {
        let proxy = Proxy::start(echo_server().await).await.expect("proxy");
        proxy
            .set_mode(Mode::Delay(Duration::from_millis(50)))
            .await
            .expect("delay");
        let mut s = TcpStream::connect(proxy.addr()).await.expect("connect");
        s.write_all(b"last words").await.expect("write");
        s.shutdown().await.expect("shutdown");
        let mut back = Vec::new();
        s.read_to_end(&mut back)
            .await
            .expect("read until the echo server closes");
        assert_eq!(back, b"last words");
    }

    #[tokio::test]
    async fn cut_closes_connections_and_refuses_new_ones_until_restored() {
        let proxy = Proxy::start(echo_server().await).await.expect("proxy");
        let mut before = TcpStream::connect(proxy.addr()).await.expect("connect");
        assert_eq!(round_trip(&mut before, b"one").await, b"one");

        proxy.set_mode(Mode::Cut).await.expect("cut");
        let mut buf = [0; 8];
        let closed = before.read(&mut buf).await;
        assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
        let refused = TcpStream::connect(proxy.addr()).await;
        assert_eq!(
            refused.expect_err("refused while cut").kind(),
            io::ErrorKind::ConnectionRefused
        );
        assert_eq!(proxy.stats().cut, 1);

        proxy.set_mode(Mode::Pass).await.expect("restore");
        let mut after = TcpStream::connect(proxy.addr())
            .await
            .expect("connect again");
        assert_eq!(round_trip(&mut after, b"two").await, b"two");
    }

    #[tokio::test]
    async fn unreachable_upstream_is_counted() {
        // A port that was free a moment ago: nothing listens there.
        let dead = TcpListener::bind("127.0.0.1:0")
            .await
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let proxy = Proxy::start(dead).await.expect("proxy");
        let mut s = TcpStream::connect(proxy.addr()).await.expect("connect");
        let mut buf = [0; 1];
        let closed = s.read(&mut buf).await;
        assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
        assert_eq!(proxy.stats().upstream_failures, 1);
    }
}
