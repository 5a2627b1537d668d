//! The admin listener's Prometheus metrics of a `vk-mock` node on the real control
//! plane: after creating and deleting 20 pods, the counters, histograms and gauges in
//! the exposition text have exactly the counts the work implies.

use std::collections::BTreeMap;
use std::process::Stdio;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use vk_testkit::prometheus::Metrics;
use vk_testkit::wait::eventually;
use vk_testkit::{TestContext, unique_name};

const BIN: &str = env!("CARGO_BIN_EXE_vk-mock");
const PODS: usize = 20;

async fn scrape(port: u16) -> Metrics {
    vk_testkit::prometheus::scrape(port)
        .await
        .expect("scrape /metrics")
}

fn free_port() -> u16 {
    vk_testkit::free_port().expect("a free port")
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_work_of_creating_and_deleting_20_pods() {
    let ctx = TestContext::new().await.expect("control plane");
    let node = unique_name("vk-metrics");
    ctx.delete_on_drop::<Node>(&node, None);
    let ns = ctx.namespace("vk-metrics").await.expect("namespace");
    let port = free_port();
    let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{node}.log"));
    let cleanup = format!(
        "'{}' --kubeconfig '{}' delete node/{node} --wait=false",
        vk_testkit::cluster::kubectl().display(),
        ctx.kubeconfig().display()
    );
    let mut child = vk_testkit::tied::command_then(BIN.as_ref(), &cleanup)
        .arg("--kubeconfig")
        .arg(ctx.kubeconfig())
        .args(["--nodename", &node, "--no-kubelet-api"])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start vk-mock");
    let started = unix_now();

    eventually("the admin listener reports ready", || async move {
        matches!(vk_testkit::http::get(port, "/readyz").await, Ok((200, _))).then_some(())
    })
    .await;

    let pods: Api<Pod> = Api::namespaced(ctx.client(), ns.name());
    for i in 0..PODS {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("p{i}")},
            "spec": {
                "nodeName": node,
                "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
                "containers": [{"name": "c", "image": "busybox"}],
            }
        }))
        .expect("pod");
        pods.create(&PostParams::default(), &pod)
            .await
            .expect("create pod");
    }
    eventually("20 pods Running", || {
        let pods = pods.clone();
        async move {
            let list = pods.list(&ListParams::default()).await.ok()?;
            let running = list
                .items
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count();
            (running == PODS).then_some(())
        }
    })
    .await;
    let n: &str = &node;
    let running = eventually("vk_pods counts 20 Running", || async move {
        let m = scrape(port).await;
        (m.sum("vk_pods", &[("node", n), ("phase", "Running")]) == PODS as f64).then_some(m)
    })
    .await;
    assert_eq!(running.sum("vk_pods", &[("node", n)]), PODS as f64);
    assert_eq!(running.one("vk_pods_tracked", &[("node", n)]), PODS as f64);

    pods.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .expect("delete pods");
    eventually("the pods are gone from the API", || {
        let pods = pods.clone();
        async move {
            pods.list(&ListParams::default())
                .await
                .ok()?
                .items
                .is_empty()
                .then_some(())
        }
    })
    .await;
    let m = eventually("the controller forgets the pods", || async move {
        let m = scrape(port).await;
        (m.one("vk_pods_tracked", &[("node", n)]) == 0.0).then_some(m)
    })
    .await;

    // Pods by phase: none left.
    for phase in ["Pending", "Running", "Succeeded", "Failed", "Unknown"] {
        assert_eq!(
            m.one("vk_pods", &[("node", n), ("phase", phase)]),
            0.0,
            "{phase}"
        );
    }

    // Provider calls: one create and one delete per pod, each measured, none failed.
    let calls = |op| {
        m.one(
            "vk_provider_call_duration_seconds_count",
            &[("operation", op)],
        )
    };
    assert_eq!(calls("create_pod"), PODS as f64);
    assert_eq!(calls("delete_pod"), PODS as f64);
    assert_eq!(m.sum("vk_provider_call_errors_total", &[]), 0.0);
    let succeeded = |op| {
        m.one(
            "vk_pod_provider_calls_total",
            &[("node", n), ("operation", op)],
        )
    };
    assert_eq!(succeeded("create"), PODS as f64);
    assert_eq!(succeeded("delete"), PODS as f64);
    assert_eq!(succeeded("update"), 0.0);
    let buckets = m.one(
        "vk_provider_call_duration_seconds_bucket",
        &[("operation", "create_pod"), ("le", "+Inf")],
    );
    assert_eq!(buckets, PODS as f64);

    // Pod syncs: exactly one created each pod, none was retried.
    let syncs = |op, result| {
        m.sum(
            "vk_pod_sync_duration_seconds_count",
            &[("operation", op), ("result", result)],
        )
    };
    assert_eq!(syncs("create", "ok"), PODS as f64);
    assert_eq!(
        m.sum(
            "vk_pod_sync_duration_seconds_count",
            &[("operation", "create")]
        ),
        PODS as f64
    );
    assert!(
        syncs("delete", "ok") >= PODS as f64,
        "{:?}",
        syncs("delete", "ok")
    );
    assert_eq!(
        m.sum("vk_pod_sync_duration_seconds_count", &[("result", "retry")]),
        0.0
    );
    assert_eq!(m.one("vk_pod_queue_retries_total", &[("node", n)]), 0.0);
    assert!(m.sum("vk_pod_sync_duration_seconds_sum", &[]) > 0.0);
    for s in m.matching("vk_pod_sync_duration_seconds_count", &[]) {
        assert!(!s.labels.contains_key("node"), "{s:?}");
    }

    // API requests: every counted request is in the latency histogram.
    let mut totals: BTreeMap<(String, String), f64> = BTreeMap::new();
    for s in m.matching("vk_api_requests_total", &[]) {
        *totals
            .entry((s.labels["verb"].clone(), s.labels["resource"].clone()))
            .or_default() += s.value;
    }
    assert!(!totals.is_empty());
    for ((verb, resource), total) in &totals {
        let count = m.one(
            "vk_api_request_duration_seconds_count",
            &[("verb", verb), ("resource", resource)],
        );
        // Counts are read first: a request finishing in between is in the histogram only.
        assert!(
            count >= *total && count <= total + 2.0,
            "{verb} {resource}: histogram {count}, counter {total}"
        );
    }
    let deletes = m.one(
        "vk_api_request_duration_seconds_count",
        &[("verb", "delete"), ("resource", "pods")],
    );
    assert!(deletes >= PODS as f64, "{deletes}");
    assert!(
        m.one(
            "vk_api_request_duration_seconds_count",
            &[("verb", "patch"), ("resource", "pods/status")]
        ) >= PODS as f64
    );

    // Node heartbeats: recent successes.
    let now = unix_now();
    let lease = m.one(
        "vk_node_lease_last_renewal_timestamp_seconds",
        &[("node", n)],
    );
    assert!(
        lease > now - 60.0 && lease <= now + 1.0,
        "lease {lease}, now {now}"
    );
    let status = m.one(
        "vk_node_status_last_update_timestamp_seconds",
        &[("node", n)],
    );
    assert!(
        status >= started - 1.0 && status <= now + 1.0,
        "status {status}"
    );
    assert!(
        m.one(
            "vk_node_lease_renewals_total",
            &[("node", n), ("result", "success")]
        ) >= 1.0
    );

    // Process metrics of the vk-mock process.
    assert!(m.one("process_cpu_seconds_total", &[]) > 0.0);
    let rss = m.one("process_resident_memory_bytes", &[]);
    assert!(rss > 1e6 && rss < 1e10, "rss {rss}");
    assert!(m.one("process_virtual_memory_bytes", &[]) >= rss);
    let fds = m.one("process_open_fds", &[]);
    assert!(
        fds >= 3.0 && fds <= m.one("process_max_fds", &[]),
        "fds {fds}"
    );
    assert!(m.one("process_threads", &[]) >= 1.0);
    let start = m.one("process_start_time_seconds", &[]);
    assert!(
        start >= started - 5.0 && start <= now,
        "start {start}, spawned {started}"
    );

    let _ = child.kill();
    let _ = child.wait();
    ns.delete().await.expect("delete namespace");
}
