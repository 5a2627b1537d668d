//! TLS of the kubelet API: the serving certificate (read from files and re-read when
//! they change, or generated self-signed), and client-certificate verification against
//! a CA bundle.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

/// Errors setting TLS up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {what} {path}: {source}")]
    Read {
        /// Which file (serving certificate, key, client CA).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A file has no usable PEM content.
    #[error("{what} {path}: {reason}")]
    Parse {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("configuring TLS: {0}")]
    Config(String),
    /// Generating a self-signed certificate failed.
    #[error("generating a self-signed serving certificate: {0}")]
    SelfSigned(String),
}

/// Where the serving certificate comes from.
#[derive(Debug, Clone)]
pub enum ServingCert {
    /// PEM files, re-read when their modification time changes.
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// A certificate generated at start for these names/addresses.
    SelfSigned {
        /// DNS names and IP addresses.
        names: Vec<String>,
    },
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn pem_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    use rustls::pki_types::pem::PemObject as _;
    let bytes = read(what, path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Parse {
            what,
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Parse {
            what,
            path: path.to_owned(),
            reason: "no PEM certificate found".into(),
        });
    }
    Ok(certs)
}

fn pem_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    use rustls::pki_types::pem::PemObject as _;
    let bytes = read("serving key", path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Parse {
        what: "serving key",
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, TlsError> {
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider).map_err(|e| TlsError::Config(e.to_string()))
}

/// Serves the current certificate, re-reading the files (at most every few seconds) when
/// their modification time changes, so rotated certificates take effect without a
/// restart. A rotation that leaves broken files keeps the previous certificate.
#[derive(Debug)]
pub struct ReloadingCert {
    files: Option<(PathBuf, PathBuf)>,
    state: Mutex<ReloadState>,
    recheck: Duration,
}

#[derive(Debug)]
struct ReloadState {
    current: Arc<CertifiedKey>,
    stamp: Option<(SystemTime, SystemTime)>,
    checked: Instant,
}

const RECHECK: Duration = Duration::from_secs(5);

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl ReloadingCert {
    /// Loads the certificate (or generates it).
    pub fn new(source: &ServingCert) -> Result<Self, TlsError> {
        match source {
            ServingCert::Files { cert, key } => {
                let current = Arc::new(certified(
                    pem_certs("serving certificate", cert)?,
                    pem_key(key)?,
                )?);
                Ok(Self {
                    recheck: RECHECK,
                    files: Some((cert.clone(), key.clone())),
                    state: Mutex::new(ReloadState {
                        current,
                        stamp: mtime(cert).zip(mtime(key)),
                        checked: Instant::now(),
                    }),
                })
            }
            ServingCert::SelfSigned { names } => {
                let generated = rcgen::generate_simple_self_signed(names.clone())
                    .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
                let chain = vec![generated.cert.der().clone()];
                let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der())
                    .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
                Ok(Self {
                    recheck: RECHECK,
                    files: None,
                    state: Mutex::new(ReloadState {
                        current: Arc::new(certified(chain, key)?),
                        stamp: None,
                        checked: Instant::now(),
                    }),
                })
            }
        }
    }

    /// The certificate to present now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((cert, key)) = &self.files
            && state.checked.elapsed() >= self.recheck
        {
            state.checked = Instant::now();
            let stamp = mtime(cert).zip(mtime(key));
            if stamp.is_some() && stamp != state.stamp {
                match pem_certs("serving certificate", cert)
                    .and_then(|c| certified(c, pem_key(key)?))
                {
                    Ok(ck) => {
                        tracing::info!(cert = %cert.display(), "serving certificate reloaded");
                        state.current = Arc::new(ck);
                        state.stamp = stamp;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "serving certificate changed but cannot be loaded; keeping the previous one")
                    }
                }
            }
        }
        Arc::clone(&state.current)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Reads a PEM CA bundle for client-certificate verification.
pub fn load_client_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    pem_certs("client CA", path)
}

/// The rustls server configuration: the serving certificate, and, with `client_ca`
/// (DER certificates, see [`load_client_ca`]), verification of client certificates
/// against it. Clients without a certificate are still let through TLS so bearer
/// tokens and anonymous access can be decided by the authenticator, as on a kubelet.
pub fn server_config(
    cert: Arc<ReloadingCert>,
    client_ca: Option<Vec<CertificateDer<'static>>>,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_ca {
        Some(cas) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in cas {
                roots.add(c).map_err(|e| TlsError::Config(e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(cert);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_and_file_certificates_load() {
        crate::install_crypto_for_tests();
        let c = ReloadingCert::new(&ServingCert::SelfSigned {
            names: vec!["localhost".into(), "127.0.0.1".into()],
        })
        .expect("self-signed");
        assert_eq!(c.current().cert.len(), 1);
        let dir = std::env::temp_dir().join(format!("vk-node-api-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let g = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("gen");
        std::fs::write(dir.join("c.pem"), g.cert.pem()).expect("write");
        std::fs::write(dir.join("k.pem"), g.signing_key.serialize_pem()).expect("write");
        let files = ServingCert::Files {
            cert: dir.join("c.pem"),
            key: dir.join("k.pem"),
        };
        let loaded = ReloadingCert::new(&files).expect("files");
        assert_eq!(loaded.current().cert[0].as_ref(), g.cert.der().as_ref());
        let ca = load_client_ca(&dir.join("c.pem")).expect("ca");
        let cfg = server_config(Arc::new(loaded), Some(ca)).expect("config");
        assert_eq!(cfg.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn rotated_files_are_picked_up_and_broken_ones_ignored() {
        crate::install_crypto_for_tests();
        let dir = std::env::temp_dir().join(format!("vk-node-api-rot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
        let write = |g: &rcgen::CertifiedKey<rcgen::KeyPair>, stamp: u64| {
            std::fs::write(&cert, g.cert.pem()).expect("write");
            std::fs::write(&key, g.signing_key.serialize_pem()).expect("write");
            // Distinct modification times, whatever the file system's resolution.
            let t = SystemTime::UNIX_EPOCH + Duration::from_secs(stamp);
            for p in [&cert, &key] {
                std::fs::File::options()
                    .write(true)
                    .open(p)
                    .and_then(|f| f.set_modified(t))
                    .expect("mtime");
            }
        };
        let first = rcgen::generate_simple_self_signed(vec!["one".into()]).expect("gen");
        write(&first, 1_000_000);
        let mut loaded = ReloadingCert::new(&ServingCert::Files {
            cert: cert.clone(),
            key: key.clone(),
        })
        .expect("load");
        loaded.recheck = Duration::ZERO;
        assert_eq!(loaded.current().cert[0].as_ref(), first.cert.der().as_ref());
        let second = rcgen::generate_simple_self_signed(vec!["two".into()]).expect("gen");
        write(&second, 2_000_000);
        assert_eq!(
            loaded.current().cert[0].as_ref(),
            second.cert.der().as_ref()
        );
        // A half-written rotation keeps serving the last good certificate.
        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\ngarbage").expect("write");
        assert_eq!(
            loaded.current().cert[0].as_ref(),
            second.cert.der().as_ref()
        );
    }

    #[test]
    fn missing_files_name_the_file() {
        let e = ReloadingCert::new(&ServingCert::Files {
            cert: "/nope/c.pem".into(),
            key: "/nope/k.pem".into(),
        })
        .expect_err("missing");
        assert!(
            e.to_string().contains("serving certificate /nope/c.pem"),
            "{e}"
        );
    }
}
