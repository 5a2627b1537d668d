//! Running one pod: init containers in order, then every container with its restart
//! policy and crash back-off, probes, `activeDeadlineSeconds`, volume refreshes, and
//! the stop on deletion. Status changes are published as they happen.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::instance::{self, Launcher};
use crate::layout::PodDir;
use crate::lifecycle::{Backoff, RestartPolicy, exit_reason, pod_phase};
use crate::probes::{self, ProbeState, ProbeTarget};
use crate::shim::{ExitRecord, PidRecord, read_json, write_json};
use crate::volumes::Materialiser;
use crate::{launch, limits};
use vk_core::env::EnvSource;

/// Where a pod's status changes go (the provider forwards them to the core).
pub trait Publisher: Send + Sync {
    /// `pod` (with its status) changed.
    fn publish(&self, pod: Pod);
}

/// The live state of one pod.
pub struct PodRuntime {
    pod: Mutex<Pod>,
    dir: PodDir,
    status: Mutex<PodStatus>,
    pids: Mutex<HashMap<String, PidRecord>>,
    initialized: AtomicBool,
    init_failed: AtomicBool,
    deadline_exceeded: AtomicBool,
    stop: CancellationToken,
    grace: Mutex<Duration>,
    finished: CancellationToken,
    adopting: bool,
}

impl std::fmt::Debug for PodRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodRuntime")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn now() -> Time {
    Time(Timestamp::now())
}

fn parse_time(text: &str) -> Time {
    Time(text.parse().unwrap_or_else(|_| Timestamp::now()))
}

fn waiting(reason: &str) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_owned()),
            message: None,
        }),
        ..Default::default()
    }
}

fn initial_status(c: &Container, reason: &str) -> ContainerStatus {
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: String::new(),
        ready: false,
        restart_count: 0,
        started: Some(false),
        state: Some(waiting(reason)),
        ..Default::default()
    }
}

impl PodRuntime {
    /// A runtime for `pod` (not started). `previous` is a status recorded by an earlier
    /// provider process: its containers are adopted.
    pub fn new(pod: Pod, dir: PodDir, previous: Option<PodStatus>, host_ip: &str) -> Self {
        let adopting = previous.is_some();
        let status = previous.unwrap_or_else(|| {
            let spec = pod.spec.clone().unwrap_or_default();
            let inits: Vec<ContainerStatus> = spec
                .init_containers
                .iter()
                .flatten()
                .map(|c| initial_status(c, "PodInitializing"))
                .collect();
            let reason = if inits.is_empty() {
                "ContainerCreating"
            } else {
                "PodInitializing"
            };
            PodStatus {
                phase: Some("Pending".into()),
                host_ip: Some(host_ip.to_owned()),
                pod_ip: Some(host_ip.to_owned()),
                pod_ips: Some(vec![k8s_openapi::api::core::v1::PodIP {
                    ip: host_ip.to_owned(),
                }]),
                start_time: Some(now()),
                qos_class: pod.status.as_ref().and_then(|s| s.qos_class.clone()),
                container_statuses: Some(
                    spec.containers
                        .iter()
                        .map(|c| initial_status(c, reason))
                        .collect(),
                ),
                init_container_statuses: (!inits.is_empty()).then_some(inits),
                ..Default::default()
            }
        });
        let initialized = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Initialized" && c.status == "True");
        Self {
            pod: Mutex::new(pod),
            dir,
            status: Mutex::new(status),
            pids: Mutex::new(HashMap::new()),
            initialized: AtomicBool::new(initialized),
            init_failed: AtomicBool::new(false),
            deadline_exceeded: AtomicBool::new(false),
            stop: CancellationToken::new(),
            grace: Mutex::new(Duration::from_secs(30)),
            finished: CancellationToken::new(),
            adopting,
        }
    }

    /// The pod's directories.
    pub fn dir(&self) -> &PodDir {
        &self.dir
    }

    /// The pod as created (or last updated), without status.
    pub fn pod(&self) -> Pod {
        lock(&self.pod).clone()
    }

    /// Replaces the pod's spec and metadata (an update; running processes are kept).
    pub fn set_pod(&self, pod: Pod) {
        let _ = write_json(&self.dir.pod_json(), &pod);
        *lock(&self.pod) = pod;
    }

    /// The current status.
    pub fn status(&self) -> PodStatus {
        lock(&self.status).clone()
    }

    /// The pod with its current status.
    pub fn pod_with_status(&self) -> Pod {
        let mut pod = self.pod();
        pod.status = Some(self.status());
        pod
    }

    /// The PID record of a container's running instance.
    pub fn pid_of(&self, container: &str) -> Option<PidRecord> {
        lock(&self.pids).get(container).copied()
    }

    /// Every running container and its PID record.
    pub fn running(&self) -> Vec<(String, PidRecord)> {
        lock(&self.pids)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// The status of `container` (init or regular).
    pub fn container_status(&self, container: &str) -> Option<ContainerStatus> {
        let s = lock(&self.status);
        s.container_statuses
            .iter()
            .flatten()
            .chain(s.init_container_statuses.iter().flatten())
            .find(|c| c.name == container)
            .cloned()
    }

    /// Asks the pod to stop, giving its containers `grace` after SIGTERM.
    pub fn request_stop(&self, grace: Duration) {
        *lock(&self.grace) = grace;
        self.stop.cancel();
    }

    /// Whether a stop was requested.
    pub fn stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Resolves when the runtime has stopped every process after a stop request.
    pub async fn finished(&self) {
        self.finished.cancelled().await;
    }

    fn grace(&self) -> Duration {
        *lock(&self.grace)
    }

    fn update_container(&self, name: &str, f: impl FnOnce(&mut ContainerStatus)) {
        let mut guard = lock(&self.status);
        let s = &mut *guard;
        let all = s
            .container_statuses
            .iter_mut()
            .flatten()
            .chain(s.init_container_statuses.iter_mut().flatten());
        for c in all {
            if c.name == name {
                f(c);
                return;
            }
        }
    }

    /// Recomputes phase and conditions, persists the status and publishes it.
    fn publish(&self, publisher: &dyn Publisher) {
        let policy = RestartPolicy::parse(
            lock(&self.pod)
                .spec
                .as_ref()
                .and_then(|s| s.restart_policy.as_deref()),
        );
        {
            let mut s = lock(&self.status);
            let initialized = self.initialized.load(Ordering::SeqCst);
            let containers = s.container_statuses.clone().unwrap_or_default();
            let mut phase = pod_phase(
                policy,
                initialized,
                self.init_failed.load(Ordering::SeqCst),
                &containers,
            );
            if self.deadline_exceeded.load(Ordering::SeqCst) {
                phase = "Failed";
                s.reason = Some("DeadlineExceeded".into());
                s.message =
                    Some("Pod was active on the node longer than the specified deadline".into());
            }
            // A terminal phase is final.
            if !matches!(s.phase.as_deref(), Some("Succeeded") | Some("Failed")) {
                s.phase = Some(phase.to_owned());
            }
            let all_ready = !containers.is_empty() && containers.iter().all(|c| c.ready);
            let mut conditions = s.conditions.clone().unwrap_or_default();
            set_condition(&mut conditions, "PodScheduled", true, None);
            set_condition(
                &mut conditions,
                "Initialized",
                initialized,
                (!initialized).then_some("ContainersNotInitialized"),
            );
            set_condition(
                &mut conditions,
                "ContainersReady",
                all_ready,
                (!all_ready).then_some("ContainersNotReady"),
            );
            set_condition(
                &mut conditions,
                "Ready",
                all_ready,
                (!all_ready).then_some("ContainersNotReady"),
            );
            s.conditions = Some(conditions);
            let _ = write_json(&self.dir.status_json(), &*s);
        }
        publisher.publish(self.pod_with_status());
    }
}

fn set_condition(
    conditions: &mut Vec<PodCondition>,
    type_: &str,
    value: bool,
    reason: Option<&str>,
) {
    let status = if value { "True" } else { "False" };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) if c.status == status => {}
        Some(c) => {
            c.status = status.to_owned();
            c.reason = reason.map(str::to_owned);
            c.last_transition_time = Some(now());
        }
        None => conditions.push(PodCondition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.map(str::to_owned),
            last_transition_time: Some(now()),
            ..Default::default()
        }),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a pod's task needs from the provider.
#[derive(Clone)]
pub struct Context {
    /// Starts instances.
    pub launcher: Arc<Launcher>,
    /// ConfigMaps and Secrets for volume refreshes.
    pub source: Arc<dyn EnvSource>,
    /// ServiceAccount tokens for volume refreshes (see [`crate::incluster`]).
    pub tokens: Option<Arc<dyn crate::incluster::TokenSource>>,
    /// Status changes go here.
    pub publisher: Arc<dyn Publisher>,
    /// How often projected volumes are refreshed.
    pub volume_refresh: Duration,
    /// Crash back-off.
    pub backoff: Backoff,
}

/// How a container's run ended.
enum Ended {
    /// It exited and will not be restarted (its exit code).
    Exited(i32),
    /// The pod is being stopped.
    Stopped,
}

/// Runs the pod until it is stopped and its processes are gone.
pub async fn run_pod(ctx: Context, rt: Arc<PodRuntime>) {
    let pod = rt.pod();
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = RestartPolicy::parse(spec.restart_policy.as_deref());
    let has_init = spec.init_containers.as_ref().is_some_and(|c| !c.is_empty());
    // A pod without init containers is first reported once its containers have started
    // (or failed to): that takes milliseconds, and a ContainerCreating report before it
    // would cost each pod one more status write, which the pods of a burst queue for.
    // Adopted pods and pods with init containers are reported at once.
    if rt.adopting || has_init {
        rt.publish(ctx.publisher.as_ref());
    }
    let refresher = tokio::spawn(refresh_volumes(ctx.clone(), rt.clone()));
    let deadline = tokio::spawn(enforce_deadline(
        ctx.clone(),
        rt.clone(),
        spec.active_deadline_seconds,
    ));
    let mut init_ok = rt.initialized.load(Ordering::SeqCst);
    if !init_ok {
        init_ok = true;
        for c in spec.init_containers.iter().flatten() {
            match run_container(&ctx, &rt, c, policy.for_init(), true).await {
                Ended::Exited(0) => {}
                Ended::Exited(_) => {
                    rt.init_failed.store(true, Ordering::SeqCst);
                    init_ok = false;
                    break;
                }
                Ended::Stopped => {
                    init_ok = false;
                    break;
                }
            }
        }
        if init_ok {
            rt.initialized.store(true, Ordering::SeqCst);
        }
        if has_init {
            rt.publish(ctx.publisher.as_ref());
        }
    }
    if init_ok {
        let runs = spec
            .containers
            .iter()
            .map(|c| run_container(&ctx, &rt, c, policy, false));
        futures::future::join_all(runs).await;
    }
    rt.stop.cancelled().await;
    refresher.abort();
    deadline.abort();
    // Every container ends terminated in the final status.
    let names: Vec<String> = launch::all_containers(&pod)
        .iter()
        .map(|c| c.name.clone())
        .collect();
    for name in names {
        rt.update_container(&name, |c| {
            c.ready = false;
            c.started = Some(false);
            if c.state.as_ref().is_none_or(|s| s.terminated.is_none()) {
                c.state = Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: 0,
                        reason: Some("Completed".into()),
                        message: Some("the pod was deleted before the container ran".into()),
                        finished_at: Some(now()),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
            }
        });
    }
    rt.publish(ctx.publisher.as_ref());
    rt.finished.cancel();
}

/// Runs one container through its restarts until it ends for good or the pod stops.
async fn run_container(
    ctx: &Context,
    rt: &Arc<PodRuntime>,
    c: &Container,
    policy: RestartPolicy,
    init: bool,
) -> Ended {
    let name = c.name.clone();
    let mut attempt = 0u32;
    let mut first = true;
    loop {
        let pod = rt.pod();
        let current = rt
            .container_status(&name)
            .unwrap_or_else(|| initial_status(c, "ContainerCreating"));
        let restart_count = u32::try_from(current.restart_count).unwrap_or(0);
        // Adopt what an earlier provider process left running or finished.
        let adopted = match (first && rt.adopting).then(|| adoption(rt, &current, policy)) {
            Some(Adoption::Finished(exit_code)) => return Ended::Exited(exit_code),
            Some(Adoption::Running(pid)) => Some((restart_count, pid)),
            Some(Adoption::Nothing) | None => None,
        };
        let had_run = has_run(&current);
        first = false;
        let (instance, started) = match adopted {
            Some((instance, pid)) => {
                tracing::info!(pod = ?rt.dir.path(), container = %name, pid = pid.pid, "adopted running container");
                (instance, Ok(pid))
            }
            None => {
                let instance = if had_run { restart_count + 1 } else { 0 };
                (instance, start_instance(ctx, rt, &pod, c, instance).await)
            }
        };
        let started_at = now();
        let exit = match started {
            Err(exit) => Some(exit),
            Ok(pid) => {
                lock(&rt.pids).insert(name.clone(), pid);
                if adopted.is_none() {
                    mark_running(ctx, rt, c, pid, had_run, init, &started_at);
                }
                let exit = watch_instance(ctx, rt, c, instance, pid, init).await;
                lock(&rt.pids).remove(&name);
                exit
            }
        };
        let Some(exit) = exit else {
            return Ended::Stopped;
        };
        let (terminated, ran) = terminated_state(ctx, rt, &pod, c, &exit, started_at);
        let next_attempt = ctx.backoff.next_attempt(attempt, ran);
        let delay = ctx.backoff.delay(next_attempt);
        let stopping = rt.stopping();
        let restart = !stopping
            && !rt.deadline_exceeded.load(Ordering::SeqCst)
            && policy.restarts(exit.exit_code);
        record_exit(ctx, rt, &name, terminated, restart.then_some(delay));
        rt.dir.prune(&name, instance.saturating_sub(1));
        if stopping {
            return Ended::Stopped;
        }
        if !restart {
            return Ended::Exited(exit.exit_code);
        }
        attempt = next_attempt;
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = rt.stop.cancelled() => return Ended::Stopped,
        }
    }
}

/// What an earlier provider process left of a container, as the status it recorded says.
enum Adoption {
    /// The container finished and is not to be restarted (its exit code).
    Finished(i32),
    /// The current instance still runs (its PID record).
    Running(PidRecord),
    /// Nothing to adopt: an instance is to be started.
    Nothing,
}

/// What there is to adopt of the container whose recorded status is `current`.
fn adoption(rt: &PodRuntime, current: &ContainerStatus, policy: RestartPolicy) -> Adoption {
    let state = current.state.clone().unwrap_or_default();
    if let Some(t) = &state.terminated
        && !policy.restarts(t.exit_code)
    {
        return Adoption::Finished(t.exit_code);
    }
    let restart_count = u32::try_from(current.restart_count).unwrap_or(0);
    if state.running.is_some()
        && let Some(pid) = read_json::<PidRecord>(&rt.dir.pid(&current.name, restart_count))
    {
        return Adoption::Running(pid);
    }
    Adoption::Nothing
}

/// Whether an instance of the container ran before (the next one is then a restart).
fn has_run(current: &ContainerStatus) -> bool {
    current
        .last_state
        .as_ref()
        .is_some_and(|l| l.terminated.is_some())
        || current
            .state
            .as_ref()
            .is_some_and(|s| s.terminated.is_some() || s.running.is_some())
}

/// Starts instance `instance` of `c` (in its cgroup when it has limits); a failure to
/// start is an exit with code 128.
async fn start_instance(
    ctx: &Context,
    rt: &PodRuntime,
    pod: &Pod,
    c: &Container,
    instance: u32,
) -> Result<PidRecord, ExitRecord> {
    let cgroup = limits::prepare(ctx.launcher.cgroup_parent.as_deref(), pod, c);
    match ctx.launcher.start(pod, &rt.dir, c, instance, cgroup).await {
        Ok(result) => result,
        Err(e) => {
            tracing::warn!(container = %c.name, error = %e, "starting container failed");
            Err(ExitRecord {
                exit_code: 128,
                signal: None,
                message: Some(e.to_string()),
                finished_at: crate::logfmt::now_rfc3339(),
            })
        }
    }
}

/// Records a newly started instance as running (a restart when `had_run`) and
/// publishes it.
fn mark_running(
    ctx: &Context,
    rt: &PodRuntime,
    c: &Container,
    pid: PidRecord,
    had_run: bool,
    init: bool,
    started_at: &Time,
) {
    rt.update_container(&c.name, |s| {
        if had_run {
            s.restart_count += 1;
        }
        s.container_id = Some(format!("process://{}", pid.pid));
        // As the kubelet reports them: without a startup probe a running container has
        // started, and without a readiness probe too it is ready, in this same report
        // (not in one more status write after it).
        let started = c.startup_probe.is_none() && !init;
        s.started = Some(started);
        s.ready = started && c.readiness_probe.is_none();
        s.state = Some(ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(started_at.clone()),
            }),
            ..Default::default()
        });
    });
    rt.publish(ctx.publisher.as_ref());
}

/// The terminated state of an instance that ended with `exit`, and how long it ran
/// (from the start its status records, else `started_at`).
fn terminated_state(
    ctx: &Context,
    rt: &PodRuntime,
    pod: &Pod,
    c: &Container,
    exit: &ExitRecord,
    started_at: Time,
) -> (ContainerStateTerminated, Duration) {
    let finished_at = parse_time(&exit.finished_at);
    let started_at = rt
        .container_status(&c.name)
        .and_then(|s| s.state.and_then(|s| s.running).and_then(|r| r.started_at))
        .unwrap_or(started_at);
    let ran = Duration::try_from(finished_at.0.duration_since(started_at.0)).unwrap_or_default();
    let oom = limits::oom_killed(ctx.launcher.cgroup_parent.as_deref(), pod, c);
    let terminated = ContainerStateTerminated {
        exit_code: exit.exit_code,
        signal: exit.signal,
        reason: Some(exit_reason(exit.exit_code, oom).to_owned()),
        message: exit.message.clone(),
        started_at: Some(started_at),
        finished_at: Some(finished_at),
        container_id: rt.container_status(&c.name).and_then(|s| s.container_id),
    };
    (terminated, ran)
}

/// Records an ended instance and publishes it: `terminated` as the state, or, when it
/// restarts after `backoff`, as the last state with `CrashLoopBackOff` waiting.
fn record_exit(
    ctx: &Context,
    rt: &PodRuntime,
    name: &str,
    terminated: ContainerStateTerminated,
    backoff: Option<Duration>,
) {
    rt.update_container(name, |s| {
        s.ready = false;
        s.started = Some(false);
        let state = ContainerState {
            terminated: Some(terminated),
            ..Default::default()
        };
        match backoff {
            Some(delay) => {
                s.last_state = Some(state);
                s.state = Some(ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some("CrashLoopBackOff".into()),
                        message: Some(format!(
                            "back-off {}s restarting failed container={name}",
                            delay.as_secs()
                        )),
                    }),
                    ..Default::default()
                });
            }
            None => s.state = Some(state),
        }
    });
    rt.publish(ctx.publisher.as_ref());
}

/// Waits for an instance to end, running its probes; stops it when the pod stops
/// (returns `None`) or when liveness fails.
async fn watch_instance(
    ctx: &Context,
    rt: &Arc<PodRuntime>,
    c: &Container,
    instance: u32,
    pid: PidRecord,
    init: bool,
) -> Option<ExitRecord> {
    let name = c.name.clone();
    let pod = rt.pod();
    let (tx, mut rx) = watch::channel(ProbeState::default());
    let target = ProbeTarget {
        container: c.clone(),
        env: launch::env(&pod, c, &rt.dir),
        cwd: launch::cwd(c, &rt.dir),
    };
    let probing = async {
        if init {
            return std::future::pending::<()>().await;
        }
        let runner = probes::run(target, tx);
        tokio::pin!(runner);
        let mut runner_done = false;
        loop {
            tokio::select! {
                () = &mut runner, if !runner_done => runner_done = true,
                changed = rx.changed() => {
                    if changed.is_err() {
                        return std::future::pending::<()>().await;
                    }
                    let s = *rx.borrow_and_update();
                    if s.unhealthy {
                        return;
                    }
                    let mut changed = false;
                    rt.update_container(&name, |st| {
                        changed = st.started != Some(s.started) || st.ready != s.ready;
                        st.started = Some(s.started);
                        st.ready = s.ready;
                    });
                    if changed {
                        rt.publish(ctx.publisher.as_ref());
                    }
                }
            }
        }
    };
    let grace = || {
        pod.spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .map_or(Duration::from_secs(30), Duration::from_secs)
    };
    tokio::select! {
        exit = instance::wait_exit(&rt.dir, &name, instance, pid) => Some(exit),
        () = rt.stop.cancelled() => {
            instance::stop(&rt.dir, &name, instance, pid, rt.grace()).await;
            None
        }
        () = probing => {
            tracing::info!(container = %name, "liveness probe failed; restarting the container");
            Some(instance::stop(&rt.dir, &name, instance, pid, grace()).await)
        }
    }
}

async fn refresh_volumes(ctx: Context, rt: Arc<PodRuntime>) {
    loop {
        tokio::time::sleep(ctx.volume_refresh).await;
        let pod = rt.pod();
        let m = Materialiser {
            pod: &pod,
            dir: &rt.dir,
            source: ctx.source.as_ref(),
            tokens: ctx.tokens.as_deref(),
        };
        match m.refresh().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pod = ?rt.dir.path(), files = n, "volumes updated"),
            Err(e) => tracing::warn!(pod = ?rt.dir.path(), error = %e, "refreshing volumes failed"),
        }
    }
}

async fn enforce_deadline(ctx: Context, rt: Arc<PodRuntime>, seconds: Option<i64>) {
    let Some(seconds) = seconds.and_then(|s| u64::try_from(s).ok()) else {
        return;
    };
    let start = rt.status().start_time.map_or_else(Timestamp::now, |t| t.0);
    let elapsed = Duration::try_from(Timestamp::now().duration_since(start)).unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(seconds).saturating_sub(elapsed)).await;
    rt.deadline_exceeded.store(true, Ordering::SeqCst);
    tracing::info!(pod = ?rt.dir.path(), "activeDeadlineSeconds exceeded; stopping the pod");
    // Stop the containers (the pod stays, Failed, until deleted).
    let grace = rt.grace();
    for (name, pid) in rt.running() {
        let instance = rt
            .container_status(&name)
            .map_or(0, |s| u32::try_from(s.restart_count).unwrap_or(0));
        let rt2 = rt.clone();
        tokio::spawn(async move { instance::stop(&rt2.dir, &name, instance, pid, grace).await });
    }
    rt.publish(ctx.publisher.as_ref());
}
