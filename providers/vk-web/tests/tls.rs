//! The TLS settings of the provider config reach the bridge connection: a custom CA
//! (`ca_file`, without the system roots), a client certificate (`client_cert_file`,
//! `client_key_file`) for a bridge that requires one, and clear errors when either is
//! missing or a file cannot be read.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use vk_errdefs::ErrorKind;
use vk_web::config::ProtocolChoice;
use vk_web::{BridgeClient, WebConfig, WebError};

struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "bridge CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed");
        Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// (certificate PEM, key PEM).
    fn issue(&self, names: &[&str], purpose: ExtendedKeyUsagePurpose) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "vk-web test");
        params.extended_key_usages = vec![purpose];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        (cert.pem(), key.serialize_pem())
    }
}

/// An HTTPS bridge stand-in requiring a client certificate from `ca`; answers every
/// request with `[]`.
async fn serve_mtls(ca: &Ca) -> String {
    let (cert, key) = ca.issue(&["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("certs");
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.cert_pem.as_bytes()) {
        roots.add(c.expect("ca")).expect("add");
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .build()
            .expect("verifier");
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    format!("https://{addr}")
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

fn config(url: &str) -> WebConfig {
    let mut c = WebConfig::new(url);
    c.protocol = ProtocolChoice::V1;
    c.max_attempts = 1;
    c.system_roots = false;
    c
}

#[tokio::test]
async fn custom_ca_and_client_certificate_reach_the_bridge() {
    let ca = Ca::new();
    let url = serve_mtls(&ca).await;
    let dir = tempfile::tempdir().expect("dir");
    let ca_file = write(dir.path(), "ca.pem", &ca.cert_pem);
    let (cert, key) = ca.issue(&["web-node"], ExtendedKeyUsagePurpose::ClientAuth);
    let cert_file = write(dir.path(), "client.pem", &cert);
    let key_file = write(dir.path(), "client-key.pem", &key);

    let mut good = config(&url);
    good.ca_file = Some(ca_file.clone());
    good.client_cert_file = Some(cert_file.clone());
    good.client_key_file = Some(key_file.clone());
    let bridge = BridgeClient::new(&good).expect("client");
    assert!(bridge.get_pods().await.expect("mutual TLS").is_empty());
    assert!(!format!("{bridge:?}").contains("PRIVATE KEY"));

    // No client certificate: the bridge refuses the handshake.
    let mut anonymous = config(&url);
    anonymous.ca_file = Some(ca_file);
    let err = BridgeClient::new(&anonymous)
        .expect("client")
        .get_pods()
        .await
        .expect_err("no client certificate");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");

    // Not trusting the bridge's CA: the server certificate is refused.
    let mut untrusting = config(&url);
    untrusting.system_roots = true;
    untrusting.client_cert_file = Some(cert_file);
    untrusting.client_key_file = Some(key_file);
    let err = BridgeClient::new(&untrusting)
        .expect("client")
        .get_pods()
        .await
        .expect_err("unknown issuer");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[test]
fn unreadable_files_and_no_endpoint_are_clear_errors() {
    let mut c = config("https://127.0.0.1:1");
    c.ca_file = Some("/nonexistent/ca.pem".into());
    let err = BridgeClient::new(&c).expect_err("missing CA file");
    assert!(
        matches!(err, WebError::ReadFile { what: "CA", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    let err = BridgeClient::new(&WebConfig::default()).expect_err("no endpoint");
    assert!(err.to_string().contains("WEB_ENDPOINT_URL"), "{err}");
    let err = BridgeClient::new(&config("ftp://bridge")).expect_err("bad scheme");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}
