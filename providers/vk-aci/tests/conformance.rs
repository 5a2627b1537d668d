//! The conformance suite (vk-testkit) against vk-aci and the fake Azure, on the real
//! control plane. Every check's node shares one fake resource group; each node sees
//! only the container groups tagged with its name.
//!
//! The suite's [`Recorder`] wraps the real provider to count calls and fail creates or pings on
//! demand; dangling and lost pods are made in the fake, behind the provider's back.
//!
//! Not run: `env_is_resolved_for_the_provider`. It expects `fieldRef: status.podIP` to
//! hold the pod's IP, which ACI assigns only once the group exists; a group's
//! environment cannot change without re-creating it, so vk-aci (like upstream's ACI
//! provider) resolves `status.podIP` to an empty value. Every other reference kind of
//! that check is covered by vk-core's env tests, and Secret-sourced values by
//! `tests/e2e.rs` (secure values).

mod fake;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use fake::{CLIENT_ID, CLIENT_SECRET, FakeAzure, REGION, RESOURCE_GROUP, SUBSCRIPTION, TENANT};
use k8s_openapi::api::core::v1::Pod;
use vk_aci::arm::{ArmClient, ArmClientConfig};
use vk_aci::auth::{Credential, TokenProvider};
use vk_aci::config::{AuthConfig, IpAddressType};
use vk_aci::mapping::{MappingContext, VolumeData, pod_to_group};
use vk_aci::{AciProvider, ProviderSettings};
use vk_core::ResourceAccess;
use vk_core::events::EventSink;
use vk_testkit::conformance::{self, Backend, Instance, Recorder, Target};

fn fake() -> &'static FakeAzure {
    static FAKE: OnceLock<FakeAzure> = OnceLock::new();
    FAKE.get_or_init(FakeAzure::start)
}

fn mapping(node: &str) -> MappingContext {
    MappingContext {
        node_name: node.to_string(),
        region: REGION.into(),
        os_type: "Linux".into(),
        ip_address_type: IpAddressType::Private,
        subnet_ids: vec![format!(
            "/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/aci"
        )],
        tags: Default::default(),
        default_gpu_sku: "V100".into(),
        cluster_dns: None,
        cluster_domain: "cluster.local".into(),
    }
}

/// The fake resource group behind vk-aci: dangling and lost pods are made there.
struct ResourceGroup {
    node: String,
}

impl Backend<AciProvider> for ResourceGroup {
    fn has_pod(&self, _provider: &AciProvider, namespace: &str, name: &str) -> bool {
        fake()
            .group_of(namespace, name)
            .is_some_and(|(_, g)| g["tags"]["vk-node"] == self.node.as_str())
    }
    fn insert_pod(&self, _provider: &AciProvider, pod: Pod) {
        // A container group of this node created behind the core's back.
        let mapped = pod_to_group(&pod, &mapping(&self.node), &VolumeData::default())
            .expect("the dangling pod maps");
        fake().insert_group(
            &mapped.name,
            serde_json::to_value(&mapped.group).expect("json"),
        );
    }
    fn lose_pod(&self, _provider: &AciProvider, namespace: &str, name: &str) {
        let (group, _) = fake()
            .group_of(namespace, name)
            .expect("the pod's group exists");
        fake().remove_group(&group);
    }
}

struct Aci;

impl Target for Aci {
    fn name(&self) -> &str {
        "aci"
    }

    fn instantiate(&self, node_name: &str, resources: ResourceAccess) -> Instance {
        let fake = fake();
        let auth = AuthConfig {
            tenant_id: Some(TENANT.into()),
            client_id: Some(CLIENT_ID.into()),
            client_secret: Some(CLIENT_SECRET.into()),
            authority_host: Some(fake.url()),
            managed_identity: Some(false),
            ..AuthConfig::default()
        };
        let resolved = Credential::from_config_with_env(&auth, &|_| None).expect("credential");
        let tokens = TokenProvider::new(resolved, &fake.url(), None).expect("tokens");
        let mut config =
            ArmClientConfig::new(fake.url(), SUBSCRIPTION, RESOURCE_GROUP, "2023-05-01");
        config.default_poll_interval = Duration::from_millis(300);
        let arm = ArmClient::new(config, Arc::new(tokens)).expect("arm");
        let settings = ProviderSettings {
            mapping: mapping(node_name),
            poll_interval: Duration::from_millis(500),
            log_follow_interval: Duration::from_millis(500),
            ca_pem: None,
        };
        let provider = Arc::new(AciProvider::new(
            arm,
            settings,
            Some(resources),
            EventSink::disabled(),
        ));
        let group = ResourceGroup {
            node: node_name.to_string(),
        };
        Recorder::new(provider, group).instance()
    }
}

macro_rules! check {
    ($name:ident => $path:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $path(&Aci).await;
        }
    };
}

check!(node_registers_and_turns_ready => conformance::node::registers_and_turns_ready);
check!(deleted_node_is_recreated => conformance::node::deleted_node_is_recreated);
check!(deleted_node_keeps_its_pods => conformance::node::deleted_node_keeps_its_pods);
check!(failing_ping_turns_node_not_ready => conformance::node::failing_ping_turns_node_not_ready);
check!(foreign_metadata_and_conditions_survive => conformance::node::foreign_metadata_and_conditions_survive);
check!(pod_runs_with_ip_and_ready => conformance::pods::pod_runs_with_ip_and_ready);
check!(deployment_replicas_run_on_the_node => conformance::pods::deployment_replicas_run_on_the_node);
check!(mandatory_missing_references_block_the_pod => conformance::pods::mandatory_missing_references_block_the_pod);
check!(optional_missing_references_are_skipped => conformance::pods::optional_missing_references_are_skipped);
check!(graceful_delete_reaches_the_provider => conformance::pods::graceful_delete_reaches_the_provider);
check!(force_delete_reaches_the_provider => conformance::pods::force_delete_reaches_the_provider);
check!(provider_failures_are_reported_and_retried => conformance::pods::provider_failures_are_reported_and_retried);
check!(restart_adopts_pods_and_removes_dangling_ones => conformance::pods::restart_adopts_pods_and_removes_dangling_ones);
check!(finished_pods_are_left_untouched => conformance::pods::finished_pods_are_left_untouched);
check!(label_changes_reach_the_provider => conformance::pods::label_changes_reach_the_provider);
check!(lost_pods_are_marked_failed => conformance::pods::lost_pods_are_marked_failed);
