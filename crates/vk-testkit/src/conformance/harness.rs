//! Running a virtual node in-process for a check, and waiting for things to happen.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vk_core::node::{NodeControllerConfig, NodeTemplate};
use vk_core::pod::PodControllerConfig;
use vk_core::runtime::VirtualNode;

use super::{Inspect, Instance, Target};
use crate::context::{TestContext, TestNamespace, unique_name};
use crate::wait::eventually_ok;

pub use crate::wait::{PATIENCE, eventually};

/// Timing knobs of the node under test (shorter than production so checks are quick).
#[derive(Debug, Clone)]
pub struct HarnessOptions {
    /// Node controller timing.
    pub node: NodeControllerConfig,
    /// Pod controller tuning.
    pub pods: PodControllerConfig,
}

impl Default for HarnessOptions {
    fn default() -> Self {
        Self {
            node: NodeControllerConfig {
                status_update_interval: Duration::from_secs(10),
                lease_renew_interval: Duration::from_secs(2),
                ping_interval: Duration::from_millis(500),
                ping_failure_threshold: 2,
                ..Default::default()
            },
            pods: PodControllerConfig {
                dangling_check_interval: Duration::from_secs(5),
                backoff_base: Duration::from_millis(200),
                backoff_max: Duration::from_secs(2),
                ..Default::default()
            },
        }
    }
}

/// A virtual node running in this process for one check, with its own namespace.
/// Dropping it stops the node and deletes the Node object and the namespace.
pub struct Harness {
    /// The test context (client, clean-up).
    pub ctx: TestContext,
    /// The namespace for this check's objects.
    pub ns: TestNamespace,
    node_name: String,
    provider_name: String,
    instance: Instance,
    options: HarnessOptions,
    running: Option<(CancellationToken, JoinHandle<()>, Arc<VirtualNode>)>,
}

impl Harness {
    /// Starts a node named `<prefix>-xxxxxx` backed by a new instance of `target`.
    pub async fn start(target: &dyn Target, prefix: &str) -> Self {
        Self::start_with(target, prefix, HarnessOptions::default()).await
    }

    /// As [`Harness::start`], with explicit options.
    pub async fn start_with(target: &dyn Target, prefix: &str, options: HarnessOptions) -> Self {
        let ctx = TestContext::new()
            .await
            .expect("the control plane must be reachable");
        let node_name = unique_name(prefix);
        ctx.delete_on_drop::<Node>(&node_name, None);
        let ns = ctx
            .namespace(prefix)
            .await
            .expect("create the test namespace");
        let resources = vk_core::ResourceAccess::new(ctx.client(), node_name.clone());
        let instance = target.instantiate(&node_name, resources);
        let mut h = Self {
            ctx,
            ns,
            node_name,
            provider_name: target.name().to_owned(),
            instance,
            options,
            running: None,
        };
        h.start_controllers().await;
        h
    }

    /// The client.
    pub fn client(&self) -> Client {
        self.ctx.client()
    }

    /// The node's name.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// The namespace's name.
    pub fn namespace(&self) -> &str {
        self.ns.name()
    }

    /// The provider's introspection; panics when the provider does not offer it.
    pub fn inspect(&self) -> Arc<dyn Inspect> {
        self.instance
            .inspect
            .clone()
            .expect("this check needs the provider's Inspect implementation")
    }

    /// The running node, if started.
    pub fn node(&self) -> Option<Arc<VirtualNode>> {
        self.running.as_ref().map(|(_, _, n)| Arc::clone(n))
    }

    /// The node template used.
    pub fn template(&self) -> NodeTemplate {
        let mut t = NodeTemplate::new(self.node_name.clone(), self.provider_name.clone());
        t.internal_ip = Some("127.0.0.1".into());
        t.capacity = [("cpu", "16"), ("memory", "64Gi"), ("pods", "500")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        t
    }

    /// The options the next [`Harness::start_controllers`] uses; change them between
    /// [`Harness::stop_controllers`] and a restart.
    pub fn options_mut(&mut self) -> &mut HarnessOptions {
        &mut self.options
    }

    /// Starts (or restarts) the controllers with the same provider instance, and waits
    /// until the node is registered and the pods are synced.
    pub async fn start_controllers(&mut self) {
        assert!(self.running.is_none(), "controllers already running");
        let mut builder = VirtualNode::builder(self.client(), self.template())
            .pod_handler(Arc::clone(&self.instance.pods))
            .pod_config(self.options.pods.clone())
            .node_config(self.options.node.clone());
        if let Some(n) = &self.instance.node {
            builder = builder.node_provider(Arc::clone(n));
        }
        let node = Arc::new(builder.build().expect("build the virtual node"));
        let token = CancellationToken::new();
        let task = {
            let node = Arc::clone(&node);
            let token = token.clone();
            tokio::spawn(async move { node.run(token).await })
        };
        let ready = Arc::clone(&node);
        eventually("the virtual node registers and syncs", || {
            let ready = Arc::clone(&ready);
            async move { ready.is_ready().then_some(()) }
        })
        .await;
        self.running = Some((token, task, node));
    }

    /// Stops the controllers (the Node object and the provider's pods stay).
    pub async fn stop_controllers(&mut self) {
        if let Some((token, task, _)) = self.running.take() {
            token.cancel();
            let _ = task.await;
        }
    }

    /// Waits until the running pod controller has synced every pod it found at start
    /// and has nothing left to do (no key queued, in process or waiting for a retry:
    /// `vk_core::pod::PodGauges::idle`). Checks use this before asserting that
    /// something did *not* happen in those syncs — an observable event, not a pause.
    pub async fn wait_until_idle(&self) {
        let node = self
            .node()
            .expect("the controllers must be running to wait for them to be idle");
        let gauges = node.pods().gauges();
        eventually(
            "the pod controller has synced every pod and is idle",
            || {
                let idle = gauges.idle();
                async move { idle.then_some(()) }
            },
        )
        .await;
    }

    /// A pod bound to this node (with the provider taint tolerated) from a JSON spec;
    /// `spec` is merged into a default one-container spec.
    pub fn pod(&self, name: &str, spec: serde_json::Value) -> Pod {
        let mut value = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace(), "labels": {"app": name}},
            "spec": {
                "nodeName": self.node_name,
                "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
                "containers": [{"name": "main", "image": "example.com/app:1"}]
            }
        });
        merge(&mut value["spec"], spec);
        serde_json::from_value(value).expect("a valid pod")
    }

    /// Creates `pod`, retrying while the namespace's ServiceAccount is not there yet.
    pub async fn create_pod(&self, pod: &Pod) -> Pod {
        let api = self.pods();
        let name = pod.metadata.name.clone().unwrap_or_default();
        eventually_ok(
            &format!("creating pod {name} (once the namespace's ServiceAccount exists)"),
            || {
                let (api, name) = (api.clone(), &name);
                async move {
                    match api.create(&PostParams::default(), pod).await {
                        Ok(p) => Ok(p),
                        Err(kube::Error::Api(s))
                            if s.message.contains("serviceaccount") || s.code == 500 =>
                        {
                            Err(s.message)
                        }
                        Err(e) => panic!("creating pod {name}: {e}"),
                    }
                }
            },
        )
        .await
    }

    /// The pods API of the namespace.
    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client(), self.namespace())
    }

    /// Waits until pod `name` satisfies `check`; returns the pod.
    pub async fn wait_pod(&self, name: &str, what: &str, check: impl Fn(&Pod) -> bool) -> Pod {
        let api = self.pods();
        let check = &check;
        eventually(&format!("pod {name}: {what}"), || {
            let api = api.clone();
            async move {
                match api.get_opt(name).await {
                    Ok(Some(p)) if check(&p) => Some(p),
                    _ => None,
                }
            }
        })
        .await
    }

    /// Waits until pod `name` is Running with an IP and Ready.
    pub async fn wait_running(&self, name: &str) -> Pod {
        self.wait_pod(
            name,
            "Running with a podIP and Ready=True",
            is_running_and_ready,
        )
        .await
    }

    /// Waits until pod `name` no longer exists in the API.
    pub async fn wait_pod_gone(&self, name: &str) {
        let api = self.pods();
        eventually(&format!("pod {name} is removed from the API"), || {
            let api = api.clone();
            async move { matches!(api.get_opt(name).await, Ok(None)).then_some(()) }
        })
        .await;
    }

    /// Waits for an event with `reason` about object `name` in the namespace.
    pub async fn wait_event(&self, name: &str, reason: &str) -> Event {
        let api: Api<Event> = Api::namespaced(self.client(), self.namespace());
        eventually(&format!("event {reason} about {name}"), || {
            let api = api.clone();
            async move {
                let list = api
                    .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
                    .await
                    .ok()?;
                list.items
                    .into_iter()
                    .find(|e| e.reason.as_deref() == Some(reason))
            }
        })
        .await
    }

    /// The Node object.
    pub async fn node_object(&self) -> Option<Node> {
        Api::<Node>::all(self.client())
            .get_opt(&self.node_name)
            .await
            .ok()
            .flatten()
    }

    /// Runs kubectl against the cluster and returns its stdout (panics on failure).
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = crate::cluster::run_kubectl(self.ctx.kubeconfig(), None, &[], args, None)
            .expect("kubectl must be installed");
        assert!(out.code == 0, "kubectl {args:?} failed: {}", out.stderr);
        out.stdout
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some((token, task, _)) = self.running.take() {
            token.cancel();
            task.abort();
        }
    }
}

/// Whether a pod is Running with an IP and the Ready condition True.
pub fn is_running_and_ready(p: &Pod) -> bool {
    let Some(s) = &p.status else { return false };
    s.phase.as_deref() == Some("Running")
        && s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
        && s.conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Waits until Node `node` exists with the Ready condition True (panics after
/// [`PATIENCE`]), e.g. after starting a provider binary.
pub async fn wait_node_ready(client: &Client, node: &str) -> Node {
    let nodes: Api<Node> = Api::all(client.clone());
    eventually(&format!("node {node} is Ready"), || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get_opt(node).await.ok()??;
            n.status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
                .then_some(n)
        }
    })
    .await
}

fn merge(base: &mut serde_json::Value, patch: serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}
