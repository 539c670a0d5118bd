//! The SVG plots of a report.
//!
//! - `accuracy_vs_label_fraction.svg`, written only when `label_fraction` takes two or more
//!   values across configurations. When the dataset has a test split, two panels: mean test
//!   accuracy (%) and mean test weighted F1, each with its 95% interval as error bars and the
//!   validation mean dashed beside it in the same colour (validation rows come from the labeled
//!   part, so their number changes with the label fraction; the test rows do not). Without a
//!   test split, one panel: x = label fraction, y = mean accuracy (%) with its 95%
//!   interval as an error bar: the logit-t interval, which stays inside 0–100%, and no bar for a
//!   configuration with fewer than 3 seeds (see [`crate::stats::interval95`]); the panel title
//!   names the method. The y axis follows the means and bars and never runs past 0 or 100%. One
//!   line per pipeline — more precisely per pipeline and setting of the *other* varying
//!   parameters, so a line never joins configurations that differ in anything but the label
//!   fraction. Configurations with no aggregated accuracy are left out. Bars of different lines
//!   at the same label fraction are dodged a few pixels apart so none hides another.
//! - `curves_<trial_id>.svg`, one per configuration, for its representative trial: the first
//!   aggregated trial in (seed, id) order that has recorded curve points, i.e. normally the
//!   lowest seed. Train and validation loss per epoch, one panel per stage in pipeline order
//!   (ae, dec, finetune, then any other stage by name), like the paper's Figure 3. A stage reused
//!   from the checkpoint cache has no points in that trial and so no panel. When a re-leased trial
//!   streamed an epoch twice, the later point (in input order) is drawn.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use decsweep_api::labels::{self, Configuration};
use decsweep_api::ParamValue;

use crate::groups::{varying_params, Group};
use crate::stats::{IntervalMethod, MIN_INTERVAL_N};
use crate::svg::{self, Panel, Point, Series, Style};
use crate::{CurvePoint, TrialRow};

pub(crate) const LABEL_FRACTION_FILE: &str = "accuracy_vs_label_fraction.svg";
const LABEL_FRACTION: &str = "label_fraction";

pub(crate) use crate::svg::PALETTE;

/// Stages in the order the pipeline runs them.
const STAGE_ORDER: [&str; 4] = ["data", "ae", "dec", "finetune"];

pub(crate) fn curves_file(trial_id: i64) -> String {
    format!("curves_{trial_id}.svg")
}

/// One panel of the label-fraction plot: a headline metric with its intervals as bars, and
/// optionally a second metric drawn dashed beside it (validation beside test).
struct Measure {
    headline: &'static str,
    beside: Option<&'static str>,
    /// What the panel title calls the headline metric: "accuracy", "test accuracy".
    what: &'static str,
    y_label: &'static str,
    /// 100 for a percentage.
    scale: f64,
}

/// The accuracy-vs-label-fraction plot, or `None` when the label fraction does not vary.
///
/// With a test split (some trial reports `test_accuracy`) it has two panels, test accuracy and
/// test weighted F1, each with its validation counterpart dashed beside it: validation rows
/// come from the labeled part and so differ between label fractions, the test rows do not.
pub(crate) fn label_fraction_plot(study: &str, groups: &[Group]) -> Option<String> {
    if !varying_params(groups).contains(LABEL_FRACTION) {
        return None;
    }
    let has_test = groups.iter().any(|g| g.summary("test_accuracy").n > 0);
    let (title, measures) = if has_test {
        (
            format!("{study}: test accuracy and F1 vs label fraction (validation dashed)"),
            vec![
                Measure {
                    headline: "test_accuracy",
                    beside: Some("accuracy"),
                    what: "test accuracy",
                    y_label: "accuracy (%)",
                    scale: 100.0,
                },
                Measure {
                    headline: "test_f1_weighted",
                    beside: Some("f1_weighted"),
                    what: "test F1",
                    y_label: "weighted F1",
                    scale: 1.0,
                },
            ],
        )
    } else {
        (
            format!("{study}: accuracy vs label fraction"),
            vec![Measure {
                headline: "accuracy",
                beside: None,
                what: "accuracy",
                y_label: "accuracy (%)",
                scale: 100.0,
            }],
        )
    };
    let names = line_names(groups);
    let panels: Vec<Panel> = measures.iter().map(|m| label_fraction_panel(groups, &names, m)).collect();
    Some(svg::render(&title, &panels))
}

/// One line name per group: the configuration's label without the label fraction, so a line
/// joins the configurations that differ in nothing else (and is named like them).
fn line_names(groups: &[Group]) -> Vec<String> {
    let without_fraction: Vec<(BTreeMap<String, ParamValue>, BTreeSet<String>)> = groups
        .iter()
        .map(|g| {
            let mut params = g.params.clone();
            params.remove(LABEL_FRACTION);
            let mut disputed = g.disputed.clone();
            disputed.remove(LABEL_FRACTION);
            (params, disputed)
        })
        .collect();
    let reduced: Vec<Configuration> = groups
        .iter()
        .zip(&without_fraction)
        .map(|(g, (params, disputed))| {
            Configuration::new(g.pipeline, g.config_id, params).with_spec_label(g.spec_label).with_disputed(disputed)
        })
        .collect();
    labels::describe_all(&reduced)
}

fn label_fraction_panel(groups: &[Group], names: &[String], m: &Measure) -> Panel {
    // One line per name (see `line_names`): (headline, beside) points.
    let mut lines: BTreeMap<String, (Vec<Point>, Vec<Point>)> = BTreeMap::new();
    let mut methods = Vec::new();
    let mut all_fractions = true;
    for (g, name) in groups.iter().zip(names) {
        let Some(x) = g.param(LABEL_FRACTION).and_then(|v| v.as_f64()) else { continue };
        let headline = g.summary(m.headline);
        let beside = m.beside.map(|b| g.summary(b));
        if headline.mean.is_none() && beside.is_none_or(|b| b.mean.is_none()) {
            continue;
        }
        let line = lines.entry(name.clone()).or_default();
        if let Some(mean) = headline.mean {
            methods.extend(headline.ci95.map(|c| c.method));
            all_fractions &= g.values(m.headline).iter().all(|(_, a)| (0.0..=1.0).contains(a));
            let err = headline.ci95.map(|c| (m.scale * c.low, m.scale * c.high));
            line.0.push(Point { x, y: m.scale * mean, err });
        }
        if let (Some(b), Some(mean)) = (m.beside, beside.and_then(|s| s.mean)) {
            all_fractions &= g.values(b).iter().all(|(_, a)| (0.0..=1.0).contains(a));
            line.1.push(Point { x, y: m.scale * mean, err: None });
        }
    }
    let mut series = Vec::new();
    for (i, (name, (mut head, mut beside))) in lines.into_iter().enumerate() {
        head.sort_by(|a, b| a.x.total_cmp(&b.x));
        beside.sort_by(|a, b| a.x.total_cmp(&b.x));
        let color = PALETTE[i % PALETTE.len()];
        let (head_name, beside_name) = match m.beside {
            Some(_) => (format!("{name}, test"), format!("{name}, validation")),
            None => (name, String::new()),
        };
        if !head.is_empty() {
            series.push(Series {
                name: head_name,
                color,
                dashed: i >= PALETTE.len(),
                style: Style::Line,
                points: head,
            });
        }
        if !beside.is_empty() {
            series.push(Series { name: beside_name, color, dashed: true, style: Style::Line, points: beside });
        }
    }
    let what = m.what;
    let title = if methods.is_empty() {
        format!("mean {what}; no interval (fewer than {MIN_INTERVAL_N} seeds)")
    } else if methods.iter().all(|m| *m == IntervalMethod::LogitT) {
        format!("mean {what}; bars: 95% logit-t interval (n ≥ {MIN_INTERVAL_N})")
    } else {
        format!("mean {what}; bars: 95% interval (n ≥ {MIN_INTERVAL_N}; method in summary.csv)")
    };
    Panel {
        title,
        x_label: "label fraction".into(),
        y_label: m.y_label.into(),
        series,
        // Accuracies reported as fractions cannot leave 0–100%; a `command` pipeline that
        // reports something else keeps an unbounded axis rather than a clipped one.
        y_limits: all_fractions.then_some((0.0, m.scale)),
    }
}

/// The curve plots: (file name, document) for each configuration's representative trial.
pub(crate) fn curve_plots(study: &str, groups: &[Group], curves: &[CurvePoint]) -> Vec<(String, String)> {
    let mut by_trial: HashMap<i64, Vec<&CurvePoint>> = HashMap::new();
    for p in curves {
        by_trial.entry(p.trial_id).or_default().push(p);
    }
    groups
        .iter()
        .filter_map(|g| {
            let (trial, points) = g.aggregated.iter().find_map(|t| by_trial.get(&t.id).map(|p| (*t, p)))?;
            Some((curves_file(trial.id), curve_plot(study, g, trial, points)))
        })
        .collect()
}

fn curve_plot(study: &str, g: &Group, trial: &TrialRow, points: &[&CurvePoint]) -> String {
    // stage → epoch → last point for that epoch.
    let mut stages: BTreeMap<(usize, &str), BTreeMap<u32, &CurvePoint>> = BTreeMap::new();
    for p in points {
        let rank = STAGE_ORDER.iter().position(|s| *s == p.stage).unwrap_or(STAGE_ORDER.len());
        stages.entry((rank, p.stage.as_str())).or_default().insert(p.epoch, p);
    }
    let panels: Vec<Panel> = stages
        .into_iter()
        .map(|((_, stage), epochs)| {
            let line = |f: fn(&CurvePoint) -> f64| -> Vec<Point> {
                epochs.iter().map(|(e, p)| Point { x: f64::from(*e), y: f(p), err: None }).collect()
            };
            Panel {
                title: stage.to_string(),
                x_label: "epoch".into(),
                y_label: "loss".into(),
                series: vec![
                    Series {
                        name: "train".into(),
                        color: PALETTE[0],
                        dashed: false,
                        style: Style::Line,
                        points: line(|p| p.train_loss),
                    },
                    Series {
                        name: "validation".into(),
                        color: PALETTE[1],
                        dashed: true,
                        style: Style::Line,
                        points: line(|p| p.val_loss),
                    },
                ],
                y_limits: None,
            }
        })
        .collect();
    let title = format!("{study}: {} — trial {}, seed {}", g.label, trial.id, trial.seed);
    svg::render(&title, &panels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::group;
    use crate::svg::assert_well_formed;
    use crate::testutil::{curve, trial, TrialSpec};
    use crate::{ReportOptions, TrialStatus};

    fn t(id: i64, pipeline: &'static str, config: &'static str, seed: u64, lf: f64, acc: f64) -> TrialRow {
        trial(TrialSpec { id, pipeline, config, seed, lf, acc: Some(acc), ..Default::default() })
    }

    #[test]
    fn label_fraction_plot_only_when_it_varies() {
        let same = [t(1, "dec", "a", 0, 0.4, 0.7), t(2, "baseline", "b", 0, 0.4, 0.6)];
        assert!(label_fraction_plot("s", &group(&same, &ReportOptions::default())).is_none());

        let trials = [
            t(1, "dec", "d2", 0, 0.2, 0.70),
            t(2, "dec", "d2", 1, 0.2, 0.72),
            t(3, "dec", "d4", 0, 0.4, 0.75),
            t(4, "baseline", "b2", 0, 0.2, 0.60),
            t(5, "baseline", "b4", 0, 0.4, 0.65),
        ];
        let doc = label_fraction_plot("s<1>", &group(&trials, &ReportOptions::default())).unwrap();
        assert_well_formed(&doc);
        assert!(doc.contains(">baseline</text>") && doc.contains(">dec</text>"), "legend per pipeline");
        assert!(doc.contains("s&lt;1&gt;"));
    }

    #[test]
    fn label_fraction_lines_are_named_like_labels_without_the_fraction() {
        let with_lr = |id, pipeline, config, lf, lr: f64| {
            let mut row = t(id, pipeline, config, 0, lf, 0.7);
            row.params.insert("lr_ft".into(), ParamValue::Float(lr));
            row
        };
        let trials = [
            with_lr(1, "dec", "a", 0.2, 5e-4),
            with_lr(2, "dec", "b", 0.4, 5e-4),
            with_lr(3, "dec", "c", 0.2, 1e-3),
            with_lr(4, "dec", "d", 0.4, 1e-3),
        ];
        let doc = label_fraction_plot("s", &group(&trials, &ReportOptions::default())).unwrap();
        assert!(doc.contains(">lr_ft=5e-4</text>") && doc.contains(">lr_ft=1e-3</text>"), "{doc}");
        assert!(!doc.contains("#a") && !doc.contains("lf="), "one line per learning rate: {doc}");
    }

    #[test]
    fn with_a_test_split_the_plot_shows_test_with_validation_dashed_beside_it() {
        let mut trials = Vec::new();
        for (pipeline, lf, base) in
            [("baseline", 0.2, 0.70), ("baseline", 1.0, 0.80), ("dec", 0.2, 0.74), ("dec", 1.0, 0.82)]
        {
            for seed in 0..3u64 {
                let mut row = t(trials.len() as i64 + 1, pipeline, "", seed, lf, base + 0.01 * seed as f64);
                row.config_id = format!("{pipeline}{lf}");
                row.metrics.insert("test_accuracy".into(), base - 0.05 + 0.02 * seed as f64);
                row.metrics.insert("test_f1_weighted".into(), base - 0.06 + 0.02 * seed as f64);
                trials.push(row);
            }
        }
        let doc = label_fraction_plot("s", &group(&trials, &ReportOptions::default())).unwrap();
        assert_well_formed(&doc);
        for legend in ["baseline, test", "baseline, validation", "dec, test", "dec, validation"] {
            assert_eq!(doc.matches(&format!(">{legend}</text>")).count(), 2, "{legend}: one entry per panel");
        }
        assert!(doc.contains(">mean test accuracy; bars: 95% logit-t interval (n ≥ 3)</text>"), "{doc}");
        assert!(doc.contains(">mean test F1; bars: 95% logit-t interval (n ≥ 3)</text>"), "{doc}");
        // Bars on the test lines only: 2 pipelines × 2 fractions × 2 panels.
        assert_eq!(doc.matches("class=\"error-bar\"").count(), 8);
        // Without test metrics: the one validation panel of before.
        let val_only: Vec<TrialRow> = trials
            .into_iter()
            .map(|mut r| {
                r.metrics.retain(|k, _| !k.starts_with("test_"));
                r
            })
            .collect();
        let doc = label_fraction_plot("s", &group(&val_only, &ReportOptions::default())).unwrap();
        assert!(
            doc.contains(">mean accuracy; bars: 95% logit-t interval (n ≥ 3)</text>") && !doc.contains("validation")
        );
    }

    #[test]
    fn curves_come_from_the_first_aggregated_seed_with_points() {
        let mut trials = vec![
            t(10, "dec", "a", 1, 0.4, 0.7),
            t(11, "dec", "a", 0, 0.4, 0.7), // seed 0 but no curve points
            t(12, "dec", "a", 2, 0.4, 0.7),
        ];
        trials.push(trial(TrialSpec {
            id: 13,
            pipeline: "dec",
            config: "a",
            seed: 0,
            status: TrialStatus::Failed,
            ..Default::default()
        }));
        let mut curves = curve(12, "finetune", 5);
        curves.extend(curve(10, "finetune", 5));
        curves.extend(curve(10, "ae", 3));
        curves.extend(curve(10, "custom", 2));
        curves.extend(curve(13, "ae", 3));
        // A re-leased trial streams epoch 0 again with a different loss: the later one is drawn.
        let mut again = curve(10, "ae", 1);
        again[0].train_loss = 7.5;
        curves.extend(again);
        let groups = group(&trials, &ReportOptions::default());
        let plots = curve_plots("s", &groups, &curves);
        assert_eq!(plots.len(), 1);
        let (name, doc) = &plots[0];
        assert_eq!(name, "curves_10.svg", "seed 0 has no points, failed trial 13 is not aggregated");
        assert_well_formed(doc);
        let ae = doc.find(">ae</text>").unwrap();
        let ft = doc.find(">finetune</text>").unwrap();
        let custom = doc.find(">custom</text>").unwrap();
        assert!(ae < ft && ft < custom, "panels in pipeline order");
        // The y axis of the ae panel reaches the re-streamed 7.5.
        assert!(doc.contains(">8</text>") || doc.contains(">8.0</text>"), "{doc}");
    }
}
