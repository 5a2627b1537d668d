//! Being told when a process ends, instead of checking: a pidfd (Linux ≥ 5.3) becomes
//! readable when the process it refers to has exited, whoever its parent is. So the
//! node waits in the same way for a shim it started and for one an earlier node process
//! left running, and an idle running container costs no wake-ups.
//!
//! One thread waits on an epoll set of the pidfds of every watched process and tells
//! each waiter through a channel.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Mutex, MutexGuard, OnceLock};

use rustix::buffer::spare_capacity;
use rustix::event::epoll;
use rustix::process::{Pid, PidfdFlags};
use tokio::sync::oneshot;

use crate::procfs;

/// The end of one process, identified by its PID and start time (which together never
/// repeat, so a reused PID is not mistaken for it).
#[derive(Debug)]
pub struct ProcessEnd {
    told: oneshot::Receiver<()>,
}

/// The watcher thread stopped: the end of a process can no longer be told.
#[derive(Debug, thiserror::Error)]
#[error("the process watcher stopped")]
pub struct WatcherStopped;

impl ProcessEnd {
    /// Starts watching process `pid` that started at `start_ticks`; `Ok(None)` when it
    /// has already ended (zombies count as ended). An error means the kernel cannot
    /// tell (no pidfd or epoll): the caller has to find out otherwise.
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// use vk_process::process_end::ProcessEnd;
    /// let child = std::process::Command::new("sleep").arg("1").spawn()?;
    /// let pid = child.id() as i32;
    /// let stat = vk_process::procfs::stat(pid).expect("a live child");
    /// if let Some(end) = ProcessEnd::watch(pid, stat.start_ticks)? {
    ///     end.ended().await.expect("the watcher runs"); // once `sleep` has exited
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn watch(pid: i32, start_ticks: u64) -> std::io::Result<Option<Self>> {
        let Some(id) = Pid::from_raw(pid) else {
            return Ok(None);
        };
        let pidfd = match rustix::process::pidfd_open(id, PidfdFlags::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::SRCH) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        // Checked after opening: if `pid` is still the identified process now, the
        // descriptor refers to it (and not to a later process with a reused PID).
        if !procfs::is_alive(pid, start_ticks) {
            return Ok(None);
        }
        let told = Watcher::get()?.add(pidfd)?;
        Ok(Some(Self { told }))
    }

    /// Resolves when the process has exited.
    pub async fn ended(self) -> Result<(), WatcherStopped> {
        self.told.await.map_err(|_| WatcherStopped)
    }
}

/// The epoll set of the watched pidfds, and who waits for each (by epoll token).
struct Watcher {
    epoll: OwnedFd,
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    /// The thread stopped: nothing more can be watched.
    stopped: bool,

    next: u64,
    /// Token → the pidfd (closed, which removes it from the set, once told) and its
    /// waiter.
    by_token: HashMap<u64, (OwnedFd, oneshot::Sender<()>)>,
}

impl Watcher {
    /// The process-wide watcher, started on first use.
    fn get() -> std::io::Result<&'static Watcher> {
        static WATCHER: OnceLock<Option<Watcher>> = OnceLock::new();
        let watcher = WATCHER.get_or_init(|| {
            let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).ok()?;
            Some(Watcher {
                epoll,
                waiting: Mutex::new(Waiting::default()),
            })
        });
        let Some(watcher) = watcher.as_ref() else {
            return Err(std::io::Error::other("epoll is not available"));
        };
        static THREAD: OnceLock<std::io::Result<()>> = OnceLock::new();
        let started = THREAD.get_or_init(|| {
            std::thread::Builder::new()
                .name("vk-process-exits".into())
                .spawn(|| watcher.run())
                .map(drop)
        });
        match started {
            Ok(()) => Ok(watcher),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Watches `pidfd`; the receiver is told when its process has exited.
    fn add(&self, pidfd: OwnedFd) -> std::io::Result<oneshot::Receiver<()>> {
        let (tx, rx) = oneshot::channel();
        // Added under the lock, so the thread finds the waiter of any event it sees.
        let mut waiting = self.lock();
        if waiting.stopped {
            return Err(std::io::Error::other(WatcherStopped));
        }
        let token = waiting.next;
        waiting.next += 1;
        epoll::add(
            &self.epoll,
            &pidfd,
            epoll::EventData::new_u64(token),
            epoll::EventFlags::IN,
        )?;
        waiting.by_token.insert(token, (pidfd, tx));
        Ok(rx)
    }

    /// The thread: tells the waiter of each process that ended. If waiting fails for
    /// good, every waiter is told that (their channels close).
    fn run(&self) {
        let mut events = Vec::with_capacity(64);
        loop {
            events.clear();
            match epoll::wait(&self.epoll, spare_capacity(&mut events), None) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "waiting for processes to end failed");
                    let mut waiting = self.lock();
                    waiting.stopped = true;
                    waiting.by_token.clear();
                    return;
                }
            }
            let mut waiting = self.lock();
            for event in &events {
                let data = event.data;
                if let Some((_pidfd, tx)) = waiting.by_token.remove(&data.u64()) {
                    let _ = tx.send(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    use super::*;

    fn start_ticks(pid: i32) -> u64 {
        procfs::stat(pid).expect("stat of a live child").start_ticks
    }

    #[tokio::test(start_paused = true)]
    async fn an_exit_is_told_without_any_timer() {
        // `head -n1` ends when it has read one line: the test decides when.
        let mut child = Command::new("head")
            .arg("-n1")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn head");
        let pid = i32::try_from(child.id()).expect("pid");
        let end = ProcessEnd::watch(pid, start_ticks(pid))
            .expect("pidfd")
            .expect("still running");
        let before = tokio::time::Instant::now();
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"end\n").expect("write a line");
        end.ended().await.expect("told");
        // The paused clock would have jumped to any timer had one been waited on.
        assert_eq!(tokio::time::Instant::now(), before);
        assert!(child.wait().expect("reap").success());
    }

    #[tokio::test]
    async fn an_ended_or_other_process_is_already_over() {
        let mut child = Command::new("true").spawn().expect("spawn true");
        let pid = i32::try_from(child.id()).expect("pid");
        let ticks = start_ticks(pid);
        child.wait().expect("reap");
        assert!(ProcessEnd::watch(pid, ticks).expect("watch").is_none());
        // The same PID with another start time is another process: ended.
        let me = i32::try_from(std::process::id()).expect("own pid");
        let mine = start_ticks(me);
        assert!(ProcessEnd::watch(me, mine + 1).expect("watch").is_none());
        assert!(ProcessEnd::watch(me, mine).expect("watch").is_some());
    }
}
