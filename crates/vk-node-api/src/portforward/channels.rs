//! Port-forward over a WebSocket *channel* protocol, as the kubelet serves it to
//! clients that do not tunnel SPDY (client-go's and kube-rs's WebSocket port-forward,
//! passed through unchanged by API servers before 1.30).
//!
//! The request names its ports in the query: `port=8080&port=9090` as the API server
//! passes them to a kubelet, or `ports=8080,9090` as clients send them to the API
//! server (either repeated, values comma-separated). Port
//! number *i* (in that order) uses two channels: `2i` carries the data both ways and
//! `2i + 1` carries, from the server, a text error when forwarding fails. The server
//! starts each of the two channels with one message holding the port number as two
//! little-endian bytes (clients check it). Each port is forwarded once, for the life of
//! the WebSocket. The protocol has no half-close from the server, so, as the kubelet
//! does, the connection closes once every port's pod side is done: the provider shut
//! down its writing half (the pod closed the connection) or returned.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;
use vk_core::capabilities::PortForward;

use crate::ws::{ChannelConn, ChannelWriter};

/// The most ports one request may name (as kube-rs and client-go limit it).
pub const MAX_PORTS: usize = 128;

/// The ports of a query string: every `port` or `ports` parameter, comma-separated (`,`
/// may be percent-encoded), each 1-65535, no duplicates, at least one.
///
/// ```
/// use vk_node_api::portforward::channels::ports;
/// assert_eq!(ports("ports=80%2C8080&x=1"), Ok(vec![80, 8080]));
/// assert_eq!(ports("port=80&port=8080"), Ok(vec![80, 8080]));
/// assert!(ports("ports=0").is_err());
/// ```
pub fn ports(query: &str) -> Result<Vec<u16>, String> {
    let mut out = Vec::new();
    for pair in query.split('&') {
        let Some(value) = pair
            .strip_prefix("port=")
            .or_else(|| pair.strip_prefix("ports="))
        else {
            continue;
        };
        let value = value.replace("%2C", ",").replace("%2c", ",");
        for part in value.split(',').filter(|p| !p.is_empty()) {
            let port = part.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                format!("invalid port {part:?}: a number between 1 and 65535 is required")
            })?;
            if out.contains(&port) {
                return Err(format!("port {port} is named twice"));
            }
            out.push(port);
        }
    }
    if out.is_empty() {
        return Err("the port query parameter is required".into());
    }
    if out.len() > MAX_PORTS {
        return Err(format!(
            "at most {MAX_PORTS} ports may be forwarded at once"
        ));
    }
    Ok(out)
}

/// The data and error channels of the `index`-th port.
pub fn channels_of(index: usize) -> (u8, u8) {
    let data = u8::try_from(2 * index).unwrap_or(u8::MAX - 1);
    (data, data + 1)
}

/// Forwards each of `ports` of `namespace/pod` over `conn`, then closes it.
pub async fn session(
    forwarder: Arc<dyn PortForward>,
    namespace: String,
    pod: String,
    ports: Vec<u16>,
    mut conn: ChannelConn,
) {
    let mut forwards = tokio::task::JoinSet::new();
    let count = ports.len();
    // One message per port whose pod side is done.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(count.max(1));
    for (i, port) in ports.into_iter().enumerate() {
        let (data, error) = channels_of(i);
        let Some(reader) = conn.reader(data) else {
            continue;
        };
        let mut writer = conn.writer(data);
        let mut error_writer = conn.writer(error);
        let done = Done::new(done_tx.clone());
        let forwarder = Arc::clone(&forwarder);
        let (namespace, pod) = (namespace.clone(), pod.clone());
        forwards.spawn(async move {
            let prefix = port.to_le_bytes();
            if announce(&mut writer, &prefix).await.is_err()
                || announce(&mut error_writer, &prefix).await.is_err()
            {
                return;
            }
            let writer = DoneOnShutdown {
                inner: writer,
                done: done.clone(),
            };
            let stream = Box::new(tokio::io::join(reader, writer));
            let result = forwarder.port_forward(&namespace, &pod, port, stream).await;
            if let Err(e) = result {
                tracing::debug!(%pod, port, error = %e, "port-forward failed");
                let message = format!("error forwarding port {port} to pod {namespace}/{pod}: {e}");
                let _ = error_writer.write_all(message.as_bytes()).await;
                let _ = error_writer.flush().await;
            }
            done.report();
        });
    }
    drop(done_tx);
    let all_done = async {
        let mut reported = 0;
        while reported < count && done_rx.recv().await.is_some() {
            reported += 1;
        }
    };
    tokio::select! {
        _ = all_done => {}
        _ = async { while forwards.join_next().await.is_some() {} } => {}
        _ = conn.closed() => {}
    }
    forwards.abort_all();
    conn.close().await;
}

/// Reports, at most once, that a port's pod side is done.
#[derive(Clone)]
struct Done {
    reported: Arc<AtomicBool>,
    tx: mpsc::Sender<()>,
}

impl Done {
    fn new(tx: mpsc::Sender<()>) -> Self {
        Self {
            reported: Arc::new(AtomicBool::new(false)),
            tx,
        }
    }

    fn report(&self) {
        if !self.reported.swap(true, Ordering::SeqCst) {
            let _ = self.tx.try_send(());
        }
    }
}

/// A data channel writer that reports when the provider shuts it down.
struct DoneOnShutdown {
    inner: ChannelWriter,
    done: Done,
}

impl AsyncWrite for DoneOnShutdown {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = std::task::ready!(Pin::new(&mut self.inner).poll_shutdown(cx));
        self.done.report();
        Poll::Ready(result)
    }
}

async fn announce(writer: &mut ChannelWriter, prefix: &[u8; 2]) -> std::io::Result<()> {
    writer.write_all(prefix).await?;
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_from_the_query() {
        assert_eq!(ports("ports=8080"), Ok(vec![8080]));
        assert_eq!(ports("ports=1%2c2&ports=3"), Ok(vec![1, 2, 3]));
        assert_eq!(
            ports("port=1&port=2"),
            Ok(vec![1, 2]),
            "as the API server sends them"
        );
        assert!(ports("portx=1").is_err());
        assert!(ports("").is_err());
        assert!(ports("ports=").is_err());
        assert!(ports("ports=70000").is_err());
        assert!(ports("ports=80,80").is_err());
        assert!(ports("ports=x").is_err());
        let many: Vec<String> = (1..=129).map(|p| p.to_string()).collect();
        assert!(ports(&format!("ports={}", many.join(","))).is_err());
    }

    #[test]
    fn two_channels_per_port() {
        assert_eq!(channels_of(0), (0, 1));
        assert_eq!(channels_of(3), (6, 7));
    }
}
