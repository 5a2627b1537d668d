//! vk-nomad's provider against the fake Nomad agent, without a Kubernetes control
//! plane: the Nomad side of every operation (registration, status through blocking
//! queries, deletion with purge, adoption, ACLs, throttling, logs, exec, node health).

mod fake;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use fake::{FakeNomad, FakeOptions};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use serde_json::json;
use tokio::io::AsyncWriteExt as _;
use vk_core::capabilities::{ContainerExec, ContainerLogs, ExecIo, LogOptions};
use vk_core::{NodeProvider, PodLifecycleHandler};
use vk_nomad::config::{Connection, Token, Watch};
use vk_nomad::{NomadConfig, NomadProvider, start_watch};
use vk_testkit::wait::eventually;

fn connection(fake: &FakeNomad, token: Option<&str>) -> Connection {
    NomadConfig::default()
        .connection_with(|name| match name {
            "NOMAD_ADDR" => Some(fake.address()),
            "NOMAD_TOKEN" => token.map(str::to_owned),
            _ => None,
        })
        .expect("connection")
}

fn provider(fake: &FakeNomad, token: Option<&str>) -> Arc<NomadProvider> {
    provider_watching(fake, token, Watch::Events)
}

fn provider_watching(fake: &FakeNomad, token: Option<&str>, watch: Watch) -> Arc<NomadProvider> {
    let config = NomadConfig {
        driver: vk_nomad::config::Driver::RawExec,
        watch,
        ..Default::default()
    };
    let p = Arc::new(
        NomadProvider::with_connection("vk-nomad-api", config, connection(fake, token))
            .expect("provider")
            .with_host_ip(Some("127.0.0.1".into())),
    );
    start_watch(&p);
    p
}

fn pod(name: &str, restart: &str, command: &[&str]) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"namespace": "ns1", "name": name, "uid": format!("uid-{name}")},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 2,
            "containers": [{"name": "main", "image": "busybox", "command": command}]
        }
    }))
    .expect("pod")
}

async fn status_where(
    p: &NomadProvider,
    name: &str,
    what: &str,
    check: impl Fn(&PodStatus) -> bool,
) -> PodStatus {
    eventually(what, || async {
        p.get_pod_status("ns1", name)
            .await
            .ok()
            .flatten()
            .filter(|s| check(s))
    })
    .await
}

fn phase(s: &PodStatus) -> &str {
    s.phase.as_deref().unwrap_or_default()
}

fn terminated_code(s: &PodStatus) -> Option<i32> {
    s.container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .terminated
        .as_ref()
        .map(|t| t.exit_code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_runs_status_arrives_by_blocking_queries_and_delete_purges() {
    let fake = FakeNomad::start(FakeOptions::default()).await;
    let p = provider_watching(&fake, None, Watch::BlockingQueries);
    let web = pod("web", "Always", &["sleep", "3600"]);
    p.create_pod(&web).await.expect("create");
    assert_eq!(fake.job_ids("default"), ["ns1_web"]);
    assert_eq!(
        fake.job("default", "ns1_web").expect("job")["Meta"]["vk_pod_uid"],
        "uid-web"
    );

    let running = status_where(&p, "web", "Running", |s| phase(s) == "Running").await;
    assert_eq!(running.pod_ip.as_deref(), Some("127.0.0.1"));
    assert!(running.container_statuses.expect("c")[0].ready);
    let blocking = fake
        .requests()
        .iter()
        .filter(|(_, path)| path.starts_with("/v1/allocations?") && path.contains("index="))
        .count();
    assert!(
        blocking > 0,
        "status followed with blocking queries: {:?}",
        fake.requests()
    );

    p.delete_pod(&web).await.expect("delete");
    eventually("the job purged once its task stopped", || async {
        fake.purged()
            .contains(&("default".to_owned(), "ns1_web".to_owned()))
            .then_some(())
    })
    .await;
    let deletes: Vec<bool> = fake
        .requests()
        .iter()
        .filter(|(m, path)| *m == http::Method::DELETE && path.starts_with("/v1/job/ns1_web"))
        .map(|(_, path)| path.contains("purge=true"))
        .collect();
    assert_eq!(
        deletes,
        [false, true],
        "stopped first (the grace period), purged after"
    );
    eventually("the pod gone from the provider", || async {
        p.get_pod("ns1", "web")
            .await
            .ok()
            .flatten()
            .is_none()
            .then_some(())
    })
    .await;
    let killed = fake
        .allocations("default", "ns1_web")
        .into_iter()
        .all(|a| a["ClientStatus"] == "complete");
    assert!(killed, "allocations end complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_pods_end_succeeded_or_failed_with_the_exit_code() {
    let fake = FakeNomad::start(FakeOptions::default()).await;
    let p = provider(&fake, None);
    p.create_pod(&pod("ok", "Never", &["sh", "-c", "exit 0"]))
        .await
        .expect("create ok");
    p.create_pod(&pod("bad", "Never", &["sh", "-c", "exit 3"]))
        .await
        .expect("create bad");
    let ok = status_where(&p, "ok", "Succeeded", |s| phase(s) == "Succeeded").await;
    assert_eq!(terminated_code(&ok), Some(0));
    let bad = status_where(&p, "bad", "Failed", |s| phase(s) == "Failed").await;
    assert_eq!(terminated_code(&bad), Some(3));
    assert_eq!(
        fake.job("default", "ns1_bad").expect("job")["Type"],
        "batch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_provider_adopts_its_jobs_without_registering_again() {
    let fake = FakeNomad::start(FakeOptions::default()).await;
    let first = provider(&fake, None);
    let web = pod("adopt", "Always", &["sleep", "3600"]);
    first.create_pod(&web).await.expect("create");
    status_where(&first, "adopt", "Running", |s| phase(s) == "Running").await;
    drop(first);

    let second = provider(&fake, None);
    assert_eq!(second.recover().await.expect("recover"), 1);
    let pods = second.get_pods().await.expect("pods");
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0].metadata.uid.as_deref(), Some("uid-adopt"));
    second.create_pod(&web).await.expect("create again");
    assert_eq!(
        fake.registrations("ns1_adopt"),
        1,
        "no duplicate registration"
    );
    assert_eq!(second.calls().adoptions.load(Ordering::Relaxed), 1);
    status_where(&second, "adopt", "Running after adoption", |s| {
        phase(s) == "Running"
    })
    .await;

    // Another node's provider does not take this node's jobs.
    let other = Arc::new(
        NomadProvider::with_connection(
            "another-node",
            NomadConfig::default(),
            connection(&fake, None),
        )
        .expect("p"),
    );
    assert_eq!(other.recover().await.expect("recover"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_refusals_name_the_token_and_throttling_is_retried() {
    let fake = FakeNomad::start(FakeOptions {
        token: Some("right".into()),
        ..Default::default()
    })
    .await;
    let wrong = provider(&fake, Some("wrong"));
    let err = wrong
        .create_pod(&pod("denied", "Always", &["sleep", "1"]))
        .await
        .expect_err("403");
    assert_eq!(err.kind(), vk_errdefs::ErrorKind::Forbidden);
    assert!(
        err.to_string().contains("403") && err.to_string().contains("NOMAD_TOKEN"),
        "{err}"
    );
    let anonymous = provider(&fake, None);
    let err = anonymous
        .create_pod(&pod("denied", "Always", &["sleep", "1"]))
        .await
        .expect_err("403");
    assert!(err.to_string().contains("Permission denied"), "{err}");
    assert!(
        !format!("{wrong:?}").contains("wrong"),
        "the token never shows in Debug output"
    );

    // A fresh agent and no watch loop: every request is the create's.
    let fake = FakeNomad::start(FakeOptions {
        token: Some("right".into()),
        ..Default::default()
    })
    .await;
    let config = NomadConfig {
        driver: vk_nomad::config::Driver::RawExec,
        ..Default::default()
    };
    let right =
        NomadProvider::with_connection("vk-nomad-api", config, connection(&fake, Some("right")))
            .expect("p");
    fake.faults.throttle.store(3, Ordering::Relaxed);
    right
        .create_pod(&pod("throttled", "Always", &["sleep", "3600"]))
        .await
        .expect("retried through 429s");
    assert_eq!(fake.registrations("ns1_throttled"), 1);
    assert_eq!(
        fake.faults.throttle.load(Ordering::Relaxed),
        0,
        "every 429 was served"
    );
    assert_eq!(
        right.client().http().counts().retries,
        3,
        "{:?} {:?}",
        right.client().http().counts(),
        fake.requests()
    );
    fake.faults.unavailable.store(4, Ordering::Relaxed);
    right
        .create_pod(&pod("stormy", "Always", &["sleep", "3600"]))
        .await
        .expect("retried through 503s");
    assert_eq!(fake.registrations("ns1_stormy"), 1);
    assert_eq!(
        right.client().http().counts().retries,
        7,
        "{:?}",
        right.client().http().counts()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmappable_pod_fails_once_without_a_job() {
    let fake = FakeNomad::start(FakeOptions::default()).await;
    let p = provider(&fake, None);
    let bad: Pod = serde_json::from_value(json!({
        "metadata": {"namespace": "ns1", "name": "nocmd", "uid": "u"},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]}
    }))
    .expect("pod");
    p.create_pod(&bad).await.expect("accepted, reported failed");
    let status = p
        .get_pod_status("ns1", "nocmd")
        .await
        .expect("status")
        .expect("known");
    assert_eq!(phase(&status), "Failed");
    assert_eq!(status.reason.as_deref(), Some("ProviderFailed"));
    assert!(
        status
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("has no command"),
        "{status:?}"
    );
    assert_eq!(fake.total_registrations(), 0);
    p.delete_pod(&bad).await.expect("delete");
    assert!(p.get_pod("ns1", "nocmd").await.expect("get").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_and_exec_reach_the_task() {
    let fake = FakeNomad::start(FakeOptions::default()).await;
    let p = provider(&fake, None);
    p.create_pod(&pod(
        "io",
        "Always",
        &[
            "sh",
            "-c",
            "echo one; echo two; echo oops >&2; exec sleep 3600",
        ],
    ))
    .await
    .expect("create");
    status_where(&p, "io", "Running", |s| phase(s) == "Running").await;
    let all = eventually("three lines logged", || async {
        let mut stream = p
            .container_logs("ns1", "io", "main", &LogOptions::default())
            .await
            .ok()?;
        let mut out = Vec::new();
        while let Some(Ok(chunk)) = stream.next().await {
            out.extend_from_slice(&chunk);
        }
        (out.len() == 13).then_some(out)
    })
    .await;
    assert_eq!(all, b"one\ntwo\noops\n", "stdout, then stderr");
    let tail = LogOptions {
        tail_lines: Some(1),
        ..Default::default()
    };
    let mut stream = p
        .container_logs("ns1", "io", "main", &tail)
        .await
        .expect("logs");
    assert_eq!(stream.next().await.expect("chunk").expect("ok"), "oops\n");

    let follow = LogOptions {
        follow: true,
        tail_lines: Some(0),
        ..Default::default()
    };
    let mut stream = p
        .container_logs("ns1", "io", "main", &follow)
        .await
        .expect("follow");
    let alloc = fake.allocations("default", "ns1_io")[0]["ID"]
        .as_str()
        .expect("id")
        .to_owned();
    fake.state.append_log(&alloc, "main", false, b"three\n");
    assert_eq!(stream.next().await.expect("chunk").expect("ok"), "three\n");

    let (mut stdin_w, stdin_r) = tokio::io::duplex(64);
    let (stdout_w, mut stdout_r) = tokio::io::duplex(1024);
    let io = ExecIo {
        stdin: Some(Box::new(stdin_r)),
        stdout: Some(Box::new(stdout_w)),
        stderr: None,
        tty: false,
        resize: None,
    };
    stdin_w.write_all(b"hello\n").await.expect("stdin");
    drop(stdin_w);
    let command = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        "read x; echo got $x; exit 4".to_owned(),
    ];
    let code = p
        .exec("ns1", "io", "main", command, io)
        .await
        .expect("exec");
    assert_eq!(code, 4);
    let mut out = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stdout_r, &mut out)
        .await
        .expect("read");
    assert_eq!(out, "got hello\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_follows_the_leader_and_capacity_the_client_nodes() {
    let fake = FakeNomad::start(FakeOptions::default()).await;
    let p = provider(&fake, None);
    p.ping().await.expect("leader");
    fake.faults.leaderless.store(true, Ordering::Relaxed);
    let err = p.ping().await.expect_err("no leader");
    assert!(err.to_string().contains("no leader"), "{err}");
    fake.faults.leaderless.store(false, Ordering::Relaxed);
    fake.go_away().await;
    let err = p.ping().await.expect_err("unreachable");
    assert_eq!(err.kind(), vk_errdefs::ErrorKind::Unavailable, "{err}");
    fake.come_back().await;
    p.ping().await.expect("back");

    let capacity = vk_nomad::provider::cluster_capacity(p.client(), &NomadConfig::default())
        .await
        .expect("capacity");
    assert_eq!(capacity["cpu"], "32000m");
    assert_eq!(capacity["memory"], "15803Mi");
    assert_eq!(capacity["pods"], "110");
    let _ = Token::new("x");
}

fn count(fake: &FakeNomad, what: impl Fn(&str) -> bool) -> usize {
    fake.requests()
        .iter()
        .filter(|(_, path)| what(path))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_arrives_through_the_event_stream() {
    let fake = FakeNomad::start(FakeOptions::default()).await;
    let p = provider(&fake, None);
    eventually("the event stream followed", || async {
        (count(&fake, |p| p.starts_with("/v1/event/stream?")) > 0).then_some(())
    })
    .await;
    let stream = fake
        .requests()
        .into_iter()
        .find(|(_, p)| p.starts_with("/v1/event/stream?"))
        .expect("request")
        .1;
    assert!(
        stream.contains("topic=Allocation") && stream.contains("topic=Job"),
        "{stream}"
    );
    p.create_pod(&pod("ev", "Never", &["sh", "-c", "exit 7"]))
        .await
        .expect("create");
    let failed = status_where(&p, "ev", "Failed", |s| phase(s) == "Failed").await;
    assert_eq!(terminated_code(&failed), Some(7));
    // Pushed by events: no blocking query, and no per-job read after the create's own.
    assert_eq!(
        count(&fake, |p| p.contains("/v1/allocations?")
            && p.contains("index=")),
        0
    );
    assert_eq!(
        count(&fake, |p| p.starts_with("/v1/job/ns1_ev/allocations")),
        1
    );

    // A purge behind the provider's back (JobDeregistered, job gone): the pod is lost.
    p.create_pod(&pod("lost", "Always", &["sleep", "3600"]))
        .await
        .expect("create");
    status_where(&p, "lost", "Running", |s| phase(s) == "Running").await;
    fake.purge_job("default", "ns1_lost");
    eventually("the lost pod dropped", || async {
        p.get_pod("ns1", "lost")
            .await
            .ok()
            .flatten()
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_event_broker_blocking_queries_take_over() {
    let fake = FakeNomad::start(FakeOptions::default()).await;
    fake.faults.no_event_broker.store(true, Ordering::Relaxed);
    let p = provider(&fake, None);
    p.create_pod(&pod("fallback", "Always", &["sleep", "3600"]))
        .await
        .expect("create");
    status_where(&p, "fallback", "Running", |s| phase(s) == "Running").await;
    assert!(
        count(&fake, |p| p.starts_with("/v1/event/stream?")) >= 1,
        "tried first"
    );
    assert!(
        count(&fake, |p| p.contains("/v1/allocations?")
            && p.contains("index="))
            >= 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_event_stream_reconnects_with_a_full_reconcile() {
    let fake = FakeNomad::start(FakeOptions::default()).await;
    let p = provider(&fake, None);
    p.create_pod(&pod("cut", "Never", &["sleep", "3600"]))
        .await
        .expect("create");
    status_where(&p, "cut", "Running", |s| phase(s) == "Running").await;
    let full_reads = count(&fake, |p| {
        p.starts_with("/v1/allocations?") && !p.contains("index=")
    });
    fake.go_away().await;
    // The task ends while vk-nomad cannot hear of it.
    let alloc = fake.allocations("default", "ns1_cut")[0]["ID"]
        .as_str()
        .expect("id")
        .to_owned();
    fake.state.stop_alloc(&alloc);
    fake.come_back().await;
    let done = status_where(&p, "cut", "terminated after the reconnect", |s| {
        vk_core::pod::status::reports_terminated(s)
    })
    .await;
    assert!(terminated_code(&done).is_some());
    assert!(
        count(&fake, |p| p.starts_with("/v1/allocations?")
            && !p.contains("index="))
            > full_reads
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_a_terminal_passes_its_size_and_one_output_stream() {
    let fake = FakeNomad::start(FakeOptions::default()).await;
    let p = provider(&fake, None);
    p.create_pod(&pod("tty", "Always", &["sleep", "3600"]))
        .await
        .expect("create");
    status_where(&p, "tty", "Running", |s| phase(s) == "Running").await;
    let (resize_tx, resize_rx) = tokio::sync::mpsc::channel(4);
    resize_tx
        .send(vk_core::capabilities::TermSize {
            width: 120,
            height: 40,
        })
        .await
        .expect("size");
    let (mut stdin_w, stdin_r) = tokio::io::duplex(64);
    let (stdout_w, mut stdout_r) = tokio::io::duplex(1024);
    let io = ExecIo {
        stdin: Some(Box::new(stdin_r)),
        stdout: Some(Box::new(stdout_w)),
        stderr: None,
        tty: true,
        resize: Some(resize_rx),
    };
    let command = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        "read x; echo out $x; echo err >&2".to_owned(),
    ];
    let session = tokio::spawn({
        let p = p.clone();
        async move { p.exec("ns1", "tty", "main", command, io).await }
    });
    // The size reaches Nomad before the command gets its input.
    eventually("the terminal size reached Nomad", || async {
        let sessions = fake.exec_sessions.lock().expect("lock").clone();
        sessions
            .first()
            .filter(|(tty, frames)| {
                *tty && frames
                    .iter()
                    .any(|f| f["tty_size"] == json!({"height": 40, "width": 120}))
            })
            .map(|_| ())
    })
    .await;
    stdin_w.write_all(b"x\n").await.expect("stdin");
    let code = session.await.expect("join").expect("exec");
    assert_eq!(code, 0);
    drop(resize_tx);
    let mut out = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stdout_r, &mut out)
        .await
        .expect("read");
    assert_eq!(out, "out x\nerr\n", "one stream with a terminal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_change_registers_the_job_again_and_a_label_change_does_not() {
    let fake = FakeNomad::start(FakeOptions::default()).await;
    let config = NomadConfig::default(); // docker
    let p = Arc::new(
        NomadProvider::with_connection("vk-nomad-api", config, connection(&fake, None))
            .expect("provider"),
    );
    start_watch(&p);
    let mut web: Pod = serde_json::from_value(json!({
        "metadata": {"namespace": "ns1", "name": "img", "uid": "uid-img"},
        "spec": {"containers": [{"name": "main", "image": "app:1"}]}
    }))
    .expect("pod");
    p.create_pod(&web).await.expect("create");
    status_where(&p, "img", "Running", |s| phase(s) == "Running").await;
    web.metadata.labels = Some([("tier".to_owned(), "web".to_owned())].into());
    p.update_pod(&web).await.expect("label update");
    assert_eq!(
        fake.registrations("ns1_img"),
        1,
        "labels do not touch the tasks"
    );
    web.spec.as_mut().expect("spec").containers[0].image = Some("app:2".into());
    p.update_pod(&web).await.expect("image update");
    assert_eq!(fake.registrations("ns1_img"), 2);
    assert_eq!(
        fake.job("default", "ns1_img").expect("job")["TaskGroups"][0]["Tasks"][0]["Config"]["image"],
        "app:2"
    );
    let status = status_where(&p, "img", "Running the new allocation", |s| {
        phase(s) == "Running" && fake.allocations("default", "ns1_img").len() == 2
    })
    .await;
    let new_alloc = fake
        .allocations("default", "ns1_img")
        .into_iter()
        .find(|a| a["DesiredStatus"] == "run")
        .expect("new allocation");
    let id = status.container_statuses.expect("c")[0]
        .container_id
        .clone()
        .expect("id");
    assert!(id.contains(new_alloc["ID"].as_str().expect("id")), "{id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_live_in_the_configured_nomad_namespace() {
    let fake = FakeNomad::start(FakeOptions {
        namespaces: vec!["k8s".into()],
        ..Default::default()
    })
    .await;
    let in_namespace = |namespace: &'static str| {
        let connection = NomadConfig::default()
            .connection_with(|name| match name {
                "NOMAD_ADDR" => Some(fake.address()),
                "NOMAD_NAMESPACE" => Some(namespace.to_owned()),
                _ => None,
            })
            .expect("connection");
        let config = NomadConfig {
            driver: vk_nomad::config::Driver::RawExec,
            ..Default::default()
        };
        Arc::new(
            NomadProvider::with_connection("vk-nomad-ns", config, connection).expect("provider"),
        )
    };
    let p = in_namespace("k8s");
    start_watch(&p);
    p.create_pod(&pod("nsd", "Always", &["sleep", "3600"]))
        .await
        .expect("create");
    assert_eq!(fake.job_ids("k8s"), ["ns1_nsd"]);
    assert!(fake.job_ids("default").is_empty());
    status_where(&p, "nsd", "Running", |s| phase(s) == "Running").await;

    let missing = in_namespace("nope");
    let err = missing
        .create_pod(&pod("x", "Always", &["sleep", "1"]))
        .await
        .expect_err("no such namespace");
    assert_eq!(err.kind(), vk_errdefs::ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("nope"), "{err}");
}
