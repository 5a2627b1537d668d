//! Child processes that do not outlive the test process that started them.

use std::path::Path;
use std::process::{Child, Command, ExitStatus};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

/// The watchdog: runs the command in the background and kills it once the parent
/// (`$1`) is gone; exits with the command's status. A guard process outlives this shell
/// by at most a second: once the shell is gone — also when it was SIGKILLed, e.g. by
/// `Child::kill` on the returned child — it kills the command if still running and runs
/// the clean-up snippet (`$2`, may be empty). `SIGUSR1` makes the shell SIGKILL the
/// command at once and exit when it is reaped ([`kill`]); the traps are set before the
/// command starts, so a program that is up has a watchdog ready for them.
const WATCHDOG: &str = r#"parent=$1; after=$2; shift 2
child=
trap 'kill "$child" 2>/dev/null' TERM INT HUP
trap 'kill -KILL "$child" 2>/dev/null' USR1
"$@" & child=$!
shell=$$
(
  trap '' TERM INT HUP
  while kill -0 "$shell" 2>/dev/null; do sleep 1; done
  kill "$child" 2>/dev/null
  if [ -n "$after" ]; then sh -c "$after" >/dev/null 2>&1 </dev/null; fi
) >/dev/null 2>&1 </dev/null &
while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 1; done
kill "$child" 2>/dev/null
wait "$child"; status=$?
exit "$status""#;

/// A [`Command`] running `program` (add its arguments to the returned command) that is
/// killed within about a second after the current process exits, however it exits.
///
/// Tests share long-lived helper processes through statics, which Rust never drops;
/// this keeps those from piling up across test runs. Stdio settings given to the
/// returned command reach `program` unchanged.
///
/// ```no_run
/// let child = vk_testkit::tied::command("/bin/sleep".as_ref())
///     .arg("3600")
///     .spawn()
///     .expect("spawn");
/// # drop(child);
/// ```
pub fn command(program: &Path) -> Command {
    command_then(program, "")
}

/// SIGKILLs the program of a child started by [`command`] or [`command_then`] and
/// returns once it is gone (reaped), with the watchdog's exit status.
///
/// `Child::kill` on such a child kills only the watchdog shell: its guard then stops the
/// program up to a second later, long enough for a test that restarts a node right away
/// to have two copies of it running. Use this whenever the next step needs the program
/// gone, e.g. a restart.
///
/// ```no_run
/// let mut child = vk_testkit::tied::command("/bin/sleep".as_ref())
///     .arg("3600")
///     .spawn()
///     .expect("spawn");
/// vk_testkit::tied::kill(&mut child).expect("kill");
/// ```
pub fn kill(child: &mut Child) -> std::io::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    let pid = i32::try_from(child.id()).map_err(std::io::Error::other)?;
    match signal::kill(Pid::from_raw(pid), Signal::SIGUSR1) {
        // Already exited (not yet reaped): wait collects it.
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => return Err(e.into()),
    }
    child.wait()
}

/// [`command`], and once `program` has ended (or was killed) the shell snippet
/// `cleanup` runs — e.g. `kubectl delete` of what a shared test fixture created, which no
/// test can do because the fixture outlives each of them.
pub fn command_then(program: &Path, cleanup: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(WATCHDOG)
        .arg("vk-testkit-watchdog")
        .arg(std::process::id().to_string())
        .arg(cleanup)
        .arg(program);
    cmd
}

#[cfg(test)]
mod tests {
    use crate::wait::{PATIENCE, eventually_blocking};
    use std::process::Child;

    #[test]
    fn arguments_and_exit_status_pass_through() {
        let out = super::command("/bin/sh".as_ref())
            .args(["-c", "echo \"$1 $2\"; exit 3", "x", "a b", "c"])
            .output()
            .expect("run");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b c\n");
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn cleanup_runs_after_the_program() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("cleaned");
        let status = super::command_then(
            "/bin/true".as_ref(),
            &format!("touch '{}'", marker.display()),
        )
        .status()
        .expect("run");
        assert!(status.success());
        // The guard runs the clean-up within about a second of the shell's exit.
        eventually_blocking("the clean-up creates its marker", PATIENCE, || {
            marker.exists().then_some(())
        });
    }

    /// Starts `sh` (given as `cmd`) sleeping; returns the child and the sleeper's PID.
    fn sleeper(mut cmd: std::process::Command, dir: &std::path::Path) -> (Child, i32) {
        let pid_file = dir.join("pid");
        let child = cmd
            .args([
                "-c",
                &format!("echo $$ > '{}'; exec sleep 600", pid_file.display()),
            ])
            .spawn()
            .expect("spawn");
        let pid = eventually_blocking("the program writes its PID", PATIENCE, || {
            std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
        });
        (child, pid)
    }

    #[test]
    fn kill_stops_the_program_before_returning() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut child, pid) = sleeper(super::command("/bin/sh".as_ref()), dir.path());
        let status = super::kill(&mut child).expect("kill");
        // The watchdog reports the program's death by SIGKILL (128 + 9).
        assert_eq!(status.code(), Some(137));
        // Gone already: no waiting for the guard.
        let stat = vk_core::procfs::Process::new(pid).stat();
        assert!(
            stat.as_ref().is_err() || stat.as_ref().is_ok_and(|s| s.state == 'Z'),
            "the program still runs after kill returned: {stat:?}"
        );
        // Killing a finished child again is harmless.
        assert_eq!(super::kill(&mut child).expect("again").code(), Some(137));
    }

    #[test]
    fn killing_the_returned_child_still_stops_the_program() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("cleaned");
        let (mut child, pid) = sleeper(
            super::command_then("/bin/sh".as_ref(), &format!("touch '{}'", marker.display())),
            dir.path(),
        );
        child.kill().expect("SIGKILL the watchdog");
        let _ = child.wait();
        // Neither gone nor a zombie waiting to be reaped.
        let alive = |pid: i32| {
            vk_core::procfs::Process::new(pid)
                .stat()
                .is_ok_and(|stat| stat.state != 'Z')
        };
        eventually_blocking(
            "the program stops after its watchdog is killed",
            PATIENCE,
            || (!alive(pid)).then_some(()),
        );
        eventually_blocking(
            "the clean-up runs after the watchdog is killed",
            PATIENCE,
            || marker.exists().then_some(()),
        );
    }
}
