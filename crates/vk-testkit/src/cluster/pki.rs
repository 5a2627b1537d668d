//! The local cluster's certificates: one CA that signs every serving and client
//! certificate, plus the ServiceAccount token signing key.
//!
//! All certificates are X.509 v3 (rcgen only writes v3; rustls rejects v1). Keys are
//! ECDSA P-256 in PKCS#8 PEM, which kube-apiserver, kubectl, kube-rs and rustls all read.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use super::error::ClusterError;
use super::fsutil::write_atomic;

/// Common name of the local cluster's certificate authority.
const CA_COMMON_NAME: &str = "vk-rs local cluster CA";

/// DNS names and addresses the API server's certificate is valid for.
const APISERVER_SANS: &[&str] = &[
    "localhost",
    "127.0.0.1",
    "::1",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "10.0.0.1",
];

/// Names a kubelet serving certificate for a virtual node on loopback is valid for.
const KUBELET_SANS: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// A certificate and its private key, both PEM files on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM (PKCS#8) private key.
    pub key: PathBuf,
}

impl CertPair {
    fn in_dir(dir: &Path, stem: &str) -> Self {
        Self {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        }
    }
}

/// Where the local cluster's PKI lives. Every file is created by [`Pki::generate`].
#[derive(Debug, Clone)]
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// The PKI stored in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory holding every file.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The certificate authority every other certificate is signed by. The API server
    /// trusts it for client certificates; a virtual node's kubelet API should trust it too.
    pub fn ca(&self) -> CertPair {
        CertPair::in_dir(&self.dir, "ca")
    }

    /// kube-apiserver's serving certificate.
    pub fn apiserver(&self) -> CertPair {
        CertPair::in_dir(&self.dir, "apiserver")
    }

    /// The identity kube-apiserver presents to kubelets (`CN=kube-apiserver-kubelet-client`,
    /// `O=system:masters`).
    pub fn apiserver_kubelet_client(&self) -> CertPair {
        CertPair::in_dir(&self.dir, "apiserver-kubelet-client")
    }

    /// The cluster administrator (`CN=admin`, `O=system:masters`).
    pub fn admin(&self) -> CertPair {
        CertPair::in_dir(&self.dir, "admin")
    }

    /// kube-controller-manager's client identity (`CN=system:kube-controller-manager`).
    pub fn controller_manager(&self) -> CertPair {
        CertPair::in_dir(&self.dir, "controller-manager")
    }

    /// kube-scheduler's client identity (`CN=system:kube-scheduler`).
    pub fn scheduler(&self) -> CertPair {
        CertPair::in_dir(&self.dir, "scheduler")
    }

    /// A kubelet serving certificate valid for `localhost`, `127.0.0.1` and `::1`, signed
    /// by the cluster CA. Virtual nodes on this machine serve the kubelet API with it, and
    /// the API server verifies it (`--kubelet-certificate-authority`).
    pub fn kubelet_serving(&self) -> CertPair {
        CertPair::in_dir(&self.dir, "kubelet-serving")
    }

    /// The flags a virtual node on this machine serves its kubelet API with so that the
    /// API server trusts it and it trusts the API server's client certificate:
    /// `--tls-cert-file`, `--tls-private-key-file` ([`Pki::kubelet_serving`]) and
    /// `--client-ca-file` (the CA).
    ///
    /// ```no_run
    /// let pki = vk_testkit::LocalCluster::from_env().unwrap().layout().pki();
    /// std::process::Command::new("vk-mock").args(pki.kubelet_api_flags());
    /// ```
    pub fn kubelet_api_flags(&self) -> Vec<std::ffi::OsString> {
        let serving = self.kubelet_serving();
        let flag = |name: &str, path: PathBuf| {
            let mut arg = std::ffi::OsString::from(format!("--{name}="));
            arg.push(path);
            arg
        };
        vec![
            flag("tls-cert-file", serving.cert),
            flag("tls-private-key-file", serving.key),
            flag("client-ca-file", self.ca().cert),
        ]
    }

    /// The ServiceAccount token signing key (private, PKCS#8 PEM).
    pub fn service_account_key(&self) -> PathBuf {
        self.dir.join("sa.key")
    }

    /// The ServiceAccount token verification key (public, PEM).
    pub fn service_account_pub(&self) -> PathBuf {
        self.dir.join("sa.pub")
    }

    fn marker(&self) -> PathBuf {
        self.dir.join("complete")
    }

    /// True when a complete PKI exists whose CA is still valid for at least a day.
    pub fn is_complete(&self) -> bool {
        let Ok(text) = std::fs::read_to_string(self.marker()) else {
            return false;
        };
        let Ok(expires) = text.trim().parse::<i64>() else {
            return false;
        };
        expires > OffsetDateTime::now_utc().unix_timestamp() + 86_400
    }

    /// Generates the whole PKI, replacing what is there. The `complete` marker is written
    /// last, so an interrupted run is regenerated next time.
    pub fn generate(&self) -> Result<(), ClusterError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| ClusterError::Io {
            operation: "create directory",
            path: self.dir.clone(),
            source,
        })?;
        let _ = std::fs::remove_file(self.marker());
        let now = OffsetDateTime::now_utc();
        let not_after = now + Duration::days(365);

        let ca_key = KeyPair::generate()?;
        let ca_params = ca_params(now, not_after);
        let ca_cert = ca_params.self_signed(&ca_key)?;
        self.write(&self.ca(), &ca_cert.pem(), &ca_key.serialize_pem())?;
        let issuer = Issuer::new(ca_params, ca_key);

        let leaves: [Leaf<'_>; 6] = [
            (
                self.apiserver(),
                "kube-apiserver",
                &[],
                APISERVER_SANS,
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
            (
                self.admin(),
                "admin",
                &["system:masters"],
                &[],
                ExtendedKeyUsagePurpose::ClientAuth,
            ),
            (
                self.apiserver_kubelet_client(),
                "kube-apiserver-kubelet-client",
                &["system:masters"],
                &[],
                ExtendedKeyUsagePurpose::ClientAuth,
            ),
            (
                self.controller_manager(),
                "system:kube-controller-manager",
                &[],
                &[],
                ExtendedKeyUsagePurpose::ClientAuth,
            ),
            (
                self.scheduler(),
                "system:kube-scheduler",
                &[],
                &[],
                ExtendedKeyUsagePurpose::ClientAuth,
            ),
            (
                self.kubelet_serving(),
                "virtual-kubelet",
                &[],
                KUBELET_SANS,
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
        ];
        for (pair, cn, orgs, sans, usage) in leaves {
            let (cert, key) = sign_leaf(&issuer, cn, orgs, sans, usage, now, not_after)?;
            self.write(&pair, &cert, &key)?;
        }

        let sa_key = KeyPair::generate()?;
        write_atomic(
            &self.service_account_key(),
            sa_key.serialize_pem().as_bytes(),
        )?;
        write_atomic(
            &self.service_account_pub(),
            sa_key.public_key_pem().as_bytes(),
        )?;

        write_atomic(
            &self.marker(),
            not_after.unix_timestamp().to_string().as_bytes(),
        )
    }

    /// Issues a client certificate signed by the cluster CA for user `common_name` in
    /// `groups`, for tests that need an identity other than the administrator (for example
    /// a user without `nodes/proxy` rights). Returns the PEM certificate and key.
    pub fn issue_client_cert(
        &self,
        common_name: &str,
        groups: &[&str],
    ) -> Result<(String, String), ClusterError> {
        let issuer = self.load_issuer()?;
        let now = OffsetDateTime::now_utc();
        sign_leaf(
            &issuer,
            common_name,
            groups,
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
            now,
            now + Duration::days(30),
        )
    }

    /// Issues a serving certificate signed by the cluster CA for `names` (DNS names or IP
    /// addresses). Returns the PEM certificate and key.
    pub fn issue_serving_cert(&self, names: &[&str]) -> Result<(String, String), ClusterError> {
        let issuer = self.load_issuer()?;
        let now = OffsetDateTime::now_utc();
        sign_leaf(
            &issuer,
            names.first().copied().unwrap_or("localhost"),
            &[],
            names,
            ExtendedKeyUsagePurpose::ServerAuth,
            now,
            now + Duration::days(30),
        )
    }

    fn load_issuer(&self) -> Result<Issuer<'static, KeyPair>, ClusterError> {
        let path = self.ca().key;
        let pem = std::fs::read_to_string(&path).map_err(|source| ClusterError::Io {
            operation: "read CA key",
            path,
            source,
        })?;
        let key = KeyPair::from_pem(&pem)?;
        // Only the subject name, key usages and key identifier method matter to an
        // issuer; they are the same every time `ca_params` is built.
        let now = OffsetDateTime::now_utc();
        Ok(Issuer::new(ca_params(now, now), key))
    }

    fn write(&self, pair: &CertPair, cert: &str, key: &str) -> Result<(), ClusterError> {
        write_atomic(&pair.cert, cert.as_bytes())?;
        write_atomic(&pair.key, key.as_bytes())
    }
}

/// A leaf certificate to issue: files, common name, organizations (groups), subject
/// alternative names, extended key usage.
type Leaf<'a> = (
    CertPair,
    &'a str,
    &'a [&'a str],
    &'a [&'a str],
    ExtendedKeyUsagePurpose,
);

fn ca_params(not_before: OffsetDateTime, not_after: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = not_before - Duration::hours(1);
    params.not_after = not_after;
    params
}

fn sign_leaf(
    issuer: &Issuer<'_, KeyPair>,
    common_name: &str,
    organizations: &[&str],
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
    now: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<(String, String), ClusterError> {
    let mut params =
        CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    for org in organizations {
        dn.push(DnType::OrganizationName, *org);
    }
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Duration::hours(1);
    params.not_after = not_after;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_api_flags_name_the_serving_pair_and_the_ca() {
        let flags = Pki::new("/p").kubelet_api_flags();
        assert_eq!(
            flags,
            [
                "--tls-cert-file=/p/kubelet-serving.crt",
                "--tls-private-key-file=/p/kubelet-serving.key",
                "--client-ca-file=/p/ca.crt",
            ]
        );
    }

    #[test]
    fn generates_a_complete_pki() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::new(dir.path());
        assert!(!pki.is_complete());
        pki.generate().expect("generate");
        assert!(pki.is_complete());
        for pair in [
            pki.ca(),
            pki.apiserver(),
            pki.admin(),
            pki.kubelet_serving(),
        ] {
            let cert = std::fs::read_to_string(&pair.cert).expect("cert");
            assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
            let key = std::fs::read_to_string(&pair.key).expect("key");
            assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
        }
        let (cert, _key) = pki
            .issue_client_cert("alice", &["developers"])
            .expect("client cert");
        assert!(cert.contains("BEGIN CERTIFICATE"));
    }

    #[test]
    fn issued_certificates_are_x509_v3_and_chain_to_the_ca() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::new(dir.path());
        pki.generate().expect("generate");
        let (cert_pem, _) = pki.issue_serving_cert(&["127.0.0.1"]).expect("serving");
        use rustls::client::danger::ServerCertVerifier as _;
        let der = pem_to_der(&cert_pem);
        // TBSCertificate starts with the explicit [0] version tag: a0 03 02 01 02 (= v3).
        let v3 = [0xa0, 0x03, 0x02, 0x01, 0x02];
        assert!(
            der.windows(5).any(|w| w == v3),
            "not an X.509 v3 certificate"
        );

        // rustls (the TLS stack of kube-rs and of our kubelet API) accepts the chain.
        let ca_der = pem_to_der(&std::fs::read_to_string(pki.ca().cert).expect("ca"));
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_der.into()).expect("add CA");
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            provider,
        )
        .build()
        .expect("verifier");
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
        verifier
            .verify_server_cert(
                &der.into(),
                &[],
                &name,
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .expect("chain verifies");
    }

    fn pem_to_der(pem: &str) -> Vec<u8> {
        use base64::Engine as _;
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("base64")
    }
}
