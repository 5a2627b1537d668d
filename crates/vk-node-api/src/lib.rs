//! # vk-node-api: the kubelet HTTPS API of a virtual node
//!
//! Serves what `kubectl logs`, `exec`, `attach`, `port-forward`, `top` and
//! metrics-server call on a node (`/containerLogs`, `/exec`, `/attach`, `/portForward`,
//! `/pods`, `/stats/summary`, `/metrics/resource`), over rustls with client-certificate
//! and webhook authentication, speaking SPDY/3.1 and WebSocket streaming.
//!
//! Work in progress.

pub mod auth;
pub mod error;
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
