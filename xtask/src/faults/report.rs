//! The fault suite's results: one row per expectation (what the issue expects, what was
//! measured, met or not), as Markdown and JSON.
//!
//! Rows are [`TargetCheck`]s and scenarios [`ScenarioResult`]s, as in `cargo xtask
//! bench`; the constructors here phrase the suite's kinds of expectation.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use crate::bench::report::{ScenarioResult, TargetCheck, fmt_value};

/// A count that must be exactly `expected`.
///
/// ```no_run
/// let row = count("pods lost", 0, 0);
/// assert!(row.met);
/// ```
pub fn count(name: &str, measured: u64, expected: u64) -> TargetCheck {
    TargetCheck {
        name: name.into(),
        target: format!("= {expected}"),
        value: measured.to_string(),
        met: measured == expected,
        note: None,
    }
}

/// Something that must happen within `limit`; `measured` is `None` when it did not
/// happen before the suite gave up after `waited`.
pub fn within(
    name: &str,
    measured: Option<Duration>,
    limit: Duration,
    waited: Duration,
) -> TargetCheck {
    TargetCheck {
        name: name.into(),
        target: format!("≤ {}", seconds(limit)),
        value: measured.map_or_else(|| format!("not after {}", seconds(waited)), seconds),
        met: measured.is_some_and(|m| m <= limit),
        note: None,
    }
}

/// A property described in words: `expectation`, `measured`, and whether it held.
pub fn holds(name: &str, expectation: &str, measured: impl Into<String>, met: bool) -> TargetCheck {
    TargetCheck {
        name: name.into(),
        target: expectation.into(),
        value: measured.into(),
        met,
        note: None,
    }
}

/// The row of a scenario that could not run to its end.
pub fn aborted(scenario: &str, error: &anyhow::Error) -> ScenarioResult {
    let mut r = ScenarioResult::new(scenario, json!({}));
    r.targets
        .push(holds("scenario ran to its end", "yes", "no", false).note(format!("{error:#}")));
    r
}

/// `1.2 s`.
pub fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// How many rows were met, of how many.
pub fn tally(results: &[ScenarioResult]) -> (usize, usize) {
    let rows = results.iter().flat_map(|r| &r.targets);
    let total = rows.clone().count();
    (rows.filter(|t| t.met).count(), total)
}

/// The JSON document of a run.
pub fn to_json(context: &Value, results: &[ScenarioResult]) -> Value {
    let (met, total) = tally(results);
    let scenarios: Vec<Value> = results
        .iter()
        .map(|r| {
            let mut doc = r.to_json(&Value::Null);
            if let Value::Object(o) = &mut doc {
                o.remove("context");
            }
            doc
        })
        .collect();
    json!({"context": context, "met": met, "total": total, "scenarios": scenarios})
}

/// The Markdown report: context, a summary table of every row, then each scenario's
/// settings, measurements and notes.
pub fn markdown(context: &Value, results: &[ScenarioResult]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Fault suite report\n");
    if let Value::Object(ctx) = context {
        for (k, v) in ctx {
            let _ = writeln!(md, "- **{k}**: {}", fmt_value(v));
        }
    }
    let (met, total) = tally(results);
    let _ = writeln!(md, "\n## Expectations: {met} of {total} met\n");
    let _ = writeln!(
        md,
        "| scenario | check | expected | measured | met |\n|---|---|---|---|---|"
    );
    for r in results {
        for t in &r.targets {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {}{} |",
                r.scenario,
                cell(&t.name),
                cell(&t.target),
                cell(&t.value),
                if t.met { "yes" } else { "**no**" },
                t.note
                    .as_deref()
                    .map(|n| format!(" — {}", cell(n)))
                    .unwrap_or_default()
            );
        }
    }
    for r in results {
        let _ = writeln!(md, "\n## {}\n", r.scenario);
        if r.settings.as_object().is_some_and(|o| !o.is_empty()) {
            let _ = writeln!(md, "Settings: {}\n", fmt_value(&r.settings));
        }
        if !r.metrics.is_empty() {
            let _ = writeln!(md, "| measurement | value |\n|---|---|");
            for (k, v) in &r.metrics {
                let _ = writeln!(md, "| {k} | {} |", cell(&fmt_value(v)));
            }
        }
        for n in &r.notes {
            let _ = writeln!(md, "\n> {n}");
        }
    }
    md
}

/// Text safe inside a table cell: no pipes, no line breaks.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_say_whether_the_expectation_held() {
        assert!(count("lost", 0, 0).met);
        let dup = count("creates", 301, 300);
        assert!(!dup.met);
        assert_eq!((dup.target.as_str(), dup.value.as_str()), ("= 300", "301"));

        let limit = Duration::from_secs(40);
        let wait = Duration::from_secs(120);
        let fast = within("ready", Some(Duration::from_millis(12_340)), limit, wait);
        assert!(fast.met);
        assert_eq!(
            (fast.target.as_str(), fast.value.as_str()),
            ("≤ 40.0 s", "12.3 s")
        );
        assert!(!within("ready", Some(Duration::from_secs(41)), limit, wait).met);
        let never = within("ready", None, limit, wait);
        assert!(!never.met);
        assert_eq!(never.value, "not after 120.0 s");
    }

    #[test]
    fn report_has_one_summary_row_per_check_and_the_measurements() {
        let mut a = ScenarioResult::new("apiserver-kill", json!({"pods": 300}));
        a.metric("node_ready_after_seconds", 3.25);
        a.targets.push(count("pods lost", 0, 0));
        a.targets
            .push(holds("stuck pods", "none", "2 | 3", false).note("see\nlog"));
        let b = aborted("etcd-restart", &anyhow::anyhow!("etcd did not start"));
        let results = [a, b];
        assert_eq!(tally(&results), (1, 3));

        let md = markdown(&json!({"nproc": 2}), &results);
        assert!(md.contains("## Expectations: 1 of 3 met"), "{md}");
        assert!(
            md.contains("| apiserver-kill | pods lost | = 0 | 0 | yes |"),
            "{md}"
        );
        assert!(
            md.contains("| apiserver-kill | stuck pods | none | 2 \\| 3 | **no** — see log |"),
            "{md}"
        );
        assert!(
            md.contains("| etcd-restart | scenario ran to its end | yes | no | **no** — etcd did not start |"),
            "{md}"
        );
        assert!(md.contains("| node_ready_after_seconds | 3.25 |"), "{md}");
        assert!(md.contains("Settings: pods 300"), "{md}");

        let doc = to_json(&json!({"nproc": 2}), &results);
        assert_eq!(
            (doc["met"].as_u64(), doc["total"].as_u64()),
            (Some(1), Some(3))
        );
        assert_eq!(
            doc["scenarios"][0]["metrics"]["node_ready_after_seconds"],
            3.25
        );
        assert!(doc["scenarios"][0].get("context").is_none());
        assert_eq!(doc["scenarios"][1]["targets"][0]["met"], false);
    }
}
