//! A fake Nomad agent (server + one client) on loopback, written from Nomad's HTTP API
//! documentation (developer.hashicorp.com/nomad/api-docs; each route names its page).
//! The shapes of its answers follow the JSON samples recorded in `tests/fixtures/`.
//!
//! Quirks it models: asynchronous evaluations and allocations with task events over
//! time ([`state`]), blocking queries (`index`, `wait` up to 10 minutes plus up to
//! wait/16 of jitter, `X-Nomad-Index`), ACL tokens (`X-Nomad-Token` or `Authorization:
//! Bearer`; 403 `Permission denied` without one, 403 `ACL token not found` for a wrong
//! one), namespaces, a leaderless cluster (`""` from `/v1/status/leader`, 500 `No
//! cluster leader` elsewhere), the agent's connection limiter (429 `Too Many
//! Requests`, `Connection: close`, no `Retry-After`), and an agent that goes away.
#![allow(dead_code)]

pub mod state;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

pub use state::State;

type Body = BoxBody<Bytes, Infallible>;

/// An exec session: whether a TTY was asked, and the control frames received.
pub type ExecSession = (bool, Vec<Value>);

/// How the fake behaves.
#[derive(Debug, Clone, Default)]
pub struct FakeOptions {
    /// ACLs enabled with this one management token.
    pub token: Option<String>,
    /// Namespaces besides `default`.
    pub namespaces: Vec<String>,
}

/// Switches a test flips while the fake runs.
#[derive(Default)]
pub struct Faults {
    /// No leader: `/v1/status/leader` is `""`, other reads and writes 500.
    pub leaderless: AtomicBool,
    /// Answer this many requests with the connection limiter's 429.
    pub throttle: AtomicU64,
    /// Answer this many requests with 503 (a server restarting behind a proxy).
    pub unavailable: AtomicU64,
    /// The agent runs with its event broker disabled (`/v1/event/stream` is 404).
    pub no_event_broker: AtomicBool,
}

pub struct FakeNomad {
    addr: SocketAddr,
    pub state: Arc<State>,
    pub faults: Arc<Faults>,
    options: FakeOptions,
    requests: Arc<Mutex<Vec<(Method, String)>>>,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Per exec session: whether a TTY was asked, and the control frames received
    /// (`tty_size`, `stdin.close`).
    pub exec_sessions: Arc<Mutex<Vec<ExecSession>>>,
}

impl FakeNomad {
    /// Starts the fake on a free loopback port.
    pub async fn start(options: FakeOptions) -> Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Nomad");
        let addr = listener.local_addr().expect("address");
        let fake = Arc::new(Self {
            addr,
            state: State::new(),
            faults: Arc::new(Faults::default()),
            options,
            requests: Arc::new(Mutex::new(Vec::new())),
            server: Mutex::new(None),
            exec_sessions: Arc::new(Mutex::new(Vec::new())),
        });
        fake.serve(listener);
        fake
    }

    /// [`start`](Self::start) from synchronous code running inside a Tokio runtime.
    pub fn start_in_runtime(options: FakeOptions) -> Arc<Self> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fake Nomad");
        std_listener.set_nonblocking(true).expect("non-blocking");
        let addr = std_listener.local_addr().expect("address");
        let listener = TcpListener::from_std(std_listener).expect("tokio listener");
        let fake = Arc::new(Self {
            addr,
            state: State::new(),
            faults: Arc::new(Faults::default()),
            options,
            requests: Arc::new(Mutex::new(Vec::new())),
            server: Mutex::new(None),
            exec_sessions: Arc::new(Mutex::new(Vec::new())),
        });
        fake.serve(listener);
        fake
    }

    fn serve(self: &Arc<Self>, listener: TcpListener) {
        let fake = self.clone();
        let handle = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let fake = fake.clone();
                connections.spawn(async move {
                    let io = TokioIo::new(stream);
                    let service = hyper::service::service_fn(move |req| {
                        let fake = fake.clone();
                        async move { Ok::<_, Infallible>(fake.route(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .with_upgrades()
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        *self.server.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
    }

    /// The agent's address, as `NOMAD_ADDR` takes it.
    pub fn address(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops answering: the listener closes and every open connection (blocking
    /// queries, log streams) is cut. Tasks keep running, as on a real client.
    pub async fn go_away(&self) {
        let handle = self.server.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle {
            handle.abort();
            // Gone once the task is: its listener and connections are dropped with it.
            let _ = handle.await;
        }
    }

    /// Answers again, on the same address.
    pub async fn come_back(self: &Arc<Self>) {
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("re-bind the fake Nomad");
        self.serve(listener);
    }

    /// How often the job was registered.
    pub fn registrations(&self, job_id: &str) -> u64 {
        self.state
            .lock()
            .registrations
            .get(job_id)
            .copied()
            .unwrap_or(0)
    }

    /// Every registration.
    pub fn total_registrations(&self) -> u64 {
        self.state.lock().registrations.values().sum()
    }

    /// The IDs of the jobs registered (not purged) in `namespace`.
    pub fn job_ids(&self, namespace: &str) -> Vec<String> {
        self.state
            .lock()
            .jobs
            .keys()
            .filter(|(ns, _)| ns == namespace)
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// The job as stored.
    pub fn job(&self, namespace: &str, id: &str) -> Option<Value> {
        self.state
            .lock()
            .jobs
            .get(&(namespace.to_owned(), id.to_owned()))
            .map(|j| j.job.clone())
    }

    /// Whether the job is stopped.
    pub fn job_stopped(&self, namespace: &str, id: &str) -> Option<bool> {
        self.state
            .lock()
            .jobs
            .get(&(namespace.to_owned(), id.to_owned()))
            .map(|j| j.stop)
    }

    /// The job's allocations.
    pub fn allocations(&self, namespace: &str, id: &str) -> Vec<Value> {
        self.state
            .lock()
            .allocs
            .values()
            .filter(|a| a.namespace == namespace && a.job_id == id)
            .map(|a| a.value.clone())
            .collect()
    }

    /// Jobs purged so far.
    pub fn purged(&self) -> Vec<(String, String)> {
        self.state.lock().purged.clone()
    }

    /// Requests seen (method, path with query).
    pub fn requests(&self) -> Vec<(Method, String)> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs `nomad job stop -purge` as an operator would, behind the provider's back.
    pub fn purge_job(self: &Arc<Self>, namespace: &str, id: &str) {
        self.state.deregister(namespace, id, true);
    }

    async fn route(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_owned();
        let query: BTreeMap<String, String> = req
            .uri()
            .query()
            .map(|q| {
                q.split('&')
                    .filter_map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        Some((decode(k)?, decode(v)?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let method = req.method().clone();
        let full = match req.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((method.clone(), full));

        // The agent's connection limiter (agent configuration, `limits`
        // `http_max_conns_per_client`): a raw 429 and the connection is closed.
        if take_one(&self.faults.throttle) {
            let mut response = text(
                StatusCode::TOO_MANY_REQUESTS,
                "Your IP is issuing too many concurrent connections, please rate limit your calls\n",
            );
            response
                .headers_mut()
                .insert("Connection", http::HeaderValue::from_static("close"));
            return response;
        }
        if take_one(&self.faults.unavailable) {
            return text(StatusCode::SERVICE_UNAVAILABLE, "service unavailable");
        }

        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        // https://developer.hashicorp.com/nomad/api-docs/status#read-leader: no ACL.
        if segments == ["v1", "status", "leader"] && method == Method::GET {
            let leader = if self.faults.leaderless.load(Ordering::Relaxed) {
                ""
            } else {
                "127.0.0.1:4647"
            };
            return json_response(StatusCode::OK, &json!(leader), None);
        }
        if self.faults.leaderless.load(Ordering::Relaxed) {
            return text(StatusCode::INTERNAL_SERVER_ERROR, "No cluster leader");
        }
        // https://developer.hashicorp.com/nomad/api-docs#acls: X-Nomad-Token or Bearer.
        if let Some(expected) = &self.options.token {
            let given = req
                .headers()
                .get("X-Nomad-Token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .or_else(|| {
                    req.headers()
                        .get("Authorization")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer "))
                        .map(str::to_owned)
                });
            match given {
                None => return text(StatusCode::FORBIDDEN, "Permission denied"),
                Some(token) if &token != expected => {
                    return text(StatusCode::FORBIDDEN, "ACL token not found");
                }
                Some(_) => {}
            }
        }
        let namespace = query
            .get("namespace")
            .cloned()
            .unwrap_or_else(|| "default".to_owned());
        if namespace != "default"
            && namespace != "*"
            && !self.options.namespaces.contains(&namespace)
        {
            // Nomad refuses requests naming a namespace that does not exist.
            return text(
                StatusCode::BAD_REQUEST,
                &format!("namespace {namespace:?} not found"),
            );
        }

        match (method.clone(), segments.as_slice()) {
            // https://developer.hashicorp.com/nomad/api-docs/jobs#create-job
            (Method::POST | Method::PUT, ["v1", "jobs"]) => {
                let body = match req.into_body().collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(_) => return text(StatusCode::BAD_REQUEST, "unreadable body"),
                };
                let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
                    return text(StatusCode::BAD_REQUEST, "Failed to decode request body");
                };
                let job = payload["Job"].clone();
                if let Err(message) = validate_job(&job) {
                    return text(StatusCode::INTERNAL_SERVER_ERROR, &message);
                }
                let ns = job["Namespace"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or(namespace);
                let answer = self.state.register(&ns, job);
                json_response(StatusCode::OK, &answer, None)
            }
            // https://developer.hashicorp.com/nomad/api-docs/jobs#list-jobs (blocking)
            (Method::GET, ["v1", "jobs"]) => {
                let index = self.block(&query).await;
                let prefix = query.get("prefix").cloned().unwrap_or_default();
                let with_meta = query.get("meta").is_some_and(|v| v == "true");
                let jobs: Vec<Value> = self
                    .state
                    .lock()
                    .jobs
                    .iter()
                    .filter(|((ns, id), _)| (namespace == "*" || *ns == namespace) && id.starts_with(&prefix))
                    .map(|((ns, id), rec)| {
                        let mut stub = json!({
                            "ID": id, "ParentID": "", "Name": rec.job["Name"], "Namespace": ns,
                            "Type": rec.job["Type"], "Priority": rec.job["Priority"].as_i64().unwrap_or(50),
                            "Status": rec.job["Status"], "StatusDescription": "", "Stop": rec.stop,
                            "CreateIndex": rec.create_index, "ModifyIndex": rec.modify_index,
                            "JobModifyIndex": rec.modify_index
                        });
                        if with_meta {
                            stub["Meta"] = rec.job["Meta"].clone();
                        }
                        stub
                    })
                    .collect();
                json_response(StatusCode::OK, &Value::Array(jobs), Some(index))
            }
            // https://developer.hashicorp.com/nomad/api-docs/jobs#read-job (blocking)
            (Method::GET, ["v1", "job", id]) => {
                let index = self.block(&query).await;
                match self.job(&namespace, id) {
                    Some(job) => json_response(StatusCode::OK, &job, Some(index)),
                    None => text(StatusCode::NOT_FOUND, "job not found"),
                }
            }
            // https://developer.hashicorp.com/nomad/api-docs/jobs#stop-a-job
            (Method::DELETE, ["v1", "job", id]) => {
                let purge = query.get("purge").is_some_and(|v| v == "true");
                match self.state.deregister(&namespace, id, purge) {
                    Some(answer) => json_response(StatusCode::OK, &answer, None),
                    None => text(StatusCode::NOT_FOUND, "job not found"),
                }
            }
            // https://developer.hashicorp.com/nomad/api-docs/jobs#list-job-allocations (blocking)
            (Method::GET, ["v1", "job", id, "allocations"]) => {
                let index = self.block(&query).await;
                let allocs: Vec<Value> = self
                    .allocations(&namespace, id)
                    .into_iter()
                    .map(stub)
                    .collect();
                json_response(StatusCode::OK, &Value::Array(allocs), Some(index))
            }
            // https://developer.hashicorp.com/nomad/api-docs/allocations#list-allocations (blocking)
            (Method::GET, ["v1", "allocations"]) => {
                let index = self.block(&query).await;
                let resources = query.get("resources").is_some_and(|v| v == "true");
                let allocs: Vec<Value> = self
                    .state
                    .lock()
                    .allocs
                    .values()
                    .filter(|a| namespace == "*" || a.namespace == namespace)
                    .map(|a| {
                        let mut s = stub(a.value.clone());
                        if resources {
                            s["AllocatedResources"] = a.value["AllocatedResources"].clone();
                        }
                        s
                    })
                    .collect();
                json_response(StatusCode::OK, &Value::Array(allocs), Some(index))
            }
            // https://developer.hashicorp.com/nomad/api-docs/allocations#read-allocation (blocking)
            (Method::GET, ["v1", "allocation", id]) => {
                let index = self.block(&query).await;
                match self.state.lock().allocs.get(*id) {
                    Some(a) => json_response(StatusCode::OK, &a.value, Some(index)),
                    None => text(StatusCode::NOT_FOUND, "alloc not found"),
                }
            }
            // https://developer.hashicorp.com/nomad/api-docs/nodes#list-nodes
            (Method::GET, ["v1", "nodes"]) => {
                let mut nodes = fixture("list-nodes.json");
                // This fake client runs its tasks on loopback.
                nodes[0]["Address"] = json!("127.0.0.1");
                if query.get("resources").is_none_or(|v| v != "true")
                    && let Some(list) = nodes.as_array_mut()
                {
                    for node in list {
                        if let Some(node) = node.as_object_mut() {
                            node.remove("NodeResources");
                            node.remove("ReservedResources");
                        }
                    }
                }
                json_response(StatusCode::OK, &nodes, Some(self.state.current_index()))
            }
            // https://developer.hashicorp.com/nomad/api-docs/events#event-stream
            (Method::GET, ["v1", "event", "stream"]) => {
                if self.faults.no_event_broker.load(Ordering::Relaxed) {
                    // An agent with `event_broker` disabled has no such stream.
                    return text(StatusCode::NOT_FOUND, "Invalid URL path");
                }
                let topics: Vec<String> = req
                    .uri()
                    .query()
                    .unwrap_or_default()
                    .split('&')
                    .filter_map(|kv| kv.strip_prefix("topic="))
                    .filter_map(decode)
                    .collect();
                let from: u64 = query.get("index").and_then(|i| i.parse().ok()).unwrap_or(0);
                self.event_stream(namespace, topics, from)
            }
            // https://developer.hashicorp.com/nomad/api-docs/client#stream-logs
            (Method::GET, ["v1", "client", "fs", "logs", alloc]) => self.logs(alloc, &query),
            // https://developer.hashicorp.com/nomad/api-docs/allocations#exec-allocation
            (Method::GET, ["v1", "client", "allocation", alloc, "exec"]) => {
                self.exec(req, alloc, &query)
            }
            _ => text(StatusCode::NOT_FOUND, "Invalid URL path"),
        }
    }

    /// Waits as a blocking query does; returns the index to answer with.
    async fn block(&self, query: &BTreeMap<String, String>) -> u64 {
        let Some(min) = query.get("index").and_then(|i| i.parse::<u64>().ok()) else {
            return self.state.current_index();
        };
        let wait = query
            .get("wait")
            .and_then(|w| parse_wait(w))
            .unwrap_or(Duration::from_secs(300));
        let wait = wait.min(Duration::from_secs(600));
        let jitter = {
            use rand::Rng as _;
            let max = (wait / 16).as_millis() as u64;
            Duration::from_millis(if max == 0 {
                0
            } else {
                rand::rng().random_range(0..max)
            })
        };
        let mut rx = self.state.index.subscribe();
        let _ = tokio::time::timeout(wait + jitter, rx.wait_for(|i| *i > min)).await;
        self.state.current_index()
    }

    /// The event stream: the buffer's events from `from` on, one batch per index and
    /// line, then new ones as they come; `{}` heartbeats every 10 s while idle.
    fn event_stream(&self, namespace: String, topics: Vec<String>, from: u64) -> Response<Body> {
        let state = self.state.clone();
        let wanted = move |event: &Value| {
            let topic = event["Topic"].as_str().unwrap_or_default();
            let ns = event["Namespace"].as_str().unwrap_or_default();
            let topic_ok = topics.is_empty()
                || topics.iter().any(|t| {
                    let (name, key) = t.split_once(':').unwrap_or((t, "*"));
                    (name == "*" || name == topic) && (key == "*" || event["Key"] == key)
                });
            topic_ok && (namespace == "*" || ns == namespace)
        };
        let stream = futures::stream::unfold(0usize, move |pos| {
            let state = state.clone();
            let wanted = wanted.clone();
            async move {
                let mut wake = state.index.subscribe();
                loop {
                    let (batch, next) = {
                        let inner = state.lock();
                        let fresh: Vec<&(u64, Value)> = inner.events[pos.min(inner.events.len())..]
                            .iter()
                            .filter(|(i, e)| *i >= from && wanted(e))
                            .collect();
                        let first_index = fresh.first().map(|(i, _)| *i);
                        let batch: Vec<Value> = fresh
                            .iter()
                            .take_while(|(i, _)| Some(*i) == first_index)
                            .map(|(_, e)| e.clone())
                            .collect();
                        // Skip to just after the last event of this batch.
                        let next = match first_index {
                            Some(index) => inner
                                .events
                                .iter()
                                .enumerate()
                                .skip(pos)
                                .filter(|(_, (i, e))| *i == index && wanted(e))
                                .map(|(n, _)| n + 1)
                                .next_back()
                                .unwrap_or(inner.events.len()),
                            None => inner.events.len(),
                        };
                        (first_index.map(|index| (index, batch)), next)
                    };
                    if let Some((index, events)) = batch {
                        let line = format!("{}\n", json!({"Index": index, "Events": events}));
                        return Some((Ok::<_, Infallible>(Frame::data(Bytes::from(line))), next));
                    }
                    let next_pos = next;
                    match tokio::time::timeout(Duration::from_secs(10), wake.changed()).await {
                        Ok(Ok(())) => {
                            let _ = next_pos;
                            continue;
                        }
                        Ok(Err(_)) => return None,
                        Err(_) => {
                            return Some((Ok(Frame::data(Bytes::from_static(b"{}\n"))), next_pos));
                        }
                    }
                }
            }
        });
        let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
        response.headers_mut().insert(
            "Content-Type",
            http::HeaderValue::from_static("application/json"),
        );
        response
    }

    fn logs(&self, alloc: &str, query: &BTreeMap<String, String>) -> Response<Body> {
        let Some(task) = query.get("task").cloned() else {
            return text(StatusCode::BAD_REQUEST, "must include task name");
        };
        let Some(alloc_rec) = self.state.lock().allocs.get(alloc).cloned() else {
            return text(StatusCode::NOT_FOUND, "Unknown allocation");
        };
        if alloc_rec.value["TaskStates"].get(&task).is_none() {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("unknown task name {task:?}"),
            );
        }
        let stderr = match query.get("type").map(String::as_str) {
            Some("stdout") => false,
            Some("stderr") => true,
            _ => return text(StatusCode::BAD_REQUEST, "must include logs type"),
        };
        let follow = query.get("follow").is_some_and(|v| v == "true");
        let plain = query.get("plain").is_some_and(|v| v == "true");
        let offset: usize = query
            .get("offset")
            .and_then(|o| o.parse().ok())
            .unwrap_or(0);
        let from_end = query.get("origin").is_some_and(|o| o == "end");
        let state = self.state.clone();
        let key = (alloc.to_owned(), task.clone());
        let file = format!(
            "alloc/logs/{task}.{}.0",
            if stderr { "stderr" } else { "stdout" }
        );
        let read = move |state: &State| -> Vec<u8> {
            let inner = state.lock();
            inner
                .logs
                .get(&key)
                .map(|l| {
                    if stderr {
                        l.stderr.clone()
                    } else {
                        l.stdout.clone()
                    }
                })
                .unwrap_or_default()
        };
        let len = read(&state).len();
        let start = if from_end {
            len.saturating_sub(offset)
        } else {
            offset.min(len)
        };
        let alloc_id = alloc.to_owned();
        let stream = futures::stream::unfold((start, false), move |(pos, done)| {
            let state = state.clone();
            let file = file.clone();
            let read = read.clone();
            let alloc_id = alloc_id.clone();
            async move {
                if done {
                    return None;
                }
                let mut tick = state.log_tick.subscribe();
                loop {
                    let data = read(&state);
                    if data.len() > pos {
                        let chunk = data[pos..].to_vec();
                        let next = data.len();
                        let frame = if plain {
                            Bytes::from(chunk)
                        } else {
                            Bytes::from(format!(
                                "{}\n",
                                json!({"File": file, "Offset": next, "Data": STANDARD.encode(&chunk)})
                            ))
                        };
                        return Some((Ok::<_, Infallible>(Frame::data(frame)), (next, false)));
                    }
                    let alive = state.lock().allocs.get(&alloc_id).is_some_and(|a| {
                        !matches!(
                            a.value["ClientStatus"].as_str(),
                            Some("complete" | "failed" | "lost")
                        )
                    });
                    if !follow || !alive {
                        return None;
                    }
                    // Nomad's log streamer sends heartbeat frames while idle; framed only.
                    match tokio::time::timeout(Duration::from_secs(10), tick.changed()).await {
                        Ok(Ok(())) => continue,
                        Ok(Err(_)) => return None,
                        Err(_) if !plain => {
                            return Some((
                                Ok(Frame::data(Bytes::from_static(b"{}\n"))),
                                (pos, false),
                            ));
                        }
                        Err(_) => continue,
                    }
                }
            }
        });
        let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
        response
            .headers_mut()
            .insert("Content-Type", http::HeaderValue::from_static("text/plain"));
        response
    }

    fn exec(
        &self,
        req: Request<Incoming>,
        alloc: &str,
        query: &BTreeMap<String, String>,
    ) -> Response<Body> {
        let Some(key) = req
            .headers()
            .get("Sec-WebSocket-Key")
            .and_then(|k| k.to_str().ok())
            .map(str::to_owned)
        else {
            return text(StatusCode::BAD_REQUEST, "not a WebSocket upgrade");
        };
        let Some(task) = query.get("task").cloned() else {
            return text(StatusCode::BAD_REQUEST, "missing task");
        };
        let Ok(command) =
            serde_json::from_str::<Vec<String>>(query.get("command").map_or("", String::as_str))
        else {
            return text(StatusCode::BAD_REQUEST, "command is not a JSON array");
        };
        if command.is_empty() {
            return text(StatusCode::BAD_REQUEST, "command is not present");
        }
        let running = self
            .state
            .lock()
            .allocs
            .get(alloc)
            .is_some_and(|a| a.value["TaskStates"][&task]["State"] == "running");
        if !running {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("task {task:?} is not running"),
            );
        }
        let (env, dir) = self
            .state
            .lock()
            .task_env
            .get(&(alloc.to_owned(), task))
            .cloned()
            .unwrap_or_default();
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let tty = query.get("tty").is_some_and(|t| t == "true");
        let session = {
            let mut sessions = self.exec_sessions.lock().unwrap_or_else(|e| e.into_inner());
            sessions.push((tty, Vec::new()));
            sessions.len() - 1
        };
        let sessions = self.exec_sessions.clone();
        tokio::spawn(async move {
            let Ok(upgraded) = hyper::upgrade::on(req).await else {
                return;
            };
            let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                tokio_tungstenite::tungstenite::protocol::Role::Server,
                None,
            )
            .await;
            let record = move |frame: Value| {
                if let Some(s) = sessions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_mut(session)
                {
                    s.1.push(frame);
                }
            };
            run_exec(ws, command, env, dir, tty, record).await;
        });
        let mut response = Response::new(empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert("Upgrade", http::HeaderValue::from_static("websocket"));
        headers.insert("Connection", http::HeaderValue::from_static("Upgrade"));
        if let Ok(v) = http::HeaderValue::from_str(&accept) {
            headers.insert("Sec-WebSocket-Accept", v);
        }
        response
    }
}

/// Runs an exec session's command as a local process and speaks the documented frames.
async fn run_exec<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    command: Vec<String>,
    env: BTreeMap<String, String>,
    dir: Option<String>,
    tty: bool,
    record: impl Fn(Value),
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut source) = ws.split();
    // A terminal has one output stream, written in order: under a tty the command's
    // stderr goes into the same pipe as its stdout (two pipes read by two tasks could
    // reorder what the command wrote in sequence).
    let mut cmd = if tty {
        let mut sh = tokio::process::Command::new("sh");
        sh.args(["-c", "exec \"$@\" 2>&1", "sh"]).args(&command);
        sh
    } else {
        let mut direct = tokio::process::Command::new(&command[0]);
        direct.args(&command[1..]);
        direct
    };
    cmd.envs(&env)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = sink
                .send(Message::text(
                    json!({"stderr": {"data": STANDARD.encode(format!("exec: {e}\n"))}})
                        .to_string(),
                ))
                .await;
            let _ = sink
                .send(Message::text(
                    json!({"exited": true, "result": {"exit_code": 126}}).to_string(),
                ))
                .await;
            let _ = sink.close().await;
            return;
        }
    };
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<Message>();
    let mut pumps = Vec::new();
    for (name, reader) in [
        (
            "stdout",
            child
                .stdout
                .take()
                .map(|r| Box::new(r) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ),
        (
            "stderr",
            child
                .stderr
                .take()
                .map(|r| Box::new(r) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ),
    ] {
        let Some(mut reader) = reader else { continue };
        let tx = out_tx.clone();
        pumps.push(tokio::spawn(async move {
            use tokio::io::AsyncReadExt as _;
            let mut buf = vec![0u8; 8192];
            while let Ok(n) = reader.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                // A terminal has one output stream.
                let stream = if tty { "stdout" } else { name };
                let _ = tx.send(Message::text(
                    json!({stream: {"data": STANDARD.encode(&buf[..n])}}).to_string(),
                ));
            }
            let _ = tx.send(Message::text(json!({name: {"close": true}}).to_string()));
        }));
    }
    drop(out_tx);
    let mut stdin = child.stdin.take();
    let status = loop {
        tokio::select! {
            message = source.next() => match message {
                Some(Ok(Message::Text(t))) => {
                    let frame: Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                    if let Some(data) = frame["stdin"]["data"].as_str()
                        && let (Ok(bytes), Some(input)) = (STANDARD.decode(data), stdin.as_mut())
                    {
                        let _ = input.write_all(&bytes).await;
                        let _ = input.flush().await;
                    }
                    if frame["stdin"]["close"] == true {
                        stdin = None;
                    }
                    if frame.get("tty_size").is_some() || frame["stdin"]["close"] == true {
                        record(frame);
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    let _ = child.kill().await;
                    return;
                }
                Some(Ok(_)) => {}
            },
            out = out_rx.recv() => match out {
                Some(message) => {
                    if sink.send(message).await.is_err() {
                        let _ = child.kill().await;
                        return;
                    }
                }
                None => break child.wait().await,
            },
        }
    };
    let code = status.ok().and_then(|s| s.code()).unwrap_or(137);
    let _ = sink
        .send(Message::text(
            json!({"exited": true, "result": {"exit_code": code}}).to_string(),
        ))
        .await;
    let _ = sink.close().await;
}

/// `AllocListStub`: what list endpoints return (no `NetworkStatus`, no
/// `AllocatedResources` unless asked).
fn stub(mut alloc: Value) -> Value {
    if let Some(a) = alloc.as_object_mut() {
        a.remove("NetworkStatus");
        a.remove("AllocatedResources");
    }
    alloc
}

/// What Nomad's job validation would refuse (a subset).
fn validate_job(job: &Value) -> Result<(), String> {
    let id = job["ID"].as_str().unwrap_or_default();
    if id.is_empty() {
        return Err("1 error occurred:\n\t* Missing job ID".into());
    }
    if id.contains(' ') || id.contains('\0') {
        return Err("1 error occurred:\n\t* Job ID contains a space".into());
    }
    let groups = job["TaskGroups"]
        .as_array()
        .ok_or("Missing job task groups")?;
    for group in groups {
        for task in group["Tasks"].as_array().into_iter().flatten() {
            if task["Driver"].as_str().is_none_or(str::is_empty) {
                return Err("Missing task driver".into());
            }
            if let Some(mb) = task["Resources"]["MemoryMB"].as_u64()
                && mb < 10
            {
                return Err(format!("minimum MemoryMB value is 10; got {mb}"));
            }
        }
    }
    Ok(())
}

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("fixture"))
        .expect("fixture JSON");
    doc["body"].clone()
}

fn take_one(counter: &AtomicU64) -> bool {
    counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

fn parse_wait(text: &str) -> Option<Duration> {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    if let Some(s) = text.strip_suffix('s') {
        return s.parse().ok().map(Duration::from_secs);
    }
    if let Some(m) = text.strip_suffix('m') {
        return m.parse::<u64>().ok().map(|m| Duration::from_secs(m * 60));
    }
    None
}

fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn empty() -> Body {
    BodyExt::boxed(Full::new(Bytes::new()))
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(BodyExt::boxed(Full::new(Bytes::from(message.to_owned()))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("Content-Type", http::HeaderValue::from_static("text/plain"));
    response
}

fn json_response(status: StatusCode, value: &Value, index: Option<u64>) -> Response<Body> {
    let mut response = Response::new(BodyExt::boxed(Full::new(Bytes::from(value.to_string()))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        "Content-Type",
        http::HeaderValue::from_static("application/json"),
    );
    if let Some(index) = index {
        if let Ok(v) = http::HeaderValue::from_str(&index.to_string()) {
            headers.insert("X-Nomad-Index", v);
        }
        headers.insert(
            "X-Nomad-KnownLeader",
            http::HeaderValue::from_static("true"),
        );
        headers.insert("X-Nomad-LastContact", http::HeaderValue::from_static("0"));
    }
    response
}
