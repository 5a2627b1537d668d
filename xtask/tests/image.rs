//! `cargo xtask image <provider>` checked with real OCI tools from Debian: two builds
//! give the same digest; `skopeo inspect` reads the layout and its labels; `umoci
//! unpack` unpacks it; the unpacked root filesystem runs `vk-<provider> --version` as
//! the image's non-root user (chroot: nothing from the host's filesystem is used).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn xtask() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    cmd
}

/// `image <provider> --out <out>`: (layout dir, tag, digest) from its output. The
/// dist profile (the default): the image test checks the binary that ships.
fn build_image(provider: &str, out: &Path) -> (PathBuf, String, String) {
    let stdout = run(xtask().args(["image", provider, "--out"]).arg(out)).stdout;
    let text = String::from_utf8(stdout).expect("utf-8");
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .trim()
            .to_owned()
    };
    let layout = field("layout:");
    let (dir, tag) = layout.rsplit_once(':').expect("dir:tag");
    (PathBuf::from(dir), tag.to_owned(), field("digest:"))
}

fn check_provider(provider: &str) {
    run(xtask().args(["tools", "install", "skopeo", "umoci"]));
    let tmp = tempfile::tempdir().expect("tempdir");
    let (layout, tag, digest) = build_image(provider, &tmp.path().join("a"));
    let (_, tag_again, digest_again) = build_image(provider, &tmp.path().join("b"));
    assert_eq!((&tag, &digest), (&tag_again, &digest_again), "reproducible");
    let archive = |dir: &str| {
        tmp.path()
            .join(dir)
            .join(format!("{provider}-{tag}.oci.tar"))
    };
    assert_eq!(
        std::fs::read(archive("a")).expect("archive a"),
        std::fs::read(archive("b")).expect("archive b"),
        "the archives are byte-identical"
    );

    // skopeo reads the layout, and the archive.
    let reference = format!("oci:{}:{tag}", layout.display());
    let inspect: Value =
        serde_json::from_slice(&run(Command::new("skopeo").args(["inspect", &reference])).stdout)
            .expect("skopeo inspect JSON");
    assert_eq!(inspect["Digest"], digest.as_str());
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(
        inspect["Labels"]["org.opencontainers.image.title"],
        provider
    );
    assert_eq!(
        inspect["Labels"]["org.opencontainers.image.version"],
        tag.as_str()
    );
    assert_eq!(
        inspect["Labels"]["org.opencontainers.image.licenses"],
        "Apache-2.0"
    );
    let config: Value = serde_json::from_slice(
        &run(Command::new("skopeo").args(["inspect", "--config", &reference])).stdout,
    )
    .expect("skopeo config JSON");
    assert_eq!(config["config"]["User"], "65532:65532");
    let archive_ref = format!("oci-archive:{}:{tag}", archive("a").display());
    let from_archive: Value =
        serde_json::from_slice(&run(Command::new("skopeo").args(["inspect", &archive_ref])).stdout)
            .expect("skopeo inspect archive JSON");
    assert_eq!(from_archive["Digest"], digest.as_str());

    // umoci unpacks it; the root filesystem alone runs the binary as the image's user.
    let bundle = tmp.path().join("bundle");
    let mut unpack = Command::new("umoci");
    unpack.arg("unpack");
    if !is_root() {
        unpack.arg("--rootless");
    }
    run(unpack
        .args(["--image", &format!("{}:{tag}", layout.display())])
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    let binary = format!("/usr/local/bin/{provider}");
    let output = if is_root() {
        run(Command::new("chroot")
            .arg("--userspec=65532:65532")
            .arg(&rootfs)
            .args([binary.as_str(), "--version"]))
    } else {
        run(Command::new(rootfs.join(binary.trim_start_matches('/'))).arg("--version"))
    };
    let version = String::from_utf8_lossy(&output.stdout);
    assert!(
        version.contains(provider) && version.contains(&tag),
        "--version printed {version:?}"
    );
    assert!(rootfs.join("etc/passwd").is_file());
    assert!(rootfs.join("tmp").is_dir());
}

fn is_root() -> bool {
    nix_uid() == 0
}

fn nix_uid() -> u32 {
    // /proc/self/status "Uid:\t<real>\t<effective>..." (no libc call needed).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|u| u.parse().ok())
        .unwrap_or(u32::MAX)
}

#[test]
#[ignore = "release musl builds (~20 CPU-min): run by `cargo xtask release-check`, not by `cargo xtask ci`"]
fn vk_mock_image_is_reproducible_and_runs_from_its_rootfs() {
    check_provider("vk-mock");
}

#[test]
#[ignore = "release musl builds (~20 CPU-min): run by `cargo xtask release-check`, not by `cargo xtask ci`"]
fn vk_process_image_is_reproducible_and_runs_from_its_rootfs() {
    check_provider("vk-process");
}
