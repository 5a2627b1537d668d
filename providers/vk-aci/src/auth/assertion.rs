//! Client assertions: the RS256 JWT a certificate credential sends instead of a secret
//! (Microsoft identity platform, "certificate credentials": header `alg` RS256, `typ`
//! JWT, `x5t` the base64url SHA-1 thumbprint of the DER certificate; claims `aud` the
//! token endpoint, `iss` = `sub` = the client ID, `jti`, `nbf`, `iat`, `exp`).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};

use super::AuthError;

/// How long an assertion is valid (the platform accepts up to ten minutes).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(600);

/// A client certificate and its RSA private key, loaded from one PEM file.
pub struct CertificateKey {
    thumbprint_sha1: Vec<u8>,
    key: RsaKeyPair,
}

impl std::fmt::Debug for CertificateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateKey")
            .field("x5t", &self.x5t())
            .finish_non_exhaustive()
    }
}

impl CertificateKey {
    /// Loads the first `CERTIFICATE` and the first `PRIVATE KEY` (PKCS#8) or
    /// `RSA PRIVATE KEY` (PKCS#1) block of the PEM file at `path`.
    pub fn from_pem_file(path: &Path) -> Result<Self, AuthError> {
        let pem = std::fs::read(path).map_err(|source| AuthError::ReadFile {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_pem(&pem).map_err(|reason| AuthError::Certificate {
            path: path.display().to_string(),
            reason,
        })
    }

    /// Loads a certificate and key from PEM text (see [`from_pem_file`](Self::from_pem_file)).
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let mut cert = None;
        let mut key = None;
        for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
            let block = block.map_err(|e| format!("invalid PEM: {e}"))?;
            match block.label.as_str() {
                "CERTIFICATE" if cert.is_none() => cert = Some(block.contents),
                "PRIVATE KEY" if key.is_none() => {
                    key = Some(
                        RsaKeyPair::from_pkcs8(&block.contents)
                            .map_err(|e| format!("the PKCS#8 key is not a usable RSA key: {e}"))?,
                    );
                }
                "RSA PRIVATE KEY" if key.is_none() => {
                    key = Some(
                        RsaKeyPair::from_der(&block.contents)
                            .map_err(|e| format!("the PKCS#1 key is not a usable RSA key: {e}"))?,
                    );
                }
                _ => {}
            }
        }
        let cert = cert.ok_or("no CERTIFICATE block")?;
        let key = key.ok_or("no PRIVATE KEY or RSA PRIVATE KEY block")?;
        let thumbprint = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &cert);
        Ok(Self {
            thumbprint_sha1: thumbprint.as_ref().to_vec(),
            key,
        })
    }

    /// The `x5t` header value: base64url of the certificate's SHA-1 thumbprint.
    pub fn x5t(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.thumbprint_sha1)
    }
}

/// A signed client assertion for `client_id` at token endpoint `audience`, valid from
/// `now` for ten minutes.
pub fn client_assertion(
    key: &CertificateKey,
    client_id: &str,
    audience: &str,
    now: SystemTime,
) -> Result<String, AuthError> {
    let header = serde_json::json!({ "alg": "RS256", "typ": "JWT", "x5t": key.x5t() });
    let issued = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| AuthError::Sign("the clock is before 1970".into()))?
        .as_secs();
    let jti: u128 = rand::rng().random();
    let claims = serde_json::json!({
        "aud": audience,
        "iss": client_id,
        "sub": client_id,
        "jti": format!("{jti:032x}"),
        "nbf": issued,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME.as_secs(),
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0u8; key.key.public().modulus_len()];
    key.key
        .sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            signing_input.as_bytes(),
            &mut signature,
        )
        .map_err(|_| AuthError::Sign("RSA signing failed".into()))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throwaway RSA-2048 test key and self-signed certificate
    /// (`openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=vk-aci-test`).
    const TEST_PEM: &str = include_str!("../../tests/fixtures/test-client-cert.pem");

    #[test]
    fn assertion_has_documented_header_and_claims_and_verifies() {
        let key = CertificateKey::from_pem(TEST_PEM.as_bytes()).expect("test key loads");
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let jwt = client_assertion(&key, "client-1", "https://login/t/oauth2/v2.0/token", now)
            .expect("signs");
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).expect("b64")).expect("json");
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["x5t"], key.x5t());
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["sub"], "client-1");
        assert_eq!(claims["aud"], "https://login/t/oauth2/v2.0/token");
        assert_eq!(claims["exp"], 1_700_000_600u64);
        // Verify with the certificate's public key.
        let der = x509_parser::pem::Pem::iter_from_buffer(TEST_PEM.as_bytes())
            .flatten()
            .find(|p| p.label == "CERTIFICATE")
            .expect("cert")
            .contents;
        let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("parses");
        let public = cert.public_key().subject_public_key.data.to_vec();
        let verifier = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            public,
        );
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("b64");
        verifier
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .expect("signature verifies");
    }

    #[test]
    fn a_file_without_key_is_refused_naming_what_is_missing() {
        let cert_only: String = TEST_PEM
            .split_inclusive('\n')
            .scan(false, |in_key, line| {
                if line.contains("BEGIN PRIVATE KEY") {
                    *in_key = true;
                }
                let keep = !*in_key;
                if line.contains("END PRIVATE KEY") {
                    *in_key = false;
                }
                Some(if keep { line } else { "" })
            })
            .collect();
        let err = CertificateKey::from_pem(cert_only.as_bytes()).expect_err("no key");
        assert!(err.contains("PRIVATE KEY"), "{err}");
    }
}
