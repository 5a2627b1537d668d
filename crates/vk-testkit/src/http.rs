//! A minimal plain-HTTP/1.0 GET on loopback, for health and metrics endpoints in tests
//! and tools (no HTTP client dependency needed for that).

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// `GET path` on `127.0.0.1:port`; returns the status code and the body.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// let (code, body) = vk_testkit::http::get(10255, "/readyz").await?;
/// assert_eq!((code, body.as_str()), (200, "ok"));
/// # Ok(()) }
/// ```
pub async fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    request(port, "GET", path, "").await
}

/// `PUT path` with `body` on `127.0.0.1:port`; returns the status code and the body.
pub async fn put(port: u16, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    request(port, "PUT", path, body).await
}

async fn request(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(
            format!(
                "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(parse_response(&response))
}

/// The status code (0 if unreadable) and the body of a whole HTTP/1.x response.
pub(crate) fn parse_response(response: &str) -> (u16, String) {
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}
