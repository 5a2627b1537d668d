//! `cargo xtask new-provider` end to end: a provider crate generated in a temporary
//! directory outside the workspace (vk-* crates patched to this checkout) builds on its
//! own — without the workspace's `.cargo/config.toml` and its
//! K8S_OPENAPI_ENABLED_VERSION — and passes the conformance suite's node checks against
//! the real control plane (`cargo xtask cluster up`).

use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "a cold build of a crate outside the workspace (10+ min): `cargo test -p xtask --test new_provider -- --ignored` with a control plane up"]
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
    // builds invalidate each other's k8s-openapi.
    let target = root.join("target").join("scaffold");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(&dir)
        .env_remove("K8S_OPENAPI_ENABLED_VERSION")
        .env("CARGO_TARGET_DIR", &target)
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
