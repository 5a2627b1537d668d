//! `cargo xtask new-provider` end to end: a provider crate generated in a temporary
//! directory outside the workspace (vk-* crates patched to this checkout) builds on its
//! own — without the workspace's `.cargo/config.toml` and its
//! K8S_OPENAPI_ENABLED_VERSION — and passes the conformance suite's node checks against
//! the real control plane (`cargo xtask cluster up`).

use std::path::Path;
use std::process::Command;

#[test]
fn generated_provider_builds_outside_the_workspace_and_passes_the_node_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("vk-scaffoldcheck");
    let status = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(&root)
        .args(["new-provider", "scaffoldcheck", "--local", "--out"])
        .arg(&dir)
        .status()
        .expect("running xtask new-provider");
    assert!(status.success(), "new-provider failed: {status}");
    for file in [
        "Cargo.toml",
        "src/main.rs",
        "src/provider.rs",
        "tests/conformance.rs",
        "README.md",
        "LICENSE",
    ] {
        assert!(dir.join(file).is_file(), "{file} generated");
    }

    // Its own target directory under ours: the crate is built without the
    // workspace's K8S_OPENAPI_ENABLED_VERSION, which would otherwise make the two
    // builds invalidate each other's k8s-openapi. Seeded with hard links to the
    // workspace's build (never overwriting what the generated crate built before), so
    // only what depends on k8s-openapi is compiled again: minutes instead of a cold
    // build.
    let target = root.join("target").join("scaffold");
    seed_from_workspace(&root.join("target").join("debug"), &target.join("debug"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(&dir)
        .env_remove("K8S_OPENAPI_ENABLED_VERSION")
        .env("CARGO_TARGET_DIR", &target)
        // The workspace's dev profile, so the seeded dependencies match.
        .args([
            "--config",
            "profile.dev.debug=\"line-tables-only\"",
            "--config",
            "profile.dev.package.\"*\".debug=false",
        ])
        .args(["test", "--test", "conformance", "--", "--test-threads", "2"])
        .output()
        .expect("running cargo test in the generated crate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the generated crate's conformance tests failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for check in [
        "node_registers_and_turns_ready ... ok",
        "deleted_node_is_recreated ... ok",
        "foreign_metadata_and_conditions_survive ... ok",
    ] {
        assert!(stdout.contains(check), "{check} missing from:\n{stdout}");
    }
}

/// Hard-links the workspace's compiled dependencies into `to` (same layout), keeping
/// files already there. Only a speed-up: its exit status is not checked (coreutils
/// 9.2–9.4 exit 1 from `cp -n` when they skip an existing file), and whatever it did not
/// link is built.
fn seed_from_workspace(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("scaffold target dir");
    for dir in ["deps", "build", ".fingerprint"] {
        if !from.join(dir).is_dir() {
            continue;
        }
        let _ = Command::new("cp")
            .args(["-a", "-l", "-n"])
            .arg(from.join(dir))
            .arg(to)
            .status();
    }
}
