//! # vk-node-api: the kubelet HTTPS API of a virtual node
//!
//! Serves what `kubectl logs`, `exec`, `attach`, `port-forward`, `top` and
//! metrics-server call on a node — `/containerLogs`, `/exec`, `/attach`, `/portForward`,
//! `/pods`, `/runningpods/`, `/stats/summary`, `/metrics/resource`, `/healthz` — over
//! rustls, with client-certificate, TokenReview and SubjectAccessReview checks as a
//! kubelet does them, speaking both streaming transports kubectl uses: SPDY/3.1
//! ([`spdy`]) and the WebSocket channel protocols ([`ws`], including SPDY tunnelled in
//! WebSocket for port-forward).
//!
//! What a request can do depends on the provider's optional capabilities
//! (`vk_core::capabilities::Capabilities`, resolved once per node by [`NodeApi::new`]): a
//! provider without `exec` answers 501 there.
//!
//! # Serving it
//!
//! Provider binaries built with `vk_cli::main` serve this API for every node; to do it
//! by hand:
//!
//! ```no_run
//! # async fn demo(provider: vk_core::SharedPodHandler, client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use vk_node_api::auth::{AuthConfig, Authenticator};
//! use vk_node_api::node_api::{NodeApi, StreamingConfig};
//! use vk_node_api::router::router;
//! use vk_node_api::tls::{ReloadingCert, ServingCert, load_client_ca, server_config};
//!
//! let cert = Arc::new(ReloadingCert::new(&ServingCert::Files {
//!     cert: "/etc/vk/kubelet.crt".into(),
//!     key: "/etc/vk/kubelet.key".into(),
//! })?);
//! let tls = Arc::new(server_config(cert, Some(load_client_ca("/etc/vk/ca.crt".as_ref())?))?);
//! let auth = Authenticator::new(AuthConfig::default(), "my-node", Some(client));
//! let api = Arc::new(NodeApi::new("my-node", provider, auth, StreamingConfig::default()));
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:10250").await?;
//! vk_node_api::server::serve_tls(listener, tls, router(api), Default::default()).await;
//! # Ok(()) }
//! ```
//!
//! # Modules
//!
//! * [`node_api`]: [`NodeApi`], what every handler shares (provider, capabilities,
//!   auth, timeouts, the pod check).
//! * [`router`]: routes and handlers; [`remotecommand`] (exec/attach) and
//!   [`portforward`] for the streaming ones; [`streams`] gathers a session's streams
//!   from either transport; [`options`] parses the query parameters.
//! * [`server`]: the TLS accept loop (HTTP/1.1 with upgrades); [`tls`]: certificates
//!   (files re-read on change, or self-signed) and client-CA verification.
//! * Hostile clients: [`connections`] (the connection cap), [`head_timer`] (header-read
//!   and keep-alive idle timeouts), [`path_guard`], [`accept`] (pausing when out of
//!   file descriptors), [`fd_limit`] (raising the open-file limit), [`rate_limit`].
//! * [`auth`]: who is calling and may they, with [`token_cache`] and [`ttl_cache`];
//!   [`error`]: HTTP answers of failures.
//! * [`spdy`], [`ws`], [`upgrade`], [`resize`], [`status`], [`idle`]: the protocol pieces.

pub mod accept;
pub mod auth;
pub mod connections;
pub mod error;
pub mod fd_limit;
pub mod head_timer;
pub mod idle;
pub mod node_api;
pub mod options;
pub mod path_guard;
pub mod portforward;
pub mod rate_limit;
pub mod remotecommand;
pub mod resize;
pub mod router;
pub mod server;
pub mod spdy;
pub mod status;
pub mod streams;
pub mod tls;
pub mod token_cache;
pub mod ttl_cache;
pub mod upgrade;
pub mod ws;

pub use node_api::{NodeApi, StreamingConfig};

#[doc(hidden)]
pub mod fuzzing {
    //! Entry points for the fuzz targets (the repository's `fuzz/` directory) into
    //! parsers that are private to this crate. Not part of the API: it may change or go
    //! away in any release.

    use bytes::Bytes;

    use crate::ws::ChannelProtocol;
    use crate::ws::frame::{self, Incoming};

    /// What a client's WebSocket channel message means (a copy of the private
    /// `ws::frame::Incoming`).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum WsIncoming {
        /// Data for a channel; the payload may be empty.
        Data {
            /// The channel number.
            channel: u8,
            /// The decoded payload.
            payload: Bytes,
        },
        /// The v5 close signal for `channel`.
        Close {
            /// The channel closed.
            channel: u8,
        },
        /// A message with nothing in it.
        Empty,
        /// A malformed message (ignored by the connection), with the reason.
        Invalid(&'static str),
    }

    /// Decodes a message (text or binary alike) the client sent, as
    /// [`ChannelConn`](crate::ws::ChannelConn) does.
    pub fn ws_decode(protocol: ChannelProtocol, message: Bytes) -> WsIncoming {
        match frame::decode(protocol, message) {
            Incoming::Data { channel, payload } => WsIncoming::Data { channel, payload },
            Incoming::Close { channel } => WsIncoming::Close { channel },
            Incoming::Empty => WsIncoming::Empty,
            Incoming::Invalid(reason) => WsIncoming::Invalid(reason),
        }
    }

    /// The content of the message the server sends to carry `payload` on `channel`
    /// (text in the base64 protocols, binary otherwise).
    pub fn ws_encode(protocol: ChannelProtocol, channel: u8, payload: &[u8]) -> Bytes {
        frame::encode(protocol, channel, payload).into_data()
    }
}

#[cfg(test)]
pub(crate) fn install_crypto_for_tests() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
