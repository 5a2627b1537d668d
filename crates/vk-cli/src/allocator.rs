//! The memory allocator of the provider binaries: jemalloc.
//!
//! With the default feature `jemalloc`, this crate makes [jemalloc] the process's global
//! allocator (through `tikv-jemallocator`), for every binary that links `vk-cli`.
//!
//! Why: a virtual node is mostly small, short-lived allocations — a Lease renewal, a
//! watch event, a status patch each build and drop a few hundred objects. Measured on
//! the bench's idle fleet (1,000 nodes in one process renewing their Leases, no pods,
//! CPU over a minute, runs alternated): glibc malloc/free were a quarter of the
//! process's CPU; jemalloc took the fleet from 0.91/0.82 to 0.83/0.71 CPU-s/min and its
//! RSS from 135–143 MB to 125 MB, with the churn scenario's peak RSS unchanged (31–33 MB
//! either way) and its p99 latency too; on a slower machine, 1.37/1.47 → 1.15/1.22
//! CPU-s/min (bench/results/2026-12-02.md). mimalloc was faster still but held 55 MB at the
//! churn peak. The static musl builds (the OCI images) link the same jemalloc instead of
//! musl's own allocator.
//!
//! A provider that wants another allocator (or none but the system's) turns the feature
//! off and declares its own `#[global_allocator]` in its binary; declaring one while the
//! feature is on fails to link ("the `#[global_allocator]` ... conflicts"):
//!
//! ```toml
//! [dependencies]
//! vk-cli = { version = "0.1", default-features = false }
//! ```
//!
//! Without the feature, glibc builds cap malloc's arenas instead ([`crate::arenas`]).
//!
//! ```
//! // Which allocator this build of vk-cli installed.
//! println!("{}", vk_cli::allocator::NAME);
//! ```
//!
//! [jemalloc]: https://jemalloc.net/

/// The allocator this build installed: `"jemalloc"`, or `"system"` without the feature.
#[cfg(feature = "jemalloc")]
pub const NAME: &str = "jemalloc";
/// The allocator this build installed: `"jemalloc"`, or `"system"` without the feature.
#[cfg(not(feature = "jemalloc"))]
pub const NAME: &str = "system";

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(feature = "jemalloc")]
    fn jemalloc_serves_this_process() {
        use tikv_jemalloc_ctl::{epoch, stats};
        let allocated = || {
            epoch::advance().expect("refresh jemalloc's statistics");
            stats::allocated::read().expect("jemalloc's allocated bytes")
        };
        let before = allocated();
        let block = vec![1u8; 64 << 20];
        let during = allocated();
        assert!(
            during >= before + (64 << 20),
            "64 MiB not counted by jemalloc: {before} -> {during}"
        );
        drop(block);
    }
}
