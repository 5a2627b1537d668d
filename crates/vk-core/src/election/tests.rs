//! Leader election against an in-memory API server (Leases only), in paused time:
//! hand-over after a holder dies, after a release, and fencing when the holder cannot
//! renew.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use http::Method;
use serde_json::{Value, json};

use super::*;

const NAMESPACE: &str = "ha";
const LEASE: &str = "vk-node";

/// A successful write: when, and who held the Lease after it.
#[derive(Debug, Clone)]
struct Write {
    at: Instant,
    holder: Option<String>,
}

#[derive(Default)]
struct Server {
    leases: BTreeMap<String, Value>,
    seq: u64,
    writes: Vec<Write>,
    /// Writes by this holder are answered 500 (the holder is cut off from the API).
    refuse_writes_of: Option<String>,
    /// The next PUTs are answered 409, as when another client (`kubectl label`) changed
    /// the Lease between a candidate's read and its write.
    conflicting_puts: u32,
}

fn status(code: u16, reason: &str) -> (u16, Value) {
    crate::fake_api::status(code, reason, reason)
}

impl Server {
    fn handle(&mut self, method: &Method, path: &str, body: &[u8]) -> (u16, Value) {
        let mut body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let holder = body["spec"]["holderIdentity"].as_str().map(str::to_owned);
        if matches!(*method, Method::POST | Method::PUT)
            && holder.is_some()
            && holder == self.refuse_writes_of
        {
            return status(500, "InternalError");
        }
        let prefix = format!("/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases");
        let Some(rest) = path.strip_prefix(&prefix) else {
            return status(404, "NotFound");
        };
        let name = rest.trim_start_matches('/');
        match (method, name) {
            (&Method::POST, "") => {
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                if self.leases.contains_key(&name) {
                    return status(409, "AlreadyExists");
                }
                self.store(name, body, holder)
            }
            (&Method::GET, name) => match self.leases.get(name) {
                Some(l) => (200, l.clone()),
                None => status(404, "NotFound"),
            },
            (&Method::PUT, name) => {
                let Some(old) = self.leases.get(name) else {
                    return status(404, "NotFound");
                };
                if self.conflicting_puts > 0 {
                    self.conflicting_puts -= 1;
                    return status(409, "Conflict");
                }
                if body["metadata"]["resourceVersion"] != old["metadata"]["resourceVersion"] {
                    return status(409, "Conflict");
                }
                body["metadata"]["uid"] = old["metadata"]["uid"].clone();
                self.store(name.to_owned(), body, holder)
            }
            _ => status(405, "MethodNotAllowed"),
        }
    }

    fn store(&mut self, name: String, mut lease: Value, holder: Option<String>) -> (u16, Value) {
        self.seq += 1;
        lease["metadata"]["resourceVersion"] = json!(self.seq.to_string());
        self.leases.insert(name, lease.clone());
        self.writes.push(Write {
            at: Instant::now(),
            holder,
        });
        (200, lease)
    }

    fn spec(&self) -> LeaseSpec {
        self.leases
            .get(LEASE)
            .and_then(|l| serde_json::from_value::<Lease>(l.clone()).ok())
            .and_then(|l| l.spec)
            .unwrap_or_default()
    }

    /// The last write that left `who` holding the Lease.
    fn last_write_by(&self, who: &str) -> Option<Instant> {
        self.writes
            .iter()
            .rev()
            .find(|w| w.holder.as_deref() == Some(who))
            .map(|w| w.at)
    }

    fn first_write_by(&self, who: &str) -> Option<Instant> {
        self.writes
            .iter()
            .find(|w| w.holder.as_deref() == Some(who))
            .map(|w| w.at)
    }
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<Server>>);

impl Fake {
    fn lock(&self) -> MutexGuard<'_, Server> {
        self.0.lock().expect("server lock")
    }

    fn client(&self) -> Client {
        let fake = self.clone();
        crate::fake_api::client(move |method, path, body| fake.lock().handle(method, path, body))
    }

    fn elector(&self, identity: &str) -> LeaderElector {
        LeaderElector::new(
            self.client(),
            NAMESPACE,
            LEASE,
            identity,
            ElectionConfig::default(),
        )
        .expect("valid config")
    }
}

/// A candidate running in a task: its work waits for its token; `started` tells when it
/// was elected and `stopped` when its work saw the cancellation.
struct Candidate {
    task: tokio::task::JoinHandle<Term<()>>,
    shutdown: CancellationToken,
    started: watch::Receiver<Option<Instant>>,
    stopped: watch::Receiver<Option<Instant>>,
}

fn candidate(fake: &Fake, identity: &str) -> Candidate {
    let elector = fake.elector(identity);
    let shutdown = CancellationToken::new();
    let (started_tx, started) = watch::channel(None);
    let (stopped_tx, stopped) = watch::channel(None);
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        elector
            .run(token, |leading| async move {
                started_tx.send_replace(Some(Instant::now()));
                leading.cancelled().await;
                stopped_tx.send_replace(Some(Instant::now()));
            })
            .await
    });
    Candidate {
        task,
        shutdown,
        started,
        stopped,
    }
}

async fn when(rx: &mut watch::Receiver<Option<Instant>>) -> Instant {
    let at = rx
        .wait_for(Option::is_some)
        .await
        .expect("the candidate runs");
    at.expect("checked")
}

#[tokio::test(start_paused = true)]
async fn a_standby_takes_over_one_lease_duration_after_the_leader_dies() {
    let fake = Fake::default();
    let mut a = candidate(&fake, "a");
    when(&mut a.started).await;
    let mut b = candidate(&fake, "b");
    // b stands by while a renews, for several lease durations.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(
        b.started.borrow().is_none(),
        "b must not lead while a renews"
    );
    assert_eq!(fake.lock().spec().holder_identity.as_deref(), Some("a"));

    // a dies: no release.
    a.task.abort();
    let took_over = when(&mut b.started).await;
    let last_a = fake.lock().last_write_by("a").expect("a wrote");
    let gap = took_over - last_a;
    let config = ElectionConfig::default();
    assert!(
        gap >= config.lease_duration,
        "b took over {gap:?} after a's last renewal, before the lease ran out"
    );
    // Within one more retry period (plus jitter) and the renewal interval.
    assert!(
        gap <= config.lease_duration + config.retry_period * 3,
        "b took over only after {gap:?}"
    );
    let spec = fake.lock().spec();
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
    assert_eq!(spec.lease_duration_seconds, Some(15));
    b.shutdown.cancel();
    assert_eq!(b.task.await.expect("b ends"), Term::Finished(()));
}

#[tokio::test(start_paused = true)]
async fn a_release_hands_over_within_a_retry_period() {
    let fake = Fake::default();
    let mut a = candidate(&fake, "a");
    when(&mut a.started).await;
    let mut b = candidate(&fake, "b");
    tokio::time::sleep(Duration::from_secs(20)).await;

    a.shutdown.cancel();
    assert_eq!(a.task.await.expect("a ends"), Term::Finished(()));
    let released = Instant::now();
    assert_eq!(fake.lock().spec().holder_identity, None, "a released");
    let took_over = when(&mut b.started).await;
    let gap = took_over - released;
    assert!(
        gap <= ElectionConfig::default().retry_period.mul_f64(1.2),
        "b took over {gap:?} after the release"
    );
    assert_eq!(fake.lock().spec().lease_transitions, Some(1));
    b.shutdown.cancel();
    b.task.await.expect("b ends");
}

/// The release's update carries a stale resourceVersion (another client touched the
/// Lease, or a renewal's answer was lost when the work ended): it reads the Lease again
/// and still releases it, so the standby does not wait out the lease duration.
#[tokio::test(start_paused = true)]
async fn a_release_after_a_conflict_still_hands_over() {
    let fake = Fake::default();
    let mut a = candidate(&fake, "a");
    when(&mut a.started).await;
    let mut b = candidate(&fake, "b");
    tokio::time::sleep(Duration::from_secs(20)).await;

    fake.lock().conflicting_puts = 2;
    a.shutdown.cancel();
    assert_eq!(a.task.await.expect("a ends"), Term::Finished(()));
    assert_eq!(
        fake.lock().conflicting_puts,
        0,
        "the release met both conflicts"
    );
    assert_eq!(fake.lock().spec().holder_identity, None, "a released");
    let released = Instant::now();
    let took_over = when(&mut b.started).await;
    assert!(
        took_over - released <= ElectionConfig::default().retry_period.mul_f64(1.2),
        "b took over {:?} after the release",
        took_over - released
    );
    b.shutdown.cancel();
    b.task.await.expect("b ends");
}

#[tokio::test(start_paused = true)]
async fn a_leader_cut_off_from_the_api_stops_before_the_standby_starts() {
    let fake = Fake::default();
    let mut a = candidate(&fake, "a");
    when(&mut a.started).await;
    let mut b = candidate(&fake, "b");
    tokio::time::sleep(Duration::from_secs(30)).await;

    fake.lock().refuse_writes_of = Some("a".into());
    let a_stopped = when(&mut a.stopped).await;
    assert_eq!(a.task.await.expect("a ends"), Term::Lost);
    let b_started = when(&mut b.started).await;
    let last_a = fake.lock().last_write_by("a").expect("a wrote");
    let config = ElectionConfig::default();
    assert!(
        a_stopped - last_a <= config.renew_deadline,
        "a stopped {:?} after its last renewal",
        a_stopped - last_a
    );
    assert!(
        b_started > a_stopped,
        "b started before a stopped: two leaders"
    );
    assert!(
        b_started - a_stopped >= config.fencing_margin() - config.retry_period,
        "the margin between a stopping and b starting was {:?}",
        b_started - a_stopped
    );
    let b_took = fake.lock().first_write_by("b").expect("b wrote");
    assert!(b_took > a_stopped, "b took the lease before a stopped");
    b.shutdown.cancel();
    b.task.await.expect("b ends");
}

#[tokio::test(start_paused = true)]
async fn renewals_keep_the_acquire_time_and_the_transitions() {
    let fake = Fake::default();
    let mut a = candidate(&fake, "a");
    when(&mut a.started).await;
    let first = fake.lock().spec();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let later = fake.lock().spec();
    assert!(fake.lock().writes.len() >= 3, "a renews every retry period");
    assert_eq!(later.acquire_time, first.acquire_time);
    assert_eq!(later.lease_transitions, Some(0));
    assert_eq!(later.holder_identity.as_deref(), Some("a"));
    assert_ne!(later.renew_time, first.renew_time);
    a.shutdown.cancel();
    a.task.await.expect("a ends");
}

#[tokio::test(start_paused = true)]
async fn a_conflict_on_its_own_lease_does_not_make_the_leader_give_up() {
    let fake = Fake::default();
    let mut a = candidate(&fake, "a");
    when(&mut a.started).await;
    // Another client touched the Lease between a's read and its write, twice.
    fake.lock().conflicting_puts = 2;
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert!(
        a.stopped.borrow().is_none(),
        "a kept leading through the conflicts"
    );
    assert_eq!(fake.lock().spec().holder_identity.as_deref(), Some("a"));
    assert_eq!(fake.lock().conflicting_puts, 0, "both conflicts were met");
    a.shutdown.cancel();
    a.task.await.expect("a ends");
}

#[tokio::test(start_paused = true)]
async fn shutdown_while_standing_by_never_runs_the_work() {
    let fake = Fake::default();
    let mut a = candidate(&fake, "a");
    when(&mut a.started).await;
    let b = candidate(&fake, "b");
    tokio::time::sleep(Duration::from_secs(5)).await;
    b.shutdown.cancel();
    assert_eq!(b.task.await.expect("b ends"), Term::NotElected);
    assert!(b.started.borrow().is_none());
    assert_eq!(fake.lock().spec().holder_identity.as_deref(), Some("a"));
    a.shutdown.cancel();
    a.task.await.expect("a ends");
}

#[test]
fn the_timings_must_leave_a_fencing_margin() {
    let ok = ElectionConfig::default();
    assert!(ok.validate().is_ok());
    assert_eq!(ok.fencing_margin(), Duration::from_secs(5));
    let equal = ElectionConfig {
        renew_deadline: ok.lease_duration,
        ..ok
    };
    assert!(
        equal
            .validate()
            .expect_err("no margin")
            .to_string()
            .contains("renew deadline")
    );
    let slow_retry = ElectionConfig {
        retry_period: ok.renew_deadline,
        ..ok
    };
    assert!(slow_retry.validate().is_err());
    let fractional = ElectionConfig {
        lease_duration: Duration::from_millis(15_500),
        ..ok
    };
    assert!(fractional.validate().is_err());
}

#[test]
fn the_default_identity_is_unique_per_process_start() {
    let a = default_identity();
    let b = default_identity();
    assert_ne!(a, b);
    assert!(a.contains('_'), "{a}");
}
