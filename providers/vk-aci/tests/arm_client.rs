//! The ARM client and the credentials against the fake Azure (no cluster needed).

mod fake;

use std::sync::Arc;
use std::time::Duration;

use fake::{
    AppCredential, CLIENT_ID, CLIENT_SECRET, FakeAzure, REGION, RESOURCE_GROUP, SUBSCRIPTION,
    TENANT,
};
use serde_json::json;
use vk_aci::arm::types::ContainerGroup;
use vk_aci::arm::{ArmClient, ArmClientConfig};
use vk_aci::auth::{AuthError, Credential, TokenProvider};
use vk_aci::config::AuthConfig;

fn auth(fake: &FakeAzure) -> AuthConfig {
    AuthConfig {
        tenant_id: Some(TENANT.into()),
        client_id: Some(CLIENT_ID.into()),
        client_secret: Some(CLIENT_SECRET.into()),
        authority_host: Some(fake.url()),
        managed_identity: Some(false),
        ..AuthConfig::default()
    }
}

fn tokens(fake: &FakeAzure, config: &AuthConfig) -> Arc<TokenProvider> {
    let resolved = Credential::from_config_with_env(config, &|_| None).expect("credential");
    Arc::new(TokenProvider::new(resolved, &fake.url(), None).expect("tokens"))
}

fn client(fake: &FakeAzure) -> ArmClient {
    let mut config = ArmClientConfig::new(fake.url(), SUBSCRIPTION, RESOURCE_GROUP, "2023-05-01");
    config.default_poll_interval = Duration::from_millis(200);
    config.retry.initial_backoff = Duration::from_millis(10);
    ArmClient::new(config, tokens(fake, &auth(fake))).expect("client")
}

fn group(cpu: f64) -> ContainerGroup {
    serde_json::from_value(json!({
        "location": REGION,
        "tags": {"vk-node": "n", "vk-namespace": "ns", "vk-pod": "p"},
        "properties": {
            "osType": "Linux",
            "ipAddress": {"type": "Private", "ports": []},
            "containers": [{"name": "app", "properties": {"image": "nginx",
                "resources": {"requests": {"cpu": cpu, "memoryInGB": 1.5}}}}]
        }
    }))
    .expect("group")
}

#[tokio::test]
async fn create_polls_the_operation_and_get_list_delete_follow() {
    let fake = FakeAzure::start();
    let arm = client(&fake);
    let created = arm
        .create_or_update("g1", &group(1.0))
        .await
        .expect("created");
    assert_eq!(
        created.properties.provisioning_state.as_deref(),
        Some("Succeeded")
    );
    assert!(
        created.properties.ip_address.and_then(|i| i.ip).is_some(),
        "an IP once provisioned"
    );
    // The operation was polled through Azure-AsyncOperation, and GET retried past the
    // fake's eventual-consistency 404.
    let polls = fake
        .requests()
        .iter()
        .filter(|r| r.path.contains("/operations/"))
        .count();
    assert!(polls >= 1, "{:?}", fake.requests());
    for name in ["g2", "g3"] {
        arm.create_or_update(name, &group(1.0))
            .await
            .expect("created");
    }
    // New groups are missing from the first list (eventual consistency), then three
    // groups over pages of two: nextLink followed.
    let first = arm.list().await.expect("list");
    assert!(first.len() < 3, "brand-new groups lag in lists");
    let names: Vec<String> = arm
        .list()
        .await
        .expect("list")
        .into_iter()
        .filter_map(|g| g.name)
        .collect();
    assert_eq!(names, ["g1", "g2", "g3"]);
    assert!(arm.rate_limit().remaining_reads > 0);
    assert!(arm.delete("g2").await.expect("deleted"));
    assert!(!arm.delete("nope").await.expect("absent is fine"));
    assert!(arm.get("g2").await.expect("get").is_none());
    let logs = arm.logs("g1", "app", Some(1), true).await.expect("logs");
    assert!(logs.ends_with(" container app started\n"), "{logs:?}");
    let session = arm.exec("g1", "app", "echo hi", None).await.expect("exec");
    assert!(session.web_socket_uri.starts_with("ws://"));
    assert!(!format!("{session:?}").contains(&session.password));
}

#[tokio::test]
async fn throttling_is_waited_out_and_expired_tokens_are_refreshed() {
    let fake = FakeAzure::start();
    let arm = client(&fake);
    arm.list().await.expect("list");
    let before = fake.requests().len();
    fake.throttle(3, 1);
    arm.list().await.expect("list after 429s");
    let after = fake.requests();
    assert_eq!(
        after.len() - before,
        4,
        "three 429s then one answer, no storm"
    );
    assert_eq!(after.iter().filter(|r| r.status == 429).count(), 3);

    assert_eq!(fake.token_requests().len(), 1, "token cached");
    fake.expire_tokens();
    arm.list().await.expect("list with a refreshed token");
    assert_eq!(
        fake.token_requests().len(),
        2,
        "refreshed once after the 401"
    );
}

#[tokio::test]
async fn quota_and_conflicts_are_reported_with_their_codes() {
    let fake = FakeAzure::start();
    let arm = client(&fake);
    fake.set_core_quota(Some(1.5));
    arm.begin_create_or_update("small", &group(1.0))
        .await
        .expect("fits");
    let err = arm
        .begin_create_or_update("big", &group(1.0))
        .await
        .expect_err("over quota");
    assert!(err.is_quota(), "{err}");
    assert_eq!(err.code(), Some("ContainerGroupQuotaReached"));
    assert_eq!(err.kind(), vk_errdefs::ErrorKind::Unavailable);
    let err = arm
        .begin_create_or_update("small", &group(0.5))
        .await
        .expect_err("busy");
    assert_eq!(err.code(), Some("Conflict"));
    assert_eq!(err.kind(), vk_errdefs::ErrorKind::Conflict);
}

#[tokio::test]
async fn every_credential_type_gets_a_token_and_bad_ones_are_refused() {
    let fake = FakeAzure::start();
    let dir = tempfile::tempdir().expect("dir");
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let good = std::fs::read_to_string(fixtures.join("test-client-cert.pem")).expect("pem");
    fake.register_app(TENANT, "cert-app", AppCredential::Certificate(good));
    fake.register_app(
        TENANT,
        "wi-app",
        AppCredential::Federated("projected-sa-token".into()),
    );
    let base = AuthConfig {
        tenant_id: Some(TENANT.into()),
        authority_host: Some(fake.url()),
        managed_identity: Some(false),
        ..AuthConfig::default()
    };

    let cert = AuthConfig {
        client_id: Some("cert-app".into()),
        client_certificate_path: Some(fixtures.join("test-client-cert.pem")),
        ..base.clone()
    };
    tokens(&fake, &cert)
        .token()
        .await
        .expect("certificate accepted");
    let wrong = AuthConfig {
        client_certificate_path: Some(fixtures.join("wrong-client-cert.pem")),
        ..cert
    };
    let err = tokens(&fake, &wrong)
        .token()
        .await
        .expect_err("wrong certificate");
    assert!(
        matches!(&err, AuthError::Refused { code, .. } if code == "invalid_client"),
        "{err}"
    );

    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "projected-sa-token\n").expect("write");
    let wi = AuthConfig {
        client_id: Some("wi-app".into()),
        federated_token_file: Some(token_file.clone()),
        ..base.clone()
    };
    let provider = tokens(&fake, &wi);
    provider.token().await.expect("federated token accepted");
    std::fs::write(&token_file, "someone-elses-token").expect("write");
    fake.expire_tokens();
    provider
        .invalidate(&provider.token().await.expect("cached"))
        .await;
    let err = provider
        .token()
        .await
        .expect_err("the rotated file is re-read and refused");
    assert!(err.to_string().contains("AADSTS70021"), "{err}");

    let secret = AuthConfig {
        client_id: Some(CLIENT_ID.into()),
        client_secret: Some("not-the-secret".into()),
        ..base.clone()
    };
    let err = tokens(&fake, &secret)
        .token()
        .await
        .expect_err("bad secret");
    let text = err.to_string();
    assert!(
        text.contains("AADSTS7000215") && !text.contains("not-the-secret"),
        "{text}"
    );

    let imds = AuthConfig {
        managed_identity: Some(true),
        imds_endpoint: Some(fake.url()),
        tenant_id: None,
        ..AuthConfig::default()
    };
    let mi = tokens(&fake, &imds);
    mi.token().await.expect("IMDS token with string expires_in");
    assert_eq!(mi.credential().kind(), "managed-identity");
    assert_eq!(
        fake.token_requests(),
        [
            "client-certificate",
            "workload-identity",
            "managed-identity"
        ]
    );
}

#[tokio::test]
async fn the_node_is_healthy_only_while_arm_answers_the_list_call() {
    use vk_core::NodeProvider as _;
    let fake = FakeAzure::start();
    let provider = vk_aci::AciProvider::new(
        client(&fake),
        vk_aci::ProviderSettings {
            mapping: vk_aci::mapping::MappingContext {
                node_name: "n".into(),
                region: REGION.into(),
                os_type: "Linux".into(),
                ip_address_type: vk_aci::config::IpAddressType::Public,
                subnet_ids: Vec::new(),
                tags: Default::default(),
                default_gpu_sku: "V100".into(),
                cluster_dns: None,
                cluster_domain: "cluster.local".into(),
            },
            poll_interval: Duration::from_secs(1),
            log_follow_interval: Duration::from_secs(1),
            ca_pem: None,
        },
        None,
        vk_core::events::EventSink::disabled(),
    );
    // Without a recent list, ping lists; afterwards it reports the poller's last list.
    provider.ping().await.expect("healthy");
    let lists = || {
        fake.requests()
            .iter()
            .filter(|r| r.path.ends_with("/containerGroups"))
            .count()
    };
    assert_eq!(lists(), 1);
    provider.ping().await.expect("still healthy");
    assert_eq!(lists(), 1, "a recent list answers the health check");
    fake.revoke_access(true);
    provider
        .poll_once()
        .await
        .expect_err("the poller's list is refused");
    let err = provider
        .ping()
        .await
        .expect_err("no access to the resource group");
    assert_eq!(err.kind(), vk_errdefs::ErrorKind::Forbidden);
    assert!(err.to_string().contains("AuthorizationFailed"), "{err}");
    fake.revoke_access(false);
    provider.poll_once().await.expect("access restored");
    provider.ping().await.expect("healthy again");
}

#[tokio::test]
async fn node_capacity_comes_from_the_regions_free_quota_unless_configured() {
    let fake = FakeAzure::start();
    let arm = client(&fake);
    arm.create_or_update("busy", &group(2.0))
        .await
        .expect("created");
    fake.set_core_quota(Some(10.0));
    let mut config = vk_aci::AciConfig {
        subscription_id: SUBSCRIPTION.into(),
        resource_group: RESOURCE_GROUP.into(),
        region: REGION.into(),
        ..vk_aci::AciConfig::default()
    };
    let mut template = vk_core::node::NodeTemplate::new("n", "aci");
    vk_aci::setup::fill_template(&mut template, &config, &arm).await;
    assert_eq!(template.capacity["cpu"], "8", "10 cores, 2 used");
    assert_eq!(template.capacity["memory"], "32Gi");
    assert_eq!(template.labels["topology.kubernetes.io/region"], REGION);
    assert_eq!(
        template.labels["virtual-kubelet.io/aci-resource-group"],
        RESOURCE_GROUP
    );
    config.capacity = [("cpu".to_string(), "3".to_string())].into();
    vk_aci::setup::fill_template(&mut template, &config, &arm).await;
    assert_eq!(template.capacity, config.capacity);
}
