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
//! (`vk_core::capabilities`): a provider without `exec` answers 501 there.
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
//! use vk_node_api::router::{NodeApi, StreamingConfig, router};
//! use vk_node_api::tls::{ReloadingCert, ServingCert, load_client_ca, server_config};
//!
//! let cert = Arc::new(ReloadingCert::new(&ServingCert::Files {
//!     cert: "/etc/vk/kubelet.crt".into(),
//!     key: "/etc/vk/kubelet.key".into(),
//! })?);
//! let tls = Arc::new(server_config(cert, Some(load_client_ca("/etc/vk/ca.crt".as_ref())?))?);
//! let api = Arc::new(NodeApi {
//!     node: "my-node".into(),
//!     provider,
//!     auth: Authenticator::new(AuthConfig::default(), "my-node", Some(client)),
//!     streaming: StreamingConfig::default(),
//! });
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:10250").await?;
//! vk_node_api::server::serve_tls(listener, tls, router(api), Default::default()).await;
//! # Ok(()) }
//! ```
//!
//! # Modules
//!
//! * [`router`]: routes and handlers; [`remotecommand`] (exec/attach) and
//!   [`portforward`] for the streaming ones; [`options`] parses their query parameters.
//! * [`server`]: the TLS accept loop (HTTP/1.1 with upgrades); [`tls`]: certificates
//!   (files re-read on change, or self-signed) and client-CA verification.
//! * [`auth`]: who is calling and may they; [`error`]: HTTP answers of failures.
//! * [`spdy`], [`ws`], [`upgrade`], [`resize`], [`status`], [`idle`]: the protocol pieces.

pub mod auth;
pub mod error;
pub mod idle;
pub mod options;
pub mod portforward;
pub mod remotecommand;
pub mod resize;
pub mod router;
pub mod server;
pub mod spdy;
pub mod status;
pub mod tls;
pub mod upgrade;
pub mod ws;

#[cfg(test)]
pub(crate) fn install_crypto_for_tests() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
