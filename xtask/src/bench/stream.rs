//! The `stream` scenario: the kubelet API's streaming paths on a vk-process node,
//! through the real API server and kubectl, as a user would use them.
//!
//! The pod runs a real TCP server ([`transfer::SERVER`]). Measured in one run:
//! * `kubectl exec -- echo` round trips over WebSocket and SPDY, against the same
//!   number of `kubectl get --raw` round trips through the API server's service proxy to
//!   the same server (kubectl's start, TLS to the API server and one proxied request:
//!   the API server's own overhead, without the node);
//! * 256 MB fetched over `kubectl port-forward` (WebSocket and SPDY), against the same
//!   bytes over loopback TCP straight from the server (the physical limit) and through
//!   `kubectl proxy` → the API server's service proxy → the server (the API server
//!   proxy's own throughput: the same kubectl relay and API server, no node, no stream
//!   framing);
//! * `kubectl logs -f` of a container printing lines as fast as it can;
//! * the node's RSS with 50 idle exec sessions and 50 idle port-forwards open.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::future::try_join_all;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::TcpStream;

use super::agent::Agent;
use super::kubectl::{Kubectl, Protocol, Relay};
use super::process_node;
use super::report::{ScenarioResult, TargetCheck};
use super::scenarios::namespace;
use super::stats::{LatencySummary, summarize};
use super::transfer::{self, Transfer};
use super::workload::{Observer, create_all};
use super::{Args, Env};

const NODE: &str = "vk-bench-stream";
const SERVER_POD: &str = "server";
const LOGGER_POD: &str = "logger";
const SERVICE: &str = "bench-stream";
/// The pod the service proxy's endpoint names, and the Node it is bound to (no kubelet).
const PROXY_TARGET: &str = "proxy-target";
const PROXY_NODE: &str = "vk-bench-stream-proxy";
const KB: f64 = 1024.0;
const MB: f64 = 1024.0 * 1024.0;
/// Rounds of each transfer (the median is reported).
const ROUNDS: usize = 3;

/// Settings of the stream scenario.
struct Plan {
    exec_runs: usize,
    transfer_bytes: u64,
    log_lines: u64,
    sessions: usize,
}

/// The `stream` scenario (see the module docs).
pub async fn stream(env: &Env, args: &Args) -> anyhow::Result<ScenarioResult> {
    let plan = Plan {
        exec_runs: args.exec_runs,
        transfer_bytes: args.transfer_mb << 20,
        log_lines: args.log_lines,
        sessions: args.sessions,
    };
    eprintln!("==> stream: exec, port-forward, logs -f and idle sessions on a vk-process node");
    let client = &env.client;
    let ns = namespace(client, "stream").await?;
    let mut agent = process_node::start(env, args, NODE, 10).await?;
    let observer = Observer::start(client.clone(), &ns).await?;
    let result = measure(env, &mut agent, &observer, &ns, &plan).await;
    drop_proxy_target(env, &ns).await;
    process_node::tear_down(env, args, &mut agent, &observer, &ns, NODE).await;
    let mut r = result?;
    r.settings = json!({
        "exec_runs": plan.exec_runs, "transfer_mb": args.transfer_mb, "transfer_rounds": ROUNDS,
        "log_lines": plan.log_lines, "idle_sessions": plan.sessions,
        "node": "vk-process (release)", "kubectl": kubectl_version().await,
    });
    Ok(r)
}

async fn kubectl_version() -> String {
    let out = tokio::process::Command::new(vk_testkit::cluster::kubectl())
        .args(["version", "--client", "-o", "json"])
        .output()
        .await;
    out.ok()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .and_then(|v| v["clientVersion"]["gitVersion"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The 1-minute load average now.
pub(crate) fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The real path of `python3` (not a version manager's wrapper script).
fn python() -> anyhow::Result<String> {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .context("running python3")?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if path.is_empty() {
        bail!("python3 did not print its path");
    }
    Ok(path)
}

/// An IPv4 address of this host that is not loopback (the API server refuses to proxy
/// to loopback), if there is one: the source address of the default route, else the
/// first of `hostname -I`.
fn host_ip() -> Option<std::net::IpAddr> {
    let routed = std::net::UdpSocket::bind("0.0.0.0:0").ok().and_then(|s| {
        // No packet is sent: connecting a UDP socket only picks the route.
        s.connect("8.8.8.8:53").ok()?;
        Some(s.local_addr().ok()?.ip())
    });
    let listed = || {
        let out = std::process::Command::new("hostname")
            .arg("-I")
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|a| a.parse::<std::net::IpAddr>().ok())
            .find(std::net::IpAddr::is_ipv4)
    };
    routed
        .or_else(listed)
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
}

/// Creates the server and logger pods and waits until they run and the server listens.
async fn start_pods(
    env: &Env,
    observer: &Observer,
    ns: &str,
    port: u16,
    lines: u64,
) -> anyhow::Result<()> {
    let python = python()?;
    let port_arg = port.to_string();
    let script = format!("sleep 3; seq 1 {lines}; exec sleep 86400");
    let pods = vec![
        process_node::pod(
            SERVER_POD,
            NODE,
            &[&python, "-c", transfer::SERVER, &port_arg],
        ),
        process_node::pod(LOGGER_POD, NODE, &["/bin/sh", "-c", &script]),
    ];
    create_all(&env.client, ns, pods, 2, false).await?;
    observer
        .wait_running(
            "stream pods",
            &[SERVER_POD.to_owned(), LOGGER_POD.to_owned()],
            Duration::from_secs(120),
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if Instant::now() > deadline {
            bail!("the server pod does not listen on port {port}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// A Service without selector and its Endpoints at `ip:port`: the API server's service
/// proxy to the server pod. The API server only proxies to an address that belongs to
/// the pod the endpoint names, and vk-process pods have the node's loopback address: the
/// endpoint names a pod bound to a Node object no kubelet runs, whose status the bench
/// sets (as the ceiling scenario does) with the host's address, where the server pod's
/// process also listens.
async fn proxy_service(env: &Env, ns: &str, ip: std::net::IpAddr, port: u16) -> anyhow::Result<()> {
    let pp = PostParams::default();
    let nodes: Api<Node> = Api::all(env.client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": PROXY_NODE}}))?;
    if let Err(e) = nodes.create(&pp, &node).await
        && !matches!(&e, kube::Error::Api(r) if r.code == 409)
    {
        return Err(e.into());
    }
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), ns);
    let target: Pod = serde_json::from_value(json!({
        "metadata": {"name": PROXY_TARGET},
        "spec": {"nodeName": PROXY_NODE, "tolerations": [{"operator": "Exists"}],
                 "containers": [{"name": "c", "image": "none"}]}
    }))?;
    pods.create(&pp, &target).await?;
    let status = json!({"status": {"phase": "Running", "podIP": ip.to_string(),
        "podIPs": [{"ip": ip.to_string()}], "hostIP": ip.to_string()}});
    pods.patch_status(PROXY_TARGET, &PatchParams::default(), &Patch::Merge(status))
        .await?;
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": SERVICE},
        "spec": {"ports": [{"name": "data", "port": port, "targetPort": port}]}
    }))?;
    Api::<Service>::namespaced(env.client.clone(), ns)
        .create(&pp, &svc)
        .await?;
    let ep: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": SERVICE},
        "subsets": [{
            "addresses": [{"ip": ip.to_string(),
                           "targetRef": {"kind": "Pod", "namespace": ns, "name": PROXY_TARGET}}],
            "ports": [{"name": "data", "port": port}]
        }]
    }))?;
    Api::<Endpoints>::namespaced(env.client.clone(), ns)
        .create(&pp, &ep)
        .await?;
    Ok(())
}

/// Force-deletes the proxy target pod (no kubelet would finish a graceful deletion) and
/// its Node object.
async fn drop_proxy_target(env: &Env, ns: &str) {
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), ns);
    let _ = pods
        .delete(PROXY_TARGET, &DeleteParams::default().grace_period(0))
        .await;
    let _ = Api::<Node>::all(env.client.clone())
        .delete(PROXY_NODE, &DeleteParams::default())
        .await;
}

/// The service proxy path to `<bytes>` from the server.
fn proxy_path(ns: &str, bytes: u64) -> String {
    format!("/api/v1/namespaces/{ns}/services/{SERVICE}:data/proxy/{bytes}")
}

async fn measure(
    env: &Env,
    agent: &mut Agent,
    observer: &Observer,
    ns: &str,
    plan: &Plan,
) -> anyhow::Result<ScenarioResult> {
    let port = vk_testkit::free_port()?;
    let load_start = load_average();
    let cpu0 = agent.sample();
    start_pods(env, observer, ns, port, plan.log_lines).await?;
    let k = Kubectl::new(env.kubeconfig.clone(), ns);
    let ip = host_ip();
    if let Some(ip) = ip {
        proxy_service(env, ns, ip, port).await?;
    }
    let mut r = ScenarioResult::new("stream", json!({}));
    r.metric("load_average_1m_at_start", load_start);

    // kubectl logs -f first: the logger starts printing 3 s after it starts.
    let logs = follow_logs(&k, plan.log_lines).await?;
    eprintln!(
        "    stream: logs -f {:.0} lines/s (the container wrote {:.0} lines/s)",
        logs.lines_per_second, logs.writer_lines_per_second
    );

    let baseline = if ip.is_some() {
        let raw = proxy_path(ns, 3);
        Some(
            round_trips(plan.exec_runs, || {
                let k = k.clone();
                let raw = raw.clone();
                async move {
                    let out = k.run(Protocol::WebSocket, &["get", "--raw", &raw]).await?;
                    check_output(&out, "xxx")
                }
            })
            .await?,
        )
    } else {
        None
    };
    let mut exec = Vec::new();
    for p in Protocol::ALL {
        let lat = round_trips(plan.exec_runs, || {
            let k = k.clone();
            async move {
                let out = k
                    .run(p, &["exec", SERVER_POD, "--", "echo", "bench"])
                    .await?;
                check_output(&out, "bench")
            }
        })
        .await?;
        eprintln!(
            "    stream: exec over {}: p50 {:.0} ms, p99 {:.0} ms",
            p.name(),
            lat.p50_ms,
            lat.p99_ms
        );
        exec.push((p, lat));
    }

    let transfers = transfers(&k, ns, port, ip.is_some(), plan.transfer_bytes).await?;
    let cpu1 = agent.sample();
    let memory = session_memory(&k, agent, port, plan.sessions).await?;

    if let Some(b) = baseline {
        r.metric("api_server_round_trip_ms", b);
    }
    for (p, lat) in &exec {
        r.metric(&format!("exec_echo_ms_{}", p.name()), lat);
    }
    for (path, t) in &transfers {
        r.metric(&format!("transfer_mb_per_second_{path}"), t.mb_per_second());
        r.metric(
            &format!("first_byte_ms_{path}"),
            t.first_byte.as_secs_f64() * 1000.0,
        );
    }
    r.metric("logs_follow_lines_per_second", logs.lines_per_second);
    r.metric("logs_writer_lines_per_second", logs.writer_lines_per_second);
    r.metric("logs_lines_received", logs.received);
    for m in &memory {
        r.metric(
            &format!("rss_mb_idle_{}_{}", m.kind, m.protocol.name()),
            json!({"before": m.before as f64 / MB, "during": m.during as f64 / MB}),
        );
        r.metric(
            &format!("kb_per_idle_{}_{}", m.kind, m.protocol.name()),
            m.per_session_kb(),
        );
    }
    r.metric(
        "node_cpu_seconds_logs_exec_transfers",
        cpu1.cpu_seconds - cpu0.cpu_seconds,
    );
    r.metric(
        "node_peak_rss_mb_logs_exec_transfers",
        cpu1.peak_rss_bytes as f64 / MB,
    );
    r.metric("load_average_1m_at_end", load_average());
    targets(&mut r, baseline, &exec, &transfers, &memory);
    if ip.is_none() {
        r.notes.push(
            "no non-loopback address on this host: the API server proxy baselines were not measured"
                .into(),
        );
    }
    r.notes.push(
        "API server baselines: `kubectl get --raw` and `kubectl proxy` through the API server's \
         service proxy to the same pod server (Endpoints at the host's address) — the same \
         kubectl, TLS and API server, without the node's kubelet API or stream framing; \
         first-byte latency is from the connect to the local port (for port-forward: a new \
         stream on the open session) to the first response byte"
            .into(),
    );
    Ok(r)
}

fn check_output(out: &str, want: &str) -> anyhow::Result<()> {
    if out.trim() != want {
        bail!("expected {want:?}, kubectl printed {out:?}");
    }
    Ok(())
}

/// Times `runs` sequential runs of `f` (after 5 untimed warm-up runs).
async fn round_trips<F, Fut>(runs: usize, f: F) -> anyhow::Result<LatencySummary>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    for _ in 0..5 {
        f().await?;
    }
    let mut lat = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f().await?;
        lat.push(t.elapsed());
    }
    Ok(summarize(&lat))
}

/// `ROUNDS` transfers of `bytes` over each path; the round with the median throughput
/// of each, by path name (`loopback`, `api_server_proxy`, `port_forward_<protocol>`).
async fn transfers(
    k: &Kubectl,
    ns: &str,
    port: u16,
    with_proxy: bool,
    bytes: u64,
) -> anyhow::Result<Vec<(String, Transfer)>> {
    let mut paths: Vec<(String, u16, String)> =
        vec![("loopback".into(), port, format!("/{bytes}"))];
    let mut relays: Vec<Relay> = Vec::new();
    if with_proxy {
        let proxy = k.relay(Protocol::WebSocket, &["proxy", "--port=0"]).await?;
        paths.push(("api_server_proxy".into(), proxy.port, proxy_path(ns, bytes)));
        relays.push(proxy);
    }
    let target = format!(":{port}");
    for p in Protocol::ALL {
        let pf = k
            .relay(p, &["port-forward", &format!("pod/{SERVER_POD}"), &target])
            .await?;
        paths.push((
            format!("port_forward_{}", p.name()),
            pf.port,
            format!("/{bytes}"),
        ));
        relays.push(pf);
    }
    let mut seen: HashMap<String, Vec<Transfer>> = HashMap::new();
    for round in 0..ROUNDS {
        for (name, local, path) in &paths {
            let t = transfer::get(*local, path)
                .await
                .with_context(|| format!("{name}: transfer"))?;
            if t.body != bytes {
                bail!("{name}: {} of {bytes} bytes", t.body);
            }
            eprintln!(
                "    stream: round {round}: {name}: {:.0} MB/s, first byte {:.1} ms",
                t.mb_per_second(),
                t.first_byte.as_secs_f64() * 1000.0
            );
            seen.entry(name.clone()).or_default().push(t);
        }
    }
    drop(relays);
    Ok(paths
        .iter()
        .filter_map(|(name, _, _)| {
            let mut ts = seen.remove(name)?;
            ts.sort_by(|a, b| a.mb_per_second().total_cmp(&b.mb_per_second()));
            Some((name.clone(), ts[ts.len() / 2]))
        })
        .collect())
}

/// What `kubectl logs -f` of the logger showed.
struct LogRun {
    received: u64,
    lines_per_second: f64,
    writer_lines_per_second: f64,
}

/// Follows the logger's log (`kubectl logs -f --timestamps`) until its last line; lines
/// per second from the first line received to the last, and the container's own rate
/// from the lines' timestamps.
async fn follow_logs(k: &Kubectl, lines: u64) -> anyhow::Result<LogRun> {
    let mut child = k
        .command(
            Protocol::WebSocket,
            &["logs", "-f", "--timestamps", LOGGER_POD],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("kubectl's stdout")?;
    let mut reader = BufReader::new(stdout).lines();
    let mut received = 0u64;
    let mut first: Option<(Instant, String)> = None;
    let mut last: Option<(Instant, String)> = None;
    let read = async {
        while let Some(line) = reader.next_line().await? {
            let now = Instant::now();
            received += 1;
            let (stamp, text) = line.split_once(' ').unwrap_or(("", &line));
            if first.is_none() {
                first = Some((now, stamp.to_owned()));
            }
            if text.trim().parse::<u64>().ok() == Some(lines) {
                last = Some((now, stamp.to_owned()));
                break;
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(300), read)
        .await
        .context("kubectl logs -f did not see the last line within 300 s")??;
    drop(child);
    let (Some((t0, s0)), Some((t1, s1))) = (first, last) else {
        bail!("kubectl logs -f ended after {received} lines");
    };
    let stamp = |s: &str| s.parse::<k8s_openapi::jiff::Timestamp>().ok();
    let writer_secs = match (stamp(&s0), stamp(&s1)) {
        (Some(a), Some(b)) => (b - a)
            .total(k8s_openapi::jiff::Unit::Second)
            .unwrap_or(0.0),
        _ => 0.0,
    };
    let rate = |secs: f64| received.saturating_sub(1) as f64 / secs.max(1e-9);
    Ok(LogRun {
        received,
        lines_per_second: rate((t1 - t0).as_secs_f64()),
        writer_lines_per_second: rate(writer_secs),
    })
}

/// The node's RSS before and with `sessions` idle sessions of one kind open.
struct SessionMemory {
    kind: &'static str,
    protocol: Protocol,
    sessions: usize,
    before: u64,
    during: u64,
}

impl SessionMemory {
    fn per_session_kb(&self) -> f64 {
        (self.during as f64 - self.before as f64) / self.sessions as f64 / KB
    }
}

/// RSS of the node before and while `n` idle exec sessions (`sleep`), or `n` idle
/// port-forwards (one open connection each, after one request), are open, for each
/// protocol. The node is restarted (its pods adopted) before each: memory freed by
/// earlier sessions stays in the process and would be reused, hiding their cost.
async fn session_memory(
    k: &Kubectl,
    agent: &mut Agent,
    port: u16,
    n: usize,
) -> anyhow::Result<Vec<SessionMemory>> {
    let mut out = Vec::new();
    for p in Protocol::ALL {
        restart(k, agent).await?;
        out.push(idle_execs(k, agent, p, n).await?);
        restart(k, agent).await?;
        out.push(idle_port_forwards(k, agent, p, port, n).await?);
    }
    for m in &out {
        eprintln!(
            "    stream: {} idle {} sessions ({}): {:.1} → {:.1} MB, {:.0} KB each",
            m.sessions,
            m.kind,
            m.protocol.name(),
            m.before as f64 / MB,
            m.during as f64 / MB,
            m.per_session_kb()
        );
    }
    Ok(out)
}

/// Restarts the node and waits until it is ready and serves exec on the server pod
/// again (it adopted its pods).
async fn restart(k: &Kubectl, agent: &mut Agent) -> anyhow::Result<()> {
    agent.restart()?;
    agent.wait_ready(Duration::from_secs(120)).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match k
            .run(Protocol::WebSocket, &["exec", SERVER_POD, "--", "true"])
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(e.context("exec after restarting the node"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The RSS after the node settled: the last of three samples a second apart.
async fn settled_rss(agent: &Agent) -> u64 {
    let mut rss = agent.sample().rss_bytes;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss = agent.sample().rss_bytes;
    }
    rss
}

/// Pids of processes whose command line is exactly `argv`.
fn processes_running(argv: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .collect()
}

async fn idle_execs(
    k: &Kubectl,
    agent: &Agent,
    p: Protocol,
    n: usize,
) -> anyhow::Result<SessionMemory> {
    // A duration no other process on this machine sleeps for.
    let secs = format!("{}", 86_000 + std::process::id() % 300);
    let argv = ["sleep", secs.as_str()];
    let before = settled_rss(agent).await;
    let mut children = Vec::new();
    for _ in 0..n {
        children.push(
            k.command(p, &["exec", SERVER_POD, "--", "sleep", &secs])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()?,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while processes_running(&argv).len() < n {
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} exec sessions started",
                processes_running(&argv).len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let during = settled_rss(agent).await;
    drop(children);
    // The exec'd commands outlive their clients (as on a kubelet): end them.
    for pid in processes_running(&argv) {
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
    }
    Ok(SessionMemory {
        kind: "exec",
        protocol: p,
        sessions: n,
        before,
        during,
    })
}

async fn idle_port_forwards(
    k: &Kubectl,
    agent: &Agent,
    p: Protocol,
    port: u16,
    n: usize,
) -> anyhow::Result<SessionMemory> {
    let before = settled_rss(agent).await;
    let target = format!(":{port}");
    let pod = format!("pod/{SERVER_POD}");
    let argv = ["port-forward", pod.as_str(), target.as_str()];
    let relays = try_join_all((0..n).map(|_| k.relay(p, &argv))).await?;
    // One connection per port-forward, proven end to end by one request, then idle.
    let conns = try_join_all(relays.iter().map(|r| async move {
        let mut s = TcpStream::connect(("127.0.0.1", r.port)).await?;
        transfer::request(&mut s, r.port, "/1", Instant::now()).await?;
        anyhow::Ok(s)
    }))
    .await?;
    let during = settled_rss(agent).await;
    drop(conns);
    drop(relays);
    Ok(SessionMemory {
        kind: "port_forward",
        protocol: p,
        sessions: n,
        before,
        during,
    })
}

/// The targets: exec p99 over the API server's own round trip, port-forward
/// throughput against the API server proxy's, memory per idle session.
fn targets(
    r: &mut ScenarioResult,
    baseline: Option<LatencySummary>,
    exec: &[(Protocol, LatencySummary)],
    transfers: &[(String, Transfer)],
    memory: &[SessionMemory],
) {
    let rate = |name: &str| {
        transfers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.mb_per_second())
    };
    if let Some(b) = baseline {
        for (p, lat) in exec {
            r.targets.push(
                TargetCheck::at_most(
                    &format!("exec p99 over the API server's round trip ({})", p.name()),
                    lat.p99_ms - b.p99_ms,
                    100.0,
                    "ms",
                )
                .note(format!(
                    "exec p99 {:.0} ms, `kubectl get --raw` through the API server p99 {:.0} ms",
                    lat.p99_ms, b.p99_ms
                )),
            );
        }
    }
    if let Some(proxy) = rate("api_server_proxy") {
        for p in Protocol::ALL {
            let name = format!("port_forward_{}", p.name());
            if let Some(pf) = rate(&name) {
                let mut t = TargetCheck::at_least(
                    &format!("port-forward throughput ({})", p.name()),
                    pf,
                    0.5 * proxy,
                    "MB/s",
                )
                .note(format!(
                    "{:.2} × the API server proxy's {proxy:.0} MB/s; loopback {:.0} MB/s",
                    pf / proxy,
                    rate("loopback").unwrap_or(0.0)
                ));
                t.target = format!("≥ 0.5 × API server proxy ({:.0} MB/s)", 0.5 * proxy);
                r.targets.push(t);
            }
        }
    }
    for m in memory {
        r.targets.push(TargetCheck::at_most(
            &format!("memory per idle {} session ({})", m.kind, m.protocol.name()),
            m.per_session_kb(),
            256.0,
            "KB",
        ));
    }
}
