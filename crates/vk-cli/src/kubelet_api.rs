//! Serving the kubelet API of each node (TLS, authentication, authorization), wired
//! from the settings.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use vk_core::SharedPodHandler;
use vk_node_api::auth::{AuthConfig, Authenticator, AuthzMode};
use vk_node_api::connections::ConnectionLimit;
use vk_node_api::fd_limit::{FdLimitError, connection_budget, raise_open_file_limit};
use vk_node_api::node_api::{NodeApi, StreamingConfig};
use vk_node_api::router::router;
use vk_node_api::server::{DEFAULT_MAX_CONNECTIONS, ServeOptions};
use vk_node_api::tls::{ReloadingCert, ServingCert, load_client_ca, server_config};

use crate::{CliError, Resolved};

/// One node's kubelet API, built but not listening yet ([`Endpoint::bind`]).
pub struct Endpoint {
    addr: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    router: axum::Router,
    options: ServeOptions,
}

/// One node's kubelet API, listening, ready to serve.
pub struct Listening {
    endpoint: Endpoint,
    listener: tokio::net::TcpListener,
}

/// The soft open-file limit of the process (`None`: unlimited), raised to the hard
/// limit the first time it is asked for (a failure to raise it is logged).
pub fn open_file_limit() -> Option<u64> {
    static LIMIT: OnceLock<Option<u64>> = OnceLock::new();
    *LIMIT.get_or_init(|| match raise_open_file_limit() {
        Ok(limit) => {
            if limit.after != limit.before {
                info!(before = ?limit.before, after = ?limit.after, "raised the soft open-file limit to the hard limit");
            }
            limit.after
        }
        Err(e) => {
            warn!(error = %e, "cannot raise the soft open-file limit; connection caps follow the current one");
            match e {
                FdLimitError::Raise { from, .. } => from,
            }
        }
    })
}

/// The share of the open-file limit the kubelet API listeners of the process may hold
/// as connections (together, at most [`DEFAULT_MAX_CONNECTIONS`]).
const KUBELET_API_FD_SHARE: f64 = 0.5;

/// The connection cap every node's kubelet API shares (file descriptors are a
/// process's): half the open-file limit, at most [`DEFAULT_MAX_CONNECTIONS`].
pub fn kubelet_api_connections() -> ConnectionLimit {
    static LIMIT: OnceLock<ConnectionLimit> = OnceLock::new();
    LIMIT
        .get_or_init(|| {
            let max = connection_budget(
                open_file_limit(),
                KUBELET_API_FD_SHARE,
                DEFAULT_MAX_CONNECTIONS,
            );
            info!(max, "kubelet API connection cap");
            ConnectionLimit::new("kubelet API", max)
        })
        .clone()
}

/// The client CA to verify kubelet API callers with: `--client-ca-file`, else the CA the
/// kubeconfig (or the in-cluster service account) trusts for the API server — the CA
/// that signs the API server's kubelet client certificate in standard setups.
pub fn client_ca(
    resolved: &Resolved,
    kube: &kube::Config,
) -> Result<Option<Vec<CertificateDer<'static>>>, CliError> {
    if let Some(p) = &resolved.settings.client_ca_file {
        return load_client_ca(p)
            .map(Some)
            .map_err(|e| CliError::KubeletApi(e.to_string()));
    }
    let Some(roots) = kube.root_cert.as_ref().filter(|r| !r.is_empty()) else {
        warn!(
            "no --client-ca-file and the kubeconfig names no CA: kubelet API callers cannot use client certificates"
        );
        return Ok(None);
    };
    info!("kubelet API: verifying client certificates against the cluster CA from the kubeconfig");
    Ok(Some(
        roots
            .iter()
            .map(|d| CertificateDer::from(d.clone()))
            .collect(),
    ))
}

/// The TLS configuration every node's kubelet API serves with (one per process: with
/// `--nodes N` the nodes share the serving certificate, its reloads and the client CA).
/// Without certificate files, one self-signed certificate names `node_names`, the node
/// IP and `localhost`.
pub fn tls_config(
    resolved: &Resolved,
    node_names: &[String],
    client_ca: Option<Vec<CertificateDer<'static>>>,
) -> Result<Arc<rustls::ServerConfig>, CliError> {
    let s = &resolved.settings;
    let serving = match (&s.tls_cert_file, &s.tls_private_key_file) {
        (Some(cert), Some(key)) => ServingCert::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => {
            warn!(
                "no --tls-cert-file/--tls-private-key-file: serving the kubelet API with a self-signed certificate \
                 (API servers that verify kubelet certificates will refuse it)"
            );
            let mut names = node_names.to_vec();
            names.extend([s.node_ip.clone(), "localhost".into()]);
            ServingCert::SelfSigned { names }
        }
    };
    let cert =
        Arc::new(ReloadingCert::new(&serving).map_err(|e| CliError::KubeletApi(e.to_string()))?);
    Ok(Arc::new(
        server_config(cert, client_ca).map_err(|e| CliError::KubeletApi(e.to_string()))?,
    ))
}

/// Builds the kubelet API of node `node` on `port`, serving with `tls`, its connections
/// bounded by [`ServeOptions::default`]'s timeouts and the process's
/// [`kubelet_api_connections`] cap (the first endpoint raises the open-file limit).
pub async fn endpoint(
    resolved: &Resolved,
    node: &str,
    port: u16,
    provider: SharedPodHandler,
    bound_pods: impl Fn() -> Vec<k8s_openapi::api::core::v1::Pod> + Send + Sync + 'static,
    client: kube::Client,
    tls: Arc<rustls::ServerConfig>,
) -> Result<Endpoint, CliError> {
    let s = &resolved.settings;
    let auth = Authenticator::new(
        AuthConfig {
            anonymous: s.anonymous_auth,
            token_webhook: s.authentication_token_webhook,
            authorization: if s.authorization_mode == "AlwaysAllow" {
                AuthzMode::AlwaysAllow
            } else {
                AuthzMode::Webhook
            },
        },
        node,
        Some(client),
    );
    let streaming = StreamingConfig {
        idle_timeout: resolved.streaming_idle_timeout,
        ..Default::default()
    };
    let api = Arc::new(NodeApi::new(node, provider, auth, streaming).with_bound_pods(bound_pods));
    info!(node, capabilities = ?api.capabilities(), "kubelet API capabilities");
    Ok(Endpoint {
        addr: SocketAddr::new(resolved.address, port),
        tls,
        router: router(api),
        options: ServeOptions {
            connections: kubelet_api_connections(),
            ..ServeOptions::default()
        },
    })
}

impl Endpoint {
    /// Opens the listening socket (`--address`, `--listen-port`).
    pub async fn bind(self) -> Result<Listening, CliError> {
        let addr = self.addr;
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            CliError::KubeletApi(format!("--listen-port: cannot listen on {addr}: {e}"))
        })?;
        Ok(Listening {
            endpoint: self,
            listener,
        })
    }
}

impl Listening {
    /// Serves until `shutdown`.
    pub async fn serve(self, shutdown: CancellationToken) {
        let Endpoint {
            addr,
            tls,
            router,
            options,
        } = self.endpoint;
        info!(%addr, "kubelet API listening");
        vk_node_api::server::serve_tls_with(self.listener, tls, router, options, shutdown).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_shares_one_cap_within_half_the_open_file_limit() {
        let (a, b) = (kubelet_api_connections(), kubelet_api_connections());
        let held = a.try_acquire().expect("room");
        assert_eq!(b.open(), 1, "one cap for the process");
        drop(held);
        assert!(a.max() <= DEFAULT_MAX_CONNECTIONS);
        if let Some(limit) = open_file_limit() {
            assert!(
                a.max() as u64 <= (limit / 2).max(4),
                "{} of {limit}",
                a.max()
            );
        }
    }
}
