//! The state file (`state_file`): the provider's pods, one JSON pod per line, rewritten
//! atomically (a temporary file renamed over it) so a crash never leaves half a file.
//!
//! [`check_path`] is what the configuration's validation runs at start, so that a path
//! the provider could never write is refused at once, naming `state_file` and the fix,
//! instead of failing every second while nothing is persisted.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

/// Why the state file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    /// The path is empty.
    #[error("state_file is empty; set it to a file path, or remove it to keep no state")]
    Empty,
    /// The path is a directory.
    #[error("state_file is {path}, a directory; set it to a file path")]
    IsDirectory {
        /// The configured path.
        path: PathBuf,
    },
    /// The directory that would hold the file does not exist (or is not a directory).
    #[error(
        "state_file is {path}, but directory {dir} does not exist; create it, or set \
         state_file to a path in an existing, writable directory"
    )]
    NoDirectory {
        /// The configured path.
        path: PathBuf,
        /// Its directory.
        dir: PathBuf,
    },
    /// A file cannot be created in the directory.
    #[error(
        "state_file is {path}, but no file can be created in directory {dir} ({source}); \
         make it writable for this user, or set state_file to a path in a writable directory"
    )]
    NotWritable {
        /// The configured path.
        path: PathBuf,
        /// Its directory.
        dir: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The existing file cannot be read.
    #[error(
        "state_file is {path}, which cannot be read ({source}); make it readable, or move \
         it away to start with no pods"
    )]
    Read {
        /// The configured path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A line of the existing file is not a pod.
    #[error(
        "state_file is {path}, whose line {line} is not a JSON pod ({source}); fix or \
         delete that line, or move the file away to start with no pods"
    )]
    Parse {
        /// The configured path.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What the parser says.
        source: serde_json::Error,
    },
}

/// The directory holding `path` (`.` for a bare file name).
fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Checks that the provider can keep its pods in `path`: its directory exists and a
/// file can be created there (tried with a probe file, removed at once), and the file,
/// if present, is a readable regular file. Whether its content is valid is checked when
/// it is loaded ([`load`]).
pub(crate) fn check_path(path: &Path) -> Result<(), StateFileError> {
    if path.as_os_str().is_empty() {
        return Err(StateFileError::Empty);
    }
    if path.is_dir() {
        return Err(StateFileError::IsDirectory {
            path: path.to_owned(),
        });
    }
    let dir = directory_of(path);
    if !dir.is_dir() {
        return Err(StateFileError::NoDirectory {
            path: path.to_owned(),
            dir,
        });
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".to_owned());
    let probe = dir.join(format!(".{file_name}.probe-{}", std::process::id()));
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe);
    match created {
        Ok(file) => {
            drop(file);
            let _ = std::fs::remove_file(&probe);
        }
        Err(source) => {
            return Err(StateFileError::NotWritable {
                path: path.to_owned(),
                dir,
                source,
            });
        }
    }
    match std::fs::File::open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StateFileError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The pods in `path` (none if it does not exist), read one line at a time.
pub(crate) fn load(path: &Path) -> Result<Vec<Pod>, StateFileError> {
    let read_error = |source| StateFileError::Read {
        path: path.to_owned(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(read_error(e)),
    };
    let mut pods = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(read_error)?;
        if line.trim().is_empty() {
            continue;
        }
        let pod = serde_json::from_str(&line).map_err(|source| StateFileError::Parse {
            path: path.to_owned(),
            line: i + 1,
            source,
        })?;
        pods.push(pod);
    }
    Ok(pods)
}

/// Replaces `path` with `lines` (each a JSON pod), streamed to a temporary file that
/// is then renamed over it.
pub(crate) fn write(path: &Path, lines: impl IntoIterator<Item = Vec<u8>>) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("partial");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    for line in lines {
        out.write_all(&line)?;
        out.write_all(b"\n")?;
    }
    out.into_inner()
        .map_err(std::io::IntoInnerError::into_error)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty directory of this test's own, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn scratch(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("vk-mock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Scratch(dir)
    }

    #[test]
    fn a_writable_directory_is_accepted_and_left_clean() {
        let dir = scratch("ok");
        check_path(&dir.path().join("state.json")).expect("missing file in a writable dir");
        std::fs::write(dir.path().join("state.json"), "").expect("write");
        check_path(&dir.path().join("state.json")).expect("existing readable file");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left, ["state.json"], "the probe file is removed");
    }

    #[test]
    fn bad_paths_are_refused_naming_state_file_and_the_fix() {
        let dir = scratch("bad");
        let missing = dir.path().join("no-such-dir").join("state.json");
        let e = check_path(&missing).expect_err("missing dir").to_string();
        assert!(
            e.contains("state_file") && e.contains("does not exist") && e.contains("create it"),
            "{e}"
        );
        let e = check_path(dir.path()).expect_err("a directory").to_string();
        assert!(e.contains("a directory; set it to a file path"), "{e}");
        let file = dir.path().join("plain");
        std::fs::write(&file, "").expect("write");
        let e = check_path(&file.join("state.json"))
            .expect_err("parent is a file")
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
        let e = check_path(Path::new("")).expect_err("empty").to_string();
        assert!(e.contains("state_file is empty"), "{e}");
    }

    #[test]
    fn an_unwritable_directory_is_refused() {
        // Root may write anywhere (the check would rightly pass): use a place no user
        // can create files in instead of permission bits.
        let e = check_path(Path::new("/proc/vk-mock-state.json"))
            .expect_err("/proc takes no new files")
            .to_string();
        assert!(
            e.contains("state_file") && e.contains("no file can be created in directory /proc"),
            "{e}"
        );
    }

    #[test]
    fn load_names_the_bad_line() {
        let dir = scratch("load");
        let path = dir.path().join("state.json");
        assert!(load(&path).expect("missing is empty").is_empty());
        std::fs::write(&path, "{\"metadata\":{\"name\":\"a\"}}\n\nnot json\n").expect("write");
        let e = load(&path).expect_err("bad line").to_string();
        assert!(e.contains("state_file") && e.contains("line 3"), "{e}");
        std::fs::write(&path, "{\"metadata\":{\"name\":\"a\"}}\n\n").expect("write");
        assert_eq!(load(&path).expect("good").len(), 1);
    }
}
