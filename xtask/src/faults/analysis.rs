//! Reading measurements: whether a series stayed flat, and how a provider's failed
//! creates were retried (from the provider's JSON log).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

/// Where a series ended up against where it started: the largest of its first
/// `window` values and the largest of its last `window` values.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Drift {
    /// Largest of the first values.
    pub first: f64,
    /// Largest of the last values.
    pub last: f64,
}

impl Drift {
    /// The drift of `series`; `None` when it has fewer than `window` values.
    ///
    /// ```no_run
    /// let d = Drift::of(&[20.0, 21.0, 21.0, 21.5, 21.0, 21.2], 3).expect("6 values");
    /// assert_eq!((d.first, d.last), (21.0, 21.5));
    /// assert!(d.within(0.10, 0.0));
    /// ```
    pub fn of(series: &[f64], window: usize) -> Option<Self> {
        if window == 0 || series.len() < window {
            return None;
        }
        let max = |s: &[f64]| s.iter().copied().fold(f64::MIN, f64::max);
        Some(Self {
            first: max(&series[..window]),
            last: max(&series[series.len() - window..]),
        })
    }

    /// Whether the end is at most `relative` (a fraction) plus `absolute` above the
    /// start.
    pub fn within(&self, relative: f64, absolute: f64) -> bool {
        self.last <= self.first * (1.0 + relative) + absolute
    }
}

/// The message vk-core logs when a provider create fails.
const CREATE_FAILED: &str = "provider Create failed";

/// The provider creates that failed, per pod (`namespace/name`), in the order they
/// failed, from a JSON log (`--log-format json`); other lines are skipped.
pub fn create_failures(log: &str) -> BTreeMap<String, Vec<Timestamp>> {
    let mut out: BTreeMap<String, Vec<Timestamp>> = BTreeMap::new();
    for line in log.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let fields = &v["fields"];
        if fields["message"].as_str() != Some(CREATE_FAILED) {
            continue;
        }
        let (Some(pod), Some(at)) = (
            fields["pod"].as_str(),
            v["timestamp"]
                .as_str()
                .and_then(|t| t.parse::<Timestamp>().ok()),
        ) else {
            continue;
        };
        out.entry(pod.to_owned()).or_default().push(at);
    }
    for times in out.values_mut() {
        times.sort();
    }
    out
}

/// How failed creates were retried.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Retries {
    /// Every gap between a failed attempt and the next attempt of the same pod (the
    /// next failure, or the success).
    pub gaps: Vec<Duration>,
    /// The most failures of one pod in a row.
    pub longest_streak: usize,
    /// Pods whose create failed at least once.
    pub pods: usize,
}

impl Retries {
    /// The longest gap.
    pub fn max_gap(&self) -> Duration {
        self.gaps.iter().copied().max().unwrap_or_default()
    }
}

/// The retries of each pod from its failures and when it finally succeeded
/// (`succeeded`, by the same `namespace/name` key; a pod missing there contributes only
/// the gaps between its failures). A success stamped before the last failure (the pod's
/// start time has whole seconds) counts as a zero gap.
pub fn retries(
    failures: &BTreeMap<String, Vec<Timestamp>>,
    succeeded: &BTreeMap<String, Timestamp>,
) -> Retries {
    let mut r = Retries::default();
    for (pod, times) in failures {
        if times.is_empty() {
            continue;
        }
        r.pods += 1;
        r.longest_streak = r.longest_streak.max(times.len());
        let attempts = times.iter().chain(succeeded.get(pod));
        for (a, b) in times.iter().zip(attempts.skip(1)) {
            let gap = b.duration_since(*a);
            r.gaps.push(gap.try_into().unwrap_or(Duration::ZERO));
        }
    }
    r
}

/// The longest time between two consecutive renewals of a Lease (`None` with fewer
/// than two); `renewals` in any order.
pub fn longest_gap(renewals: &[Timestamp]) -> Option<Duration> {
    let mut sorted = renewals.to_vec();
    sorted.sort();
    sorted.dedup();
    sorted
        .windows(2)
        .map(|w| {
            w[1].duration_since(w[0])
                .try_into()
                .unwrap_or(Duration::ZERO)
        })
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_compares_the_ends_of_a_series() {
        let flat = Drift::of(&[20.0, 21.0, 21.0, 21.5, 21.0, 21.2], 3).expect("drift");
        assert_eq!((flat.first, flat.last), (21.0, 21.5));
        assert!(flat.within(0.10, 0.0));
        let growing = Drift::of(&[20.0, 22.0, 24.0, 26.0, 28.0, 30.0], 2).expect("drift");
        assert_eq!((growing.first, growing.last), (22.0, 30.0));
        assert!(!growing.within(0.10, 0.0));
        let fds = Drift::of(&[30.0, 31.0, 33.0], 1).expect("drift");
        assert!(fds.within(0.0, 3.0) && !fds.within(0.0, 2.0));
        assert_eq!(Drift::of(&[1.0], 2), None);
        assert_eq!(Drift::of(&[1.0], 0), None);
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn longest_gap_between_distinct_renewals() {
        let renewals = [
            at("2026-01-02T10:00:20Z"),
            at("2026-01-02T10:00:00Z"),
            at("2026-01-02T10:00:10Z"),
            at("2026-01-02T10:00:10Z"),
            at("2026-01-02T10:00:45Z"),
        ];
        assert_eq!(longest_gap(&renewals), Some(Duration::from_secs(25)));
        assert_eq!(longest_gap(&renewals[..1]), None);
        assert_eq!(
            longest_gap(&renewals[2..4]),
            None,
            "the same renewal seen twice"
        );
    }

    #[test]
    fn failures_are_read_from_json_log_lines() {
        let log = r#"{"timestamp":"2026-01-02T10:00:01.500000Z","level":"WARN","fields":{"message":"provider Create failed","pod":"ns/p-1","error":"unavailable"},"target":"vk_core::pod::sync"}
not json at all
{"timestamp":"2026-01-02T10:00:00.250000Z","level":"WARN","fields":{"message":"provider Create failed","pod":"ns/p-1","error":"unavailable"}}
{"timestamp":"2026-01-02T10:00:02Z","level":"WARN","fields":{"message":"provider delete failed","pod":"ns/p-2"}}
{"timestamp":"2026-01-02T10:00:03Z","level":"WARN","fields":{"message":"provider Create failed","pod":"ns/p-3"}}"#;
        let f = create_failures(log);
        assert_eq!(f.len(), 2);
        assert_eq!(
            f["ns/p-1"],
            [at("2026-01-02T10:00:00.25Z"), at("2026-01-02T10:00:01.5Z")]
        );
        assert_eq!(f["ns/p-3"], [at("2026-01-02T10:00:03Z")]);
    }

    #[test]
    fn retries_measure_each_gap_up_to_the_success() {
        let failures = BTreeMap::from([
            (
                "ns/a".to_owned(),
                vec![at("2026-01-02T10:00:00Z"), at("2026-01-02T10:00:01Z")],
            ),
            ("ns/b".to_owned(), vec![at("2026-01-02T10:00:05.7Z")]),
            ("ns/c".to_owned(), vec![at("2026-01-02T10:00:00Z")]),
        ]);
        let succeeded = BTreeMap::from([
            ("ns/a".to_owned(), at("2026-01-02T10:00:04Z")),
            // Start times have whole seconds: before the failure it followed.
            ("ns/b".to_owned(), at("2026-01-02T10:00:05Z")),
        ]);
        let r = retries(&failures, &succeeded);
        assert_eq!(r.pods, 3);
        assert_eq!(r.longest_streak, 2);
        assert_eq!(
            r.gaps,
            [
                Duration::from_secs(1),
                Duration::from_secs(3),
                Duration::ZERO
            ]
        );
        assert_eq!(r.max_gap(), Duration::from_secs(3));
    }
}
