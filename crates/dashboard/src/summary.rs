//! The study page's second half: the seed-grouped summary, the paired dec-vs-baseline
//! comparisons and the plots.
//!
//! Statistics are the reports' own: the fragment renders the study with
//! [`decsweep_report::render`] (no curves) and shows its `summary.csv` (n, mean ± std, 95%
//! interval per configuration), the paired tests of `paired.csv`'s differences
//! ([`decsweep_report::stats`]), `importance.csv`, and the plots `accuracy_vs_label_fraction.svg`
//! and `search.svg` as written. Nothing statistical is computed here, so the page and the
//! report files always agree. This needs every trial of the study, so it is a separate request
//! made after the page is shown, cached until the study's counts change (and refreshed at most
//! every few seconds while trials run).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use decsweep_coordinator::{Coordinator, StudyColumns};
use decsweep_report::{stats, ReportOptions, StudyReport, TrialRow};
use maud::{html, Markup, PreEscaped};

use crate::charts::{self, LineSeries, Marker, ParallelCell, ParallelLine};
use crate::error::PageError;
use crate::format::num;

/// At most this many configurations in parallel coordinates (the best ones).
const MAX_PARALLEL_LINES: usize = 1_000;
/// Trials drawn in the intermediate-values plot (the latest ones that reported epochs).
const MAX_CURVE_TRIALS: u64 = 100;
/// While trials run, a cached fragment is redrawn at most this often.
const REFRESH: Duration = Duration::from_secs(3);

/// A rendered fragment: the counts it was drawn at, when, and its HTML.
type Entry = (String, Instant, Arc<String>);

/// Rendered fragments by study.
#[derive(Default)]
pub(crate) struct Cache {
    entries: Mutex<HashMap<String, Entry>>,
}

/// The fragment's HTML for `study`, from the cache when still current.
pub(crate) async fn fragment(c: &Coordinator, cache: &Cache, study: &str) -> Result<Arc<String>, PageError> {
    let info = c.study(study).await?;
    let key = format!("{:?}", info.counts);
    let running = info.counts.running > 0;
    if let Some((k, at, html)) = cache.entries.lock().unwrap_or_else(|p| p.into_inner()).get(study) {
        if *k == key && (!running || at.elapsed() < REFRESH) {
            return Ok(html.clone());
        }
    }
    let columns = c.study_columns(study).await?;
    let trials: Vec<TrialRow> = c.trials(study, None).await?.into_iter().map(TrialRow::from).collect();
    let epochs = c.epoch_values(study, MAX_CURVE_TRIALS).await?;
    let name = study.to_string();
    let (metric, maximize) = (info.objective_metric.clone(), info.maximize);
    let html = tokio::task::spawn_blocking(move || render(&name, &trials, &columns, &metric, maximize, &epochs))
        .await
        .map_err(|e| PageError { status: axum::http::StatusCode::INTERNAL_SERVER_ERROR, message: e.to_string() })??;
    let html = Arc::new(html);
    cache
        .entries
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(study.to_string(), (key, Instant::now(), html.clone()));
    Ok(html)
}

/// A parsed CSV: headers and rows of strings.
struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn parse(text: &str) -> Table {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let headers = reader.headers().map(|h| h.iter().map(str::to_string).collect()).unwrap_or_default();
        let rows = reader.records().filter_map(|r| r.ok()).map(|r| r.iter().map(str::to_string).collect()).collect();
        Table { headers, rows }
    }

    fn col(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    fn get<'a>(&self, row: &'a [String], name: &str) -> Option<&'a str> {
        self.col(name).and_then(|i| row.get(i)).map(String::as_str).filter(|s| !s.is_empty())
    }

    fn num(&self, row: &[String], name: &str) -> Option<f64> {
        self.get(row, name).and_then(|s| s.parse().ok())
    }
}

/// Strips the XML prolog so a report's SVG file can sit inside HTML.
fn inline_svg(doc: &str) -> PreEscaped<String> {
    let body = match doc.find("<svg") {
        Some(i) => &doc[i..],
        None => "",
    };
    PreEscaped(body.to_string())
}

fn render(
    study: &str,
    trials: &[TrialRow],
    columns: &StudyColumns,
    metric: &str,
    maximize: bool,
    epochs: &[decsweep_coordinator::EpochValue],
) -> Result<String, PageError> {
    let options = ReportOptions::default().with_objective(metric, maximize);
    let files = decsweep_report::render(&StudyReport { study, trials, curves: &[] }, &options)
        .map_err(|e| PageError { status: axum::http::StatusCode::INTERNAL_SERVER_ERROR, message: e.to_string() })?;
    let file = |name: &str| files.iter().find(|f| f.name == name).map(|f| f.contents.as_str());
    let summary = Table::parse(file("summary.csv").unwrap_or(""));
    let html = html! {
        section #summary-table {
            h2 { "Summary over seeds" }
            (summary_table(&summary, metric))
        }
        @if let Some(paired) = file("paired.csv") { (paired_table(&Table::parse(paired))) }
        section #plots {
            h2 { "Plots" }
            div.plots {
                @if let Some(svg) = file("accuracy_vs_label_fraction.svg") { figure #plot-label-fraction { (inline_svg(svg)) } }
                @if let Some(svg) = file("search.svg") { figure #plot-history { (inline_svg(svg)) } }
                @if let Some(svg) = parallel_plot(&summary, columns, metric, maximize) { figure #plot-parallel { (PreEscaped(svg)) } }
                @if let Some(svg) = file("importance.csv").and_then(|t| importance_plot(&Table::parse(t))) {
                    figure #plot-importance { (PreEscaped(svg)) }
                }
                @if let Some(svg) = intermediate_plot(epochs) { figure #plot-intermediate { (PreEscaped(svg)) } }
            }
        }
    };
    Ok(html.into_string())
}

/// The metric names of `summary.csv`, the objective first.
fn summary_metrics(t: &Table, objective: &str) -> Vec<String> {
    let mut out: Vec<String> = t
        .headers
        .iter()
        .filter_map(|h| h.strip_suffix("_mean"))
        .filter(|m| t.col(&format!("{m}_ci95_high")).is_some())
        .map(str::to_string)
        .collect();
    if let Some(i) = out.iter().position(|m| m == objective) {
        let m = out.remove(i);
        out.insert(0, m);
    }
    out
}

fn summary_table(t: &Table, objective: &str) -> Markup {
    let metrics = summary_metrics(t, objective);
    html! {
        @if t.rows.is_empty() { p { "No trials yet." } } @else {
            p.note { "Completed trials only; mean ± sample std and the 95% t interval over seeds, as in summary.csv." }
            div.scroll {
                table.summary {
                    thead { tr {
                        th { "pipeline" } th { "config" } th { "trials" } th { "completed" } th { "failed" } th { "pruned" }
                        @for m in &metrics { th { (m) " (n)" } th { (m) " mean ± std" } th { (m) " 95% CI" } }
                    } }
                    tbody {
                        @for row in &t.rows {
                            tr.config {
                                td { (t.get(row, "pipeline").unwrap_or("")) }
                                td.mono { (t.get(row, "config_id").unwrap_or("")) }
                                td.num { (t.get(row, "n_trials").unwrap_or("0")) }
                                td.num { (t.get(row, "n_completed").unwrap_or("0")) }
                                td.num { (t.get(row, "n_failed").unwrap_or("0")) }
                                td.num { (t.get(row, "n_pruned").unwrap_or("0")) }
                                @for m in &metrics {
                                    td.num { (t.get(row, &format!("{m}_n")).unwrap_or("0")) }
                                    td.num {
                                        @match (t.num(row, &format!("{m}_mean")), t.num(row, &format!("{m}_std"))) {
                                            (Some(mean), Some(std)) => { (num(mean)) " ± " (num(std)) }
                                            (Some(mean), None) => { (num(mean)) }
                                            _ => { "–" }
                                        }
                                    }
                                    td.num {
                                        @match (t.num(row, &format!("{m}_ci95_low")), t.num(row, &format!("{m}_ci95_high"))) {
                                            (Some(lo), Some(hi)) => { "[" (num(lo)) ", " (num(hi)) "]" }
                                            _ => { "–" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The paired comparisons: `paired.csv`'s differences grouped by (dec, baseline) and tested with
/// the reports' paired t and Wilcoxon tests.
fn paired_table(t: &Table) -> Markup {
    let mut groups: Vec<((String, String), Vec<f64>)> = Vec::new();
    for row in &t.rows {
        let key = (
            t.get(row, "dec_model").or(t.get(row, "dec_config_id")).unwrap_or("").to_string(),
            t.get(row, "baseline_model").or(t.get(row, "baseline_config_id")).unwrap_or("").to_string(),
        );
        let Some(d) = t.num(row, "difference") else { continue };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(d),
            None => groups.push((key, vec![d])),
        }
    }
    html! {
        @if !groups.is_empty() {
            section #paired {
                h2 { "Paired dec vs baseline (same seeds)" }
                table.summary {
                    thead { tr { th { "dec" } th { "baseline" } th { "pairs" } th { "Δ accuracy (pp)" } th { "95% CI (pp)" } th { "p (paired t)" } th { "p (Wilcoxon)" } } }
                    tbody {
                        @for ((dec, base), diffs) in &groups {
                            @let t = stats::paired_t_test(diffs);
                            @let w = stats::wilcoxon_signed_rank(diffs);
                            tr {
                                td { (dec) } td { (base) } td.num { (t.n) }
                                td.num { (t.mean.map(|m| num(m * 100.0)).unwrap_or("–".into())) }
                                td.num { (t.ci95.map(|(lo, hi)| format!("[{}, {}]", num(lo * 100.0), num(hi * 100.0))).unwrap_or("–".into())) }
                                td.num { (t.p_value.map(num).unwrap_or("–".into())) }
                                td.num { (num(w.p_value)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn parallel_plot(t: &Table, columns: &StudyColumns, metric: &str, maximize: bool) -> Option<String> {
    let params: Vec<(String, bool)> =
        columns.params.iter().filter(|p| t.col(&p.name).is_some()).map(|p| (p.name.clone(), p.log)).collect();
    let mut lines: Vec<ParallelLine> = t
        .rows
        .iter()
        .filter_map(|row| {
            let objective = t.num(row, &format!("{metric}_mean"))?;
            let cells = params
                .iter()
                .map(|(name, _)| match t.get(row, name) {
                    Some(v) => {
                        v.parse::<f64>().map(ParallelCell::Num).unwrap_or_else(|_| ParallelCell::Text(v.to_string()))
                    }
                    None => ParallelCell::Missing,
                })
                .collect();
            Some(ParallelLine { cells, objective })
        })
        .collect();
    if lines.len() > MAX_PARALLEL_LINES {
        lines.sort_by(
            |a, b| if maximize { b.objective.total_cmp(&a.objective) } else { a.objective.total_cmp(&b.objective) },
        );
        lines.truncate(MAX_PARALLEL_LINES);
    }
    charts::parallel("chart parallel", &params, metric, maximize, &lines)
}

fn importance_plot(t: &Table) -> Option<String> {
    let pipelines: std::collections::BTreeSet<&str> = t.rows.iter().filter_map(|r| t.get(r, "pipeline")).collect();
    let mut items: Vec<(String, f64)> = t
        .rows
        .iter()
        .filter_map(|r| {
            let value = t.num(r, "importance")?;
            let param = t.get(r, "parameter")?;
            let label = if pipelines.len() > 1 {
                format!("{}: {param}", t.get(r, "pipeline").unwrap_or(""))
            } else {
                param.to_string()
            };
            Some((label, value))
        })
        .collect();
    items.sort_by(|a, b| b.1.total_cmp(&a.1));
    charts::bars("chart importance", "Parameter importance (η² of the objective)", &items)
}

/// Every recent trial's per-epoch validation accuracy, pruned trials dashed and crossed.
fn intermediate_plot(epochs: &[decsweep_coordinator::EpochValue]) -> Option<String> {
    let mut by_trial: BTreeMap<i64, (String, Vec<(f64, f64)>)> = BTreeMap::new();
    for e in epochs {
        let entry = by_trial.entry(e.trial_id).or_insert_with(|| (e.status.clone(), Vec::new()));
        entry.1.push((f64::from(e.epoch), e.val_accuracy));
    }
    let series: Vec<LineSeries> = by_trial
        .into_iter()
        .map(|(id, (status, points))| {
            let pruned = status == "pruned";
            LineSeries {
                name: format!("trial {id}"),
                color: match status.as_str() {
                    "pruned" => charts::PALETTE[1],
                    "running" => charts::PALETTE[2],
                    _ => charts::PALETTE[0],
                },
                dashed: pruned,
                points,
                end: if pruned { Marker::Pruned } else { Marker::None },
                faint: true,
            }
        })
        .collect();
    charts::line_chart(
        "chart intermediate",
        "Validation accuracy per epoch (recent trials; pruned ×)",
        "epoch",
        "val accuracy",
        &series,
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_metrics_put_the_objective_first() {
        let t = Table::parse("pipeline,config_id,a_n,a_mean,a_std,a_ci95_low,a_ci95_high,loss_n,loss_mean,loss_std,loss_ci95_low,loss_ci95_high\n");
        assert_eq!(summary_metrics(&t, "loss"), ["loss", "a"]);
        assert_eq!(inline_svg("<?xml version=\"1.0\"?>\n<svg a=\"1\"></svg>").0, "<svg a=\"1\"></svg>");
    }

    #[test]
    fn paired_rows_are_tested_by_the_report_functions() {
        let t = Table::parse(
            "dec_config_id,baseline_config_id,dec_model,baseline_model,seed,dec_trial_id,baseline_trial_id,dec_accuracy,baseline_accuracy,difference\n\
             d,b,dec,baseline,0,1,2,0.8,0.7,0.1\nd,b,dec,baseline,1,3,4,0.9,0.7,0.2\nd,b,dec,baseline,2,5,6,0.75,0.7,0.05\n",
        );
        let html = paired_table(&t).into_string();
        let expected = stats::paired_t_test(&[0.1, 0.2, 0.05]);
        assert!(html.contains(&num(expected.mean.unwrap() * 100.0)), "{html}");
        assert!(html.contains(&num(expected.p_value.unwrap())), "{html}");
    }
}
