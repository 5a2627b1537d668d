//! The one reader of Linux's `/proc` in the workspace: per-process CPU time, memory,
//! identity and limits, the host's boot time, CPU time and memory, and the units to
//! convert them.
//!
//! Each file has a pure parser over its text (tested on literal text) and a reader
//! that opens the file and calls it:
//!
//! | file | parser | reader |
//! |---|---|---|
//! | `/proc/<pid>/stat` | [`parse_stat`] → [`Stat`] | [`Process::stat`] |
//! | `/proc/<pid>/status` | [`parse_status`] → [`Status`] | [`Process::status`] |
//! | `/proc/<pid>/limits` | [`parse_max_open_files`] | [`Process::max_open_files`] |
//! | `/proc/<pid>/fd` | — | [`Process::open_fds`] |
//! | `/proc/stat` | [`parse_kernel_stat`] → [`KernelStat`] | [`kernel_stat`] |
//! | `/proc/meminfo` | [`parse_meminfo`] → [`MemInfo`] | [`meminfo`] |
//! | `/proc` | — | [`pids`] |
//!
//! Times in `/proc` are clock ticks and sizes pages; [`Units::host`] holds this host's
//! clock tick rate (`sysconf(_SC_CLK_TCK)`) and page size, read once, and converts
//! them to seconds, nanoseconds and bytes.
//!
//! ```no_run
//! use vk_core::procfs::{Process, Units};
//!
//! let stat = Process::current().stat()?;
//! let units = Units::host();
//! println!(
//!     "pid {}: {:.2} s of CPU, {} bytes resident",
//!     stat.pid,
//!     units.seconds(stat.cpu_ticks()),
//!     units.bytes(stat.rss_pages),
//! );
//! # Ok::<(), vk_core::procfs::ProcfsError>(())
//! ```

mod process;
mod system;
mod units;

pub use self::process::{Process, Stat, Status, parse_max_open_files, parse_stat, parse_status};
pub use self::system::{
    KernelStat, MemInfo, kernel_stat, meminfo, parse_kernel_stat, parse_meminfo, pids,
};
pub use self::units::Units;

/// Why a `/proc` file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProcfsError {
    /// Reading the file failed: there is no such process (any more), or no `/proc`.
    #[error("reading {path}: {source}")]
    Read {
        /// The file or directory.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but its text is not in the format proc(5) describes.
    #[error("parsing {path}: not in the format of proc(5)")]
    Parse {
        /// The file.
        path: String,
    },
}

/// Reads `path` and parses it with `parse`.
fn read_with<T>(path: String, parse: impl FnOnce(&str) -> Option<T>) -> Result<T, ProcfsError> {
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text).ok_or(ProcfsError::Parse { path }),
        Err(source) => Err(ProcfsError::Read { path, source }),
    }
}
