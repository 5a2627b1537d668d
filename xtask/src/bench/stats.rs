//! Latency statistics and the SVG histogram of the report.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

/// Percentiles and extremes of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    /// How many samples.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

/// The `p`-th percentile (0–100) of sorted `values` by the nearest-rank method.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Summarises `samples`.
pub fn summarize(samples: &[Duration]) -> LatencySummary {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let mean = if ms.is_empty() {
        0.0
    } else {
        ms.iter().sum::<f64>() / ms.len() as f64
    };
    LatencySummary {
        count: ms.len(),
        p50_ms: percentile(&ms, 50.0),
        p90_ms: percentile(&ms, 90.0),
        p99_ms: percentile(&ms, 99.0),
        max_ms: ms.last().copied().unwrap_or(0.0),
        mean_ms: mean,
    }
}

/// Counts of samples in `buckets` equal-width bins from 0 to the maximum.
pub fn histogram(samples: &[Duration], buckets: usize) -> (f64, Vec<usize>) {
    let ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    let max = ms.iter().copied().fold(0.0_f64, f64::max).max(1.0);
    let width = max / buckets as f64;
    let mut counts = vec![0; buckets.max(1)];
    for v in ms {
        let i = ((v / width) as usize).min(counts.len() - 1);
        counts[i] += 1;
    }
    (width, counts)
}

/// An SVG bar chart of the latency histogram with p50/p99 markers.
pub fn histogram_svg(title: &str, samples: &[Duration]) -> String {
    const W: f64 = 640.0;
    const H: f64 = 260.0;
    const PAD: f64 = 40.0;
    let (width_ms, counts) = histogram(samples, 40);
    let summary = summarize(samples);
    let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let bar_w = (W - 2.0 * PAD) / counts.len() as f64;
    let x_of = |ms: f64| PAD + ms / (width_ms * counts.len() as f64) * (W - 2.0 * PAD);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"11\">\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\
         <text x=\"{PAD}\" y=\"18\" font-size=\"13\">{}</text>",
        xml_escape(title)
    );
    for (i, c) in counts.iter().enumerate() {
        let h = (*c as f64 / top) * (H - 2.0 * PAD);
        let x = PAD + i as f64 * bar_w;
        let y = H - PAD - h;
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#4a7ab7\"><title>{:.0}-{:.0} ms: {c}</title></rect>",
            (bar_w - 1.0).max(1.0),
            i as f64 * width_ms,
            (i + 1) as f64 * width_ms
        );
    }
    for (label, ms, color) in [
        ("p50", summary.p50_ms, "#2a9d3a"),
        ("p99", summary.p99_ms, "#c0392b"),
    ] {
        let x = x_of(ms);
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{PAD}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"{color}\" stroke-dasharray=\"4\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{color}\">{label} {ms:.0} ms</text>",
            H - PAD,
            x + 3.0,
            PAD + 12.0
        );
    }
    let _ = write!(
        svg,
        "<line x1=\"{PAD}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"black\"/>\
         <text x=\"{PAD}\" y=\"{ty}\">0 ms</text><text x=\"{x2}\" y=\"{ty}\" text-anchor=\"end\">{max:.0} ms</text>\
         <text x=\"{mid}\" y=\"{ty}\" text-anchor=\"middle\">creation → Running latency ({n} pods)</text></svg>",
        y = H - PAD,
        x2 = W - PAD,
        ty = H - PAD + 16.0,
        max = width_ms * counts.len() as f64,
        mid = W / 2.0,
        n = samples.len(),
    );
    svg
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|m| Duration::from_millis(*m)).collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 50.0), 50.0);
        assert_eq!(percentile(&sorted, 90.0), 90.0);
        assert_eq!(percentile(&sorted, 99.0), 99.0);
        assert_eq!(percentile(&sorted, 100.0), 100.0);
        assert_eq!(percentile(&sorted, 0.0), 1.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }

    #[test]
    fn summary_of_unsorted_samples() {
        let s = summarize(&ms(&[30, 10, 20, 40]));
        assert_eq!(s.count, 4);
        assert_eq!(s.p50_ms, 20.0);
        assert_eq!(s.p99_ms, 40.0);
        assert_eq!(s.max_ms, 40.0);
        assert_eq!(s.mean_ms, 25.0);
    }

    #[test]
    fn histogram_puts_every_sample_in_a_bucket() {
        let samples = ms(&[0, 1, 5, 10, 10]);
        let (width, counts) = histogram(&samples, 10);
        assert_eq!(width, 1.0);
        assert_eq!(counts.iter().sum::<usize>(), 5);
        assert_eq!(counts[9], 2); // the maximum lands in the last bucket
        let svg = histogram_svg("t<1>", &samples);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("t&lt;1&gt;"));
        assert!(svg.contains("p99"));
    }
}
