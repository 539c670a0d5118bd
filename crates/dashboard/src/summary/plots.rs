//! The plots below the summary: the reports' own SVG files inlined, and the charts the reports
//! do not draw (parallel coordinates, importance bars, intermediate values) from the same model.

use std::collections::BTreeMap;

use decsweep_coordinator::{EpochValue, StudyColumns};
use decsweep_report::{ReportFile, StudyModel};
use maud::{html, Markup, PreEscaped};

use decsweep_api::TrialStatus;
use decsweep_report::charts::{self, LineSeries, Marker, ParallelCell, ParallelLine};
use decsweep_report::svg::PALETTE;

/// At most this many configurations in parallel coordinates (the best ones).
const MAX_PARALLEL_LINES: usize = 1_000;

pub(crate) fn render(
    model: &StudyModel,
    files: &[ReportFile],
    columns: &StudyColumns,
    metric: &str,
    maximize: bool,
    epochs: &[EpochValue],
) -> Markup {
    let file = |name: &str| files.iter().find(|f| f.name == name).map(|f| f.contents.as_str());
    html! {
        section #plots {
            h2 { "Plots" }
            div.plots {
                @if let Some(svg) = file("accuracy_vs_label_fraction.svg") { figure #plot-label-fraction { (inline_svg(svg)) } }
                @if let Some(svg) = file("search.svg") { figure #plot-history { (inline_svg(svg)) } }
                @if let Some(svg) = parallel_plot(model, columns, metric, maximize) { figure #plot-parallel { (PreEscaped(svg)) } }
                @if let Some(svg) = importance_plot(model) { figure #plot-importance { (PreEscaped(svg)) } }
                @if let Some(svg) = intermediate_plot(epochs) { figure #plot-intermediate { (PreEscaped(svg)) } }
            }
        }
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

/// Each configuration with an objective mean, through the study's swept parameters.
fn parallel_plot(model: &StudyModel, columns: &StudyColumns, metric: &str, maximize: bool) -> Option<String> {
    let params: Vec<(String, bool)> =
        columns.params.iter().filter(|p| model.params.contains(&p.name)).map(|p| (p.name.clone(), p.log)).collect();
    let mut lines: Vec<ParallelLine> = model
        .configs
        .iter()
        .filter_map(|c| {
            let objective = c.summary(metric).mean?;
            let cells = params
                .iter()
                .map(|(name, _)| match c.params.get(name).map(|v| v.to_string()) {
                    // A value that reads as a number is placed on a numeric axis, whatever its type.
                    Some(v) => v.parse::<f64>().map(ParallelCell::Num).unwrap_or_else(|_| ParallelCell::Text(v)),
                    None => ParallelCell::Missing,
                })
                .collect();
            Some(ParallelLine { label: c.label.clone(), cells, objective })
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

fn importance_plot(model: &StudyModel) -> Option<String> {
    let rows = model.importance.as_ref()?;
    let pipelines: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.pipeline.as_str()).collect();
    let mut items: Vec<(String, f64)> = rows
        .iter()
        .filter_map(|r| {
            let value = r.importance?;
            let label =
                if pipelines.len() > 1 { format!("{}: {}", r.pipeline, r.parameter) } else { r.parameter.clone() };
            Some((label, value))
        })
        .collect();
    items.sort_by(|a, b| b.1.total_cmp(&a.1));
    charts::bars("chart importance", "Parameter importance (η² of the objective)", &items)
}

/// Every recent trial's per-epoch validation accuracy, pruned trials dashed and crossed.
fn intermediate_plot(epochs: &[EpochValue]) -> Option<String> {
    let mut by_trial: BTreeMap<i64, (TrialStatus, Vec<(f64, f64)>)> = BTreeMap::new();
    for e in epochs {
        let entry = by_trial.entry(e.trial_id).or_insert_with(|| (e.status, Vec::new()));
        entry.1.push((f64::from(e.epoch), e.val_accuracy));
    }
    let series: Vec<LineSeries> = by_trial
        .into_iter()
        .map(|(id, (status, points))| {
            let pruned = status == TrialStatus::Pruned;
            LineSeries {
                name: format!("trial {id}"),
                color: match status {
                    TrialStatus::Pruned => PALETTE[1],
                    TrialStatus::Running => PALETTE[2],
                    _ => PALETTE[0],
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
    fn a_report_svg_loses_its_prolog() {
        assert_eq!(inline_svg("<?xml version=\"1.0\"?>\n<svg a=\"1\"></svg>").0, "<svg a=\"1\"></svg>");
    }
}
