//! Serving the kubelet API of each node (TLS, authentication, authorization), wired
//! from the settings.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use vk_core::SharedPodHandler;
use vk_node_api::auth::{AuthConfig, Authenticator, AuthzMode};
use vk_node_api::node_api::{NodeApi, StreamingConfig};
use vk_node_api::router::router;
use vk_node_api::tls::{ReloadingCert, ServingCert, load_client_ca, server_config};

use crate::{CliError, Resolved};

/// One node's kubelet API, ready to serve.
pub struct Endpoint {
    addr: SocketAddr,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: axum::Router,
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

/// Binds the kubelet API of node `node` on `port`, serving with `tls`.
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
    let addr = SocketAddr::new(resolved.address, port);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        CliError::KubeletApi(format!("--listen-port: cannot listen on {addr}: {e}"))
    })?;
    Ok(Endpoint {
        addr,
        listener,
        tls,
        router: router(api),
    })
}

impl Endpoint {
    /// Serves until `shutdown`.
    pub async fn serve(self, shutdown: CancellationToken) {
        info!(addr = %self.addr, "kubelet API listening");
        vk_node_api::server::serve_tls(self.listener, self.tls, self.router, shutdown).await;
    }
}
