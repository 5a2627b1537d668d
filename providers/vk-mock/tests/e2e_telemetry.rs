//! Telemetry of the `vk-mock` binary as an operator sees it: spans exported with OTLP
//! (to an in-test collector stand-in speaking OTLP/HTTP with JSON bodies), JSON log
//! lines carrying span fields, the log filter changed at runtime on the admin
//! listener, and W3C trace context continued by the kubelet API.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::Value;
use vk_testkit::kubelet_client::KubeletClient;
use vk_testkit::wait::eventually;
use vk_testkit::{LocalCluster, TestContext, unique_name};

const BIN: &str = env!("CARGO_BIN_EXE_vk-mock");

fn free_port() -> u16 {
    vk_testkit::free_port().expect("a free port")
}

/// One exported span, flattened from an OTLP/JSON `ExportTraceServiceRequest`.
#[derive(Debug, Clone)]
struct Span {
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: HashMap<String, String>,
    service: String,
}

fn attribute_value(v: &Value) -> String {
    for k in ["stringValue", "intValue", "boolValue", "doubleValue"] {
        if let Some(x) = v.get(k) {
            return x
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| x.to_string());
        }
    }
    v.to_string()
}

fn attributes(list: &Value) -> HashMap<String, String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| Some((a["key"].as_str()?.to_owned(), attribute_value(&a["value"]))))
        .collect()
}

fn flatten(request: &Value) -> Vec<Span> {
    let mut out = Vec::new();
    for rs in request["resourceSpans"].as_array().into_iter().flatten() {
        let service = attributes(&rs["resource"]["attributes"])
            .remove("service.name")
            .unwrap_or_default();
        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
            for s in ss["spans"].as_array().into_iter().flatten() {
                out.push(Span {
                    name: s["name"].as_str().unwrap_or_default().to_owned(),
                    trace_id: s["traceId"].as_str().unwrap_or_default().to_lowercase(),
                    span_id: s["spanId"].as_str().unwrap_or_default().to_lowercase(),
                    parent: s["parentSpanId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_lowercase(),
                    attributes: attributes(&s["attributes"]),
                    service: service.clone(),
                });
            }
        }
    }
    out
}

/// A stand-in OTLP/HTTP collector: accepts `POST /v1/traces` with JSON bodies.
async fn collector() -> (u16, Arc<Mutex<Vec<Span>>>) {
    use axum::routing::post;
    let spans = Arc::new(Mutex::new(Vec::new()));
    let store = Arc::clone(&spans);
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: String| {
            let store = Arc::clone(&store);
            async move {
                let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                store.lock().expect("spans").extend(flatten(&request));
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    "{}",
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, spans)
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_json_logs_runtime_filter_and_trace_context() {
    let ctx = TestContext::new().await.expect("control plane");
    let (otlp_port, spans) = collector().await;
    let node = unique_name("vk-tel");
    ctx.delete_on_drop::<Node>(&node, None);
    let ns = ctx.namespace("vk-tel").await.expect("namespace");
    let admin_port = free_port();
    let kubelet_port = free_port();
    let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{node}.log"));
    let cluster = LocalCluster::from_env().expect("layout");
    let pki = cluster.layout().pki();
    let mut child = vk_testkit::tied::command(BIN.as_ref())
        .arg("--kubeconfig")
        .arg(ctx.kubeconfig())
        .args(["--nodename", &node])
        .args(["--listen-port", &kubelet_port.to_string()])
        .args(["--metrics-addr", &format!("127.0.0.1:{admin_port}")])
        .args(["--log-format", "json", "--log-level", "info"])
        .args(["--otlp-endpoint", &format!("http://127.0.0.1:{otlp_port}")])
        .args(["--otlp-protocol", "http/json"])
        .arg("--tls-cert-file")
        .arg(pki.kubelet_serving().cert)
        .arg("--tls-private-key-file")
        .arg(pki.kubelet_serving().key)
        .env_remove("RUST_LOG")
        // Batches leave only when full or at shutdown: what arrives was flushed on exit.
        .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start vk-mock");

    vk_testkit::conformance::harness::wait_node_ready(&ctx.client(), &node).await;

    // The filter starts as given and rejects nonsense without changing.
    let (code, body) = vk_testkit::http::get(admin_port, "/debug/log-filter")
        .await
        .expect("get filter");
    assert_eq!((code, body.trim()), (200, "info"));
    let (code, body) = vk_testkit::http::put(admin_port, "/debug/log-filter", "vk_core=loud")
        .await
        .expect("put");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("invalid log filter"), "{body}");
    let before = lines(&log);
    assert!(
        before.iter().all(|l| !l.contains("\"level\":\"DEBUG\"")),
        "DEBUG lines before the filter change"
    );
    // Every line is one JSON object.
    for l in &before {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{l}");
    }
    let (code, body) = vk_testkit::http::put(admin_port, "/debug/log-filter", "info,vk_core=debug")
        .await
        .expect("put");
    assert_eq!((code, body.trim()), (200, "info,vk_core=debug"));

    // A pod's life: create → Running → delete.
    let pods: Api<Pod> = Api::namespaced(ctx.client(), ns.name());
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "traced"},
        "spec": {
            "nodeName": node,
            "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
            "containers": [{"name": "c", "image": "busybox"}]
        }
    }))
    .expect("pod");
    let created = pods
        .create(&PostParams::default(), &pod)
        .await
        .expect("create");
    let uid = created.metadata.uid.clone().expect("uid");
    eventually("the pod is Running", || {
        let pods = pods.clone();
        async move { (pods.get_opt("traced").await.ok()??.status?.phase? == "Running").then_some(()) }
    })
    .await;
    pods.delete("traced", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("the pod is gone", || {
        let pods = pods.clone();
        async move { pods.get_opt("traced").await.ok()?.is_none().then_some(()) }
    })
    .await;

    // A kubelet API request continuing a caller's trace.
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let admin = KubeletClient::new(
        &std::fs::read_to_string(pki.ca().cert).expect("ca"),
        Some((
            &std::fs::read_to_string(pki.admin().cert).expect("cert"),
            &std::fs::read_to_string(pki.admin().key).expect("key"),
        )),
    )
    .expect("client");
    let traceparent = format!("00-{caller_trace}-{caller_span}-01");
    let (code, _) = admin
        .get_with_headers(kubelet_port, "/pods", &[("traceparent", &traceparent)])
        .await
        .expect("GET /pods");
    assert_eq!(code, 200);

    assert!(
        spans.lock().expect("spans").is_empty(),
        "spans left before the batch was due"
    );
    // SIGTERM: the process flushes the buffered spans and exits cleanly.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let status = child.wait().expect("wait");
    assert!(status.success(), "vk-mock exited with {status}");

    // The spans arrived with the documented structure.
    let (sync, create) = eventually("pod.sync with a provider.create_pod child", || {
        let spans = spans.lock().expect("spans").clone();
        let uid = uid.clone();
        async move {
            let create = spans.iter().find(|s| {
                s.name == "provider.create_pod"
                    && s.attributes.get("pod.name").map(String::as_str) == Some("traced")
            })?;
            let sync = spans
                .iter()
                .find(|s| s.span_id == create.parent && s.trace_id == create.trace_id)?;
            (sync.attributes.get("pod.uid") == Some(&uid)).then(|| (sync.clone(), create.clone()))
        }
    })
    .await;
    assert_eq!(sync.name, "pod.sync");
    assert_eq!(sync.service, "vk-mock");
    for (k, v) in [
        ("pod.namespace", ns.name()),
        ("pod.name", "traced"),
        ("node.name", node.as_str()),
        ("vk.operation", "create"),
        ("vk.result", "ok"),
    ] {
        assert_eq!(
            sync.attributes.get(k).map(String::as_str),
            Some(v),
            "{k} of {sync:?}"
        );
    }
    assert_eq!(create.attributes.get("pod.uid"), Some(&uid));
    eventually("pod.sync with a provider.delete_pod child", || {
        let spans = spans.lock().expect("spans").clone();
        async move {
            let delete = spans.iter().find(|s| {
                s.name == "provider.delete_pod"
                    && s.attributes.get("pod.name").map(String::as_str) == Some("traced")
            })?;
            let parent = spans.iter().find(|s| s.span_id == delete.parent)?;
            (parent.name == "pod.sync"
                && parent.attributes.get("vk.operation").map(String::as_str) == Some("delete"))
            .then_some(())
        }
    })
    .await;
    let request = eventually("a kubelet_api.request span in the caller's trace", || {
        let spans = spans.lock().expect("spans").clone();
        async move {
            spans
                .into_iter()
                .find(|s| s.name == "kubelet_api.request" && s.trace_id == caller_trace)
        }
    })
    .await;
    assert_eq!(request.parent, caller_span);
    assert_eq!(
        request.attributes.get("http.path").map(String::as_str),
        Some("/pods")
    );

    // After the filter change, DEBUG lines of vk_core appear, carrying the pod span's
    // fields.
    let after = lines(&log);
    let debug_in_sync = after
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| {
            v["level"] == "DEBUG"
                && v["spans"].as_array().is_some_and(|s| {
                    s.iter()
                        .any(|s| s["name"] == "pod.sync" && s["pod.name"] == "traced")
                })
        });
    assert!(
        debug_in_sync.is_some(),
        "no DEBUG line inside a pod.sync span:\n{}",
        after.join("\n")
    );

    ns.delete().await.expect("namespace clean-up");
}
