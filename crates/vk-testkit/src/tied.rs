//! Child processes that do not outlive the test process that started them.

use std::path::Path;
use std::process::Command;

/// The watchdog: runs the command in the background and kills it once the parent
/// (`$1`) is gone, then runs the clean-up snippet (`$2`, may be empty); exits with the
/// command's status.
const WATCHDOG: &str = r#"parent=$1; after=$2; shift 2
"$@" & child=$!
trap 'kill "$child" 2>/dev/null' TERM INT HUP
while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 1; done
kill "$child" 2>/dev/null
wait "$child"; status=$?
if [ -n "$after" ]; then sh -c "$after" >/dev/null 2>&1 </dev/null; fi
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
        assert!(marker.exists());
    }
}
