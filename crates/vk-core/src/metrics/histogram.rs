//! A lock-free duration histogram with fixed buckets, cheap to observe (two relaxed
//! atomic adds) and summed across nodes at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// Upper bounds (seconds) of the buckets: Prometheus' default buckets, which span an
/// API round trip (~5 ms) to a slow provider call (10 s). `+Inf` follows.
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const SLOTS: usize = BUCKETS.len() + 1;

/// Observations of durations, by bucket (not cumulative), plus their sum.
#[derive(Debug, Default)]
pub struct DurationHistogram {
    buckets: [AtomicU64; SLOTS],
    sum_nanos: AtomicU64,
}

impl DurationHistogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// A copy of the current values.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut snap = HistogramSnapshot::default();
        snap.add(self);
        snap
    }
}

/// Values of one or more [`DurationHistogram`]s, encodable as a Prometheus histogram.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: [u64; SLOTS],
    sum_nanos: u64,
}

impl HistogramSnapshot {
    /// Adds `h`'s current values (to sum the histograms of several nodes).
    pub fn add(&mut self, h: &DurationHistogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(&h.buckets) {
            *mine += theirs.load(Ordering::Relaxed);
        }
        self.sum_nanos = self
            .sum_nanos
            .saturating_add(h.sum_nanos.load(Ordering::Relaxed));
    }

    /// Observations.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Sum of the observations, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        Duration::from_nanos(self.sum_nanos).as_secs_f64()
    }
}

impl EncodeMetric for HistogramSnapshot {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut buckets = [(0.0, 0); SLOTS];
        for (i, slot) in buckets.iter_mut().enumerate() {
            *slot = (
                BUCKETS.get(i).copied().unwrap_or(f64::INFINITY),
                self.buckets[i],
            );
        }
        encoder.encode_histogram::<NoLabelSet>(self.sum_seconds(), self.count(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = DurationHistogram::default();
        h.observe(Duration::from_millis(5)); // le=0.005 (inclusive)
        h.observe(Duration::from_millis(7)); // le=0.01
        h.observe(Duration::from_secs(60)); // +Inf
        let s = h.snapshot();
        assert_eq!(s.count(), 3);
        assert_eq!(s.buckets[0], 1);
        assert_eq!(s.buckets[1], 1);
        assert_eq!(s.buckets[SLOTS - 1], 1);
        assert!((s.sum_seconds() - 60.012).abs() < 1e-9);
    }

    #[test]
    fn snapshots_sum_histograms() {
        let (a, b) = (DurationHistogram::default(), DurationHistogram::default());
        a.observe(Duration::from_millis(20));
        b.observe(Duration::from_millis(20));
        b.observe(Duration::from_secs(1));
        let mut s = a.snapshot();
        s.add(&b);
        assert_eq!(s.count(), 3);
        assert_eq!(s.buckets[2], 2); // le=0.025
        assert_eq!(s.buckets[7], 1); // le=1
    }
}
