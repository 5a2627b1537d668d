//! End-to-end smoke test of the harness itself, against the real control plane.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use vk_testkit::{TestContext, unique_name};

#[tokio::test]
async fn node_objects_can_be_created_listed_and_deleted() {
    let ctx = TestContext::new().await.expect("control plane");
    let nodes: Api<Node> = Api::all(ctx.client());
    let name = unique_name("smoke-node");
    ctx.delete_on_drop::<Node>(&name, None);

    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some([("vk-testkit.io/test".to_owned(), "true".to_owned())].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("create node");

    let listed = nodes
        .list(&ListParams::default().labels("vk-testkit.io/test=true"))
        .await
        .expect("list nodes");
    assert!(
        listed
            .items
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some(&name)),
        "created node {name} missing from the list"
    );

    nodes
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete node");
    assert!(
        nodes.get_opt(&name).await.expect("get node").is_none(),
        "node {name} still exists after delete"
    );
}

#[tokio::test]
async fn namespaces_are_unique_and_the_controller_manager_fills_them() {
    let ctx = TestContext::new().await.expect("control plane");
    let ns = ctx.namespace("smoke").await.expect("namespace");
    // The controller-manager creates the `default` ServiceAccount in every namespace;
    // the ServiceAccount admission plugin needs it before pods can be created.
    let pods: Api<Pod> = Api::namespaced(ctx.client(), ns.name());
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "nothing"}]}
    }))
    .expect("pod");
    let created = vk_testkit::wait::eventually_ok(
        "the pod is created once the default ServiceAccount exists",
        || {
            let (pods, pod) = (pods.clone(), &pod);
            async move {
                match pods.create(&PostParams::default(), pod).await {
                    Ok(p) => Ok(p),
                    // "serviceaccount default not found" until the controller catches up.
                    Err(kube::Error::Api(s)) if s.code == 403 || s.code == 500 => Err(s.message),
                    Err(e) => panic!("create pod: {e}"),
                }
            }
        },
    )
    .await;
    assert_eq!(
        created.spec.and_then(|s| s.service_account_name).as_deref(),
        Some("default")
    );
    ns.delete().await.expect("delete namespace");
}
