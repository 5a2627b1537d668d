//! WebSocket connections over the client's HTTP stack: same TLS, same default headers,
//! same timeouts for the handshake.
//!
//! The socket is opened with an HTTP/1.1 upgrade through the client's connection pool,
//! so `wss://` comes from an `https://` base URL and `ws://` from `http://`. tungstenite
//! does the framing; its types stay inside this module so its version is not part of
//! vk-core's API.

use std::fmt;

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL};
use http::header::{SEC_WEBSOCKET_VERSION, UPGRADE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as TungsteniteError, Message};

use super::client::{HttpClient, RequestBuilder};
use super::error::HttpError;

/// A message on a [`WebSocket`]. Pings and pongs are answered and consumed by the
/// socket itself and never show up here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsMessage {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Bytes),
    /// A close message, with the peer's close code and reason when it gave one.
    Close(Option<WsClose>),
}

/// The code and reason of a close message (RFC 6455 §7.4; 1000 is a normal close).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsClose {
    /// The close code.
    pub code: u16,
    /// The reason, possibly empty.
    pub reason: String,
}

/// A failed WebSocket operation after the handshake.
#[derive(Debug, thiserror::Error)]
#[error("{operation} the WebSocket: {reason}")]
pub struct WsError {
    operation: &'static str,
    reason: String,
}

impl WsError {
    fn new(operation: &'static str, err: TungsteniteError) -> Self {
        Self {
            operation,
            reason: err.to_string(),
        }
    }
}

impl From<WsError> for vk_errdefs::Error {
    /// A broken WebSocket means the backend went away: `Unavailable`.
    fn from(err: WsError) -> Self {
        vk_errdefs::Error::wrap(vk_errdefs::ErrorKind::Unavailable, err.to_string(), err)
    }
}

/// An open client WebSocket, from [`HttpClient::websocket`] or
/// [`RequestBuilder::websocket`]. Dropping it closes the connection (without a
/// closing handshake; call [`close`](Self::close) for a polite one).
pub struct WebSocket {
    stream: WebSocketStream<TokioIo<Upgraded>>,
    protocol: Option<String>,
    path: String,
}

impl WebSocket {
    /// The subprotocol the server chose, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// Sends `message` (and flushes it).
    pub async fn send(&mut self, message: WsMessage) -> Result<(), WsError> {
        let message = match message {
            WsMessage::Text(text) => Message::Text(text.into()),
            WsMessage::Binary(bytes) => Message::Binary(bytes),
            WsMessage::Close(close) => Message::Close(close.map(|c| CloseFrame {
                code: CloseCode::from(c.code),
                reason: c.reason.into(),
            })),
        };
        self.stream
            .send(message)
            .await
            .map_err(|e| WsError::new("sending on", e))
    }

    /// The next text, binary or close message; `None` once the connection is closed
    /// (after a close message, or when the peer went away without one). Answers pings
    /// while waiting. Cancel-safe: a message is never lost when the future is dropped.
    pub async fn recv(&mut self) -> Option<Result<WsMessage, WsError>> {
        loop {
            let message = match self.stream.next().await? {
                Ok(message) => message,
                Err(
                    TungsteniteError::ConnectionClosed
                    | TungsteniteError::AlreadyClosed
                    | TungsteniteError::Protocol(
                        tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                    ),
                ) => return None,
                Err(e) => return Some(Err(WsError::new("receiving from", e))),
            };
            return Some(Ok(match message {
                Message::Text(text) => WsMessage::Text(text.as_str().to_owned()),
                Message::Binary(bytes) => WsMessage::Binary(bytes),
                Message::Close(frame) => WsMessage::Close(frame.map(|f| WsClose {
                    code: u16::from(f.code),
                    reason: f.reason.as_str().to_owned(),
                })),
                // tungstenite queues the pong and sends it with the next read or write.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            }));
        }
    }

    /// Starts the closing handshake (a normal close) and flushes it; the peer's close
    /// arrives through [`recv`](Self::recv).
    pub async fn close(&mut self) -> Result<(), WsError> {
        match self.stream.close(None).await {
            Ok(()) | Err(TungsteniteError::ConnectionClosed | TungsteniteError::AlreadyClosed) => {
                Ok(())
            }
            Err(e) => Err(WsError::new("closing", e)),
        }
    }
}

impl fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("path", &self.path)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Opens a WebSocket on `path` (`wss://` for an `https://` base URL), offering
    /// `protocols` as subprotocols, with the client's default headers plus `headers`.
    /// For a query string, use [`RequestBuilder::websocket`].
    ///
    /// ```no_run
    /// # async fn demo(client: vk_core::http::HttpClient) -> Result<(), vk_core::http::HttpError> {
    /// let ws = client
    ///     .get("/v1/client/allocation/5fc98185/exec")
    ///     .query("task", "web")
    ///     .query("tty", "true")
    ///     .query("command", r#"["/bin/sh"]"#)
    ///     .websocket(&[])
    ///     .await?;
    /// # let _ = ws; Ok(()) }
    /// ```
    pub async fn websocket(
        &self,
        path: &str,
        protocols: &[&str],
        headers: HeaderMap,
    ) -> Result<WebSocket, HttpError> {
        let mut request = self.get(path);
        for (name, value) in &headers {
            request.insert_header(name.clone(), value.clone());
        }
        request.websocket(protocols).await
    }
}

impl RequestBuilder {
    /// Opens a WebSocket with this request (always a `GET`), offering `protocols`.
    /// The handshake is retried like any `GET` and bound by the request timeout; an
    /// error status is [`HttpError::Status`] (so a 404 is `NotFound`), any other
    /// refusal [`HttpError::WebSocketHandshake`].
    pub async fn websocket(mut self, protocols: &[&str]) -> Result<WebSocket, HttpError> {
        let path = self.path().to_string();
        let handshake_error = |reason: String| HttpError::WebSocketHandshake {
            path: path.clone(),
            reason,
        };
        self.set_method(Method::GET);
        let key = generate_key();
        self.insert_header(CONNECTION, HeaderValue::from_static("upgrade"));
        self.insert_header(UPGRADE, HeaderValue::from_static("websocket"));
        self.insert_header(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        let key_value = HeaderValue::from_str(&key)
            .map_err(|_| handshake_error("generated an invalid key".into()))?;
        self.insert_header(SEC_WEBSOCKET_KEY, key_value);
        if !protocols.is_empty() {
            let offered = HeaderValue::from_str(&protocols.join(", "))
                .map_err(|_| handshake_error("invalid subprotocol name".into()))?;
            self.insert_header(SEC_WEBSOCKET_PROTOCOL, offered);
        }
        let client = self.client().clone();
        let response = client.execute(self.prepare()?).await?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(handshake_error(format!(
                "expected 101 Switching Protocols, got {}",
                response.status()
            )));
        }
        let accept = response.headers().get(SEC_WEBSOCKET_ACCEPT);
        if accept.map(HeaderValue::as_bytes) != Some(derive_accept_key(key.as_bytes()).as_bytes()) {
            return Err(handshake_error(
                "the server's Sec-WebSocket-Accept does not match the key".into(),
            ));
        }
        let protocol = match response.headers().get(SEC_WEBSOCKET_PROTOCOL) {
            None => None,
            Some(chosen) => {
                let chosen = chosen.to_str().unwrap_or_default().trim().to_string();
                if !protocols.contains(&chosen.as_str()) {
                    return Err(handshake_error(format!(
                        "the server chose subprotocol {chosen:?}, which was not offered"
                    )));
                }
                Some(chosen)
            }
        };
        let upgraded = hyper::upgrade::on(response.into_inner())
            .await
            .map_err(|e| handshake_error(format!("taking over the connection: {e}")))?;
        let stream =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
        tracing::debug!(http.path = %path, protocol = protocol.as_deref(), "WebSocket open");
        Ok(WebSocket {
            stream,
            protocol,
            path,
        })
    }
}
