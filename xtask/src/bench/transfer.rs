//! The data path of the `stream` scenario: a small server run as the pod's container
//! (one HTTP/1.0-style exchange per request, connections kept open), and the bench's
//! client, which times one `GET /<bytes>` over any TCP path to it (direct, through a
//! `kubectl port-forward`, or through `kubectl proxy` and the API server's service
//! proxy).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The pod's server, run as `python3 -c SERVER <port>`: for each request head
/// (`GET /<n> ...` ending in an empty line) it answers `n` bytes with a
/// `Content-Length`, and keeps reading requests until the client closes. One thread
/// per connection, so idle sessions can be held open.
pub(crate) const SERVER: &str = r#"
import socket, sys, threading
CHUNK = memoryview(b"x" * (1 << 20))
def serve(c):
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            head, buf = buf.split(b"\r\n\r\n", 1)
            path = head.split(b" ")[1].rsplit(b"/", 1)[-1]
            n = int(path) if path.isdigit() else 0
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % n)
            while n > 0:
                k = min(n, len(CHUNK))
                c.sendall(CHUNK[:k])
                n -= k
    except OSError:
        pass
    finally:
        c.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(256)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// One timed response.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Transfer {
    /// From the start (before connecting, for [`get`]) to the first response byte.
    pub(crate) first_byte: Duration,
    /// From the start to the last body byte.
    pub(crate) total: Duration,
    /// Body bytes received.
    pub(crate) body: u64,
}

impl Transfer {
    /// Body throughput, MB/s (MiB).
    pub(crate) fn mb_per_second(&self) -> f64 {
        self.body as f64 / (1024.0 * 1024.0) / self.total.as_secs_f64().max(1e-9)
    }
}

/// Connects to `127.0.0.1:port` and fetches `path`; times from before the connect.
pub(crate) async fn get(port: u16, path: &str) -> anyhow::Result<Transfer> {
    let start = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
    stream.set_nodelay(true)?;
    request(&mut stream, port, path, start).await
}

/// Sends `GET path` on `stream` and reads the whole response (by its
/// `Content-Length`), leaving the connection open; times from `start`.
pub(crate) async fn request(
    stream: &mut TcpStream,
    port: u16,
    path: &str,
    start: Instant,
) -> anyhow::Result<Transfer> {
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
        .await?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut head = Vec::new();
    let mut first_byte = None;
    let (length, mut body) = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!("the connection closed before the response head");
        }
        first_byte.get_or_insert_with(|| start.elapsed());
        head.extend_from_slice(&buf[..n]);
        if let Some((length, body)) = parse_head(&head)? {
            break (length, body);
        }
    };
    while body < length {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!("the connection closed after {body} of {length} body bytes");
        }
        body += n as u64;
    }
    Ok(Transfer {
        first_byte: first_byte.unwrap_or_default(),
        total: start.elapsed(),
        body,
    })
}

/// `(Content-Length, body bytes already in `head`)` once `head` holds the whole
/// response head; an error for a status other than 200 or no length.
fn parse_head(head: &[u8]) -> anyhow::Result<Option<(u64, u64)>> {
    let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&head[..end]);
    let status = text.lines().next().unwrap_or_default();
    if status.split(' ').nth(1) != Some("200") {
        bail!("unexpected response: {text}");
    }
    let length = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<u64>().ok())
                .flatten()
        })
        .with_context(|| format!("no Content-Length in: {text}"))?;
    Ok(Some((length, (head.len() - end - 4) as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_heads_give_the_length_and_the_body_read_so_far() {
        assert_eq!(
            parse_head(b"HTTP/1.0 200 OK\r\nContent-Le").expect("partial"),
            None
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nxxx").expect("head"),
            Some((10, 3))
        );
        assert!(parse_head(b"HTTP/1.1 503 Service Unavailable\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
    }

    #[tokio::test]
    async fn get_times_a_whole_body_from_the_pod_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            let (mut c, _) = listener.accept().await.expect("accept");
            let mut req = [0u8; 256];
            let n = c.read(&mut req).await.expect("request");
            assert!(req[..n].starts_with(b"GET /5 HTTP/1.0\r\n"));
            c.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nab")
                .await
                .expect("head");
            c.write_all(b"cde").await.expect("rest");
        });
        let t = get(port, "/5").await.expect("get");
        assert_eq!(t.body, 5);
        assert!(t.first_byte <= t.total);
        server.await.expect("server");
    }
}
