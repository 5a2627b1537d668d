//! The fake agent's state: jobs, evaluations-as-delays, allocations whose tasks run as
//! local processes (as Nomad's `raw_exec` driver would run them), their logs, and the
//! Raft-like index that blocking queries wait on.
//!
//! Behaviour modelled on the documentation (developer.hashicorp.com/nomad/api-docs):
//! * *Create Job* answers at once with an evaluation; the allocation appears later
//!   (`pending`, task events `Received`, `Task Setup`), then `running` with `Started`
//!   once the task's process runs — asynchronous, as on a real cluster.
//! * A task that exits gets a `Terminated` event with `ExitCode` and
//!   `Details.exit_code`; the group's `RestartPolicy` decides: `Restarting` and a new
//!   run after `Delay` (within `Attempts`, or for ever with mode `delay`), else `Not
//!   Restarting` and the task is dead (`Failed` when the code was not 0). The
//!   allocation is `complete` when every main task ended well, `failed` otherwise.
//! * *Stop a Job* sets `Stop`, the allocations' `DesiredStatus: stop`, sends `Killing`,
//!   SIGTERM, then SIGKILL after the task's `KillTimeout`; `Killed` ends the task.
//!   `purge=true` removes the job (and its allocations once they are terminal).
//! * Every change bumps the index and wakes blocking queries.
//!
//! Docker tasks run `entrypoint` + `args` when given; a docker task without them runs
//! its "image" as a process that waits until killed (no images here).

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::io::AsyncReadExt as _;
use tokio::sync::watch;

/// Simulated latency between an evaluation and its allocation, and between placement
/// and the task's start: the asynchrony of a real cluster, not a test synchronisation.
pub const SCHEDULING_LATENCY: Duration = Duration::from_millis(150);

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn rfc3339_now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

pub fn uuid() -> String {
    use rand::Rng as _;
    let mut r = rand::rng();
    let b: [u8; 16] = r.random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[derive(Debug, Clone)]
pub struct JobRec {
    pub job: Value,
    pub stop: bool,
    pub create_index: u64,
    pub modify_index: u64,
    pub version: u64,
}

#[derive(Debug, Default)]
pub struct TaskLogs {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct AllocRec {
    pub value: Value,
    pub namespace: String,
    pub job_id: String,
    pub create_index: u64,
}

/// A task's environment and working directory (what `exec` sessions inherit).
pub type TaskEnv = (BTreeMap<String, String>, Option<String>);

#[derive(Default)]
pub struct Inner {
    pub jobs: BTreeMap<(String, String), JobRec>,
    pub allocs: BTreeMap<String, AllocRec>,
    pub registrations: HashMap<String, u64>,
    /// Per allocation and task: its log files and live followers.
    pub logs: HashMap<(String, String), TaskLogs>,
    /// Per allocation: how to stop its tasks.
    pub kills: HashMap<String, Vec<tokio::sync::mpsc::UnboundedSender<Duration>>>,
    /// Per allocation and task: the env and working dir exec needs.
    pub task_env: HashMap<(String, String), TaskEnv>,
    pub purged: Vec<(String, String)>,
    /// The event broker's buffer: every event with its index, oldest first.
    pub events: Vec<(u64, Value)>,
}

pub struct State {
    pub inner: Mutex<Inner>,
    pub index: watch::Sender<u64>,
    /// Wakes log followers.
    pub log_tick: watch::Sender<u64>,
}

impl State {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner::default()),
            index: watch::Sender::new(1),
            log_tick: watch::Sender::new(0),
        })
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bumps the index; returns the new one.
    pub fn bump(&self) -> u64 {
        let mut next = 0;
        self.index.send_modify(|i| {
            *i += 1;
            next = *i;
        });
        next
    }

    /// Appends an event to the broker's buffer (the caller bumped the index).
    pub fn publish(
        &self,
        index: u64,
        topic: &str,
        kind: &str,
        key: &str,
        namespace: &str,
        payload: Value,
    ) {
        let event = json!({
            "Topic": topic, "Type": kind, "Key": key, "Namespace": namespace,
            "FilterKeys": null, "Index": index, "Payload": {topic: payload}
        });
        self.lock().events.push((index, event));
        // Wakes event streams (blocking queries wait for a higher index).
        self.index.send_modify(|_| {});
    }

    pub fn current_index(&self) -> u64 {
        *self.index.borrow()
    }

    /// *Create Job*: stores the job and schedules its allocation when the tasks
    /// changed (or the job was stopped); returns the answer.
    pub fn register(self: &Arc<Self>, namespace: &str, mut job: Value) -> Value {
        let id = job["ID"].as_str().unwrap_or_default().to_owned();
        let index = self.bump();
        job["Namespace"] = json!(namespace);
        job["Stop"] = json!(false);
        job["Status"] = json!("pending");
        let key = (namespace.to_owned(), id.clone());
        let (replace, old_allocs) = {
            let mut inner = self.lock();
            *inner.registrations.entry(id.clone()).or_default() += 1;
            let previous = inner.jobs.get(&key).cloned();
            let changed = previous
                .as_ref()
                .is_none_or(|p| p.stop || p.job["TaskGroups"] != job["TaskGroups"]);
            let version = previous
                .as_ref()
                .map_or(0, |p| p.version + u64::from(changed));
            let create_index = previous.as_ref().map_or(index, |p| p.create_index);
            job["CreateIndex"] = json!(create_index);
            job["ModifyIndex"] = json!(index);
            job["JobModifyIndex"] = json!(index);
            job["Version"] = json!(version);
            inner.jobs.insert(
                key.clone(),
                JobRec {
                    job: job.clone(),
                    stop: false,
                    create_index,
                    modify_index: index,
                    version,
                },
            );
            let old: Vec<String> = inner
                .allocs
                .values()
                .filter(|a| a.namespace == namespace && a.job_id == id)
                .filter(|a| a.value["DesiredStatus"] == "run")
                .map(|a| a.value["ID"].as_str().unwrap_or_default().to_owned())
                .collect();
            (changed, old)
        };
        self.publish(index, "Job", "JobRegistered", &id, namespace, job.clone());
        let eval_id = uuid();
        if replace {
            for alloc in old_allocs {
                self.stop_alloc(&alloc);
            }
            let state = self.clone();
            let namespace = namespace.to_owned();
            let eval = eval_id.clone();
            tokio::spawn(async move {
                tokio::time::sleep(SCHEDULING_LATENCY).await;
                state.place(&namespace, &id, &eval);
            });
        }
        json!({
            "EvalID": if replace { eval_id } else { String::new() },
            "EvalCreateIndex": if replace { index } else { 0 },
            "JobModifyIndex": index,
            "Warnings": "",
            "Index": index,
            "LastContact": 0,
            "KnownLeader": true
        })
    }

    /// The evaluation's result: one allocation for the job's (only) group.
    fn place(self: &Arc<Self>, namespace: &str, job_id: &str, eval_id: &str) {
        let key = (namespace.to_owned(), job_id.to_owned());
        let Some(rec) = self.lock().jobs.get(&key).cloned() else {
            return;
        };
        if rec.stop {
            return;
        }
        let Some(group) = rec.job["TaskGroups"].get(0).cloned() else {
            return;
        };
        let alloc_id = uuid();
        let index = self.bump();
        let group_name = group["Name"].as_str().unwrap_or_default().to_owned();
        let bridge = group["Networks"].get(0).and_then(|n| n["Mode"].as_str()) == Some("bridge");
        let mut states = serde_json::Map::new();
        for task in group["Tasks"].as_array().into_iter().flatten() {
            let name = task["Name"].as_str().unwrap_or_default().to_owned();
            states.insert(
                name,
                json!({
                    "State": "pending", "Failed": false, "Restarts": 0,
                    "StartedAt": "0001-01-01T00:00:00Z", "FinishedAt": "0001-01-01T00:00:00Z",
                    "LastRestart": "0001-01-01T00:00:00Z",
                    "Events": [event("Received", json!({})), event("Task Setup", json!({"Message": "Building Task Directory"}))]
                }),
            );
        }
        let octet = (index % 250) + 2;
        let value = json!({
            "ID": alloc_id,
            "EvalID": eval_id,
            "Name": format!("{job_id}.{group_name}[0]"),
            "Namespace": namespace,
            "NodeID": FAKE_NODE_ID,
            "NodeName": "fake-client-1",
            "JobID": job_id,
            "JobType": rec.job["Type"],
            "JobVersion": rec.version,
            "TaskGroup": group_name,
            "DesiredStatus": "run",
            "DesiredDescription": "",
            "ClientStatus": "pending",
            "ClientDescription": "No tasks have started",
            "TaskStates": states,
            "AllocatedResources": {
                "Shared": {"Networks": [{"Mode": if bridge { "bridge" } else { "host" }, "IP": "127.0.0.1", "DynamicPorts": null, "ReservedPorts": null}]}
            },
            "NetworkStatus": if bridge { json!({"InterfaceName": "eth0", "Address": format!("172.26.64.{octet}")}) } else { json!({"InterfaceName": "", "Address": ""}) },
            "CreateIndex": index,
            "ModifyIndex": index,
            "AllocModifyIndex": index,
            "CreateTime": now_ns(),
            "ModifyTime": now_ns()
        });
        self.publish(
            index,
            "Allocation",
            "PlanResult",
            &alloc_id,
            namespace,
            value.clone(),
        );
        self.lock().allocs.insert(
            alloc_id.clone(),
            AllocRec {
                value,
                namespace: namespace.to_owned(),
                job_id: job_id.to_owned(),
                create_index: index,
            },
        );
        let job_type = rec.job["Type"].as_str().unwrap_or("service").to_owned();
        let restart = group["RestartPolicy"].clone();
        let mut kills = Vec::new();
        for task in group["Tasks"].as_array().into_iter().flatten() {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            kills.push(tx);
            let state = self.clone();
            let alloc = alloc_id.clone();
            let task = task.clone();
            let restart = restart.clone();
            let job_type = job_type.clone();
            tokio::spawn(async move {
                tokio::time::sleep(SCHEDULING_LATENCY).await;
                run_task(state, alloc, task, restart, job_type, rx).await;
            });
        }
        self.lock().kills.insert(alloc_id, kills);
    }

    /// Updates one allocation (and bumps the index).
    pub fn update_alloc(&self, alloc_id: &str, change: impl FnOnce(&mut Value)) {
        let index = self.bump();
        let mut inner = self.lock();
        let mut event = None;
        if let Some(rec) = inner.allocs.get_mut(alloc_id) {
            change(&mut rec.value);
            rec.value["ModifyIndex"] = json!(index);
            rec.value["ModifyTime"] = json!(now_ns());
            let states: Vec<Value> = rec.value["TaskStates"]
                .as_object()
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default();
            let stopping = rec.value["DesiredStatus"] != "run";
            let all_dead = states.iter().all(|s| s["State"] == "dead");
            let any_running = states.iter().any(|s| s["State"] == "running");
            let any_failed = states.iter().any(|s| s["Failed"] == true);
            let status = if all_dead {
                if any_failed && !stopping {
                    "failed"
                } else {
                    "complete"
                }
            } else if any_running {
                "running"
            } else {
                "pending"
            };
            rec.value["ClientStatus"] = json!(status);
            rec.value["ClientDescription"] = json!(match status {
                "running" => "Tasks are running",
                "complete" => "All tasks have completed",
                "failed" => "Failed tasks",
                _ => "No tasks have started",
            });
            event = Some(json!({
                "Topic": "Allocation", "Type": "AllocationUpdated", "Key": alloc_id,
                "Namespace": rec.namespace, "FilterKeys": [rec.job_id], "Index": index,
                "Payload": {"Allocation": rec.value}
            }));
        }
        if let Some(event) = event {
            inner.events.push((index, event));
        }
        drop(inner);
        self.index.send_modify(|_| {});
    }

    /// Asks an allocation's tasks to stop (SIGTERM, SIGKILL after their KillTimeout).
    pub fn stop_alloc(&self, alloc_id: &str) {
        self.update_alloc(alloc_id, |a| {
            a["DesiredStatus"] = json!("stop");
            a["DesiredDescription"] = json!("alloc not needed due to job update");
        });
        let kills = self.lock().kills.get(alloc_id).cloned().unwrap_or_default();
        let timeout = Duration::from_secs(5);
        for kill in kills {
            let _ = kill.send(timeout);
        }
    }

    /// *Stop a Job*.
    pub fn deregister(self: &Arc<Self>, namespace: &str, id: &str, purge: bool) -> Option<Value> {
        let key = (namespace.to_owned(), id.to_owned());
        let index = self.bump();
        let allocs: Vec<String> = {
            let mut inner = self.lock();
            let rec = inner.jobs.get_mut(&key)?;
            rec.stop = true;
            rec.modify_index = index;
            rec.job["Stop"] = json!(true);
            rec.job["Status"] = json!("dead");
            rec.job["ModifyIndex"] = json!(index);
            let job = rec.job.clone();
            let event = json!({
                "Topic": "Job", "Type": "JobDeregistered", "Key": id, "Namespace": namespace,
                "FilterKeys": null, "Index": index, "Payload": {"Job": job}
            });
            inner.events.push((index, event));
            if purge {
                inner.jobs.remove(&key);
                inner.purged.push(key.clone());
            }
            inner
                .allocs
                .values()
                .filter(|a| a.namespace == namespace && a.job_id == id)
                .map(|a| a.value["ID"].as_str().unwrap_or_default().to_owned())
                .collect()
        };
        self.index.send_modify(|_| {});
        for alloc in &allocs {
            if self
                .lock()
                .allocs
                .get(alloc)
                .is_some_and(|a| a.value["DesiredStatus"] == "run")
            {
                self.stop_alloc(alloc);
            }
        }
        if purge {
            // Allocations of a purged job go once they are terminal (Nomad's GC).
            let state = self.clone();
            tokio::spawn(async move {
                let mut index = state.index.subscribe();
                loop {
                    let remaining: Vec<String> = allocs
                        .iter()
                        .filter(|a| state.lock().allocs.contains_key(*a))
                        .cloned()
                        .collect();
                    let mut all_gone = true;
                    for alloc in remaining {
                        let terminal = state.lock().allocs.get(&alloc).is_some_and(|a| {
                            matches!(
                                a.value["ClientStatus"].as_str(),
                                Some("complete" | "failed" | "lost")
                            )
                        });
                        if terminal {
                            state.lock().allocs.remove(&alloc);
                            state.bump();
                        } else {
                            all_gone = false;
                        }
                    }
                    if all_gone || index.changed().await.is_err() {
                        return;
                    }
                }
            });
        }
        Some(json!({"EvalID": uuid(), "EvalCreateIndex": index, "JobModifyIndex": index}))
    }

    pub fn append_log(&self, alloc: &str, task: &str, stderr: bool, bytes: &[u8]) {
        {
            let mut inner = self.lock();
            let logs = inner
                .logs
                .entry((alloc.to_owned(), task.to_owned()))
                .or_default();
            if stderr {
                logs.stderr.extend_from_slice(bytes);
            } else {
                logs.stdout.extend_from_slice(bytes);
            }
        }
        self.log_tick.send_modify(|t| *t += 1);
    }
}

pub const FAKE_NODE_ID: &str = "f7476465-4d6e-c0de-26d0-e383c49be941";

fn event(kind: &str, extra: Value) -> Value {
    let mut e = json!({
        "Type": kind, "Time": now_ns(), "FailsTask": false, "RestartReason": "", "SetupError": "",
        "DriverError": "", "ExitCode": 0, "Signal": 0, "Message": "", "KillTimeout": 0,
        "KillError": "", "KillReason": "", "StartDelay": 0, "DownloadError": "",
        "ValidationError": "", "DiskLimit": 0, "FailedSibling": "", "VaultError": "",
        "TaskSignalReason": "", "TaskSignal": "", "DriverMessage": "", "DisplayMessage": "",
        "Details": {}
    });
    if let (Some(e), Some(extra)) = (e.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            e.insert(k.clone(), v.clone());
        }
    }
    e
}

fn push_event(alloc: &mut Value, task: &str, event: Value) {
    if let Some(events) = alloc["TaskStates"][task]["Events"].as_array_mut() {
        events.push(event);
        // Nomad keeps the last 10 events per task.
        let excess = events.len().saturating_sub(10);
        events.drain(..excess);
    }
}

/// Whether `program` names an executable (a path, or a name on `PATH`).
fn find_program(program: &str) -> bool {
    if program.contains('/') {
        return std::path::Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The argv a task runs.
fn argv(task: &Value) -> Result<Vec<String>, String> {
    let config = &task["Config"];
    let words = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    match task["Driver"].as_str() {
        Some("docker") => {
            if config["image"].as_str().is_none_or(str::is_empty) {
                return Err("image must be set".to_owned());
            }
            let mut argv = words(&config["entrypoint"]);
            argv.extend(words(&config["args"]));
            Ok(argv)
        }
        Some("exec" | "raw_exec") => {
            let command = config["command"].as_str().ok_or("command must be set")?;
            let mut argv = vec![command.to_owned()];
            argv.extend(words(&config["args"]));
            Ok(argv)
        }
        other => Err(format!("missing drivers: {}", other.unwrap_or_default())),
    }
}

async fn run_task(
    state: Arc<State>,
    alloc: String,
    task: Value,
    restart: Value,
    job_type: String,
    mut kill: tokio::sync::mpsc::UnboundedReceiver<Duration>,
) {
    let name = task["Name"].as_str().unwrap_or_default().to_owned();
    let env: BTreeMap<String, String> =
        serde_json::from_value(task["Env"].clone()).unwrap_or_default();
    let work_dir = task["Config"]["work_dir"].as_str().map(str::to_owned);
    state.lock().task_env.insert(
        (alloc.clone(), name.clone()),
        (env.clone(), work_dir.clone()),
    );
    let kill_timeout = task["KillTimeout"]
        .as_u64()
        .map_or(Duration::from_secs(5), Duration::from_nanos);
    let attempts = restart["Attempts"].as_u64().unwrap_or(2);
    let mode = restart["Mode"].as_str().unwrap_or("fail").to_owned();
    let delay = restart["Delay"]
        .as_u64()
        .map_or(Duration::from_secs(15), Duration::from_nanos);
    let mut restarts: u64 = 0;
    loop {
        let argv = match argv(&task) {
            Ok(argv) => argv,
            Err(message) => {
                state.update_alloc(&alloc, |a| {
                    push_event(a, &name, event("Driver Failure", json!({"DriverError": message, "FailsTask": true, "DisplayMessage": message})));
                    a["TaskStates"][&name]["State"] = json!("dead");
                    a["TaskStates"][&name]["Failed"] = json!(true);
                    a["TaskStates"][&name]["FinishedAt"] = json!(rfc3339_now());
                });
                return;
            }
        };
        let mut child = if argv.is_empty() {
            None
        } else {
            // Tied to the test process: a task never outlives the test that ran it
            // (the fake of a shared fixture is never dropped). Its own process group,
            // as a Nomad client's executor would give it, so a kill reaches it all.
            let mut std_cmd = vk_testkit::tied::command(std::path::Path::new(&argv[0]));
            std::os::unix::process::CommandExt::process_group(&mut std_cmd, 0);
            std_cmd
                .args(&argv[1..])
                .envs(&env)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            if let Some(dir) = &work_dir {
                std_cmd.current_dir(dir);
            }
            let mut cmd = tokio::process::Command::from(std_cmd);
            cmd.kill_on_drop(true);
            let spawned = if find_program(&argv[0]) {
                cmd.spawn()
            } else {
                Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{}: executable file not found in $PATH", argv[0]),
                ))
            };
            match spawned {
                Ok(child) => Some(child),
                Err(e) => {
                    let message = format!("failed to launch command with executor: {e}");
                    state.update_alloc(&alloc, |a| {
                        push_event(a, &name, event("Driver Failure", json!({"DriverError": message, "FailsTask": true, "DisplayMessage": message})));
                        a["TaskStates"][&name]["State"] = json!("dead");
                        a["TaskStates"][&name]["Failed"] = json!(true);
                        a["TaskStates"][&name]["FinishedAt"] = json!(rfc3339_now());
                    });
                    return;
                }
            }
        };
        let mut pumps = Vec::new();
        if let Some(child) = child.as_mut() {
            for (stderr, out) in [
                (
                    false,
                    child
                        .stdout
                        .take()
                        .map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
                ),
                (
                    true,
                    child
                        .stderr
                        .take()
                        .map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
                ),
            ] {
                let Some(mut out) = out else { continue };
                let state = state.clone();
                let alloc = alloc.clone();
                let name = name.clone();
                pumps.push(tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    while let Ok(n) = out.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        state.append_log(&alloc, &name, stderr, &buf[..n]);
                    }
                }));
            }
        }
        state.update_alloc(&alloc, |a| {
            push_event(a, &name, event("Started", json!({})));
            a["TaskStates"][&name]["State"] = json!("running");
            a["TaskStates"][&name]["StartedAt"] = json!(rfc3339_now());
            a["TaskStates"][&name]["Restarts"] = json!(restarts);
        });
        // Wait for the exit or a kill request.
        let exit = tokio::select! {
            code = async {
                match child.as_mut() {
                    Some(c) => c.wait().await.ok().map(|s| {
                        use std::os::unix::process::ExitStatusExt as _;
                        (s.code().unwrap_or(128 + s.signal().unwrap_or(0)), s.signal().unwrap_or(0))
                    }),
                    None => std::future::pending().await,
                }
            } => Some(code.unwrap_or((1, 0))),
            requested = kill.recv() => {
                let _ = requested;
                None
            }
        };
        let Some((code, signal)) = exit else {
            // Killed: SIGTERM to the group, SIGKILL after the kill timeout.
            state.update_alloc(&alloc, |a| {
                push_event(a, &name, event("Killing", json!({"KillTimeout": kill_timeout.as_nanos() as u64, "DisplayMessage": "Sent interrupt"})));
            });
            if let Some(c) = child.as_mut() {
                if let Some(pid) = c.id() {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid as i32),
                        nix::sys::signal::Signal::SIGTERM,
                    );
                }
                if tokio::time::timeout(kill_timeout, c.wait()).await.is_err() {
                    let _ = c.kill().await;
                }
            }
            for p in pumps {
                let _ = p.await;
            }
            state.update_alloc(&alloc, |a| {
                push_event(
                    a,
                    &name,
                    event(
                        "Killed",
                        json!({"DisplayMessage": "Task successfully killed"}),
                    ),
                );
                a["TaskStates"][&name]["State"] = json!("dead");
                a["TaskStates"][&name]["FinishedAt"] = json!(rfc3339_now());
            });
            return;
        };
        for p in pumps {
            let _ = p.await;
        }
        let failed = code != 0;
        state.update_alloc(&alloc, |a| {
            push_event(a, &name, event("Terminated", json!({
                "ExitCode": code, "Signal": signal,
                "DisplayMessage": format!("Exit Code: {code}"),
                "Details": {"exit_code": code.to_string(), "signal": signal.to_string(), "oom_killed": "false"}
            })));
        });
        // Batch tasks that succeed are done; everything else follows the restart policy.
        let restart_allowed =
            (failed || job_type != "batch") && (mode == "delay" || restarts < attempts);
        if !restart_allowed {
            state.update_alloc(&alloc, |a| {
                push_event(
                    a,
                    &name,
                    event(
                        "Not Restarting",
                        json!({"DisplayMessage": "Exceeded allowed attempts"}),
                    ),
                );
                a["TaskStates"][&name]["State"] = json!("dead");
                a["TaskStates"][&name]["Failed"] = json!(failed);
                a["TaskStates"][&name]["FinishedAt"] = json!(rfc3339_now());
            });
            return;
        }
        restarts += 1;
        state.update_alloc(&alloc, |a| {
            push_event(a, &name, event("Restarting", json!({
                "RestartReason": "Restart within policy", "StartDelay": delay.as_nanos() as u64,
                "DisplayMessage": format!("Task restarting in {}s", delay.as_secs())
            })));
            a["TaskStates"][&name]["State"] = json!("pending");
            a["TaskStates"][&name]["LastRestart"] = json!(rfc3339_now());
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = kill.recv() => {
                state.update_alloc(&alloc, |a| {
                    push_event(a, &name, event("Killed", json!({"DisplayMessage": "Task successfully killed"})));
                    a["TaskStates"][&name]["State"] = json!("dead");
                    a["TaskStates"][&name]["FinishedAt"] = json!(rfc3339_now());
                });
                return;
            }
        }
    }
}
