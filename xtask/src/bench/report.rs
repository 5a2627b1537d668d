//! Bench results: one JSON document per scenario and a readable Markdown report.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

/// A target from the benchmark issue and whether this run met it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    /// What is measured.
    pub name: String,
    /// The target, in words (e.g. "≤ 30 MB").
    pub target: String,
    /// The measured value, formatted.
    pub value: String,
    /// Whether it was met.
    pub met: bool,
    /// Why it was missed (or a caveat), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl TargetCheck {
    /// A check of `value` against an upper bound.
    pub fn at_most(name: &str, value: f64, limit: f64, unit: &str) -> Self {
        Self {
            name: name.into(),
            target: format!("≤ {limit} {unit}"),
            value: format!("{value:.2} {unit}"),
            met: value <= limit,
            note: None,
        }
    }

    /// A check of `value` against a lower bound.
    pub fn at_least(name: &str, value: f64, limit: f64, unit: &str) -> Self {
        Self {
            name: name.into(),
            target: format!("≥ {limit:.1} {unit}"),
            value: format!("{value:.1} {unit}"),
            met: value >= limit,
            note: None,
        }
    }

    /// Adds a note.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// The result of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    /// `ceiling`, `churn`, `steady` or `fleet`.
    pub scenario: String,
    /// The settings it ran with.
    pub settings: Value,
    /// Measurements (name → value), in insertion order.
    pub metrics: Vec<(String, Value)>,
    /// Target checks.
    pub targets: Vec<TargetCheck>,
    /// Observations worth reading.
    pub notes: Vec<String>,
}

impl ScenarioResult {
    /// An empty result.
    pub fn new(scenario: &str, settings: Value) -> Self {
        Self {
            scenario: scenario.into(),
            settings,
            metrics: Vec::new(),
            targets: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Records a measurement.
    pub fn metric(&mut self, name: &str, value: impl Serialize) {
        self.metrics.push((
            name.into(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        ));
    }

    /// The JSON document.
    pub fn to_json(&self, context: &Value) -> Value {
        let metrics: serde_json::Map<String, Value> = self.metrics.iter().cloned().collect();
        serde_json::json!({
            "scenario": self.scenario,
            "context": context,
            "settings": self.settings,
            "metrics": metrics,
            "targets": self.targets,
            "notes": self.notes,
        })
    }
}

/// A measurement as the reports show it: fractions with two decimals, objects as
/// `key value, ...`.
pub(crate) fn fmt_value(v: &Value) -> String {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() != 0.0 => format!("{f:.2}"),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k} {}", fmt_value(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// The Markdown report of a run.
pub fn markdown(context: &Value, results: &[ScenarioResult]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmark report\n");
    if let Value::Object(ctx) = context {
        for (k, v) in ctx {
            let _ = writeln!(md, "- **{k}**: {}", fmt_value(v));
        }
    }
    for r in results {
        md.push_str(&section(r, None));
    }
    md
}

/// The Markdown section of one scenario (`\n## name` to its last note); `run`, when
/// given, is a line saying which run it came from (for sections merged into another
/// run's report).
pub(crate) fn section(r: &ScenarioResult, run: Option<&str>) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "\n## {}\n", r.scenario);
    if let Some(run) = run {
        let _ = writeln!(md, "Run: {run}\n");
    }
    let _ = writeln!(md, "Settings: {}\n", fmt_value(&r.settings));
    let _ = writeln!(md, "| measurement | value |\n|---|---|");
    for (k, v) in &r.metrics {
        let _ = writeln!(md, "| {k} | {} |", fmt_value(v));
    }
    if !r.targets.is_empty() {
        let _ = writeln!(
            md,
            "\n| target | goal | measured | met |\n|---|---|---|---|"
        );
        for t in &r.targets {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {}{} |",
                t.name,
                t.target,
                t.value,
                if t.met { "yes" } else { "**no**" },
                t.note
                    .as_deref()
                    .map(|n| format!(" — {n}"))
                    .unwrap_or_default()
            );
        }
    }
    for n in &r.notes {
        let _ = writeln!(md, "\n> {n}");
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_report() {
        let mut r = ScenarioResult::new("churn", serde_json::json!({"pods": 10}));
        r.metric("pods_per_second", 12.5);
        r.targets
            .push(TargetCheck::at_most("p99", 900.0, 1000.0, "ms"));
        r.targets
            .push(TargetCheck::at_least("rate", 10.0, 20.0, "pods/s").note("client limited"));
        assert!(r.targets[0].met && !r.targets[1].met);
        let md = markdown(&serde_json::json!({"nproc": 2}), &[r.clone()]);
        assert!(md.contains("| pods_per_second | 12.50 |"));
        assert!(md.contains("**no** — client limited"));
        let json = r.to_json(&serde_json::json!({}));
        assert_eq!(json["metrics"]["pods_per_second"], 12.5);
    }
}
