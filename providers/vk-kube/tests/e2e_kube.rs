//! vk-kube between two real control planes, used through kubectl as a user would: the
//! home cluster (the shared local one) holds the virtual node; the remote cluster
//! (`cargo xtask cluster up --name remote`, started here if needed) runs the pods on a
//! real vk-process node. See `support` for the set-up.
//!
//! Timings are never asserted; waits poll with generous deadlines.

mod support;

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::Api;
use kube::api::DeleteParams;
use serde_json::json;
use support::{
    RemoteNamespace, apply, home_uid, kubectl, phase, pod_on, pod_where, remote, remote_pods,
    shared, shell,
};
use vk_testkit::TestContext;
use vk_testkit::wait::eventually;

async fn remote_client() -> kube::Client {
    remote()
        .await
        .cluster
        .client()
        .await
        .expect("remote client")
}

/// A home test namespace and the remote namespace of the same name (mapping `same`),
/// both deleted at the end.
async fn namespaces(ctx: &TestContext) -> (vk_testkit::TestNamespace, RemoteNamespace) {
    let ns = ctx.namespace("vk-kube").await.expect("namespace");
    let remote_ns = RemoteNamespace {
        kubeconfig: remote().await.kubeconfig.clone(),
        name: ns.name().to_owned(),
    };
    (ns, remote_ns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_runs_remotely_and_deletes_reach_the_remote_pods() {
    let s = shared().await;
    let r = remote().await;
    let ctx = TestContext::new().await.expect("home");
    let (ns, _remote_ns) = namespaces(&ctx).await;
    let ns = ns.name().to_owned();
    apply(
        &s.kubeconfig,
        &ns,
        &json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "nodeSelector": {"kubernetes.io/hostname": s.node},
                        "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
                        "containers": [{"name": "app", "image": "busybox", "command": ["sleep", "3600"]}]
                    }
                }
            }
        }),
    );
    let home_pods: Api<Pod> = Api::namespaced(ctx.client(), &ns);
    let home_uids: BTreeSet<String> = eventually("3 home pods Running on the vk-kube node", || {
        let home_pods = home_pods.clone();
        let node = s.node.clone();
        async move {
            let pods = home_pods.list(&Default::default()).await.ok()?.items;
            let running: BTreeSet<String> = pods
                .iter()
                .filter(|p| phase(p) == Some("Running"))
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&node))
                .filter_map(|p| p.metadata.uid.clone())
                .collect();
            (running.len() == 3 && pods.len() == 3).then_some(running)
        }
    })
    .await;

    // Remotely: exactly those three, Running on the vk-process node as real processes.
    let remote = remote_client().await;
    let remote_list = remote_pods(&remote, &ns, &s.node).await;
    let remote_uids: BTreeSet<String> = remote_list.iter().filter_map(home_uid).collect();
    assert_eq!(remote_uids, home_uids, "one remote pod per home pod");
    assert_eq!(remote_list.len(), 3);
    for p in &remote_list {
        assert_eq!(phase(p), Some("Running"), "{:?}", p.metadata.name);
        assert_eq!(
            p.spec.as_ref().and_then(|s| s.node_name.as_deref()),
            Some(r.node.as_str())
        );
        let id = p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c[0].container_id.clone())
            .unwrap_or_default();
        assert!(id.starts_with("process://"), "a real process: {id}");
    }
    // `kubectl get pods` in both clusters.
    for kubeconfig in [&s.kubeconfig, &r.kubeconfig] {
        let (code, out, err) = kubectl(
            kubeconfig,
            &ns,
            &[],
            &["get", "pods", "-o", "jsonpath={.items[*].status.phase}"],
            None,
        );
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            out.trim(),
            "Running Running Running",
            "{}",
            kubeconfig.display()
        );
    }
    // Home pods report the remote pod's IP and node IP.
    let one = home_pods
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .remove(0);
    let status = one.status.clone().expect("status");
    assert!(
        status.pod_ip.is_some() && status.host_ip.is_some(),
        "{status:?}"
    );

    // kubectl delete at home removes the remote pod; the replacement runs remotely.
    let victim = one.metadata.name.clone().expect("name");
    let victim_uid = one.metadata.uid.clone().expect("uid");
    let (code, _, err) = kubectl(&s.kubeconfig, &ns, &[], &["delete", "pod", &victim], None);
    assert_eq!(code, 0, "{err}");
    eventually(
        "the deleted pod's remote pod is gone and 3 others run",
        || {
            let remote = remote.clone();
            let ns = ns.clone();
            let node = s.node.clone();
            let victim_uid = victim_uid.clone();
            async move {
                let pods = remote_pods(&remote, &ns, &node).await;
                let gone = pods
                    .iter()
                    .all(|p| home_uid(p).as_deref() != Some(victim_uid.as_str()));
                let running = pods.iter().filter(|p| phase(p) == Some("Running")).count();
                (gone && running == 3 && pods.len() == 3).then_some(())
            }
        },
    )
    .await;
    let (code, _, err) = kubectl(
        &s.kubeconfig,
        &ns,
        &[],
        &["delete", "deployment", "web"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    eventually("no remote pod left after the deployment is deleted", || {
        let remote = remote.clone();
        let ns = ns.clone();
        let node = s.node.clone();
        async move {
            remote_pods(&remote, &ns, &node)
                .await
                .is_empty()
                .then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_maps_and_secrets_are_copied_updated_and_removed() {
    let s = shared().await;
    let ctx = TestContext::new().await.expect("home");
    let (ns, _remote_ns) = namespaces(&ctx).await;
    let ns = ns.name().to_owned();
    apply(
        &s.kubeconfig,
        &ns,
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
                "data": {"greeting": "hello"}}),
    );
    apply(
        &s.kubeconfig,
        &ns,
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
                "stringData": {"password": "s3cret"}}),
    );
    // vk-process has no mount namespace: mounts are under $VK_POD_ROOT.
    let mut spec = json!({
        "containers": [shell("echo ip=$POD_IP; echo env=$GREETING; echo file=$(cat $VK_POD_ROOT/cfg/greeting); echo secret=$(cat $VK_POD_ROOT/sec/password); exec sleep 3600")],
        "volumes": [
            {"name": "cfg", "configMap": {"name": "settings"}},
            {"name": "sec", "secret": {"secretName": "creds"}}
        ]
    });
    spec["containers"][0]["env"] = json!([{"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}}},
               {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]);
    spec["containers"][0]["volumeMounts"] =
        json!([{"name": "cfg", "mountPath": "/cfg"}, {"name": "sec", "mountPath": "/sec"}]);
    apply(&s.kubeconfig, &ns, &pod_on(&s.node, "uses-deps", spec));
    let home_ip = pod_where(&s.kubeconfig, &ns, "uses-deps", "Running", |p| {
        (phase(p) == Some("Running")).then(|| p.status.as_ref()?.pod_ip.clone())?
    })
    .await;

    let remote = remote_client().await;
    let cm_name = vk_kube::naming::dependency_name(&ns, "settings");
    let secret_name = vk_kube::naming::dependency_name(&ns, "creds");
    let cms: Api<ConfigMap> = Api::namespaced(remote.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(remote.clone(), &ns);
    let cm = cms.get(&cm_name).await.expect("the configmap was copied");
    assert_eq!(cm.data.expect("data")["greeting"], "hello");
    let secret = secrets
        .get(&secret_name)
        .await
        .expect("the secret was copied");
    assert_eq!(secret.data.expect("data")["password"].0, b"s3cret");

    // What the process saw (through kubectl logs on the home pod).
    let logs = eventually("the pod's output", || {
        let (code, out, _) = kubectl(&s.kubeconfig, &ns, &[], &["logs", "uses-deps"], None);
        async move { (code == 0 && out.contains("secret=")).then_some(out) }
    })
    .await;
    assert!(logs.contains("env=hello"), "{logs}");
    // The IP is the remote pod's, filled in by the remote kubelet.
    assert!(logs.contains(&format!("ip={home_ip}\n")), "{logs}");
    assert!(logs.contains("file=hello"), "{logs}");
    assert!(logs.contains("secret=s3cret"), "{logs}");

    // An update at home reaches the copy.
    let (code, _, err) = kubectl(
        &s.kubeconfig,
        &ns,
        &[],
        &[
            "patch",
            "configmap",
            "settings",
            "--type=merge",
            "-p",
            r#"{"data":{"greeting":"bonjour"}}"#,
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    eventually("the remote copy is updated", || {
        let cms = cms.clone();
        let cm_name = cm_name.clone();
        async move {
            let cm = cms.get(&cm_name).await.ok()?;
            (cm.data?.get("greeting")? == "bonjour").then_some(())
        }
    })
    .await;

    // No pod references them any more: the copies go.
    let (code, _, err) = kubectl(
        &s.kubeconfig,
        &ns,
        &[],
        &["delete", "pod", "uses-deps"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    eventually("the copies are removed", || {
        let cms = cms.clone();
        let secrets = secrets.clone();
        let (cm_name, secret_name) = (cm_name.clone(), secret_name.clone());
        async move {
            let cm = cms.get_opt(&cm_name).await.ok()?;
            let secret = secrets.get_opt(&secret_name).await.ok()?;
            (cm.is_none() && secret.is_none()).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_exec_and_exit_codes_through_the_home_cluster() {
    let s = shared().await;
    let ctx = TestContext::new().await.expect("home");
    let (ns, _remote_ns) = namespaces(&ctx).await;
    let ns = ns.name().to_owned();
    apply(
        &s.kubeconfig,
        &ns,
        &pod_on(
            &s.node,
            "talker",
            json!({"containers": [shell("i=0; while true; do echo line-$i; i=$((i+1)); sleep 1; done")]}),
        ),
    );
    pod_where(&s.kubeconfig, &ns, "talker", "Running", |p| {
        (phase(p) == Some("Running")).then_some(())
    })
    .await;

    // logs with options: --tail and --limit-bytes are applied remotely.
    let out = eventually("three lines logged", || {
        let (code, out, _) = kubectl(&s.kubeconfig, &ns, &[], &["logs", "talker"], None);
        async move { (code == 0 && out.lines().count() >= 3).then_some(out) }
    })
    .await;
    assert!(out.starts_with("line-0\n"), "{out}");
    let (code, tail, err) = kubectl(
        &s.kubeconfig,
        &ns,
        &[],
        &["logs", "talker", "--tail=1"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(tail.lines().count(), 1, "{tail}");
    let (code, limited, err) = kubectl(
        &s.kubeconfig,
        &ns,
        &[],
        &["logs", "talker", "--limit-bytes=3"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(limited, "lin");
    let (code, stamped, err) = kubectl(
        &s.kubeconfig,
        &ns,
        &[],
        &["logs", "talker", "--timestamps", "--tail=1"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        stamped.split(' ').next().is_some_and(|t| t.contains('T')),
        "{stamped}"
    );

    // logs -f keeps delivering new lines.
    let mut follow = std::process::Command::new(vk_testkit::cluster::kubectl())
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args(["-n", &ns, "logs", "-f", "talker", "--tail=1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl logs -f");
    let stdout = follow.stdout.take().expect("stdout");
    let lines = tokio::task::spawn_blocking(move || {
        use std::io::BufRead as _;
        std::io::BufReader::new(stdout)
            .lines()
            .take(3)
            .collect::<Result<Vec<_>, _>>()
    });
    let lines = vk_testkit::wait::within("three followed lines", lines)
        .await
        .expect("join")
        .expect("read");
    let _ = follow.kill();
    let _ = follow.wait();
    let numbers: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("line-")?.parse().ok())
        .collect();
    assert_eq!(numbers.len(), 3, "{lines:?}");
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{lines:?}");

    // exec: exit codes (WebSocket and SPDY from kubectl), stdin, stdout and stderr.
    for env in [
        &[][..],
        &[("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")][..],
    ] {
        let (code, _, _) = kubectl(
            &s.kubeconfig,
            &ns,
            env,
            &["exec", "talker", "--", "sh", "-c", "exit 7"],
            None,
        );
        assert_eq!(code, 7, "exit code relayed ({env:?})");
        let (code, out, err) = kubectl(
            &s.kubeconfig,
            &ns,
            env,
            &[
                "exec",
                "-i",
                "talker",
                "--",
                "sh",
                "-c",
                "cat; echo oops >&2",
            ],
            Some("hello from stdin\n"),
        );
        assert_eq!(code, 0, "{err}");
        assert_eq!(out, "hello from stdin\n");
        assert!(err.contains("oops"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_exec_with_a_terminal() {
    let s = shared().await;
    let ctx = TestContext::new().await.expect("home");
    let (ns, _remote_ns) = namespaces(&ctx).await;
    let ns = ns.name().to_owned();
    apply(
        &s.kubeconfig,
        &ns,
        &pod_on(
            &s.node,
            "tty",
            json!({"containers": [shell("exec sleep 3600")]}),
        ),
    );
    pod_where(&s.kubeconfig, &ns, "tty", "Running", |p| {
        (phase(p) == Some("Running")).then_some(())
    })
    .await;
    // `script` gives kubectl a pseudo-terminal; the shell inside sees one too.
    let command = format!(
        "'{}' --kubeconfig '{}' -n {ns} exec -it tty -- sh -c 'test -t 0 && echo has-a-tty; exit 4'",
        vk_testkit::cluster::kubectl().display(),
        s.kubeconfig.display()
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .stdin(std::process::Stdio::null())
            .output()
    });
    let out = vk_testkit::wait::within("kubectl exec -it", out)
        .await
        .expect("join")
        .expect("script runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("has-a-tty"), "{text}");
    assert_eq!(out.status.code(), Some(4), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_pod_deleted_behind_the_providers_back_fails_the_home_pod() {
    let s = shared().await;
    let ctx = TestContext::new().await.expect("home");
    let (ns, _remote_ns) = namespaces(&ctx).await;
    let ns = ns.name().to_owned();
    apply(
        &s.kubeconfig,
        &ns,
        &pod_on(
            &s.node,
            "victim",
            json!({"containers": [shell("exec sleep 3600")]}),
        ),
    );
    pod_where(&s.kubeconfig, &ns, "victim", "Running", |p| {
        (phase(p) == Some("Running")).then_some(())
    })
    .await;
    let remote = remote_client().await;
    let pods = remote_pods(&remote, &ns, &s.node).await;
    assert_eq!(pods.len(), 1);
    let name = pods[0].metadata.name.clone().expect("name");
    Api::<Pod>::namespaced(remote.clone(), &ns)
        .delete(&name, &DeleteParams::default().grace_period(0))
        .await
        .expect("delete the remote pod");
    let pod = pod_where(&s.kubeconfig, &ns, "victim", "Failed", |p| {
        (phase(p) == Some("Failed")).then(|| p.clone())
    })
    .await;
    assert!(
        pod.status.as_ref().and_then(|s| s.reason.clone()).is_some(),
        "the home pod says why: {:?}",
        pod.status
    );
    // It is not re-created remotely behind the home controller's back.
    assert!(remote_pods(&remote, &ns, &s.node).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_node_advertises_the_remote_capacity_and_cluster() {
    let s = shared().await;
    let ctx = TestContext::new().await.expect("home");
    let node = vk_testkit::conformance::harness::wait_node_ready(&ctx.client(), &s.node).await;
    let labels = node.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels[vk_kube::naming::CLUSTER_LABEL], "remote");
    let capacity = node
        .status
        .as_ref()
        .and_then(|s| s.capacity.clone())
        .unwrap_or_default();
    let pods: u64 = capacity
        .get("pods")
        .and_then(|q| q.0.parse().ok())
        .unwrap_or(0);
    assert!(
        pods >= 110,
        "at least the remote vk-process node's pods: {capacity:?}"
    );
    assert!(
        capacity.contains_key("cpu") && capacity.contains_key("memory"),
        "{capacity:?}"
    );
}

/// One HTTP GET of `path` on 127.0.0.1:`port`; the whole response (the server closes
/// the connection after it), or `None` when it does not come within 20 s.
async fn http_get(port: u16, path: &str) -> Option<String> {
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        http_get_once(port, path),
    )
    .await
    .ok()
    .flatten()
}

async fn http_get_once(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.ok()?;
    Some(String::from_utf8_lossy(&response).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_reaches_an_http_server_in_the_remote_pod() {
    let s = shared().await;
    let ctx = TestContext::new().await.expect("home");
    let (ns, _remote_ns) = namespaces(&ctx).await;
    let ns = ns.name().to_owned();
    // vk-process runs on the host network: the server listens on a free host port.
    let port = vk_testkit::free_port().expect("port");
    apply(
        &s.kubeconfig,
        &ns,
        &pod_on(
            &s.node,
            "web",
            json!({"containers": [shell(&format!(
                "cd \"$VK_POD_ROOT\" && echo remote-hello > hello.txt && \
                 exec python3 -m http.server {port} --bind 127.0.0.1"
            ))]}),
        ),
    );
    pod_where(&s.kubeconfig, &ns, "web", "Running", |p| {
        (phase(p) == Some("Running")).then_some(())
    })
    .await;
    // kubectl's WebSocket tunnel, then SPDY; both relayed by vk-kube over kube's
    // WebSocket port-forward to the remote API server and node.
    for env in [&[][..], &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")][..]] {
        let local = vk_testkit::free_port().expect("port");
        let mut forward = std::process::Command::new(vk_testkit::cluster::kubectl())
            .arg("--kubeconfig")
            .arg(&s.kubeconfig)
            .args([
                "-n",
                &ns,
                "port-forward",
                "pod/web",
                &format!("{local}:{port}"),
            ])
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("kubectl port-forward");
        let body = eventually(
            &format!("GET through port-forward ({env:?})"),
            || async move {
                http_get(local, "/hello.txt")
                    .await
                    .filter(|r| r.starts_with("HTTP/1.0 200"))
            },
        )
        .await;
        let _ = forward.kill();
        let _ = forward.wait();
        assert!(body.contains("remote-hello"), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_summary_names_home_pods() {
    let s = shared().await;
    let ctx = TestContext::new().await.expect("home");
    let (ns, _remote_ns) = namespaces(&ctx).await;
    let ns = ns.name().to_owned();
    apply(
        &s.kubeconfig,
        &ns,
        &pod_on(
            &s.node,
            "measured",
            json!({"containers": [shell("exec sleep 3600")]}),
        ),
    );
    let uid = pod_where(&s.kubeconfig, &ns, "measured", "Running", |p| {
        (phase(p) == Some("Running")).then(|| p.metadata.uid.clone())?
    })
    .await;
    // Through the home API server's node proxy, as metrics-server asks.
    let path = format!("/api/v1/nodes/{}/proxy/stats/summary", s.node);
    let summary = eventually("the pod in the node's stats summary", || {
        let (code, out, _) = kubectl(&s.kubeconfig, &ns, &[], &["get", "--raw", &path], None);
        let summary = (code == 0)
            .then(|| serde_json::from_str::<serde_json::Value>(&out).ok())
            .flatten()
            .filter(|v| {
                v["pods"]
                    .as_array()
                    .is_some_and(|pods| pods.iter().any(|p| p["podRef"]["name"] == "measured"))
            });
        async move { summary }
    })
    .await;
    assert_eq!(summary["node"]["nodeName"], s.node.as_str());
    let pod = summary["pods"]
        .as_array()
        .and_then(|pods| pods.iter().find(|p| p["podRef"]["name"] == "measured"))
        .expect("the pod");
    assert_eq!(pod["podRef"]["namespace"], ns.as_str());
    assert_eq!(
        pod["podRef"]["uid"],
        uid.as_str(),
        "the home UID, not the remote one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_relays_stdin_and_output_of_the_remote_process() {
    let s = shared().await;
    let ctx = TestContext::new().await.expect("home");
    let (ns, _remote_ns) = namespaces(&ctx).await;
    let ns = ns.name().to_owned();
    let mut container =
        shell("while read l; do echo got-$l; if [ \"$l\" = quit ]; then exit 3; fi; done");
    container["stdin"] = true.into();
    apply(
        &s.kubeconfig,
        &ns,
        &pod_on(
            &s.node,
            "attachee",
            json!({"restartPolicy": "Never", "containers": [container]}),
        ),
    );
    pod_where(&s.kubeconfig, &ns, "attachee", "Running", |p| {
        (phase(p) == Some("Running")).then_some(())
    })
    .await;
    let (kubeconfig, namespace) = (s.kubeconfig.clone(), ns.clone());
    let out = tokio::task::spawn_blocking(move || {
        kubectl(
            &kubeconfig,
            &namespace,
            &[],
            &["attach", "-i", "attachee"],
            Some("hello\nquit\n"),
        )
    });
    let (_, stdout, stderr) = vk_testkit::wait::within("kubectl attach -i", out)
        .await
        .expect("join");
    assert!(stdout.contains("got-hello"), "{stdout} / {stderr}");
    pod_where(
        &s.kubeconfig,
        &ns,
        "attachee",
        "Failed with exit code 3",
        |p| {
            let code = p
                .status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .first()?
                .state
                .as_ref()?
                .terminated
                .as_ref()?
                .exit_code;
            (phase(p) == Some("Failed") && code == 3).then_some(())
        },
    )
    .await;
}
