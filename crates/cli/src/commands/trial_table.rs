//! `decsweep status STUDY --trials` as text: one aligned table with a header row. Each trial
//! is named by its configuration's label ([`decsweep_api::labels`], the names the report files
//! and the dashboard use), followed by the study's swept parameters (those that vary), its seed
//! and state, and the study's objective metric, plus accuracy when the objective is another
//! metric, each under its metric's name.

use std::collections::BTreeMap;

use decsweep_api::labels::{compact, label_all, varying, Configuration};
use decsweep_api::wire::{StudyInfo, TrialInfo};

/// The metric columns: the objective first, then accuracy when it is not the objective and
/// some trial reports it.
fn metric_columns(study: &StudyInfo, trials: &[TrialInfo]) -> Vec<String> {
    let mut out = vec![study.objective_metric.clone()];
    if study.objective_metric != "accuracy" && trials.iter().any(|t| t.metrics.contains_key("accuracy")) {
        out.push("accuracy".to_string());
    }
    out
}

/// Labels by config id, and the swept parameters, from the first trial of each configuration
/// (its seeds share pipeline, parameters and spec label).
fn configurations(trials: &[TrialInfo]) -> (BTreeMap<&str, String>, Vec<String>) {
    let mut first: BTreeMap<&str, &TrialInfo> = BTreeMap::new();
    for t in trials {
        first.entry(t.config_id.as_str()).or_insert(t);
    }
    let configs: Vec<Configuration> = first
        .values()
        .map(|t| Configuration::new(&t.pipeline, &t.config_id, &t.params).with_spec_label(t.label.as_deref()))
        .collect();
    let labels = first.keys().copied().zip(label_all(&configs)).collect();
    (labels, varying(&configs))
}

/// The table, header first, rows in the order given; empty when there are no trials.
pub fn render(study: &StudyInfo, trials: &[TrialInfo]) -> String {
    if trials.is_empty() {
        return String::new();
    }
    let (labels, swept) = configurations(trials);
    let metrics = metric_columns(study, trials);
    let mut header: Vec<String> = vec!["id".into(), "config".into()];
    header.extend(swept.iter().cloned());
    header.extend(["seed", "status", "attempts"].map(String::from));
    header.extend(metrics.iter().cloned());
    header.extend(["worker", "error"].map(String::from));
    // Numbers are right-aligned, words left-aligned.
    let mut right = vec![true, false];
    right.extend(swept.iter().map(|_| true));
    right.extend([true, false, true]);
    right.extend(metrics.iter().map(|_| true));
    right.extend([false, false]);

    let mut rows = vec![header];
    for t in trials {
        let mut row = vec![t.id.to_string(), labels.get(t.config_id.as_str()).cloned().unwrap_or_default()];
        row.extend(swept.iter().map(|p| t.params.get(p).map(compact).unwrap_or_default()));
        row.extend([t.seed.to_string(), t.status.name().to_string(), t.attempts.to_string()]);
        row.extend(metrics.iter().map(|m| t.metrics.get(m).map(|x| format!("{x:.4}")).unwrap_or_default()));
        // One line per trial: an error's first line is its gist (the full text: `--json`).
        let error = t.error.as_deref().and_then(|e| e.lines().next()).unwrap_or("");
        row.extend([t.worker.clone().unwrap_or_default(), error.to_string()]);
        rows.push(row);
    }
    let widths: Vec<usize> =
        (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .zip(&right)
            .map(|((cell, width), right)| if *right { format!("{cell:>width$}") } else { format!("{cell:<width$}") })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use decsweep_api::{ParamValue, TrialStatus};

    fn study(objective: &str) -> StudyInfo {
        serde_json::from_value(serde_json::json!({
            "name": "s", "created_at": "2026-01-01T00:00:00Z", "dataset_sha256": "ab",
            "counts": { "pending": 0, "running": 0, "completed": 0, "failed": 0, "pruned": 0 },
            "objective_metric": objective, "maximize": true,
        }))
        .unwrap()
    }

    fn trial(id: i64, pipeline: &str, lf: f64, seed: u64, accuracy: Option<f64>) -> TrialInfo {
        TrialInfo {
            id,
            study: "s".into(),
            pipeline: pipeline.into(),
            params: BTreeMap::from([
                ("label_fraction".into(), ParamValue::Float(lf)),
                ("lr_ft".into(), ParamValue::Float(4e-5)),
            ]),
            seed,
            config_id: format!("{pipeline}-{lf}"),
            label: None,
            status: if accuracy.is_some() { TrialStatus::Completed } else { TrialStatus::Pending },
            attempts: u32::from(accuracy.is_some()),
            worker: accuracy.map(|_| "w/0".to_string()),
            error: None,
            metrics: accuracy.map(|a| BTreeMap::from([("accuracy".to_string(), a)])).unwrap_or_default(),
            resumes: 0,
            resumed_from: None,
            pack: Vec::new(),
            manifest: None,
        }
    }

    #[test]
    fn a_header_labels_swept_parameters_and_named_metrics() {
        let trials = [
            trial(1, "baseline", 0.1, 0, Some(0.75)),
            trial(2, "dec", 0.1, 0, Some(0.8125)),
            trial(3, "dec", 0.4, 0, None),
        ];
        let text = render(&study("accuracy"), &trials);
        let lines: Vec<&str> = text.lines().collect();
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(
            header,
            ["id", "config", "label_fraction", "seed", "status", "attempts", "accuracy", "worker", "error"]
        );
        assert_eq!(lines.len(), 4);
        assert!(lines[1].contains("baseline lf=0.1") && lines[1].contains("0.7500"), "{text}");
        assert!(lines[2].contains("dec lf=0.1") && lines[2].contains("0.8125"), "{text}");
        assert!(lines[3].contains("dec lf=0.4") && lines[3].contains("pending"), "{text}");
        assert!(!text.contains("lr_ft"), "lr_ft does not vary: {text}");
        // Aligned: every row's status starts where the header's does.
        let at = lines[0].find("status").unwrap();
        assert!(
            lines[1..].iter().all(|l| l[at..].starts_with("completed") || l[at..].starts_with("pending")),
            "{text}"
        );
    }

    #[test]
    fn another_objective_comes_first_with_accuracy_beside_it() {
        let mut t = trial(1, "dec", 0.1, 0, Some(0.8));
        t.metrics.insert("loss".into(), 0.25);
        t.error = Some("first line\nsecond line".into());
        let text = render(&study("loss"), &[t]);
        let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(header[3..7], ["status", "attempts", "loss", "accuracy"]);
        assert!(text.contains("0.2500    0.8000") && text.contains("first line") && !text.contains("second"), "{text}");
        assert_eq!(render(&study("accuracy"), &[]), "");
    }
}
