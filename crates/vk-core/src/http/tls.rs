//! The rustls client configuration: ring as crypto provider (never the process-wide
//! default), the system's and the configured roots, a client identity, or no
//! verification at all when asked.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::config::TlsSettings;

/// The crypto provider of every client: ring, like the rest of the workspace.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the client TLS configuration; `Err` carries what was wrong, for
/// [`HttpError::BuildClient`](super::HttpError::BuildClient).
pub(crate) fn client_config(settings: &TlsSettings, https: bool) -> Result<ClientConfig, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("choosing TLS versions: {e}"))?;
    let builder = if settings.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification { provider }))
    } else {
        builder.with_root_certificates(roots(settings, https)?)
    };
    match &settings.identity {
        None => Ok(builder.with_no_client_auth()),
        Some(identity) => {
            let certs = CertificateDer::pem_slice_iter(&identity.cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("reading the client certificate PEM: {e}"))?;
            if certs.is_empty() {
                return Err("the client certificate PEM holds no certificate".into());
            }
            let key = PrivateKeyDer::from_pem_slice(&identity.key_pem)
                .map_err(|e| format!("reading the client key PEM: {e}"))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("using the client certificate and key: {e}"))
        }
    }
}

/// The trusted roots: the system's (when wanted) plus each configured bundle. A plain
/// `http://` client needs none and loads none.
fn roots(settings: &TlsSettings, https: bool) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    if !https {
        return Ok(store);
    }
    if settings.system_roots {
        let (added, _ignored) = store.add_parsable_certificates(system_roots().iter().cloned());
        tracing::debug!(added, "trusting the system's root certificates");
    }
    for (index, pem) in settings.ca_pems.iter().enumerate() {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("reading CA bundle {}: {e}", index + 1))?;
        if certs.is_empty() {
            return Err(format!("CA bundle {} holds no certificate", index + 1));
        }
        for cert in certs {
            store
                .add(cert)
                .map_err(|e| format!("adding a certificate of CA bundle {}: {e}", index + 1))?;
        }
    }
    if store.is_empty() {
        return Err(
            "no trusted CA certificates: the system has none and no CA bundle was given".into(),
        );
    }
    Ok(store)
}

/// The system's root certificates, read once per process.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!(%error, "reading the system's root certificates");
        }
        found.certs
    })
}

/// Accepts any server certificate; handshake signatures are still checked so the
/// connection is at least with the holder of the presented key.
#[derive(Debug)]
struct NoVerification {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::Identity;
    use super::*;

    fn settings() -> TlsSettings {
        TlsSettings {
            system_roots: false,
            ca_pems: Vec::new(),
            identity: None,
            insecure_skip_verify: false,
        }
    }

    #[test]
    fn bad_tls_material_is_reported() {
        let err = client_config(&settings(), true).expect_err("no roots");
        assert!(err.contains("no trusted CA certificates"), "{err}");
        // A plain http client needs no roots.
        assert!(client_config(&settings(), false).is_ok());

        let mut junk = settings();
        junk.ca_pems.push(b"not a pem".to_vec());
        let err = client_config(&junk, true).expect_err("junk bundle");
        assert!(err.contains("CA bundle 1 holds no certificate"), "{err}");

        let ca = rcgen::generate_simple_self_signed(vec!["ca".into()]).expect("ca");
        let mut no_key = settings();
        no_key.ca_pems.push(ca.cert.pem().into_bytes());
        no_key.identity = Some(Identity {
            cert_pem: ca.cert.pem().into_bytes(),
            key_pem: b"nothing".to_vec(),
        });
        let err = client_config(&no_key, true).expect_err("bad key");
        assert!(err.contains("client key PEM"), "{err}");

        let mut skip = settings();
        skip.insecure_skip_verify = true;
        assert!(client_config(&skip, true).is_ok());
    }
}
