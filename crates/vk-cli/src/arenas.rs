//! A cap on glibc malloc's arenas for the provider binaries.
//!
//! glibc gives threads that allocate at the same time arenas of their own, up to eight
//! per core. A virtual node's Tokio workers and blocking threads take turns on
//! different arenas, each of which keeps its freed memory for reuse, so the resident
//! size climbs in steps with every burst of pods until each arena has seen its peak —
//! growth that looks like a leak and is not one. The fault suite's `leak` scenario (30
//! cycles of creating and deleting 100 pods) measured it: RSS 22.2 → 25.0 MB over 20
//! cycles with glibc's default, flat (23.8 → 24.2 MB after the warm-up) with
//! `MALLOC_ARENA_MAX=2`, at the same CPU.
//!
//! [`cap_glibc_arenas`] makes two arenas the default: when the variable is unset, the
//! binary executes itself again with `MALLOC_ARENA_MAX=2` before it starts any thread
//! (same PID, arguments and other environment). An operator who sets the variable —
//! to any value — keeps it. Static musl builds (the OCI images) are unaffected: musl's
//! allocator has no arenas.

/// The variable glibc reads at start-up.
pub const ARENA_MAX_VAR: &str = "MALLOC_ARENA_MAX";

/// The default cap.
pub const DEFAULT_ARENA_MAX: &str = "2";

/// On glibc, when [`ARENA_MAX_VAR`] is unset: replaces this process with itself run
/// with the cap (never returns, unless the re-execution fails, e.g. because the binary
/// was replaced on disk; the process then runs on uncapped). Elsewhere it does nothing.
/// Call it first thing in `main`, before any thread exists.
///
/// ```no_run
/// // First statement of `main`; then parse flags, start the runtime...
/// vk_cli::arenas::cap_glibc_arenas();
/// ```
pub fn cap_glibc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os(ARENA_MAX_VAR).is_none() {
        reexec_with_cap();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn reexec_with_cap() {
    use std::os::unix::process::CommandExt as _;
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    let error = command
        .args(args)
        .env(ARENA_MAX_VAR, DEFAULT_ARENA_MAX)
        .exec();
    eprintln!(
        "note: running without {ARENA_MAX_VAR}={DEFAULT_ARENA_MAX} (re-executing failed: {error})"
    );
}
