//! The attacks of the `hostile` scenario on a node's kubelet port, and what the server
//! did with each: connections that never send a request ([`hold`]: were they closed by
//! the server, and after how long?) and requests it must refuse ([`send_all`]: the
//! answer to each).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use futures::StreamExt as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;
use vk_testkit::kubelet_client::KubeletClient;

/// The opening bytes of a TLS ClientHello, and nothing after: a handshake record
/// announcing 512 bytes, a ClientHello announcing 508, version TLS 1.2.
pub const PARTIAL_CLIENT_HELLO: &[u8] = &[
    0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
];

/// How long one refused request may take before it counts as unanswered.
pub const REQUEST_LIMIT: Duration = Duration::from_secs(10);

/// How many connections are opened at once.
const OPEN_CONCURRENCY: usize = 50;

/// How a silent connection stops short of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// A TCP connection that never sends a byte (slowloris).
    Tcp,
    /// A TCP connection that sends the start of a ClientHello, then nothing.
    PartialHello,
    /// A completed TLS handshake (no client certificate), then no request.
    Tls,
}

/// What the server did with connections that never sent a request.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Held {
    /// Connections opened (and, for [`Silence::Tls`], through the handshake).
    pub opened: usize,
    /// Connections that could not be opened.
    pub refused: usize,
    /// Opened connections the server closed before the suite gave up.
    pub closed: usize,
    /// The longest a closed connection stayed open.
    pub longest: Duration,
}

impl Held {
    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: Held) {
        self.opened += other.opened;
        self.refused += other.refused;
        self.closed += other.closed;
        self.longest = self.longest.max(other.longest);
    }

    /// The measurements as JSON.
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "opened": self.opened,
            "refused": self.refused,
            "closed_by_server": self.closed,
            "longest_open_seconds": self.longest.as_secs_f64(),
        })
    }
}

/// A connection as the suite holds it: something to read the server's close from.
type Conn = Box<dyn AsyncRead + Send + Unpin>;

/// Opens `n` connections to `127.0.0.1:port` that stop short of a request as `silence`
/// says (TLS ones through `tls`), then waits for the server to close each — reading
/// whatever it sends until end of stream or an error — for at most `wait` after it
/// was opened.
pub async fn hold(
    silence: Silence,
    n: usize,
    port: u16,
    tls: &KubeletClient,
    wait: Duration,
) -> Held {
    let opened: Vec<Option<(Conn, Instant)>> = futures::stream::iter(0..n)
        .map(|_| async move {
            let conn = open(silence, port, tls).await.ok()?;
            Some((conn, Instant::now()))
        })
        .buffer_unordered(OPEN_CONCURRENCY)
        .collect()
        .await;
    let refused = opened.iter().filter(|c| c.is_none()).count();
    let lifetimes = futures::future::join_all(
        opened
            .into_iter()
            .flatten()
            .map(|(conn, at)| closed_by_server(conn, at, wait)),
    )
    .await;
    Held {
        opened: lifetimes.len(),
        refused,
        closed: lifetimes.iter().flatten().count(),
        longest: lifetimes
            .iter()
            .flatten()
            .copied()
            .max()
            .unwrap_or_default(),
    }
}

async fn open(silence: Silence, port: u16, tls: &KubeletClient) -> anyhow::Result<Conn> {
    Ok(match silence {
        Silence::Tcp => Box::new(TcpStream::connect(("127.0.0.1", port)).await?),
        Silence::PartialHello => {
            let mut tcp = TcpStream::connect(("127.0.0.1", port)).await?;
            tcp.write_all(PARTIAL_CLIENT_HELLO).await?;
            Box::new(tcp)
        }
        Silence::Tls => Box::new(tls.connect(port).await?),
    })
}

/// How long after `opened` the server closed `conn`; `None` if it was still open
/// `wait` after it was opened (it is then dropped: closed by the suite).
async fn closed_by_server(mut conn: Conn, opened: Instant, wait: Duration) -> Option<Duration> {
    let mut buf = [0u8; 1024];
    let closed = async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return opened.elapsed(),
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout_at(opened + wait, closed).await.ok()
}

/// The answer to one request the server must refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An HTTP status; `leaked` when the body holds a system file's content.
    Status {
        /// The status code.
        code: u16,
        /// Whether the body looks like `/etc/passwd` (path traversal that worked).
        leaked: bool,
    },
    /// The connection closed without a status line.
    Closed,
    /// Failed at `stage` (refused, reset...).
    Failed {
        /// `handshake` (TCP connect and TLS) or `answer` (sending, or reading the answer).
        stage: &'static str,
    },
    /// Not done within [`REQUEST_LIMIT`], stuck at `stage`.
    TimedOut {
        /// `handshake` (TCP connect and TLS), `request` (still writing it), `answer`
        /// (nothing received) or `close` (an answer received, the connection left open).
        stage: &'static str,
    },
}

impl Answer {
    /// The answer to a request whose exchange ended with `result`.
    pub fn of(result: Result<(u16, String), Stuck>) -> Self {
        match result {
            Err(Stuck::TimedOut(stage)) => Answer::TimedOut { stage },
            Err(Stuck::Failed(stage)) => Answer::Failed { stage },
            Ok((0, _)) => Answer::Closed,
            Ok((code, body)) => Answer::Status {
                code,
                leaked: body.contains("root:x:0:0"),
            },
        }
    }

    /// Its name in a tally: the status code, `closed`, `failed (stage)` or
    /// `timed out (stage)`.
    pub fn label(&self) -> String {
        match self {
            Answer::Status { code, .. } => code.to_string(),
            Answer::Closed => "closed".into(),
            Answer::Failed { stage } => format!("failed ({stage})"),
            Answer::TimedOut { stage } => format!("timed out ({stage})"),
        }
    }
}

/// The answers to a batch of requests, by [`Answer::label`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answers {
    /// How many requests got each answer.
    pub by_label: BTreeMap<String, usize>,
    /// Answers whose body held a system file's content.
    pub leaked: usize,
}

impl Answers {
    /// Counts `answer`.
    pub fn add(&mut self, answer: &Answer) {
        *self.by_label.entry(answer.label()).or_insert(0) += 1;
        if matches!(answer, Answer::Status { leaked: true, .. }) {
            self.leaked += 1;
        }
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Answers) {
        for (label, n) in &other.by_label {
            *self.by_label.entry(label.clone()).or_insert(0) += n;
        }
        self.leaked += other.leaked;
    }

    /// How many requests were sent.
    pub fn total(&self) -> usize {
        self.by_label.values().sum()
    }

    /// How many got an answer whose label `accept` takes.
    pub fn count(&self, accept: impl Fn(&str) -> bool) -> usize {
        self.by_label
            .iter()
            .filter(|(label, _)| accept(label))
            .map(|(_, n)| n)
            .sum()
    }

    /// `400 ×18, closed ×2`.
    pub fn summary(&self) -> String {
        if self.by_label.is_empty() {
            return "none sent".into();
        }
        self.by_label
            .iter()
            .map(|(label, n)| format!("{label} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why an exchange ended without a response.
#[derive(Debug)]
pub enum Stuck {
    /// Not done within [`REQUEST_LIMIT`], at this stage.
    TimedOut(&'static str),
    /// Failed at this stage (refused, reset...).
    Failed(&'static str),
}

/// `GET path` (HTTP/1.0) with `headers` through `client` on `127.0.0.1:port`: the
/// status (0 when the connection closed without a status line) and body; the stage
/// that did not end within [`REQUEST_LIMIT`] otherwise.
pub async fn exchange(
    client: &KubeletClient,
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String), Stuck> {
    let deadline = Instant::now() + REQUEST_LIMIT;
    let mut tls = tokio::time::timeout_at(deadline, client.connect(port))
        .await
        .map_err(|_| Stuck::TimedOut("handshake"))?
        .map_err(|_| Stuck::Failed("handshake"))?;
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let head = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{extra}\r\n");
    // What arrived so far, and whether the request was all written: where it stopped
    // when the time is up.
    let mut raw = Vec::new();
    let mut sent = false;
    let answer = async {
        // The server may answer (and close) before the whole request is written.
        // Flushed: what the socket did not take at once stays in the TLS session.
        let written = match tls.write_all(head.as_bytes()).await {
            Ok(()) => tls.flush().await,
            Err(e) => Err(e),
        };
        sent = true;
        let mut buf = [0u8; 4096];
        let read = loop {
            match tls.read(&mut buf).await {
                Ok(0) => break Ok(()),
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(e) => break Err(e),
            }
        };
        // A TLS peer may close without close_notify; what arrived is still the answer.
        match (written, read) {
            (Err(_), _) | (_, Err(_)) if raw.is_empty() => Err(()),
            _ => Ok(()),
        }
    };
    match tokio::time::timeout_at(deadline, answer).await {
        Ok(Ok(())) => {}
        Ok(Err(())) => return Err(Stuck::Failed("answer")),
        Err(_) if !sent => return Err(Stuck::TimedOut("request")),
        Err(_) if raw.is_empty() => return Err(Stuck::TimedOut("answer")),
        Err(_) => return Err(Stuck::TimedOut("close")),
    }
    Ok(parse_response(&String::from_utf8_lossy(&raw)))
}

/// The status code (0 without a status line) and the body of an HTTP/1.x response.
fn parse_response(response: &str) -> (u16, String) {
    let code = response
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// Whether `label` is a 4xx status.
pub fn client_error(label: &str) -> bool {
    label.len() == 3 && label.starts_with('4') && label.parse::<u16>().is_ok()
}

/// Sends `n` requests, `concurrency` at a time: `send(i)` makes the `i`-th
/// [`exchange`].
pub async fn send_all<F, Fut>(n: usize, concurrency: usize, send: F) -> Answers
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(u16, String), Stuck>>,
{
    let answers: Vec<Answer> = futures::stream::iter(0..n)
        .map(|i| {
            let exchange = send(i);
            async move { Answer::of(exchange.await) }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut tally = Answers::default();
    for a in &answers {
        tally.add(a);
    }
    tally
}

/// Sizes of the oversized header value: at the server's head limit (64 KiB), then well
/// beyond it.
pub const OVERSIZED_HEADERS: [usize; 3] = [64 * 1024, 256 * 1024, 1024 * 1024];

/// `n` `GET /healthz` requests without credentials, each with one header of a size
/// from [`OVERSIZED_HEADERS`] (in turn), 8 at a time.
pub async fn oversized_heads(anonymous: &KubeletClient, port: u16, n: usize) -> Answers {
    send_all(n, 8, |i| async move {
        let big = "a".repeat(OVERSIZED_HEADERS[i % OVERSIZED_HEADERS.len()]);
        exchange(anonymous, port, "/healthz", &[("X-Oversized", &big)]).await
    })
    .await
}

/// Paths that try to leave the container name (or the pod name) with `..`, escaped
/// separators, backslashes and NUL, on the logs and attach endpoints of pod `ns/pod`.
pub fn traversal_paths(ns: &str, pod: &str) -> Vec<String> {
    [
        format!("/containerLogs/{ns}/{pod}/..%2f..%2fetc%2fpasswd"),
        format!("/containerLogs/{ns}/{pod}/..%2F..%2F..%2F..%2Fetc%2Fpasswd"),
        format!("/containerLogs/{ns}/{pod}/%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
        format!("/containerLogs/{ns}/{pod}/.."),
        format!("/containerLogs/{ns}/{pod}/%2e%2e"),
        format!("/containerLogs/{ns}/%2e%2e%2f%2e%2e/c"),
        format!("/containerLogs/{ns}/{pod}/c%2F..%2F..%2Fetc%2Fpasswd"),
        format!("/containerLogs/{ns}/{pod}/..%5c..%5cetc%5cpasswd"),
        format!("/containerLogs/{ns}/{pod}/c%00"),
        format!("/containerLogs/..%2f..%2f/{pod}/c"),
        format!("/attach/{ns}/{pod}/..%2f..%2fbin%2fsh?input=1&output=1"),
        format!("/exec/{ns}/{pod}/..%2f..%2fbin%2fsh?command=id&output=1"),
    ]
    .to_vec()
}

/// Query values out of range, negative, unparsable or absurd, on the logs of container
/// `c` of pod `ns/pod`.
pub fn bad_query_paths(ns: &str, pod: &str) -> Vec<String> {
    [
        "tailLines=-1",
        "tailLines=99999999999999999999",
        "limitBytes=99999999999999999999",
        "limitBytes=-1",
        "limitBytes=0",
        "sinceSeconds=-5",
        "sinceSeconds=99999999999999999999",
        "sinceTime=not-a-time",
        "sinceSeconds=1&sinceTime=2026-01-01T00:00:00Z",
        "follow=maybe",
        "timestamps=2",
    ]
    .iter()
    .map(|q| format!("/containerLogs/{ns}/{pod}/c?{q}"))
    .collect()
}

/// Each of `paths` `times` times, with `client`'s credentials, 8 at a time.
pub async fn bad_paths(
    client: &KubeletClient,
    port: u16,
    paths: &[String],
    times: usize,
) -> Answers {
    send_all(paths.len() * times, 8, |i| async move {
        exchange(client, port, &paths[i % paths.len()], &[]).await
    })
    .await
}

/// Length of each flooded bearer token.
pub const TOKEN_BYTES: usize = 60 * 1024;

/// `GET /pods` requests without a client certificate, one for each of `tokens`, with
/// a bearer token of [`TOKEN_BYTES`] unique to that number (and to this process), 16 at
/// a time.
pub async fn token_flood(
    anonymous: &KubeletClient,
    port: u16,
    tokens: std::ops::Range<usize>,
) -> Answers {
    let run = std::process::id();
    let first = tokens.start;
    send_all(tokens.len(), 16, |i| async move {
        let auth = format!("Bearer {}", unique_token(run, first + i));
        exchange(anonymous, port, "/pods", &[("Authorization", &auth)]).await
    })
    .await
}

/// A token of [`TOKEN_BYTES`] unique to (`run`, `i`).
fn unique_token(run: u32, i: usize) -> String {
    let mut token = format!("hostile-{run}-{i}-");
    let pad = TOKEN_BYTES.saturating_sub(token.len());
    token.extend(std::iter::repeat_n('x', pad));
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, body: &str) -> Result<(u16, String), Stuck> {
        Ok((code, body.into()))
    }

    #[test]
    fn answers_are_tallied_by_status_or_failure() {
        let mut tally = Answers::default();
        for a in [
            Answer::of(status(400, "invalid path segment")),
            Answer::of(status(400, "")),
            Answer::of(status(200, "root:x:0:0:root:/root:/bin/sh")),
            Answer::of(status(0, "")),
            Answer::of(Err(Stuck::Failed("handshake"))),
            Answer::of(Err(Stuck::TimedOut("answer"))),
        ] {
            tally.add(&a);
        }
        assert_eq!(tally.total(), 6);
        assert_eq!(tally.leaked, 1);
        assert_eq!(tally.count(client_error), 2);
        assert_eq!(
            tally.summary(),
            "200 ×1, 400 ×2, closed ×1, failed (handshake) ×1, timed out (answer) ×1"
        );
        let mut both = tally.clone();
        both.merge(&tally);
        assert_eq!((both.total(), both.leaked), (12, 2));
    }

    #[test]
    fn responses_are_read_by_status_line() {
        assert_eq!(
            parse_response("HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n"),
            (431, String::new())
        );
        assert_eq!(
            parse_response("HTTP/1.0 400 Bad Request\r\ncontent-length: 4\r\n\r\nbad\n"),
            (400, "bad\n".into())
        );
        assert_eq!(parse_response(""), (0, String::new()), "closed unanswered");
        assert_eq!(parse_response("garbage 200"), (0, String::new()));
    }

    #[test]
    fn only_4xx_statuses_are_client_errors() {
        assert!(client_error("400") && client_error("431") && client_error("429"));
        for other in ["200", "500", "503", "closed", "failed", "4", "4000"] {
            assert!(!client_error(other), "{other}");
        }
    }

    #[test]
    fn flooded_tokens_are_unique_and_of_the_given_length() {
        let (a, b) = (unique_token(7, 1), unique_token(7, 2));
        assert_ne!(a, b);
        assert_eq!((a.len(), b.len()), (TOKEN_BYTES, TOKEN_BYTES));
        assert!(
            a.chars().all(|c| c.is_ascii_graphic()),
            "a valid header value"
        );
    }

    #[test]
    fn every_attack_path_targets_the_given_pod_or_its_namespace() {
        for p in traversal_paths("ns1", "web")
            .iter()
            .chain(&bad_query_paths("ns1", "web"))
        {
            assert!(p.contains("/web/") || p.contains("/ns1/"), "{p}");
        }
        assert!(
            bad_query_paths("ns1", "web")
                .iter()
                .all(|p| p.starts_with("/containerLogs/ns1/web/c?"))
        );
    }

    #[test]
    fn the_partial_client_hello_is_a_handshake_record_cut_short() {
        // Content type handshake, a record length the bytes sent do not reach.
        assert_eq!(PARTIAL_CLIENT_HELLO[0], 0x16);
        let announced = u16::from_be_bytes([PARTIAL_CLIENT_HELLO[3], PARTIAL_CLIENT_HELLO[4]]);
        assert!(usize::from(announced) > PARTIAL_CLIENT_HELLO.len() - 5);
        assert_eq!(PARTIAL_CLIENT_HELLO[5], 0x01, "ClientHello");
    }

    /// A server that closes every connection it accepts once `n` are open: the held
    /// connections all count as closed by the server; one it never closes does not.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn held_connections_count_the_servers_closes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            let mut open = Vec::new();
            while open.len() < 5 {
                let (conn, _) = listener.accept().await.expect("accept");
                open.push(conn);
            }
            drop(open);
            // The sixth is kept open until the suite gives up on it.
            let (kept, _) = listener.accept().await.expect("accept");
            kept
        });
        let ca = "";
        let tls = KubeletClient::new(ca, None).expect("a client trusting nothing");
        let held = hold(
            Silence::PartialHello,
            5,
            port,
            &tls,
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(
            (held.opened, held.refused, held.closed),
            (5, 0, 5),
            "{held:?}"
        );
        let wait = Duration::from_millis(300);
        let never = hold(Silence::Tcp, 1, port, &tls, wait).await;
        assert_eq!((never.opened, never.closed), (1, 0), "{never:?}");
        drop(server.await.expect("server"));
    }
}
