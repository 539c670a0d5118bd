//! The plots below the summary: the reports' own SVG files inlined, and the charts the reports
//! do not draw (parallel coordinates, importance bars, intermediate values) from the same model.

use std::collections::{BTreeMap, BTreeSet, HashMap};

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
    (metric, maximize): (&str, bool),
    epochs: &[EpochValue],
    config_of: &HashMap<i64, (String, String)>,
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
                @if let Some(svg) = intermediate_plot(model, epochs, config_of, metric, maximize) { figure #plot-intermediate { (PreEscaped(svg)) } }
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

/// Each configuration with an objective mean (over its seeds), through a pipeline axis and
/// every swept parameter.
fn parallel_plot(model: &StudyModel, columns: &StudyColumns, metric: &str, maximize: bool) -> Option<String> {
    let params = parallel_axes(model, columns);
    let mut lines: Vec<ParallelLine> = model
        .configs
        .iter()
        .filter_map(|c| {
            let objective = c.summary(metric).mean?;
            let cells = params
                .iter()
                .map(|(name, _)| {
                    let value = if name == PIPELINE_AXIS {
                        Some(c.pipeline.clone())
                    } else {
                        c.params.get(name).map(|v| v.to_string())
                    };
                    match value {
                        // A value that reads as a number is placed on a numeric axis, whatever its type.
                        Some(v) => v.parse::<f64>().map(ParallelCell::Num).unwrap_or_else(|_| ParallelCell::Text(v)),
                        None => ParallelCell::Missing,
                    }
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
    charts::parallel("chart parallel", &params, &format!("{metric} (mean over seeds)"), maximize, &lines)
}

/// The name of the parallel-coordinates axis that places each configuration's pipeline.
const PIPELINE_AXIS: &str = "pipeline";

/// The axes of parallel coordinates, `(name, log)`: the pipeline, the spec's swept parameters in
/// its order, then any other parameter that takes two or more values across the configurations
/// (a `[[configs]]` list the spec's columns do not name), by name.
fn parallel_axes(model: &StudyModel, columns: &StudyColumns) -> Vec<(String, bool)> {
    let mut axes = vec![(PIPELINE_AXIS.to_string(), false)];
    axes.extend(columns.params.iter().filter(|p| model.params.contains(&p.name)).map(|p| (p.name.clone(), p.log)));
    for name in &model.params {
        let values: BTreeSet<String> =
            model.configs.iter().filter_map(|c| c.params.get(name)).map(|v| v.to_string()).collect();
        if values.len() >= 2 && !axes.iter().any(|(a, _)| a == name) {
            axes.push((name.clone(), false));
        }
    }
    axes
}

/// The share of the objective's variance each parameter explains, for pipelines in which at
/// least two parameters vary: with one, η² is 1 by construction and the bar says nothing.
fn importance_plot(model: &StudyModel) -> Option<String> {
    let rows = model.importance.as_ref()?;
    let mut per_pipeline: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rows {
        *per_pipeline.entry(r.pipeline.as_str()).or_default() += 1;
    }
    let shown: BTreeSet<&str> = per_pipeline.iter().filter(|(_, n)| **n >= 2).map(|(p, _)| *p).collect();
    let mut items: Vec<(String, f64)> = rows
        .iter()
        .filter(|r| shown.contains(r.pipeline.as_str()))
        .filter_map(|r| {
            let value = r.importance?;
            let label = if shown.len() > 1 { format!("{}: {}", r.pipeline, r.parameter) } else { r.parameter.clone() };
            Some((label, value))
        })
        .collect();
    items.sort_by(|a, b| b.1.total_cmp(&a.1));
    charts::bars("chart importance", "Parameter importance (η² of the objective)", &items)
}

/// Configurations coloured in the intermediate-values plot; the others are grey.
const COLOURED_CONFIGS: usize = 6;
/// The colour of configurations past [`COLOURED_CONFIGS`].
const OTHER_COLOUR: &str = "#9a9a9a";

/// Every recent trial's per-epoch validation accuracy, coloured by its configuration (the best
/// [`COLOURED_CONFIGS`] by mean objective, named in the legend; the rest grey), pruned trials
/// dashed and crossed. `config_of` maps a trial id to its (pipeline, config_id).
fn intermediate_plot(
    model: &StudyModel,
    epochs: &[EpochValue],
    config_of: &HashMap<i64, (String, String)>,
    metric: &str,
    maximize: bool,
) -> Option<String> {
    let mut by_trial: BTreeMap<i64, (TrialStatus, Vec<(f64, f64)>)> = BTreeMap::new();
    for e in epochs {
        let entry = by_trial.entry(e.trial_id).or_insert_with(|| (e.status, Vec::new()));
        entry.1.push((f64::from(e.epoch), e.val_accuracy));
    }
    let config_index = |trial: i64| -> Option<usize> {
        let (pipeline, config_id) = config_of.get(&trial)?;
        model.configs.iter().position(|c| &c.pipeline == pipeline && &c.config_id == config_id)
    };
    // The configurations drawn, best mean objective first (those without one last).
    let mut shown: Vec<usize> = by_trial.keys().filter_map(|t| config_index(*t)).collect();
    shown.sort_unstable();
    shown.dedup();
    let mean = |i: usize| model.configs[i].summary(metric).mean;
    shown.sort_by(|a, b| match (mean(*a), mean(*b)) {
        (Some(x), Some(y)) if maximize => y.total_cmp(&x),
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    });
    let others = shown.len() > COLOURED_CONFIGS;
    let series: Vec<LineSeries> = by_trial
        .into_iter()
        .map(|(id, (status, points))| {
            let pruned = status == TrialStatus::Pruned;
            let rank = config_index(id).and_then(|i| shown.iter().position(|s| *s == i).map(|r| (i, r)));
            let (name, color) = match rank {
                Some((i, r)) if r < COLOURED_CONFIGS => (model.configs[i].display_name().to_string(), PALETTE[r]),
                Some(_) => ("other configurations".to_string(), OTHER_COLOUR),
                None => (format!("trial {id}"), OTHER_COLOUR),
            };
            LineSeries {
                name,
                color,
                dashed: pruned,
                points,
                end: if pruned { Marker::Pruned } else { Marker::None },
                faint: true,
                // Pruned and unknown trials share their configuration's entry (or none).
                legend: rank.is_some() && !pruned,
            }
        })
        .collect();
    let title = if others {
        format!("Validation accuracy per epoch: the {COLOURED_CONFIGS} best configurations by mean {metric}, others grey (pruned ×)")
    } else {
        "Validation accuracy per epoch, by configuration (recent trials; pruned dashed ×)".to_string()
    };
    charts::line_chart("chart intermediate", &title, "epoch", "val accuracy", &series, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use decsweep_api::ParamValue;
    use decsweep_coordinator::SweptParam;
    use decsweep_report::{ReportOptions, TrialRow};

    /// A completed trial of `pipeline` with the given parameters and accuracy.
    fn trial(id: i64, pipeline: &str, params: &[(&str, ParamValue)], seed: u64, acc: f64) -> TrialRow {
        let params: BTreeMap<String, ParamValue> = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let config_id = format!("{pipeline}-{params:?}");
        TrialRow {
            id,
            pipeline: pipeline.into(),
            params,
            seed,
            config_id,
            spec_label: None,
            status: TrialStatus::Completed,
            attempts: 1,
            resumes: 0,
            resumed_from: None,
            pack: Vec::new(),
            worker: None,
            error: None,
            metrics: BTreeMap::from([("accuracy".to_string(), acc)]),
        }
    }

    /// baseline and dec at label fractions 0.2 and 0.4, two seeds each: trial ids 1–8.
    fn label_fraction_study() -> Vec<TrialRow> {
        let mut trials = Vec::new();
        for (pipeline, base) in [("baseline", 0.6), ("dec", 0.65)] {
            for lf in [0.2, 0.4] {
                for seed in 0..2 {
                    let acc = base + lf / 4.0 + 0.01 * seed as f64;
                    trials.push(trial(
                        trials.len() as i64 + 1,
                        pipeline,
                        &[("label_fraction", ParamValue::Float(lf))],
                        seed,
                        acc,
                    ));
                }
            }
        }
        trials
    }

    fn columns(names: &[&str]) -> StudyColumns {
        StudyColumns {
            params: names.iter().map(|n| SweptParam { name: n.to_string(), log: false }).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn parallel_coordinates_have_a_pipeline_axis_and_say_what_best_means() {
        let model = StudyModel::of("s", &label_fraction_study(), &ReportOptions::default());
        let doc = parallel_plot(&model, &columns(&["label_fraction"]), "accuracy", true).unwrap();
        assert!(doc.contains(">pipeline</text>") && doc.contains(">label_fraction</text>"), "{doc}");
        assert!(doc.contains(">baseline</text>") && doc.contains(">dec</text>"), "pipeline values on their axis");
        assert!(doc.contains("accuracy (mean over seeds)"), "{doc}");
        assert!(doc.contains("class=\"colour-legend\""));
        // Best configuration: dec at 0.4, seeds 0.75 and 0.76, mean 0.755 (not the best seed, 0.76).
        assert!(doc.contains(">best configuration: 0.755</text>"), "{doc}");
        // A parameter the spec's columns do not name but that varies still gets an axis.
        let doc = parallel_plot(&model, &columns(&[]), "accuracy", true).unwrap();
        assert!(doc.contains(">label_fraction</text>"), "{doc}");
    }

    #[test]
    fn importance_only_where_two_parameters_vary() {
        // Each pipeline varies label_fraction alone: η² = 1 by construction, no plot.
        let model = StudyModel::of("s", &label_fraction_study(), &ReportOptions::default());
        assert!(model.importance.is_some(), "the report still computes it");
        assert_eq!(importance_plot(&model), None);
        // A command pipeline varying lr and opt: a plot with both.
        let mut trials = Vec::new();
        for (i, (lr, opt)) in
            [(0.1, "sgd"), (0.01, "sgd"), (0.1, "adam"), (0.01, "adam"), (0.001, "adam")].into_iter().enumerate()
        {
            let params = [("lr", ParamValue::Float(lr)), ("opt", ParamValue::Str(opt.into()))];
            trials.push(trial(i as i64 + 1, "command", &params, 0, 0.5 + lr + if opt == "adam" { 0.1 } else { 0.0 }));
        }
        let model = StudyModel::of("s", &trials, &ReportOptions::default());
        let doc = importance_plot(&model).unwrap();
        assert!(doc.contains(">lr</text>") && doc.contains(">opt</text>"), "{doc}");
    }

    #[test]
    fn per_epoch_curves_are_coloured_by_configuration_with_a_legend() {
        let trials = label_fraction_study();
        let model = StudyModel::of("s", &trials, &ReportOptions::default());
        let config_of: HashMap<i64, (String, String)> =
            trials.iter().map(|t| (t.id, (t.pipeline.clone(), t.config_id.clone()))).collect();
        let epochs: Vec<EpochValue> = (1..=8)
            .flat_map(|id| {
                (0..3).map(move |epoch| EpochValue {
                    trial_id: id,
                    status: TrialStatus::Completed,
                    epoch,
                    val_accuracy: 0.5 + 0.01 * f64::from(epoch) + 0.001 * id as f64,
                })
            })
            .collect();
        let doc = intermediate_plot(&model, &epochs, &config_of, "accuracy", true).unwrap();
        // One legend entry per configuration (two trials each), named as the tables name it.
        assert_eq!(doc.matches("class=\"legend-sample\"").count(), 4, "{doc}");
        for c in &model.configs {
            assert!(doc.contains(&format!(">{}</text>", c.display_name())), "{}: {doc}", c.display_name());
        }
        // The best configuration (dec at 0.4) gets the first colour; both its trials wear it.
        let best = model
            .configs
            .iter()
            .position(|c| c.pipeline == "dec" && c.params["label_fraction"] == ParamValue::Float(0.4))
            .unwrap();
        let best_trials: Vec<i64> =
            trials.iter().filter(|t| config_of[&t.id].1 == model.configs[best].config_id).map(|t| t.id).collect();
        assert_eq!(best_trials.len(), 2);
        let series_colours: Vec<&str> = doc
            .lines()
            .filter(|l| l.contains("class=\"series\""))
            .map(|l| l.split("stroke=\"").nth(1).unwrap().split('"').next().unwrap())
            .collect();
        assert_eq!(series_colours.len(), 8);
        let distinct: BTreeSet<&str> = series_colours.iter().copied().collect();
        assert_eq!(distinct.len(), 4, "one colour per configuration: {series_colours:?}");
        assert_eq!(
            series_colours.iter().filter(|c| **c == PALETTE[0]).count(),
            2,
            "the best configuration's two trials"
        );
    }

    #[test]
    fn a_report_svg_loses_its_prolog() {
        assert_eq!(inline_svg("<?xml version=\"1.0\"?>\n<svg a=\"1\"></svg>").0, "<svg a=\"1\"></svg>");
    }
}
