//! Getting the control-plane programs onto the machine: Debian packages (etcd, Go and
//! the build tools), Kubernetes' source from Debian's `kubernetes` source package, and a
//! one-time build of kube-apiserver, kube-controller-manager and kube-scheduler whose
//! binaries are cached per version outside the repository.
//!
//! Every step is idempotent and resumable: the source is unpacked into `src.partial` and
//! the binaries are copied into `bin.partial`, each renamed into place only when complete,
//! so a run killed half-way is detected and redone instead of trusted.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::error::ClusterError;
use super::fsutil::{create_dir, remove_all, tail, write_atomic};
use super::layout::{KUBERNETES_VERSION, Layout};
use super::progress::Progress;

/// The programs built from the Kubernetes tree.
pub const CONTROL_PLANE_BINARIES: [&str; 3] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// A Debian package and a command that proves it is installed.
struct Package {
    name: &'static str,
    command: &'static str,
}

/// Needed to run the cluster.
const RUNTIME_PACKAGES: &[Package] = &[Package {
    name: "etcd-server",
    command: "etcd",
}];

/// Needed only to build the binaries once.
const BUILD_PACKAGES: &[Package] = &[
    Package {
        name: "golang-go",
        command: "go",
    },
    Package {
        name: "rsync",
        command: "rsync",
    },
    Package {
        name: "jq",
        command: "jq",
    },
    Package {
        name: "make",
        command: "make",
    },
];

/// The directory inside Debian's orig tarball.
const SOURCE_DIR: &str = "kubernetes-1.20.2";

/// Makes sure etcd is installed and the control-plane binaries are built and cached.
/// Returns the directory holding the binaries.
pub fn ensure_binaries(layout: &Layout) -> Result<PathBuf, ClusterError> {
    ensure_packages(RUNTIME_PACKAGES)?;
    let bin = layout.bin_dir();
    if binaries_complete(&bin) {
        return Ok(bin);
    }
    ensure_packages(BUILD_PACKAGES)?;
    let cache = layout.cache();
    create_dir(&cache)?;
    let tree = ensure_source(&cache)?;
    build_targets(&tree, &cache.join("build.log"), &CONTROL_PLANE_BINARIES)?;

    let partial = cache.join("bin.partial");
    remove_all(&partial)?;
    create_dir(&partial)?;
    for name in CONTROL_PLANE_BINARIES {
        let from = tree.join("_output/bin").join(name);
        let to = partial.join(name);
        std::fs::copy(&from, &to).map_err(|source| ClusterError::Io {
            operation: "copy built binary",
            path: from.clone(),
            source,
        })?;
    }
    write_atomic(&partial.join(".complete"), KUBERNETES_VERSION.as_bytes())?;
    remove_all(&bin)?;
    std::fs::rename(&partial, &bin).map_err(|source| ClusterError::Io {
        operation: "move binaries into place",
        path: bin.clone(),
        source,
    })?;
    // The unpacked tree and its build output take about 2 GB; the binaries are all we
    // need. The downloaded tarball stays, so a rebuild does not download again.
    remove_all(&cache.join("src"))?;
    Ok(bin)
}

/// The kubectl end-to-end tests run: the one on `PATH` when there is one, otherwise a
/// kubectl built once from the same Kubernetes source (v1.20.2; it lacks the WebSocket
/// streaming of newer clients, so tests of that path need a newer kubectl on `PATH`).
pub fn ensure_kubectl(layout: &Layout) -> Result<PathBuf, ClusterError> {
    if let Some(path) = which("kubectl") {
        return Ok(path);
    }
    let cached = layout.bin_dir().join("kubectl");
    if cached.is_file() {
        return Ok(cached);
    }
    ensure_packages(BUILD_PACKAGES)?;
    let cache = layout.cache();
    create_dir(&cache)?;
    let tree = ensure_source(&cache)?;
    build_targets(&tree, &cache.join("build-kubectl.log"), &["kubectl"])?;
    let from = tree.join("_output/bin/kubectl");
    let tmp = layout.bin_dir().join("kubectl.partial");
    create_dir(&layout.bin_dir())?;
    std::fs::copy(&from, &tmp).map_err(|source| ClusterError::Io {
        operation: "copy built kubectl",
        path: from.clone(),
        source,
    })?;
    std::fs::rename(&tmp, &cached).map_err(|source| ClusterError::Io {
        operation: "move kubectl into place",
        path: cached.clone(),
        source,
    })?;
    remove_all(&cache.join("src"))?;
    Ok(cached)
}

fn binaries_complete(bin: &Path) -> bool {
    bin.join(".complete").is_file() && CONTROL_PLANE_BINARIES.iter().all(|b| bin.join(b).is_file())
}

/// Installs whichever of `packages` is missing, with apt-get (as root).
/// Installs the Debian package `package` unless `command` is already on the PATH (for
/// tools a demo or test needs beyond the control plane, e.g. `python3`).
///
/// ```no_run
/// vk_testkit::cluster::ensure_command("python3", "python3").expect("python3");
/// ```
pub fn ensure_command(package: &'static str, command: &'static str) -> Result<(), ClusterError> {
    ensure_packages(&[Package {
        name: package,
        command,
    }])
}

fn ensure_packages(packages: &[Package]) -> Result<(), ClusterError> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|p| which(p.command).is_none())
        .map(|p| p.name)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !nix::unistd::geteuid().is_root() {
        return Err(ClusterError::InstallNeedsRoot { packages: list });
    }
    let progress = Progress::start(format!("installing Debian packages: {list}"), None);
    run(
        "apt-get update",
        Command::new("apt-get").args(["update", "-q"]),
    )?;
    run(
        "apt-get install",
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    progress.finish();
    Ok(())
}

/// Downloads (once) and unpacks Debian's Kubernetes source; returns the tree.
fn ensure_source(cache: &Path) -> Result<PathBuf, ClusterError> {
    let src = cache.join("src");
    let tree = src.join(SOURCE_DIR);
    if tree.join("Makefile").is_file() {
        return Ok(tree);
    }
    let download = cache.join("download");
    create_dir(&download)?;
    let tarball = match find_orig_tarball(&download) {
        Some(t) => t,
        None => {
            let progress = Progress::start("downloading Kubernetes source (Debian)", None);
            download_source(&download)?;
            progress.finish();
            find_orig_tarball(&download).ok_or_else(|| ClusterError::Command {
                operation: "download Kubernetes source",
                command: "apt-get source --download-only kubernetes".into(),
                status: "left no kubernetes_*.orig.tar.gz".into(),
                output: format!("in {}", download.display()),
            })?
        }
    };
    let partial = cache.join("src.partial");
    remove_all(&partial)?;
    remove_all(&src)?;
    create_dir(&partial)?;
    let progress = Progress::start("unpacking Kubernetes source", None);
    run(
        "unpack Kubernetes source",
        Command::new("tar")
            .arg("xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&partial),
    )?;
    progress.finish();
    if !partial.join(SOURCE_DIR).join("Makefile").is_file() {
        return Err(ClusterError::Command {
            operation: "unpack Kubernetes source",
            command: format!("tar xzf {}", tarball.display()),
            status: format!("did not produce {SOURCE_DIR}/Makefile"),
            output: "Debian's kubernetes source package is no longer v1.20.2; \
                     update SOURCE_DIR and KUBERNETES_VERSION"
                .into(),
        });
    }
    std::fs::rename(&partial, &src).map_err(|source| ClusterError::Io {
        operation: "move source into place",
        path: src.clone(),
        source,
    })?;
    Ok(tree)
}

fn find_orig_tarball(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("kubernetes_") && n.ends_with(".orig.tar.gz"))
        })
}

/// `apt-get source --download-only kubernetes`, enabling deb-src entries first if the
/// machine has none.
fn download_source(dir: &Path) -> Result<(), ClusterError> {
    let fetch = || {
        run(
            "download Kubernetes source",
            Command::new("apt-get")
                .args(["source", "--download-only", "kubernetes"])
                .current_dir(dir),
        )
    };
    if fetch().is_ok() {
        return Ok(());
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(ClusterError::InstallNeedsRoot {
            packages: "(deb-src entries for the kubernetes source package)".into(),
        });
    }
    enable_deb_src()?;
    run(
        "apt-get update",
        Command::new("apt-get").args(["update", "-q"]),
    )?;
    fetch().map(|_| ())
}

/// Adds `Types: deb-src` copies of the machine's Debian sources.
fn enable_deb_src() -> Result<(), ClusterError> {
    let from = Path::new("/etc/apt/sources.list.d/debian.sources");
    let to = Path::new("/etc/apt/sources.list.d/vk-rs-deb-src.sources");
    let text = std::fs::read_to_string(from).map_err(|source| ClusterError::Io {
        operation: "read apt sources",
        path: from.to_owned(),
        source,
    })?;
    let src: String = text
        .lines()
        .map(|l| {
            if l.trim() == "Types: deb" {
                "Types: deb-src".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    write_atomic(to, format!("{src}\n").as_bytes())
}

/// `make WHAT="cmd/kube-apiserver ..."` inside the tree (it generates code first, which
/// a plain `go build` would not), with a progress line.
fn build_targets(tree: &Path, log: &Path, targets: &[&str]) -> Result<(), ClusterError> {
    let what = targets
        .iter()
        .map(|b| format!("cmd/{b}"))
        .collect::<Vec<_>>()
        .join(" ");
    let log_file = std::fs::File::create(log).map_err(|source| ClusterError::Io {
        operation: "create build log",
        path: log.to_owned(),
        source,
    })?;
    let log_err = log_file.try_clone().map_err(|source| ClusterError::Io {
        operation: "create build log",
        path: log.to_owned(),
        source,
    })?;
    let progress = Progress::start(
        format!(
            "building Kubernetes {KUBERNETES_VERSION} {} (once; several minutes on 2 cores)",
            targets.join(", ")
        ),
        Some(log.to_owned()),
    );
    let status = Command::new("make")
        .arg(format!("WHAT={what}"))
        .current_dir(tree)
        .env("GOTOOLCHAIN", "local")
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        .status()
        .map_err(|source| ClusterError::Spawn {
            component: "make",
            program: "make".into(),
            source,
        })?;
    if !status.success() {
        drop(progress);
        return Err(ClusterError::Build {
            version: KUBERNETES_VERSION,
            status: status.to_string(),
            log: log.to_owned(),
            tail: tail(log, 30),
        });
    }
    progress.finish();
    Ok(())
}

/// Runs a command to completion, turning failure into an error with its output's end.
fn run(operation: &'static str, cmd: &mut Command) -> Result<(), ClusterError> {
    let line = format!("{cmd:?}");
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ClusterError::Command {
            operation,
            command: line.clone(),
            status: format!("could not start: {e}"),
            output: String::new(),
        })?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = text.lines().collect();
    Err(ClusterError::Command {
        operation,
        command: line,
        status: output.status.to_string(),
        output: lines[lines.len().saturating_sub(20)..].join("\n"),
    })
}

/// The full path of `command` on `PATH`, if any.
pub(crate) fn which(command: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(command))
        .find(|p| p.is_file())
}
