//! The outbound HTTP client of remote-backend providers: one stack (hyper, rustls with
//! ring) for every provider that talks to a web API — Nomad, Azure, a web bridge.
//!
//! ## Where to start
//!
//! Describe the backend with an [`HttpClientConfig`] (base URL, token header, CA
//! bundle...), build an [`HttpClient`] once and clone it freely. Call
//! [`get_json`](HttpClient::get_json), [`post_json`](HttpClient::post_json),
//! [`put_json`](HttpClient::put_json), [`delete`](HttpClient::delete), or build any other
//! request with [`HttpClient::request`]. [`HttpResponse::into_stream`] streams a body;
//! [`HttpClient::websocket`] opens a WebSocket (see [`crate::bridge`] for remote exec).
//!
//! ```no_run
//! use std::time::Duration;
//! use vk_core::http::{HttpClient, HttpClientConfig, RetryPolicy};
//!
//! # async fn demo() -> Result<(), vk_errdefs::Error> {
//! let client = HttpClient::new(
//!     HttpClientConfig::new("https://nomad.example:4646")
//!         .sensitive_header("X-Nomad-Token", std::env::var("NOMAD_TOKEN").unwrap_or_default())
//!         .ca_pem(std::fs::read("/etc/nomad/ca.pem")?)
//!         .request_timeout(Some(Duration::from_secs(20))),
//! )?;
//! let nodes: serde_json::Value = client.get_json("/v1/nodes").await?;
//! # let _ = nodes; Ok(()) }
//! ```
//!
//! ## Guarantees
//!
//! * **One TLS stack.** rustls with the ring provider, given to the client explicitly,
//!   so nothing depends on a process-wide default provider. Roots: the system's
//!   (read once per process), plus or instead of configured PEM bundles; client
//!   certificates for mutual TLS; [`HttpClientConfig::insecure_skip_verify`] for
//!   backends that want it, with a warning in the log.
//! * **Timeouts.** A connect timeout, and a request timeout up to the response headers:
//!   bodies are never cut, so streams can last.
//! * **Retries** per [`RetryPolicy`]: connect failures always, `429` always (waiting its
//!   `Retry-After`), timeouts and `502`/`503`/`504` for idempotent requests only.
//! * **Secrets stay secret.** Header values marked sensitive never appear in `Debug`
//!   output; errors and trace events name the method and URL path only — never the
//!   query, headers or bodies.
//!
//! ## Errors
//!
//! Every failure is an [`HttpError`] naming the operation, method and path, convertible
//! with `?` into a [`vk_errdefs::Error`]: answer statuses map through
//! [`vk_errdefs::ErrorKind::from_http_status`] (404 → `NotFound`, 429/503 →
//! `Unavailable`...), transport failures are `Unavailable`.
//!
//! ## Observability
//!
//! Each request runs in a DEBUG `http.request` span (`http.method`, `http.path`) with a
//! DEBUG event per attempt (`attempt`, `status`) and per retry (`wait_ms`, `reason`).
//! [`HttpClient::counts`] returns the attempts, retries, transport errors and answers
//! by status class, for tests and metrics.

mod client;
mod config;
mod counters;
mod endpoint;
mod error;
mod response;
mod retry;
mod tls;
mod websocket;

#[cfg(test)]
pub(crate) mod tests;

pub use client::{HttpClient, RequestBuilder};
pub use config::{DEFAULT_USER_AGENT, HttpClientConfig};
pub use counters::HttpCounts;
pub use error::{Attempts, HttpError};
pub use response::HttpResponse;
pub use retry::RetryPolicy;
pub use websocket::{WebSocket, WsClose, WsError, WsMessage};
