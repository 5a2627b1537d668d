//! # vk-node-api: the kubelet HTTPS API of a virtual node
//!
//! Serves what `kubectl logs`, `exec`, `attach`, `port-forward`, `top` and
//! metrics-server call on a node (`/containerLogs`, `/exec`, `/attach`, `/portForward`,
//! `/pods`, `/stats/summary`, `/metrics/resource`), over rustls with client-certificate
//! and webhook authentication, speaking SPDY/3.1 and WebSocket streaming.
//!
//! Work in progress.

pub mod spdy;
pub mod ws;
