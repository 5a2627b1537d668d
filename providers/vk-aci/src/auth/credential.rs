//! Which credential to use, from the provider config and the `AZURE_*` environment.

use std::path::PathBuf;

use super::{AuthError, CertificateKey, Secret};
use crate::config::{AuthConfig, DEFAULT_AUTHORITY_HOST};

/// The default IMDS endpoint of Azure VMs.
pub const DEFAULT_IMDS_ENDPOINT: &str = "http://169.254.169.254";

/// How tokens are obtained.
#[derive(Debug)]
pub enum Credential {
    /// A service principal with a client secret.
    ClientSecret {
        /// Tenant ID.
        tenant_id: String,
        /// Client ID.
        client_id: String,
        /// The secret.
        secret: Secret,
    },
    /// A service principal with a certificate (signed client assertions).
    ClientCertificate {
        /// Tenant ID.
        tenant_id: String,
        /// Client ID.
        client_id: String,
        /// The certificate and key.
        key: Box<CertificateKey>,
    },
    /// Workload identity: a federated token file (projected service account token,
    /// re-read at every request as it is rotated) used as the client assertion.
    WorkloadIdentity {
        /// Tenant ID.
        tenant_id: String,
        /// Client ID.
        client_id: String,
        /// The federated token file.
        token_file: PathBuf,
    },
    /// The managed identity of the host, through IMDS.
    ManagedIdentity {
        /// The IMDS endpoint.
        endpoint: String,
        /// The client ID of a user-assigned identity (none: the system-assigned one).
        client_id: Option<String>,
    },
}

/// The resolved credential settings: the credential and the authority host.
#[derive(Debug)]
pub struct ResolvedAuth {
    /// The credential.
    pub credential: Credential,
    /// The authority host, without trailing slash.
    pub authority_host: String,
}

fn pick(
    config: &Option<String>,
    var: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    config
        .clone()
        .filter(|v| !v.is_empty())
        .or_else(|| env(var).filter(|v| !v.is_empty()))
}

impl Credential {
    /// The credential `config` describes, completed from the environment as Azure's
    /// `EnvironmentCredential`/`DefaultAzureCredential` would: a client secret
    /// (`AZURE_CLIENT_SECRET`) first, then a certificate
    /// (`AZURE_CLIENT_CERTIFICATE_PATH`), then workload identity
    /// (`AZURE_FEDERATED_TOKEN_FILE`), then managed identity unless turned off.
    pub fn from_config(config: &AuthConfig) -> Result<ResolvedAuth, AuthError> {
        Self::from_config_with_env(config, &|name| std::env::var(name).ok())
    }

    /// [`from_config`](Self::from_config) with the environment given (tests).
    pub fn from_config_with_env(
        config: &AuthConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ResolvedAuth, AuthError> {
        let authority_host = pick(&config.authority_host, "AZURE_AUTHORITY_HOST", env)
            .unwrap_or_else(|| DEFAULT_AUTHORITY_HOST.to_string())
            .trim_end_matches('/')
            .to_string();
        let tenant = pick(&config.tenant_id, "AZURE_TENANT_ID", env);
        let client = pick(&config.client_id, "AZURE_CLIENT_ID", env);
        let secret = pick(&config.client_secret, "AZURE_CLIENT_SECRET", env);
        let cert = config.client_certificate_path.clone().or_else(|| {
            env("AZURE_CLIENT_CERTIFICATE_PATH")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        let token_file = config.federated_token_file.clone().or_else(|| {
            env("AZURE_FEDERATED_TOKEN_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        let service_principal = |what: &str| -> Result<(String, String), AuthError> {
            match (&tenant, &client) {
                (Some(t), Some(c)) => Ok((t.clone(), c.clone())),
                _ => Err(AuthError::NotConfigured(format!(
                    "{what} needs a tenant ID and a client ID (AZURE_TENANT_ID, AZURE_CLIENT_ID)"
                ))),
            }
        };
        let credential = if let Some(secret) = secret {
            let (tenant_id, client_id) = service_principal("a client secret")?;
            Credential::ClientSecret {
                tenant_id,
                client_id,
                secret: Secret::new(secret),
            }
        } else if let Some(path) = cert {
            let (tenant_id, client_id) = service_principal("a client certificate")?;
            Credential::ClientCertificate {
                tenant_id,
                client_id,
                key: Box::new(CertificateKey::from_pem_file(&path)?),
            }
        } else if let Some(token_file) = token_file {
            let (tenant_id, client_id) = service_principal("workload identity")?;
            Credential::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            }
        } else if config.managed_identity.unwrap_or(true) {
            Credential::ManagedIdentity {
                endpoint: config
                    .imds_endpoint
                    .clone()
                    .unwrap_or_else(|| DEFAULT_IMDS_ENDPOINT.to_string()),
                client_id: client,
            }
        } else {
            return Err(AuthError::NotConfigured(
                "set a client secret, a certificate or a federated token file, or allow managed identity".into(),
            ));
        };
        Ok(ResolvedAuth {
            credential,
            authority_host,
        })
    }

    /// A short name of the credential type, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::ClientSecret { .. } => "client-secret",
            Credential::ClientCertificate { .. } => "client-certificate",
            Credential::WorkloadIdentity { .. } => "workload-identity",
            Credential::ManagedIdentity { .. } => "managed-identity",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn environment_chooses_secret_then_workload_identity_then_imds() {
        let env = env_of(&[
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_CLIENT_SECRET", "s3cret"),
            ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us/"),
        ]);
        let auth = Credential::from_config_with_env(&AuthConfig::default(), &env).expect("ok");
        assert_eq!(auth.credential.kind(), "client-secret");
        assert_eq!(auth.authority_host, "https://login.microsoftonline.us");
        assert!(!format!("{:?}", auth.credential).contains("s3cret"));

        let env = env_of(&[
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
        ]);
        let auth = Credential::from_config_with_env(&AuthConfig::default(), &env).expect("ok");
        assert_eq!(auth.credential.kind(), "workload-identity");
        assert_eq!(auth.authority_host, DEFAULT_AUTHORITY_HOST);

        let auth =
            Credential::from_config_with_env(&AuthConfig::default(), &env_of(&[])).expect("imds");
        assert_eq!(auth.credential.kind(), "managed-identity");
    }

    #[test]
    fn config_overrides_environment_and_missing_ids_are_named() {
        let env = env_of(&[("AZURE_CLIENT_SECRET", "from-env")]);
        let err =
            Credential::from_config_with_env(&AuthConfig::default(), &env).expect_err("no tenant");
        assert!(err.to_string().contains("AZURE_TENANT_ID"), "{err}");
        let config = AuthConfig {
            tenant_id: Some("t".into()),
            client_id: Some("c".into()),
            managed_identity: Some(false),
            ..AuthConfig::default()
        };
        let err = Credential::from_config_with_env(&config, &env_of(&[])).expect_err("none");
        assert!(matches!(err, AuthError::NotConfigured(_)));
    }
}
