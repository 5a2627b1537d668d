//! The provider's ping fails, then succeeds again.
//!
//! vk-mock can make its pings fail only through an in-process switch
//! ([`vk_mock::MockProvider::fail_pings`]), with no way to reach it from outside the
//! process. So this scenario runs the node inside the suite: vk-core's
//! [`VirtualNode`] with a vk-mock provider as a library, and the production timing of
//! the node controller (status every 60 s, ping every 10 s, Ready=False after 3
//! failures).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::DeleteParams;
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vk_core::events::reasons::PROVIDER_PING_FAILED;
use vk_core::node::{NodeControllerConfig, NodeTemplate};
use vk_core::runtime::VirtualNode;
use vk_mock::MockProvider;

use super::Env;
use super::probe::{poll, ready_condition, time_until};
use super::report::within;
use crate::bench::report::ScenarioResult;

/// How long the suite watches for a change before giving up.
const GIVE_UP: Duration = Duration::from_secs(150);

/// The provider's ping fails: the Node turns Ready=False with reason
/// ProviderPingFailed within one status period, and Ready again once pings succeed.
pub async fn ping_failure(env: &Env) -> anyhow::Result<ScenarioResult> {
    let name = "vk-faults-ping-failure";
    let config = NodeControllerConfig::default();
    let mut template = NodeTemplate::new(name, "mock");
    template.internal_ip = Some("127.0.0.1".into());
    template.capacity = [("cpu", "16"), ("memory", "64Gi"), ("pods", "110")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let mock = Arc::new(MockProvider::new(name, Default::default()));
    let node = Arc::new(
        VirtualNode::builder(env.client.clone(), template)
            .pod_handler(mock.clone())
            .node_provider(mock.clone())
            .node_config(config.clone())
            .build()?,
    );
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let (node, shutdown) = (Arc::clone(&node), shutdown.clone());
        async move { node.run(shutdown).await }
    });
    let result = ping_failure_on(env, name, &mock, &config).await;
    shutdown.cancel();
    let _ = task.await;
    let _ = Api::<Node>::all(env.client.clone())
        .delete(name, &DeleteParams::default())
        .await;
    result
}

async fn ping_failure_on(
    env: &Env,
    name: &str,
    mock: &MockProvider,
    config: &NodeControllerConfig,
) -> anyhow::Result<ScenarioResult> {
    let client = &env.client;
    let is = |status: &'static str, reason: Option<&'static str>| async move {
        ready_condition(client, name)
            .await
            .is_some_and(|(s, r)| s == status && reason.is_none_or(|want| r == want))
    };
    poll(Instant::now(), GIVE_UP, || async {
        is("True", None).await.then_some(())
    })
    .await
    .ok_or_else(|| anyhow::anyhow!("the in-process node did not become Ready"))?;

    eprintln!("    the provider's pings fail from now on");
    mock.fail_pings(Some("injected by the fault suite"));
    let failing = Instant::now();
    let not_ready = time_until(failing, GIVE_UP, || is("False", Some(PROVIDER_PING_FAILED))).await;
    eprintln!("    the provider's pings succeed again");
    mock.fail_pings(None);
    let succeeding = Instant::now();
    let ready_again = time_until(succeeding, GIVE_UP, || is("True", None)).await;

    let mut r = ScenarioResult::new(
        "ping-failure",
        json!({
            "in_process": true,
            "status_period_seconds": config.status_update_interval.as_secs(),
            "ping_interval_seconds": config.ping_interval.as_secs(),
            "ping_failure_threshold": config.ping_failure_threshold,
        }),
    );
    r.metric(
        "not_ready_after_seconds",
        not_ready.map(|d| d.as_secs_f64()),
    );
    r.metric(
        "ready_again_after_seconds",
        ready_again.map(|d| d.as_secs_f64()),
    );
    r.targets.push(
        within(
            "Ready=False, reason ProviderPingFailed",
            not_ready,
            config.status_update_interval,
            GIVE_UP,
        )
        .note("within one status period"),
    );
    r.targets.push(
        within(
            "Ready again once pings succeed",
            ready_again,
            config.status_update_interval,
            GIVE_UP,
        )
        .note("within one status period"),
    );
    r.notes.push(
        "vk-mock's ping switch is in-process only, so this node runs inside the suite \
         (vk-core + vk-mock as libraries, production node-controller timing)"
            .into(),
    );
    Ok(r)
}
