//! The open-file limit: every connection costs a file descriptor, and the soft
//! `RLIMIT_NOFILE` is often 1,024 (or lower) while the hard limit allows far more.
//! [`raise_open_file_limit`] lifts the soft limit to the hard one at start, and
//! [`connection_budget`] sizes a connection cap from the limit so that a listener's
//! connections can never take every descriptor.

/// The soft open-file limit before and after [`raise_open_file_limit`] (`None`:
/// unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFileLimit {
    /// Before.
    pub before: Option<u64>,
    /// After.
    pub after: Option<u64>,
}

/// Raising the open-file limit failed.
#[derive(Debug, thiserror::Error)]
pub enum FdLimitError {
    /// `setrlimit(RLIMIT_NOFILE)` refused the new soft limit.
    #[error("raising the soft open-file limit from {from:?} to {to}: {source}")]
    Raise {
        /// The soft limit (`None`: unlimited).
        from: Option<u64>,
        /// The limit asked for.
        to: u64,
        /// Cause.
        source: std::io::Error,
    },
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (when the hard limit is
/// unlimited: to the kernel's `fs.nr_open`). Calling it again changes nothing.
///
/// ```
/// let limit = vk_node_api::fd_limit::raise_open_file_limit()?;
/// assert!(limit.after >= limit.before);
/// # Ok::<(), vk_node_api::fd_limit::FdLimitError>(())
/// ```
pub fn raise_open_file_limit() -> Result<OpenFileLimit, FdLimitError> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let Some(target) = limit.maximum.or_else(nr_open) else {
        return Ok(OpenFileLimit {
            before: limit.current,
            after: limit.current,
        });
    };
    if limit.current.is_none_or(|soft| soft >= target) {
        return Ok(OpenFileLimit {
            before: limit.current,
            after: limit.current,
        });
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        },
    )
    .map_err(|e| FdLimitError::Raise {
        from: limit.current,
        to: target,
        source: e.into(),
    })?;
    Ok(OpenFileLimit {
        before: limit.current,
        after: Some(target),
    })
}

/// The most descriptors a process may have open on Linux (`/proc/sys/fs/nr_open`).
fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// How many connections a listener may hold: `share` (a fraction of one) of the soft
/// open-file limit `soft` (`None`: unlimited), at most `ceiling` and at least 4. The
/// rest of the descriptors stay for the process's other work (API server
/// connections, files, the provider, the other listener).
///
/// ```
/// use vk_node_api::fd_limit::connection_budget;
/// assert_eq!(connection_budget(Some(128), 0.5, 4096), 64);
/// assert_eq!(connection_budget(Some(1_048_576), 0.5, 4096), 4096);
/// assert_eq!(connection_budget(None, 0.5, 4096), 4096);
/// ```
pub fn connection_budget(soft: Option<u64>, share: f64, ceiling: usize) -> usize {
    let Some(soft) = soft else {
        return ceiling;
    };
    let share = if share.is_finite() {
        share.clamp(0.0, 1.0)
    } else {
        0.0
    };
    // Truncation is the intent: a whole number of connections within the share.
    let budget = (soft as f64 * share) as u64;
    usize::try_from(budget)
        .unwrap_or(usize::MAX)
        .clamp(4, ceiling.max(4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_leave_room_for_the_rest_of_the_process() {
        assert_eq!(connection_budget(Some(1024), 0.5, 4096), 512);
        assert_eq!(connection_budget(Some(128), 0.125, 64), 16);
        assert_eq!(connection_budget(Some(10), 0.5, 4096), 5);
        assert_eq!(connection_budget(Some(2), 0.5, 4096), 4, "at least a few");
        assert_eq!(connection_budget(Some(1024), f64::NAN, 4096), 4);
        assert_eq!(connection_budget(Some(1024), 7.0, 100), 100);
    }

    /// Lowers the soft limit (only: the hard one stays, so nothing is lost for the
    /// other tests of this binary) and raises it back.
    #[test]
    fn the_soft_limit_is_raised_to_the_hard_limit() {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let initial = getrlimit(Resource::Nofile);
        let Some(hard) = initial.maximum else {
            // An unlimited hard limit: the raise aims at fs.nr_open instead.
            let limit = raise_open_file_limit().expect("raise");
            assert!(limit.after >= limit.before);
            return;
        };
        let lowered = hard.saturating_sub(1).clamp(1, 4096);
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(lowered),
                maximum: Some(hard),
            },
        )
        .expect("lower the soft limit");
        let limit = raise_open_file_limit().expect("raise");
        assert_eq!(limit.before, Some(lowered));
        assert_eq!(limit.after, Some(hard));
        assert_eq!(getrlimit(Resource::Nofile).current, Some(hard));
        let again = raise_open_file_limit().expect("raise again");
        assert_eq!(again.before, again.after, "nothing left to raise");
    }
}
