//! The kubelet's rules, as pure functions: restart decisions, crash back-off and the pod
//! phase.

use std::time::Duration;

use k8s_openapi::api::core::v1::ContainerStatus;

/// `spec.restartPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Restart whatever the exit code (the default).
    Always,
    /// Restart when the exit code is not 0.
    OnFailure,
    /// Never restart.
    Never,
}

impl RestartPolicy {
    /// Parses the field (unknown or absent → `Always`).
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("OnFailure") => Self::OnFailure,
            Some("Never") => Self::Never,
            _ => Self::Always,
        }
    }

    /// Whether a container that exited with `exit_code` is started again.
    ///
    /// ```
    /// use vk_process::lifecycle::RestartPolicy;
    /// assert!(RestartPolicy::Always.restarts(0));
    /// assert!(!RestartPolicy::OnFailure.restarts(0));
    /// assert!(RestartPolicy::OnFailure.restarts(2));
    /// assert!(!RestartPolicy::Never.restarts(2));
    /// ```
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            Self::Always => true,
            Self::OnFailure => exit_code != 0,
            Self::Never => false,
        }
    }

    /// The policy init containers follow: they never restart after success, and
    /// `Always` acts as `OnFailure`.
    pub fn for_init(self) -> Self {
        match self {
            Self::Never => Self::Never,
            _ => Self::OnFailure,
        }
    }
}

/// The kubelet's crash-loop back-off: the first restart is immediate (the kubelet has
/// no back-off entry for a container's first exit), then 10 s, doubling, at most
/// 5 minutes; an instance that ran for 10 minutes starts the sequence over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
    /// How long an instance must run for the next delay to start over.
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

impl Backoff {
    /// The delay before restart number `restart` of a crash loop (1 for the first).
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = vk_process::lifecycle::Backoff::default();
    /// assert_eq!(b.delay(1), Duration::ZERO);
    /// assert_eq!(b.delay(2), Duration::from_secs(10));
    /// assert_eq!(b.delay(5), Duration::from_secs(80));
    /// assert_eq!(b.delay(12), Duration::from_secs(300));
    /// ```
    pub fn delay(&self, restart: u32) -> Duration {
        let Some(doublings) = restart.checked_sub(2) else {
            return Duration::ZERO;
        };
        let factor = 1u32.checked_shl(doublings.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The next attempt number after an instance that ran for `ran`.
    pub fn next_attempt(&self, attempt: u32, ran: Duration) -> u32 {
        if ran >= self.reset_after {
            0
        } else {
            attempt.saturating_add(1)
        }
    }
}

/// The `reason` of a terminated container: `Completed` for exit 0, `OOMKilled` when the
/// kernel's OOM killer ended it, `Error` otherwise.
pub fn exit_reason(exit_code: i32, oom_killed: bool) -> &'static str {
    if oom_killed {
        "OOMKilled"
    } else if exit_code == 0 {
        "Completed"
    } else {
        "Error"
    }
}

/// The pod phase as the kubelet computes it from the (regular) container statuses,
/// once init containers are done (`initialized`); `init_failed` means an init
/// container failed and will not be retried.
pub fn pod_phase(
    policy: RestartPolicy,
    initialized: bool,
    init_failed: bool,
    containers: &[ContainerStatus],
) -> &'static str {
    if init_failed {
        return "Failed";
    }
    if !initialized {
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        let state = c.state.clone().unwrap_or_default();
        if state.running.is_some() {
            running += 1;
        } else if let Some(t) = &state.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if c
            .last_state
            .as_ref()
            .is_some_and(|l| l.terminated.is_some())
        {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        return match policy {
            RestartPolicy::Always => "Running",
            RestartPolicy::OnFailure if stopped == succeeded => "Succeeded",
            RestartPolicy::OnFailure => "Running",
            RestartPolicy::Never if stopped == succeeded => "Succeeded",
            RestartPolicy::Never => "Failed",
        };
    }
    "Pending"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(v: serde_json::Value) -> ContainerStatus {
        let mut base = serde_json::json!({"name": "c", "image": "", "imageID": "", "ready": false, "restartCount": 0});
        if let (Some(b), Some(extra)) = (base.as_object_mut(), v.as_object()) {
            b.extend(extra.clone());
        }
        serde_json::from_value(base).expect("status")
    }

    #[test]
    fn phases_follow_the_kubelet() {
        let running = status(serde_json::json!({"state": {"running": {}}}));
        let ok = status(serde_json::json!({"state": {"terminated": {"exitCode": 0}}}));
        let bad = status(serde_json::json!({"state": {"terminated": {"exitCode": 2}}}));
        let waiting =
            status(serde_json::json!({"state": {"waiting": {"reason": "ContainerCreating"}}}));
        let backoff = status(
            serde_json::json!({"state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 2}}}),
        );
        use RestartPolicy::*;
        assert_eq!(
            pod_phase(Always, false, false, std::slice::from_ref(&running)),
            "Pending"
        );
        assert_eq!(pod_phase(Never, true, true, &[]), "Failed");
        assert_eq!(
            pod_phase(Always, true, false, &[running.clone(), waiting.clone()]),
            "Pending"
        );
        assert_eq!(
            pod_phase(Always, true, false, &[running.clone(), ok.clone()]),
            "Running"
        );
        assert_eq!(
            pod_phase(OnFailure, true, false, std::slice::from_ref(&backoff)),
            "Running"
        );
        assert_eq!(
            pod_phase(Never, true, false, &[ok.clone(), bad.clone()]),
            "Failed"
        );
        assert_eq!(
            pod_phase(Never, true, false, std::slice::from_ref(&ok)),
            "Succeeded"
        );
        assert_eq!(pod_phase(OnFailure, true, false, &[ok]), "Succeeded");
        assert_eq!(pod_phase(Always, true, false, &[bad]), "Running");
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let b = Backoff::default();
        let delays: Vec<u64> = (0..9).map(|a| b.delay(a).as_secs()).collect();
        assert_eq!(delays, vec![0, 0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.next_attempt(4, Duration::from_secs(5)), 5);
        assert_eq!(b.next_attempt(4, Duration::from_secs(600)), 0);
        assert_eq!(exit_reason(0, false), "Completed");
        assert_eq!(exit_reason(137, true), "OOMKilled");
        assert_eq!(exit_reason(2, false), "Error");
        assert_eq!(RestartPolicy::Always.for_init(), RestartPolicy::OnFailure);
    }
}
