//! `--record`: this run's results merged into `bench/results/<date>.{json,md}`, so that
//! a run of some scenarios replaces those scenarios' rows and keeps the others' (recorded
//! by an earlier run the same day).

use std::path::Path;

use serde_json::Value;

use super::report::{self, ScenarioResult};

/// Merges `results` (run in `context`) into `<dir>/<date>.json` and `<date>.md`,
/// creating them when they do not exist.
pub(crate) fn record(
    dir: &Path,
    date: &str,
    context: &Value,
    results: &[ScenarioResult],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json_path = dir.join(format!("{date}.json"));
    let md_path = dir.join(format!("{date}.md"));
    let docs: Vec<Value> = results.iter().map(|r| r.to_json(context)).collect();
    let old_docs: Vec<Value> = std::fs::read_to_string(&json_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&merge_docs(old_docs, docs))?,
    )?;
    let md = match std::fs::read_to_string(&md_path) {
        Ok(old) => merge_markdown(&old, context, results),
        Err(_) => report::markdown(context, results),
    };
    std::fs::write(&md_path, md)?;
    Ok(())
}

/// `old` with each document of `new` replacing the one of the same scenario, or added
/// at the end.
fn merge_docs(mut old: Vec<Value>, new: Vec<Value>) -> Vec<Value> {
    for doc in new {
        match old.iter_mut().find(|d| d["scenario"] == doc["scenario"]) {
            Some(slot) => *slot = doc,
            None => old.push(doc),
        }
    }
    old
}

/// The report `old` with the sections of `results` replacing the sections of the same
/// name, or inserted before a closing `## Notes` section (else at the end); each says
/// which run it came from.
fn merge_markdown(old: &str, context: &Value, results: &[ScenarioResult]) -> String {
    let run = format!(
        "{}, commit {}, {}",
        report::fmt_value(&context["date"]),
        report::fmt_value(&context["commit"]),
        report::fmt_value(&context["provider"])
    );
    // Sections start at "\n## "; the first piece is the header.
    let mut pieces: Vec<String> = Vec::new();
    let mut rest = old;
    while let Some(i) = rest[1..].find("\n## ").map(|i| i + 1) {
        pieces.push(rest[..i].to_owned());
        rest = &rest[i..];
    }
    pieces.push(rest.to_owned());
    let heading = |piece: &str| {
        piece
            .strip_prefix("\n## ")
            .and_then(|p| p.lines().next())
            .map(str::to_owned)
    };
    for r in results {
        let mut new = report::section(r, Some(&run));
        let slot = pieces
            .iter()
            .position(|p| heading(p).as_deref() == Some(r.scenario.as_str()));
        match slot {
            Some(i) => {
                // Keep the blank line a following section starts after.
                if pieces[i].ends_with("\n\n") && !new.ends_with("\n\n") {
                    new.push('\n');
                }
                pieces[i] = new;
            }
            None => {
                let notes = pieces
                    .iter()
                    .position(|p| heading(p).as_deref() == Some("Notes"));
                let at = notes.unwrap_or(pieces.len());
                if at > 0 && !pieces[at - 1].ends_with('\n') {
                    pieces[at - 1].push('\n');
                }
                pieces.insert(at, new);
            }
        }
    }
    pieces.concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(scenario: &str, rate: f64) -> ScenarioResult {
        let mut r = ScenarioResult::new(scenario, json!({}));
        r.metric("rate", rate);
        r
    }

    #[test]
    fn documents_of_the_same_scenario_are_replaced_and_others_kept() {
        let old = vec![
            json!({"scenario": "ceiling", "v": 1}),
            json!({"scenario": "churn", "v": 1}),
        ];
        let new = vec![
            json!({"scenario": "churn", "v": 2}),
            json!({"scenario": "stream", "v": 2}),
        ];
        let merged = merge_docs(old, new);
        let got: Vec<_> = merged
            .iter()
            .map(|d| {
                (
                    d["scenario"].as_str().unwrap_or(""),
                    d["v"].as_i64().unwrap_or(0),
                )
            })
            .collect();
        assert_eq!(got, [("ceiling", 1), ("churn", 2), ("stream", 2)]);
    }

    #[test]
    fn markdown_sections_are_replaced_or_inserted_before_the_notes() {
        let ctx =
            json!({"date": "2026-11-30T18:00:00Z", "commit": "abc", "provider": "vk-process"});
        let old = report::markdown(
            &json!({"commit": "old"}),
            &[result("ceiling", 1.0), result("stream", 1.0)],
        ) + "\n## Notes\n\nhand-written\n";
        let merged = merge_markdown(&old, &ctx, &[result("stream", 2.0), result("process", 3.0)]);
        assert!(merged.starts_with("# Benchmark report\n\n- **commit**: old\n"));
        let order: Vec<&str> = merged
            .lines()
            .filter_map(|l| l.strip_prefix("## "))
            .collect();
        assert_eq!(order, ["ceiling", "stream", "process", "Notes"]);
        assert!(merged.contains("| rate | 1.0 |"), "ceiling kept: {merged}");
        assert!(merged.contains("| rate | 2.0 |") && !merged.contains("stream\n\nSettings"));
        assert!(merged.contains("Run: 2026-11-30T18:00:00Z, commit abc, vk-process"));
        assert!(merged.ends_with("## Notes\n\nhand-written\n"));
        assert!(
            !merged.contains("\n\n\n"),
            "no doubled blank lines: {merged}"
        );
    }
}
