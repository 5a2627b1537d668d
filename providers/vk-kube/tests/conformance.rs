//! The conformance suite (vk-testkit) against vk-kube, on two real control planes: each
//! check's virtual node lives in the home cluster and its pods run in the remote
//! cluster (`cargo xtask cluster up --name remote`, started if needed) on a real
//! vk-process node (the suite's images run `sleep 3600` there). See `support`.
//!
//! The suite's [`Recorder`] wraps the real provider: it counts and records calls and fails creates
//! or pings on demand; a "lost" pod is a remote pod deleted behind the provider's back.
//!
//! Not run: `env_is_resolved_for_the_provider`, which requires `status.podIP` to be
//! resolved at home, before `create_pod`, to the IP the pod will have. A remote pod's IP
//! is only known once the remote cluster placed it; vk-kube instead leaves IP
//! `fieldRef`s to the remote kubelet (see `translate::restore_remote_field_refs`,
//! checked end to end in `e2e_kube`). Every other part of that check (ConfigMap/Secret
//! keys, envFrom, resourceFieldRef, service links) is the core's and is covered by the
//! other providers' runs.

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::DeleteParams;
use vk_core::{PodLifecycleHandler, ResourceAccess};
use vk_kube::{KubeProvider, KubeProviderConfig};
use vk_testkit::conformance::{self, Backend, Instance, Recorder, Target, block_on};

/// The remote cluster behind vk-kube, for the suite's look behind the core's back.
struct Remote(kube::Client);

impl Backend<KubeProvider> for Remote {
    fn insert_pod(&self, provider: &KubeProvider, pod: Pod) {
        // Really created in the remote cluster, behind the core's back.
        block_on(provider.create_pod(&pod)).expect("the dangling pod is created remotely");
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        block_on(vk_testkit::wait::eventually(
            "the dangling pod is watched",
            || async { provider.get_pod(&namespace, &name).await.ok().flatten() },
        ));
    }
    fn lose_pod(&self, provider: &KubeProvider, namespace: &str, name: &str) {
        // Deleted in the remote cluster by someone else.
        for pod in provider.remote_pods() {
            let home = vk_kube::translate::HomeRef::of_remote(&pod);
            if home.is_some_and(|h| h.namespace == namespace && h.name == name) {
                let api: Api<Pod> = Api::namespaced(
                    self.0.clone(),
                    pod.metadata.namespace.as_deref().unwrap_or_default(),
                );
                block_on(api.delete(
                    pod.metadata.name.as_deref().unwrap_or_default(),
                    &DeleteParams::default().grace_period(0),
                ))
                .expect("delete the remote pod");
            }
        }
    }
}

struct Kube {
    remote_kubeconfig: PathBuf,
    remote_node: String,
}

impl Target for Kube {
    fn name(&self) -> &str {
        "kube"
    }

    fn instantiate(&self, node_name: &str, resources: ResourceAccess) -> Instance {
        let mut config = KubeProviderConfig {
            kubeconfig: Some(self.remote_kubeconfig.clone()),
            dependency_refresh_seconds: 1,
            capacity_refresh_seconds: 2,
            ..Default::default()
        };
        config.scheduling.add_node_selector = [(
            "kubernetes.io/hostname".to_owned(),
            self.remote_node.clone(),
        )]
        .into();
        config.scheduling.add_tolerations = vec![k8s_openapi::api::core::v1::Toleration {
            key: Some("virtual-kubelet.io/provider".into()),
            operator: Some("Exists".into()),
            ..Default::default()
        }];
        let remote = block_on(vk_kube::remote::client(&config)).expect("remote client");
        let provider = KubeProvider::start(node_name, config, remote.clone(), resources);
        Recorder::new(Arc::new(provider), Remote(remote)).instance()
    }
}

async fn target() -> Kube {
    let remote = support::remote().await;
    Kube {
        remote_kubeconfig: remote.kubeconfig.clone(),
        remote_node: remote.node.clone(),
    }
}

macro_rules! check {
    ($name:ident => $path:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $path(&target().await).await;
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
