//! Writing kubeconfig files with embedded certificates.

use std::path::Path;

use base64::Engine as _;

use super::error::ClusterError;
use super::fsutil::write_atomic;
use super::pki::CertPair;

/// Name of the cluster, context and user entries in the files we write.
pub const CONTEXT: &str = "vk-local";

/// Writes a kubeconfig for `server` that trusts the CA at `ca` and authenticates with the
/// client certificate `client`. Certificates are embedded, so the file stays valid if the
/// state directory moves.
pub fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca: &Path,
    client: &CertPair,
) -> Result<(), ClusterError> {
    let b64 = |p: &Path| -> Result<String, ClusterError> {
        let bytes = std::fs::read(p).map_err(|source| ClusterError::Io {
            operation: "read certificate",
            path: p.to_owned(),
            source,
        })?;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    };
    let text = format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: {CONTEXT}\n  \
           cluster:\n    \
             server: {server}\n    \
             certificate-authority-data: {ca}\n\
         users:\n\
         - name: {CONTEXT}\n  \
           user:\n    \
             client-certificate-data: {cert}\n    \
             client-key-data: {key}\n\
         contexts:\n\
         - name: {CONTEXT}\n  \
           context:\n    \
             cluster: {CONTEXT}\n    \
             user: {CONTEXT}\n\
         current-context: {CONTEXT}\n",
        ca = b64(ca)?,
        cert = b64(&client.cert)?,
        key = b64(&client.key)?,
    );
    write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_rs_parses_what_we_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = super::super::pki::Pki::new(dir.path());
        pki.generate().expect("pki");
        let path = dir.path().join("k.kubeconfig");
        write_kubeconfig(&path, "https://127.0.0.1:1", &pki.ca().cert, &pki.admin())
            .expect("write");
        let parsed = kube::config::Kubeconfig::read_from(&path).expect("parse");
        assert_eq!(parsed.current_context.as_deref(), Some(CONTEXT));
        let cluster = parsed.clusters[0].cluster.as_ref().expect("cluster");
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:1"));
        assert!(cluster.certificate_authority_data.is_some());
    }
}
