//! The study page's summary is the reports' model: its p-values are `paired.csv`'s
//! Holm-adjusted ones and its interval names `summary.csv`'s, and it updates in the same live
//! answer as the trial that changed it.

mod support;

use std::collections::BTreeMap;

use decsweep_report::{ReportOptions, StudyReport};
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{command_spec, Server};

/// dec and baseline at two label fractions, three seeds each: two comparisons, so Holm's
/// adjustment changes the p-values.
const PAIRED_SPEC: &str = r#"
[study]
name = "paired"
dataset = { synthetic = { seed = 0, n = 12 } }
pipelines = ["baseline", "dec"]
seeds = [0, 1, 2]

[fixed]
epochs_ft = 2

[space]
label_fraction = { grid = [0.5, 1.0] }
"#;

async fn get(s: &Server, path: &str) -> (StatusCode, String) {
    let r = s.http.get(s.url(path)).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

/// The value of attribute `name` in the first tag of `html` that has it.
fn attr<'h>(html: &'h str, name: &str) -> Option<&'h str> {
    let start = html.find(&format!(" {name}=\""))? + name.len() + 3;
    html[start..].split('"').next()
}

/// Each `<tr class="{class}" …>…</tr>` of `html`.
fn rows<'h>(html: &'h str, class: &str) -> Vec<&'h str> {
    html.split(&format!("<tr class=\"{class}\"")).skip(1).map(|rest| rest.split("</tr>").next().unwrap()).collect()
}

/// A CSV file as rows of column → cell.
fn parse_csv(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let headers: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    r.records().map(|rec| headers.iter().cloned().zip(rec.unwrap().iter().map(str::to_string)).collect()).collect()
}

#[tokio::test]
async fn the_study_page_shows_the_holm_adjusted_p_values_and_interval_names_of_the_report_files() {
    let s = Server::open().await;
    s.create(PAIRED_SPEC, None).await;
    // Accuracies with spread in the differences, so every test has a p-value below 1.
    for k in 0..12u32 {
        let lease = s.lease("w/0", "w", None).await;
        let id = lease.trial_id;
        let acc = 0.55 + ((id * id * 13 + id * 7 + i64::from(k)) % 31) as f64 / 100.0;
        s.complete(&lease, json!({ "accuracy": acc, "f1_weighted": acc - 0.02, "loss": 1.0 - acc }), None).await;
    }
    let (status, page) = get(&s, "/studies/paired/summary").await;
    assert_eq!(status, StatusCode::OK);

    let info = s.coordinator.study("paired").await.unwrap();
    let (trials, curves) = s.coordinator.report_input("paired").await.unwrap();
    let options = ReportOptions::default().with_objective(info.objective_metric.clone(), info.maximize);
    let files =
        decsweep_report::render(&StudyReport { study: "paired", trials: &trials, curves: &curves }, &options).unwrap();
    let file = |name: &str| parse_csv(&files.iter().find(|f| f.name == name).unwrap().contents);

    // Paired comparisons: one row per comparison, its four p-values exactly paired.csv's.
    let paired = file("paired.csv");
    let shown = rows(&page, "comparison");
    assert_eq!(shown.len(), 2, "{page}");
    let mut adjusted_differs = false;
    for row in shown {
        let (dec, base) = (attr(row, "data-dec").unwrap(), attr(row, "data-baseline").unwrap());
        let csv = paired.iter().find(|r| r["dec_config_id"] == dec && r["baseline_config_id"] == base).unwrap();
        for (test, column) in
            [("t", "p_t"), ("t_holm", "p_t_holm"), ("wilcoxon", "p_wilcoxon"), ("wilcoxon_holm", "p_wilcoxon_holm")]
        {
            let cell = row.split(&format!("data-test=\"{test}\"")).nth(1).unwrap().split("</td>").next().unwrap();
            let want = Some(csv[column].as_str()).filter(|p| !p.is_empty());
            assert_eq!(attr(cell, "data-p"), want, "{dec} vs {base}: {test}\n{row}");
        }
        adjusted_differs |= !csv["p_t"].is_empty() && csv["p_t_holm"] != csv["p_t"];
    }
    assert!(adjusted_differs, "two comparisons: Holm changed a p-value");
    assert!(page.contains("p Holm (t)") && page.contains("p Holm (Wilcoxon)"), "{page}");

    // Summary: each interval named as summary.csv names it (logit-t for accuracy and F1, t for loss).
    let summary = file("summary.csv");
    let configs = rows(&page, "config");
    assert_eq!(configs.len(), summary.len());
    let mut checked = 0;
    for row in configs {
        let (pipeline, config) = (attr(row, "data-pipeline").unwrap(), attr(row, "data-config").unwrap());
        let csv = summary.iter().find(|r| r["pipeline"] == pipeline && r["config_id"] == config).unwrap();
        assert_eq!(row.split("class=\"num completed\">").nth(1).and_then(|c| c.split('<').next()), Some("3"));
        for metric in ["accuracy", "f1_weighted", "loss"] {
            let cell = row.split(&format!("data-metric=\"{metric}\"")).nth(1).unwrap();
            let method = cell.split('>').next().unwrap();
            let want = csv[&format!("{metric}_ci95_method")].as_str();
            assert!(!want.is_empty(), "three seeds: an interval");
            assert_eq!(attr(method, "data-method"), Some(want), "{row}");
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
    assert!(page.contains("accuracy 95% CI (logit-t)") && page.contains("loss 95% CI (t)"), "{page}");
    assert!(!page.contains("95% t interval"), "{page}");
    s.stop().await;
}

#[tokio::test]
async fn the_summary_tables_update_with_the_trial_that_completes() {
    let s = Server::open().await;
    s.create(&command_spec("grow", 2), None).await;
    let (_, fragment) = get(&s, "/studies/grow/summary").await;
    let version = attr(&fragment, "data-version").unwrap().to_string();
    let completed = |html: &str| -> Vec<String> {
        html.split("class=\"num completed\">").skip(1).map(|c| c.split('<').next().unwrap().to_string()).collect()
    };
    assert_eq!(completed(&fragment), ["0", "0"], "{fragment}");

    let cursor = s.coordinator.change_cursor().await.unwrap();
    let lease = s.lease("w/0", "w", None).await;
    s.complete(&lease, json!({ "accuracy": 0.7 }), None).await;
    let live = |summary: Option<String>| {
        let mut path = format!("/live/studies/grow?since={cursor}&ids=1,2&metrics=&params=x");
        if let Some(v) = summary {
            path.push_str(&format!("&summary={v}"));
        }
        let s = &s;
        async move {
            let (status, body) = get(s, &path).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            serde_json::from_str::<Value>(&body).unwrap()
        }
    };

    // The page shows the tables at the old version: the answer carries the new ones beside the row.
    let patch = live(Some(version.clone())).await;
    assert!(patch["rows"].as_object().unwrap().contains_key(&lease.trial_id.to_string()));
    let tables = patch["parts"]["summary-tables"].as_str().expect("the summary tables travel with the row");
    let mut counts = completed(tables);
    counts.sort();
    assert_eq!(counts, ["0", "1"], "{tables}");
    let fresh = attr(tables, "data-version").unwrap().to_string();
    assert_ne!(fresh, version);

    // Already current, or not shown at all: no tables in the answer.
    assert!(live(Some(fresh)).await["parts"].get("summary-tables").is_none());
    assert!(live(None).await["parts"].get("summary-tables").is_none());
    s.stop().await;
}
