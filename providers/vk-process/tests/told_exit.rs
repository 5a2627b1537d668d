//! The node is told when a container has started and when it has ended, instead of
//! checking files on a timer: the shim says "started" on its stdout once the PID record
//! is written, and its end (watched through a pidfd) means the exit record is written.

use std::collections::BTreeMap;
use std::io::{BufRead as _, Write as _};
use std::process::{Command, Stdio};

use k8s_openapi::api::core::v1::{Container, Pod};
use vk_process::instance::{self, Launcher};
use vk_process::layout::PodDir;
use vk_process::shim::{self, PidRecord, RunSpec};

fn container(value: serde_json::Value) -> Container {
    serde_json::from_value(value).expect("container")
}

#[tokio::test]
async fn the_end_of_a_container_is_told_without_a_timer() {
    let state = tempfile::tempdir().expect("tempdir");
    let dir = PodDir::new(state.path(), "ns", "p", "u1");
    std::fs::create_dir_all(dir.root()).expect("pod dir");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"namespace": "ns", "name": "p", "uid": "u1"},
        "spec": {"containers": []}
    }))
    .expect("pod");
    // Ends with code 3 once it reads a line from its stdin (a FIFO the test writes).
    let c = container(serde_json::json!({
        "name": "c", "image": "i", "stdin": true,
        "command": ["sh", "-c", "read line; exit 3"]
    }));
    let launcher = Launcher {
        shim: env!("CARGO_BIN_EXE_vk-process").into(),
        images: BTreeMap::new(),
        cgroup_parent: None,
    };
    let pid = launcher
        .start(&pod, &dir, &c, 0, None)
        .await
        .expect("start")
        .expect("the container started");
    assert!(pid.shim.is_some(), "the shim records itself: {pid:?}");
    tokio::time::pause();
    let before = tokio::time::Instant::now();
    let waiting = {
        let dir = dir.clone();
        tokio::spawn(async move { instance::wait_exit(&dir, "c", 0, pid).await })
    };
    tokio::task::yield_now().await;
    let mut stdin = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.stdin("c"))
        .expect("open the stdin FIFO");
    stdin.write_all(b"go\n").expect("write a line");
    let exit = waiting.await.expect("wait_exit");
    assert_eq!(exit.exit_code, 3, "{exit:?}");
    // The paused clock would have jumped to any timer waited on (a poll interval).
    assert_eq!(tokio::time::Instant::now(), before);
}

#[test]
fn a_shim_says_started_once_its_pid_record_is_written() {
    let state = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| state.path().join(name);
    let spec = RunSpec {
        argv: vec!["sleep".into(), "300".into()],
        env: Vec::new(),
        cwd: state.path().to_owned(),
        log_file: path("log"),
        pid_file: path("pid.json"),
        exit_file: path("exit.json"),
        stdin_fifo: None,
        uid: None,
        gid: None,
        cgroup: None,
    };
    shim::write_json(&path("spec.json"), &spec).expect("spec");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vk-process"))
        .arg(shim::SHIM_ARG)
        .arg(path("spec.json"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the shim");
    let mut line = Vec::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_until(b'\n', &mut line)
        .expect("read the shim's line");
    assert_eq!(line, shim::STARTED);
    let record: PidRecord = shim::read_json(&spec.pid_file).expect("pid record written");
    let shim_pid = i32::try_from(child.id()).expect("pid");
    assert_eq!(record.shim.map(|s| s.pid), Some(shim_pid));
    instance::signal_group(record.pid, rustix::process::Signal::KILL).expect("kill sleep");
    let status = child.wait().expect("the shim ends");
    assert!(status.success(), "{status:?}");
    let exit: shim::ExitRecord = shim::read_json(&spec.exit_file).expect("exit record");
    assert_eq!(exit.signal, Some(9));
}
