//! **vk-web**: a Virtual Kubelet provider that forwards every provider call to an HTTP
//! service — a "bridge" — so a backend can be written in any language.
//!
//! Start with [`WebProvider`] and [`WebConfig`]; the `vk-web` binary wires them into
//! [`vk_cli::main`].
//!
//! # Protocols
//!
//! * **v1** ([`client`]): the routes of the original Go web provider, unchanged
//!   (`POST /createPod`, `GET /getPods`, `GET /capacity`...). Pod status is polled.
//! * **v2** ([`v2`], documented for bridge authors in `PROTOCOL.md`): advertised by the
//!   bridge at `GET /v2/capabilities`; adds a status watch (NDJSON or SSE), logs with
//!   every kubelet option and `follow`, exec/attach/port-forward over WebSockets, stats
//!   and ping. A v1 bridge keeps working unchanged.
//!
//! # Errors
//!
//! A `404` from `getPod`/`getPodStatus`/`deletePod` means the pod is absent; other
//! statuses map onto [`vk_errdefs`] kinds (400 → InvalidInput, 409 → Conflict, or
//! AlreadyExists for a create, 429/502/503/504 → Unavailable; 429 and, for idempotent
//! calls, 502-504 are retried honouring `Retry-After`). An answer that is not the
//! expected JSON is an error naming the route and the field ([`WebError::Call`]).
//!
//! # Node status
//!
//! Capacity and addresses are read every `node_status_interval` and pushed when they
//! change ([`node`]). Health: `GET /v2/ping` on v2 bridges, else `GET /nodeConditions`
//! with the bridge's Ready condition; a bridge that does not answer (or reports
//! Ready=False) turns the node NotReady (`ProviderPingFailed`, with the error as
//! message), and Ready again when it answers.

pub mod client;
pub mod config;
pub mod error;
pub mod node;
pub mod provider;
pub mod status;
pub mod v2;

pub use client::BridgeClient;
pub use config::WebConfig;
pub use error::WebError;
pub use provider::{Protocol, WebProvider};
