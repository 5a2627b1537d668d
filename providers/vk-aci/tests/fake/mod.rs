//! A fake Azure: Microsoft Entra token endpoint, IMDS, and Resource Manager for
//! `Microsoft.ContainerInstance/containerGroups`, as a real HTTP server, written from
//! the documentation (each route names its page) with Azure's awkward parts:
//!
//! * tokens: client secret, certificate assertion (RS256 verified against the
//!   registered certificate, `x5t`, `aud`, `exp`), federated token, IMDS (numbers as
//!   strings, `Metadata: true` required); bad credentials refused with `AADSTS` errors;
//!   tokens expire ([`FakeAzure::expire_tokens`]) and ARM answers `401`
//!   `ExpiredAuthenticationToken`;
//! * `PUT` is a long-running operation: `201` with `Azure-AsyncOperation` and
//!   `Retry-After`, `provisioningState` `Pending` → `Creating` → `Succeeded` over time,
//!   the instance view `Waiting` → `Running` with events;
//! * `DELETE` answers `202` with `Location`, polled until it stops answering `202`;
//! * eventual consistency: a new group is missing from the first list and the first
//!   `GET` after its `PUT`; a deleted one stays listed (`Deleting`) for a while;
//! * throttling: [`FakeAzure::throttle`] makes the next requests `429` with
//!   `Retry-After`; every answer has `x-ms-ratelimit-remaining-subscription-*`;
//! * `409` when a group has an operation in progress, quota errors
//!   (`ContainerGroupQuotaReached`) past a core limit;
//! * logs (`tail`, `timestamps`) and exec (WebSocket URI + password, the password
//!   checked as the first message).
#![allow(dead_code, clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::{SinkExt as _, StreamExt as _};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// How a registered application proves itself.
#[derive(Clone)]
pub enum AppCredential {
    /// A client secret.
    Secret(String),
    /// A certificate (PEM); the assertion must be signed by its key.
    Certificate(String),
    /// A federated identity: the assertion must equal this token.
    Federated(String),
}

/// One recorded ARM request.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Method.
    pub method: String,
    /// Path (no query).
    pub path: String,
    /// Status answered.
    pub status: u16,
    /// JSON body sent, if any.
    pub body: Option<Value>,
}

struct Group {
    /// The body as PUT (secure values kept here; they are never returned).
    body: Value,
    created: Instant,
    ip: Option<String>,
    deleting_since: Option<Instant>,
    gets_hidden: u32,
    lists_hidden: u32,
    /// Container name → (restart count, terminated exit code when stopped).
    overrides: HashMap<String, (i32, Option<i32>)>,
    logs: HashMap<String, Vec<(Timestamp, String)>>,
    /// The provisioning failure (code, message) of its last PUT.
    failure: Option<(String, String)>,
    /// Containers whose process ended: name → exit code.
    exited: HashMap<String, i32>,
}

struct Op {
    group: String,
    done_at: Instant,
    failure: Option<(String, String)>,
}

struct ExecSession {
    password: String,
    command: String,
}

struct FakeState {
    apps: HashMap<(String, String), AppCredential>,
    managed_identity: bool,
    token_lifetime: Duration,
    tokens: HashMap<String, Instant>,
    token_requests: Vec<String>,
    groups: BTreeMap<String, Group>,
    ops: HashMap<String, Op>,
    exec: HashMap<String, ExecSession>,
    requests: Vec<Recorded>,
    throttled: u32,
    throttle_retry_after: u64,
    core_quota: Option<f64>,
    provision_time: Duration,
    delete_time: Duration,
    retry_after: u64,
    next: u64,
    remaining_reads: i64,
    page_size: usize,
    fail_next: Option<(String, String)>,
    access_revoked: bool,
}

/// The fake. Cheap to clone; the server runs on its own thread until the process
/// ends, so it outlives any one test's runtime.
#[derive(Clone)]
pub struct FakeAzure {
    addr: SocketAddr,
    ws_addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
}

pub const SUBSCRIPTION: &str = "00000000-0000-0000-0000-0000000000aa";
pub const RESOURCE_GROUP: &str = "vk-aci-rg";
pub const REGION: &str = "westeurope";
pub const TENANT: &str = "72f988bf-0000-0000-0000-000000000000";
pub const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT_SECRET: &str = "fake-client-secret-value";

fn now_rfc3339() -> String {
    Timestamp::now().to_string()
}

fn cloud_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({"error": {"code": code, "message": message}}).to_string(),
    )
        .into_response()
}

fn oauth_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    // learn.microsoft.com, "Microsoft identity platform and the OAuth 2.0 client
    // credentials flow", "Error response example".
    (
        status,
        [("content-type", "application/json")],
        json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description}"),
            "error_codes": [code],
            "timestamp": now_rfc3339(),
            "trace_id": "00000000-0000-0000-0000-000000000001",
            "correlation_id": "00000000-0000-0000-0000-000000000002"
        })
        .to_string(),
    )
        .into_response()
}

fn form(body: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(body);
    let uri: Uri = format!("http://x/?{text}").parse().unwrap_or_default();
    axum::extract::Query::<HashMap<String, String>>::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default()
}

fn query(uri: &Uri) -> HashMap<String, String> {
    axum::extract::Query::<HashMap<String, String>>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default()
}

impl FakeAzure {
    /// Starts the fake with one application (client-secret credential) registered.
    pub fn start() -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let state = Arc::new(Mutex::new(FakeState {
            apps: HashMap::from([(
                (TENANT.to_string(), CLIENT_ID.to_string()),
                AppCredential::Secret(CLIENT_SECRET.to_string()),
            )]),
            managed_identity: true,
            token_lifetime: Duration::from_secs(3599),
            tokens: HashMap::new(),
            token_requests: Vec::new(),
            groups: BTreeMap::new(),
            ops: HashMap::new(),
            exec: HashMap::new(),
            requests: Vec::new(),
            throttled: 0,
            throttle_retry_after: 1,
            core_quota: None,
            provision_time: Duration::from_millis(600),
            delete_time: Duration::from_millis(400),
            retry_after: 1,
            next: 0,
            remaining_reads: 11999,
            page_size: 2,
            fail_next: None,
            access_revoked: false,
        }));
        let shared = state.clone();
        std::thread::Builder::new()
            .name("fake-azure".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async move {
                    let http = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind");
                    let ws = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind");
                    let addr = http.local_addr().expect("addr");
                    let ws_addr = ws.local_addr().expect("addr");
                    let fake = FakeAzure {
                        addr,
                        ws_addr,
                        state: shared,
                    };
                    tx.send(fake.clone()).expect("send");
                    tokio::spawn(fake.clone().serve_exec(ws));
                    let app = axum::Router::new().fallback(handle).with_state(fake);
                    axum::serve(http, app).await.expect("serve");
                });
            })
            .expect("thread");
        rx.recv().expect("fake started")
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `http://127.0.0.1:port`: ARM endpoint, authority host and IMDS endpoint.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Registers an application.
    pub fn register_app(&self, tenant: &str, client_id: &str, credential: AppCredential) {
        self.lock()
            .apps
            .insert((tenant.to_string(), client_id.to_string()), credential);
    }

    /// Lifetime of tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.lock().token_lifetime = lifetime;
    }

    /// Makes every issued token expired (ARM then answers `401`).
    pub fn expire_tokens(&self) {
        let past = Instant::now() - Duration::from_secs(1);
        for expiry in self.lock().tokens.values_mut() {
            *expiry = past;
        }
    }

    /// Token requests so far, by credential kind.
    pub fn token_requests(&self) -> Vec<String> {
        self.lock().token_requests.clone()
    }

    /// The next `count` ARM requests answer `429` with `Retry-After: retry_after`.
    pub fn throttle(&self, count: u32, retry_after: u64) {
        let mut s = self.lock();
        s.throttled = count;
        s.throttle_retry_after = retry_after;
    }

    /// Limits the cores of all groups (`None`: no limit).
    pub fn set_core_quota(&self, cores: Option<f64>) {
        self.lock().core_quota = cores;
    }

    /// What ARM reports as remaining reads.
    pub fn set_remaining_reads(&self, reads: i64) {
        self.lock().remaining_reads = reads;
    }

    /// ARM requests so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// `PUT`s of container groups so far: (group name, body as sent).
    pub fn puts(&self) -> Vec<(String, Value)> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "PUT")
            .map(|r| {
                let name = r.path.rsplit('/').next().unwrap_or_default().to_string();
                (name, r.body.unwrap_or(Value::Null))
            })
            .collect()
    }

    /// Names of the groups that exist (deleting ones included).
    pub fn group_names(&self) -> Vec<String> {
        self.lock().groups.keys().cloned().collect()
    }

    /// The group whose tags name pod `namespace/name`.
    pub fn group_of(&self, namespace: &str, name: &str) -> Option<(String, Value)> {
        self.lock()
            .groups
            .iter()
            .find(|(_, g)| {
                g.body["tags"]["vk-namespace"] == namespace && g.body["tags"]["vk-pod"] == name
            })
            .map(|(n, g)| (n.clone(), g.body.clone()))
    }

    /// Groups tagged with `node`.
    pub fn groups_of_node(&self, node: &str) -> Vec<String> {
        self.lock()
            .groups
            .iter()
            .filter(|(_, g)| g.body["tags"]["vk-node"] == node && g.deleting_since.is_none())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Creates a group behind the provider's back (already provisioned).
    pub fn insert_group(&self, name: &str, body: Value) {
        let mut s = self.lock();
        let ip = s.next_ip(&body);
        s.groups.insert(
            name.to_string(),
            Group {
                body,
                created: Instant::now() - Duration::from_secs(3600),
                ip,
                deleting_since: None,
                gets_hidden: 0,
                lists_hidden: 0,
                overrides: HashMap::new(),
                logs: HashMap::new(),
                failure: None,
                exited: HashMap::new(),
            },
        );
    }

    /// Makes `container` of `group` exit with `exit_code` (no restart: as under
    /// `restartPolicy: Never`); when every container exited, the group's state becomes
    /// `Succeeded` (all 0) or `Failed`.
    pub fn exit_container(&self, group: &str, container: &str, exit_code: i32) {
        if let Some(g) = self.lock().groups.get_mut(group) {
            g.exited.insert(container.to_string(), exit_code);
        }
    }

    /// Makes the next `PUT`'s operation fail with `code` and `message` (the group then
    /// shows `provisioningState: Failed`).
    pub fn fail_next_provisioning(&self, code: &str, message: &str) {
        self.lock().fail_next = Some((code.to_string(), message.to_string()));
    }

    /// Revokes (or restores) the application's role on the resource group: ARM then
    /// answers `403 AuthorizationFailed`.
    pub fn revoke_access(&self, revoked: bool) {
        self.lock().access_revoked = revoked;
    }

    /// Deletes a group behind the provider's back, at once.
    pub fn remove_group(&self, name: &str) {
        self.lock().groups.remove(name);
    }

    /// Appends a log line to `container` of `group`.
    pub fn append_log(&self, group: &str, container: &str, line: &str) {
        if let Some(g) = self.lock().groups.get_mut(group) {
            g.logs
                .entry(container.to_string())
                .or_default()
                .push((Timestamp::now(), line.to_string()));
        }
    }

    /// Makes `container` of `group` restart once more (its previous state
    /// terminated with `exit_code`).
    pub fn restart_container(&self, group: &str, container: &str, exit_code: i32) {
        if let Some(g) = self.lock().groups.get_mut(group) {
            let entry = g
                .overrides
                .entry(container.to_string())
                .or_insert((0, None));
            entry.0 += 1;
            entry.1 = Some(exit_code);
        }
    }

    async fn serve_exec(self, listener: tokio::net::TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let fake = self.clone();
            tokio::spawn(async move {
                let mut path = String::new();
                let callback =
                    |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
                        path = req.uri().path().to_string();
                        Ok(resp)
                    };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                    return;
                };
                let id = path.trim_start_matches("/exec/").to_string();
                let session = fake.lock().exec.remove(&id);
                let Some(session) = session else {
                    let _ = ws.close(None).await;
                    return;
                };
                // The password must be the first message.
                match ws.next().await {
                    Some(Ok(Message::Text(p))) if p.as_str() == session.password => {}
                    _ => {
                        let _ = ws.close(None).await;
                        return;
                    }
                }
                // A tiny "shell": `echo X` prints X and ends; anything else echoes each
                // line of stdin back upper-cased until `exit`.
                if let Some(rest) = session.command.strip_prefix("echo ") {
                    let _ = ws.send(Message::Text(format!("{rest}\r\n").into())).await;
                    let _ = ws.close(None).await;
                    return;
                }
                while let Some(Ok(message)) = ws.next().await {
                    let text = match message {
                        Message::Text(t) => t.to_string(),
                        Message::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
                        Message::Close(_) => break,
                        _ => continue,
                    };
                    let mut out = String::new();
                    let mut exit = false;
                    for line in text.split_inclusive('\n') {
                        if line.trim() == "exit" {
                            exit = true;
                            break;
                        }
                        out.push_str(&line.to_uppercase());
                    }
                    if !out.is_empty() {
                        let _ = ws.send(Message::Binary(out.into_bytes().into())).await;
                    }
                    if exit {
                        break;
                    }
                }
                let _ = ws.close(None).await;
            });
        }
    }
}

impl FakeState {
    fn id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn next_ip(&mut self, body: &Value) -> Option<String> {
        let kind = body["properties"]["ipAddress"]["type"]
            .as_str()?
            .to_string();
        let n = self.id();
        Some(if kind == "Private" {
            format!("10.240.{}.{}", n / 250, n % 250 + 4)
        } else {
            format!("20.50.{}.{}", n / 250, n % 250 + 4)
        })
    }

    fn issue_token(&mut self, kind: &str) -> (String, u64) {
        let n = self.id();
        let token = format!("fake-access-token-{n}");
        let lifetime = self.token_lifetime;
        self.tokens.insert(token.clone(), Instant::now() + lifetime);
        self.token_requests.push(kind.to_string());
        (token, lifetime.as_secs())
    }

    fn cores(body: &Value) -> f64 {
        body["properties"]["containers"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        c["properties"]["resources"]["requests"]["cpu"]
                            .as_f64()
                            .unwrap_or(0.0)
                    })
                    .sum()
            })
            .unwrap_or(0.0)
    }
}

/// The group as GET shows it at `now`: provisioning state and instance view derived
/// from its age; secure values removed (ACI never returns them).
fn view(name: &str, g: &Group, now: Instant, provision: Duration) -> Value {
    let mut body = g.body.clone();
    let age = now.duration_since(g.created);
    let (provisioning, state) = if g.deleting_since.is_some() {
        ("Deleting", "Running")
    } else if age < provision / 3 {
        ("Pending", "Pending")
    } else if age < provision {
        ("Creating", "Pending")
    } else if g.failure.is_some() {
        ("Failed", "Pending")
    } else {
        ("Succeeded", "Running")
    };
    body["id"] = json!(format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.ContainerInstance/containerGroups/{name}"
    ));
    body["name"] = json!(name);
    body["type"] = json!("Microsoft.ContainerInstance/containerGroups");
    body["properties"]["provisioningState"] = json!(provisioning);
    let group_events = match (&g.failure, provisioning) {
        (Some((code, message)), "Failed") => json!([{
            "count": 1, "name": code, "message": message, "type": "Warning",
            "firstTimestamp": now_rfc3339(), "lastTimestamp": now_rfc3339()
        }]),
        _ => json!([]),
    };
    body["properties"]["instanceView"] = json!({"state": state, "events": group_events});
    if let (Some(ip), Some(obj)) = (&g.ip, body["properties"]["ipAddress"].as_object_mut()) {
        obj.insert("ip".into(), json!(ip));
    }
    let started = SystemTime::now() - age.saturating_sub(provision);
    let started = Timestamp::try_from(started)
        .map(|t| t.to_string())
        .unwrap_or_default();
    for c in body["properties"]["containers"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        let cname = c["name"].as_str().unwrap_or_default().to_string();
        for env in c
            .pointer_mut("/properties/environmentVariables")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(obj) = env.as_object_mut() {
                obj.remove("secureValue");
            }
        }
        let (restarts, previous_exit) = g.overrides.get(&cname).cloned().unwrap_or((0, None));
        let view = if let (Some(code), "Running") = (g.exited.get(&cname), state) {
            json!({
                "restartCount": restarts,
                "currentState": {"state": "Terminated", "exitCode": code,
                    "detailStatus": if *code == 0 { "Completed" } else { "Error" },
                    "startTime": started, "finishTime": now_rfc3339()},
                "events": []
            })
        } else if state == "Running" {
            json!({
                "restartCount": restarts,
                "currentState": {"state": "Running", "startTime": started, "detailStatus": ""},
                "previousState": previous_exit.map(|code| json!({
                    "state": "Terminated", "exitCode": code, "detailStatus": "Error",
                    "startTime": started, "finishTime": started
                })),
                "events": [
                    {"count": 1, "firstTimestamp": started, "lastTimestamp": started,
                     "name": "Pulled", "message": format!("Successfully pulled image \"{}\"", c["properties"]["image"].as_str().unwrap_or_default()), "type": "Normal"},
                    {"count": 1, "firstTimestamp": started, "lastTimestamp": started,
                     "name": "Started", "message": "Started container", "type": "Normal"}
                ]
            })
        } else {
            json!({
                "restartCount": 0,
                "currentState": {"state": "Waiting", "detailStatus": ""},
                "events": [{"count": 1, "name": "Pulling", "type": "Normal",
                            "message": format!("pulling image \"{}\"", c["properties"]["image"].as_str().unwrap_or_default())}]
            })
        };
        c["properties"]["instanceView"] = view;
    }
    let names: Vec<String> = body["properties"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    if state == "Running" && !names.is_empty() && names.iter().all(|n| g.exited.contains_key(n)) {
        let ok = names.iter().all(|n| g.exited.get(n) == Some(&0));
        body["properties"]["instanceView"]["state"] =
            json!(if ok { "Succeeded" } else { "Failed" });
    }
    body
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn handle(
    State(fake): State<FakeAzure>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    if path.ends_with("/oauth2/v2.0/token") {
        return token_endpoint(&fake, &path, &body);
    }
    if path == "/metadata/identity/oauth2/token" {
        return imds(&fake, &uri, &headers);
    }
    let mut response = arm(&fake, &method, &uri, &headers, &body);
    let reads = fake.lock().remaining_reads;
    let headers = response.headers_mut();
    // learn.microsoft.com, "Understand how Azure Resource Manager throttles requests".
    if method == Method::GET {
        headers.insert(
            "x-ms-ratelimit-remaining-subscription-reads",
            reads.to_string().parse().expect("header"),
        );
    } else {
        headers.insert(
            "x-ms-ratelimit-remaining-subscription-writes",
            "1199".parse().expect("header"),
        );
    }
    let status = response.status().as_u16();
    let recorded = Recorded {
        method: method.to_string(),
        path,
        status,
        body: serde_json::from_slice(&body).ok(),
    };
    fake.lock().requests.push(recorded);
    response
}

/// `POST /{tenant}/oauth2/v2.0/token` (learn.microsoft.com, "Microsoft identity
/// platform and the OAuth 2.0 client credentials flow": first case with a shared
/// secret, second case with a certificate; "Workload identity federation" for the
/// federated assertion).
fn token_endpoint(fake: &FakeAzure, path: &str, body: &[u8]) -> Response {
    let tenant = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let f = form(body);
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    if get("grant_type") != "client_credentials" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    if !get("scope").ends_with("/.default") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            "The provided value for the input parameter 'scope' is not valid.",
        );
    }
    let client_id = get("client_id");
    let app = fake
        .lock()
        .apps
        .get(&(tenant.clone(), client_id.clone()))
        .cloned();
    let Some(app) = app else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        );
    };
    let assertion = get("client_assertion");
    let kind = match app {
        AppCredential::Secret(secret) => {
            if get("client_secret") != secret {
                return oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided.",
                );
            }
            "client-secret"
        }
        AppCredential::Certificate(pem) => {
            if get("client_assertion_type")
                != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'client_assertion_type'.",
                );
            }
            let audience = format!("{}/{tenant}/oauth2/v2.0/token", fake.url());
            if let Err(why) = verify_assertion(&assertion, &pem, &client_id, &audience) {
                return oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    700027,
                    &format!("Client assertion failed signature validation: {why}"),
                );
            }
            "client-certificate"
        }
        AppCredential::Federated(expected) => {
            if assertion != expected {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    70021,
                    "No matching federated identity record found for presented assertion.",
                );
            }
            "workload-identity"
        }
    };
    let (token, lifetime) = fake.lock().issue_token(kind);
    json_response(
        StatusCode::OK,
        json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}),
    )
}

/// Verifies an RS256 client assertion against the certificate in `pem`
/// ("Microsoft identity platform certificate credentials").
fn verify_assertion(jwt: &str, pem: &str, client_id: &str, audience: &str) -> Result<(), String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err("not a JWT".into());
    };
    let decode = |p: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD.decode(p).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    };
    let h = decode(header)?;
    let c = decode(claims)?;
    let der = x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .flatten()
        .find(|p| p.label == "CERTIFICATE")
        .ok_or("no certificate")?
        .contents;
    let thumbprint = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
    if h["alg"] != "RS256" || h["x5t"] != URL_SAFE_NO_PAD.encode(thumbprint.as_ref()) {
        return Err("unknown key (x5t)".into());
    }
    if c["aud"] != audience || c["iss"] != client_id || c["sub"] != client_id {
        return Err("wrong aud/iss/sub".into());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    if c["exp"].as_u64().unwrap_or(0) <= now {
        return Err("expired".into());
    }
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| e.to_string())?;
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        cert.public_key().subject_public_key.data.to_vec(),
    );
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| e.to_string())?;
    key.verify(format!("{header}.{claims}").as_bytes(), &signature)
        .map_err(|_| "bad signature".to_string())
}

/// `GET /metadata/identity/oauth2/token` (learn.microsoft.com, "How to use managed
/// identities for Azure resources on an Azure VM to acquire an access token"): every
/// number is a string.
fn imds(fake: &FakeAzure, uri: &Uri, headers: &HeaderMap) -> Response {
    if headers.get("metadata").and_then(|v| v.to_str().ok()) != Some("true") {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_request", "error_description": "Required metadata header not specified"}),
        );
    }
    let q = query(uri);
    if !q.contains_key("api-version") || !q.contains_key("resource") {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_request", "error_description": "Required query variable 'resource' is missing"}),
        );
    }
    if !fake.lock().managed_identity {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_request", "error_description": "Identity not found"}),
        );
    }
    let (token, lifetime) = fake.lock().issue_token("managed-identity");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    json_response(
        StatusCode::OK,
        json!({
            "access_token": token, "refresh_token": "",
            "expires_in": lifetime.to_string(),
            "expires_on": (now + lifetime).to_string(),
            "not_before": now.to_string(),
            "resource": q.get("resource"), "token_type": "Bearer"
        }),
    )
}

/// Resource Manager (azure-rest-api-specs, ContainerInstance `stable/2023-05-01`, and
/// learn.microsoft.com "Track asynchronous Azure operations").
fn arm(fake: &FakeAzure, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
    // Authentication first, as ARM does.
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let expiry = token
        .as_ref()
        .and_then(|t| fake.lock().tokens.get(t).copied());
    match expiry {
        None => {
            return cloud_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
            );
        }
        Some(at) if at <= Instant::now() => {
            return cloud_error(
                StatusCode::UNAUTHORIZED,
                "ExpiredAuthenticationToken",
                "The access token expiry UTC time is earlier than current UTC time.",
            );
        }
        Some(_) => {}
    }
    {
        let mut s = fake.lock();
        if s.throttled > 0 {
            s.throttled -= 1;
            let after = s.throttle_retry_after;
            let mut r = cloud_error(
                StatusCode::TOO_MANY_REQUESTS,
                "SubscriptionRequestsThrottled",
                &format!(
                    "Number of requests for subscription '{SUBSCRIPTION}' exceeded the limit. Please try again after '{after}' seconds."
                ),
            );
            r.headers_mut()
                .insert("retry-after", after.to_string().parse().expect("header"));
            return r;
        }
    }
    if fake.lock().access_revoked {
        return cloud_error(
            StatusCode::FORBIDDEN,
            "AuthorizationFailed",
            &format!(
                "The client '{CLIENT_ID}' does not have authorization to perform action over scope '/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}'."
            ),
        );
    }
    let q = query(uri);
    let Some(api_version) = q.get("api-version").cloned() else {
        return cloud_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    };
    let segments: Vec<String> = uri
        .path()
        .trim_matches('/')
        .split('/')
        .map(str::to_string)
        .collect();
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    if lower.first() != Some(&"subscriptions")
        || segments.get(1).map(String::as_str) != Some(SUBSCRIPTION)
    {
        return cloud_error(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            "The subscription could not be found.",
        );
    }
    let base = fake.url();
    match (method.clone(), &lower[2..]) {
        // Resource Groups - Get.
        (Method::GET, ["resourcegroups", rg]) if *rg == RESOURCE_GROUP.to_ascii_lowercase() => {
            json_response(
                StatusCode::OK,
                json!({"id": format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"),
                   "name": RESOURCE_GROUP, "location": REGION, "properties": {"provisioningState": "Succeeded"}}),
            )
        }
        // Location - List Usage.
        (
            Method::GET,
            [
                "providers",
                "microsoft.containerinstance",
                "locations",
                _,
                "usages",
            ],
        ) => {
            let s = fake.lock();
            let used: f64 = s.groups.values().map(|g| FakeState::cores(&g.body)).sum();
            let limit = s.core_quota.unwrap_or(100.0);
            json_response(
                StatusCode::OK,
                json!({"value": [
                    {"unit": "Count", "currentValue": s.groups.len(), "limit": 100,
                     "name": {"value": "ContainerGroups", "localizedValue": "Container Groups"}},
                    {"unit": "Count", "currentValue": used as i64, "limit": limit as i64,
                     "name": {"value": "StandardCores", "localizedValue": "Standard Cores"}}
                ]}),
            )
        }
        // Operation status (the Azure-AsyncOperation URL) and result (the Location URL).
        (
            Method::GET,
            [
                "providers",
                "microsoft.containerinstance",
                "locations",
                _,
                kind,
                id,
            ],
        ) => {
            let s = fake.lock();
            let Some(op) = s.ops.get(*id) else {
                return cloud_error(
                    StatusCode::NOT_FOUND,
                    "OperationNotFound",
                    "The operation was not found.",
                );
            };
            let done = Instant::now() >= op.done_at;
            let retry = s.retry_after.to_string();
            if *kind == "operationresults" {
                let mut r = if done {
                    StatusCode::NO_CONTENT.into_response()
                } else {
                    StatusCode::ACCEPTED.into_response()
                };
                if !done {
                    r.headers_mut()
                        .insert("retry-after", retry.parse().expect("header"));
                    r.headers_mut()
                        .insert("location", uri.to_string().parse().expect("header"));
                }
                return r;
            }
            let body = match (&op.failure, done) {
                (_, false) => json!({"status": "InProgress", "name": id}),
                (None, true) => json!({"status": "Succeeded", "name": id}),
                (Some((code, message)), true) => {
                    json!({"status": "Failed", "name": id, "error": {"code": code, "message": message}})
                }
            };
            let mut r = json_response(StatusCode::OK, body);
            if !done {
                r.headers_mut()
                    .insert("retry-after", retry.parse().expect("header"));
            }
            r
        }
        (
            m,
            [
                "resourcegroups",
                rg,
                "providers",
                "microsoft.containerinstance",
                "containergroups",
                rest @ ..,
            ],
        ) if *rg == RESOURCE_GROUP.to_ascii_lowercase() => {
            let name = segments.get(7).cloned();
            let rest = if rest.is_empty() { rest } else { &rest[1..] };
            groups(
                fake,
                m,
                name.as_deref(),
                rest,
                &q,
                body,
                &base,
                &api_version,
            )
        }
        _ => cloud_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            &format!("No route for {method} {}", uri.path()),
        ),
    }
}

#[allow(clippy::too_many_arguments)]
fn groups(
    fake: &FakeAzure,
    method: Method,
    name: Option<&str>,
    rest: &[&str],
    q: &HashMap<String, String>,
    body: &[u8],
    base: &str,
    api_version: &str,
) -> Response {
    let now = Instant::now();
    let not_found = |name: &str| {
        cloud_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            &format!(
                "The Resource 'Microsoft.ContainerInstance/containerGroups/{name}' under resource group '{RESOURCE_GROUP}' was not found."
            ),
        )
    };
    let mut s = fake.lock();
    let provision = s.provision_time;
    // Forget groups whose deletion finished.
    let delete_time = s.delete_time;
    s.groups.retain(|_, g| {
        g.deleting_since
            .is_none_or(|t| now.duration_since(t) < delete_time)
    });
    match (method, name, rest) {
        // ContainerGroups_ListByResourceGroup, paged through nextLink.
        (Method::GET, None, []) => {
            let skip: usize = q
                .get("$skiptoken")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let size = s.page_size;
            let provision = s.provision_time;
            let mut visible = Vec::new();
            for (n, g) in s.groups.iter_mut() {
                if g.lists_hidden > 0 {
                    g.lists_hidden -= 1;
                    continue;
                }
                visible.push((n.clone(), view(n, g, now, provision)));
            }
            let page: Vec<Value> = visible
                .iter()
                .skip(skip)
                .take(size)
                .map(|(_, v)| v.clone())
                .collect();
            let mut out = json!({"value": page});
            if skip + size < visible.len() {
                out["nextLink"] = json!(format!(
                    "{base}/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.ContainerInstance/containerGroups?api-version={api_version}&$skiptoken={}",
                    skip + size
                ));
            }
            json_response(StatusCode::OK, out)
        }
        (Method::GET, Some(name), []) => match s.groups.get_mut(name) {
            Some(g) if g.gets_hidden > 0 => {
                g.gets_hidden -= 1;
                not_found(name)
            }
            Some(g) => json_response(StatusCode::OK, view(name, g, now, provision)),
            None => not_found(name),
        },
        (Method::PUT, Some(name), []) => {
            let Ok(mut group) = serde_json::from_slice::<Value>(body) else {
                return cloud_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContent",
                    "The request content was invalid and could not be deserialized.",
                );
            };
            let containers = group["properties"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if group["location"].as_str().unwrap_or_default().is_empty()
                || containers.is_empty()
                || group["properties"]["osType"].as_str().is_none()
            {
                return cloud_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContent",
                    "location, properties.containers and properties.osType are required.",
                );
            }
            for c in &containers {
                if c["properties"]["image"]
                    .as_str()
                    .unwrap_or_default()
                    .is_empty()
                    || c["properties"]["resources"]["requests"]["cpu"]
                        .as_f64()
                        .is_none()
                    || c["properties"]["resources"]["requests"]["memoryInGB"]
                        .as_f64()
                        .is_none()
                {
                    return cloud_error(
                        StatusCode::BAD_REQUEST,
                        "InvalidContainerProperties",
                        "Each container needs an image and resource requests.",
                    );
                }
            }
            if let Some(g) = s.groups.get(name) {
                let busy =
                    g.deleting_since.is_some() || now.duration_since(g.created) < s.provision_time;
                if busy {
                    return cloud_error(
                        StatusCode::CONFLICT,
                        "Conflict",
                        &format!(
                            "The container group '{name}' is still transitioning, please retry later."
                        ),
                    );
                }
            }
            if let Some(limit) = s.core_quota {
                let others: f64 = s
                    .groups
                    .iter()
                    .filter(|(n, _)| n.as_str() != name)
                    .map(|(_, g)| FakeState::cores(&g.body))
                    .sum();
                let wanted = FakeState::cores(&group);
                if others + wanted > limit {
                    // The shape of quota-error.json.
                    return cloud_error(
                        StatusCode::CONFLICT,
                        "ContainerGroupQuotaReached",
                        &format!(
                            "Resource type 'Microsoft.ContainerInstance/containerGroups' container group quota 'StandardCores' exceeded in region '{REGION}'. Limit: '{limit}', Usage: '{others}' Requested: '{wanted}'."
                        ),
                    );
                }
            }
            let existed = s.groups.contains_key(name);
            let ip = match s.groups.get(name) {
                Some(g) => g.ip.clone(),
                None => s.next_ip(&group),
            };
            let op_id = format!("op-{}", s.id());
            let provision = s.provision_time;
            let failure = s.fail_next.take();
            s.ops.insert(
                op_id.clone(),
                Op {
                    group: name.to_string(),
                    done_at: now + provision,
                    failure: failure.clone(),
                },
            );
            let logs = HashMap::from_iter(containers.iter().map(|c| {
                let cname = c["name"].as_str().unwrap_or_default().to_string();
                (
                    cname.clone(),
                    vec![(Timestamp::now(), format!("container {cname} started"))],
                )
            }));
            group.as_object_mut().map(|o| o.remove("id"));
            let g = Group {
                body: group,
                created: now,
                ip,
                deleting_since: None,
                gets_hidden: 1,
                lists_hidden: 1,
                overrides: HashMap::new(),
                logs,
                failure,
                exited: HashMap::new(),
            };
            let shown = view(name, &g, now, provision);
            s.groups.insert(name.to_string(), g);
            let retry = s.retry_after.to_string();
            let mut r = json_response(
                if existed {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                },
                shown,
            );
            r.headers_mut().insert(
                "azure-asyncoperation",
                format!("{base}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.ContainerInstance/locations/{REGION}/operations/{op_id}?api-version={api_version}")
                    .parse()
                    .expect("header"),
            );
            r.headers_mut()
                .insert("retry-after", retry.parse().expect("header"));
            r
        }
        (Method::DELETE, Some(name), []) => {
            let Some(g) = s.groups.get_mut(name) else {
                return StatusCode::NO_CONTENT.into_response();
            };
            if g.deleting_since.is_none() {
                g.deleting_since = Some(now);
            }
            let op_id = format!("op-{}", s.id());
            let delete_time = s.delete_time;
            s.ops.insert(
                op_id.clone(),
                Op {
                    group: name.to_string(),
                    done_at: now + delete_time,
                    failure: None,
                },
            );
            let mut r = StatusCode::ACCEPTED.into_response();
            r.headers_mut().insert(
                "location",
                format!("{base}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.ContainerInstance/locations/{REGION}/operationResults/{op_id}?api-version={api_version}")
                    .parse()
                    .expect("header"),
            );
            r.headers_mut().insert(
                "retry-after",
                s.retry_after.to_string().parse().expect("header"),
            );
            r
        }
        // Containers_ListLogs.
        (Method::GET, Some(name), ["containers", container, "logs"]) => {
            let Some(g) = s.groups.get(name) else {
                return not_found(name);
            };
            let lines = g.logs.get(*container).cloned().unwrap_or_default();
            let tail: Option<usize> = q.get("tail").and_then(|t| t.parse().ok());
            let timestamps = q.get("timestamps").is_some_and(|t| t == "true");
            let skip = tail.map_or(0, |t| lines.len().saturating_sub(t));
            let content: String = lines
                .iter()
                .skip(skip)
                .map(|(t, l)| {
                    if timestamps {
                        format!("{t} {l}\n")
                    } else {
                        format!("{l}\n")
                    }
                })
                .collect();
            json_response(StatusCode::OK, json!({"content": content}))
        }
        // Containers_ExecuteCommand.
        (Method::POST, Some(name), ["containers", _container, "exec"]) => {
            if !s.groups.contains_key(name) {
                return not_found(name);
            }
            let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let id = format!("session-{}", s.id());
            let password = format!("pw-{}-{}", s.id(), rand_suffix());
            s.exec.insert(
                id.clone(),
                ExecSession {
                    password: password.clone(),
                    command: request["command"].as_str().unwrap_or_default().to_string(),
                },
            );
            json_response(
                StatusCode::OK,
                json!({
                    "webSocketUri": format!("ws://{}/exec/{id}", fake.ws_addr),
                    "password": password
                }),
            )
        }
        (_, Some(name), _) => not_found(name),
        _ => cloud_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The method is not allowed.",
        ),
    }
}

fn rand_suffix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(7)
}
