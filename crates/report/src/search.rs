//! `search.svg`: how a search progressed, configuration by configuration.
//!
//! Written only for an adaptive study ([`crate::ReportOptions::adaptive`]: TPE proposes each
//! configuration from the results before it) in which some pipeline has more than one
//! configuration and a parameter varies between them. A grid or random study plans every
//! configuration before any result exists, so their order, and a best-so-far line along it,
//! says nothing about the search; a single configuration has no search to show.
//!
//! - **x** is the configuration's position in the study, 1-based, with configurations ordered by
//!   the smallest trial id among their trials (the order the sampler proposed them). Every
//!   configuration takes a position, so one with nothing to draw (failed, still pending) leaves a
//!   gap rather than shifting the ones after it.
//! - **y** is the objective ([`crate::ReportOptions::objective`], raw, in the metric's own units)
//!   averaged over the configuration's *completed* seeds with a finite value: a filled marker.
//!   This uses completed trials only, whatever [`crate::ReportOptions::include_pruned`] says,
//!   because it is the number the sampler ranks configurations by.
//! - A configuration none of whose seeds completed but some were pruned is drawn with a hollow
//!   marker at the mean of its pruned seeds' last reported value. That value comes from a
//!   partly-trained model, so it never counts towards the best so far.
//! - The **best so far** is a step line: after each completed configuration, the best
//!   (largest when maximising, smallest when minimising) completed value up to it, carried to
//!   the last configuration of the study.
//!
//! With several pipelines each has its own colour and its own best-so-far line; x stays the
//! position in the whole study.

use std::collections::BTreeMap;

use crate::groups::{varying_params, Group};
use crate::plots::PALETTE;
use crate::stats::Summary;
use crate::svg::{self, Panel, Point, Series, Style};
use crate::TrialStatus;

pub(crate) const FILE: &str = "search.svg";

/// What became of one configuration, for the search plot and the importance estimate.
pub(crate) struct Outcome<'g, 'a> {
    /// Index of the configuration in the groups slice.
    pub index: usize,
    pub group: &'g Group<'a>,
    /// 1-based position in the study, by smallest trial id.
    pub position: usize,
    /// Mean objective over the completed seeds with a finite value; `None` when there are none.
    pub completed: Option<f64>,
    /// When no seed completed: mean of the pruned seeds' last finite objective value.
    pub pruned: Option<f64>,
}

/// Every configuration's outcome in study order (smallest trial id first).
pub(crate) fn outcomes<'g, 'a>(groups: &'g [Group<'a>], metric: &str) -> Vec<Outcome<'g, 'a>> {
    let mut ordered: Vec<(i64, usize, &'g Group<'a>)> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.trials.iter().map(|t| t.id).min().unwrap_or(i64::MAX), i, g))
        .collect();
    ordered.sort_by_key(|(first, i, _)| (*first, *i));
    ordered
        .into_iter()
        .enumerate()
        .map(|(position, (_, index, g))| {
            let mean_of = |status: TrialStatus| {
                Summary::of(
                    g.trials.iter().filter(|t| t.status == status).filter_map(|t| t.metrics.get(metric).copied()),
                )
                .mean
            };
            let completed = mean_of(TrialStatus::Completed);
            let pruned = if completed.is_none() { mean_of(TrialStatus::Pruned) } else { None };
            Outcome { index, group: g, position: position + 1, completed, pruned }
        })
        .collect()
}

/// Whether the study is a search: some pipeline has two or more configurations that differ in a
/// parameter it reads.
pub(crate) fn is_search(groups: &[Group]) -> bool {
    let mut by_pipeline: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, g) in groups.iter().enumerate() {
        by_pipeline.entry(g.pipeline).or_default().push(i);
    }
    by_pipeline.values().any(|idx| idx.len() > 1 && !varying_params(&subset(groups, idx)).is_empty())
}

/// Copies of the groups at `idx`, for functions that take a slice of groups.
pub(crate) fn subset<'a>(groups: &[Group<'a>], idx: &[usize]) -> Vec<Group<'a>> {
    idx.iter().map(|&i| groups[i].clone()).collect()
}

/// The running best of `(x, value)` pairs in x order as step-line points, carried on to `last_x`.
pub(crate) fn best_so_far(points: &[(f64, f64)], maximize: bool, last_x: f64) -> Vec<Point> {
    let pt = |x, y| Point { x, y, err: None };
    let mut out: Vec<Point> = Vec::new();
    let mut best: Option<f64> = None;
    for &(x, v) in points {
        match best {
            None => {
                out.push(pt(x, v));
                best = Some(v);
            }
            Some(b) => {
                let better = if maximize { v > b } else { v < b };
                if better {
                    out.push(pt(x, b));
                    out.push(pt(x, v));
                    best = Some(v);
                }
            }
        }
    }
    if let (Some(b), Some(last)) = (best, out.last()) {
        if last_x > last.x {
            out.push(pt(last_x, b));
        }
    }
    out
}

/// The search plot, or `None` when the study is not a search.
pub(crate) fn plot(study: &str, groups: &[Group], metric: &str, maximize: bool) -> Option<String> {
    if !is_search(groups) {
        return None;
    }
    let outcomes = outcomes(groups, metric);
    let last_x = outcomes.len() as f64;
    let mut pipelines: Vec<&str> = groups.iter().map(|g| g.pipeline).collect();
    pipelines.dedup();
    let several = pipelines.len() > 1;
    let mut series = Vec::new();
    for (i, p) in pipelines.iter().enumerate() {
        let mine: Vec<&Outcome> = outcomes.iter().filter(|o| o.group.pipeline == *p).collect();
        let completed: Vec<(f64, f64)> =
            mine.iter().filter_map(|o| o.completed.map(|v| (o.position as f64, v))).collect();
        let pruned: Vec<Point> =
            mine.iter().filter_map(|o| o.pruned.map(|v| Point { x: o.position as f64, y: v, err: None })).collect();
        let prefix = if several { format!("{p}: ") } else { String::new() };
        let (dots, best) =
            if several { (PALETTE[i % PALETTE.len()], PALETTE[i % PALETTE.len()]) } else { (PALETTE[0], PALETTE[1]) };
        let dashed = several && i >= PALETTE.len();
        let steps = best_so_far(&completed, maximize, last_x);
        series.push(Series {
            name: format!("{prefix}completed (mean over seeds)"),
            color: dots,
            dashed: false,
            style: Style::Dots,
            points: completed.iter().map(|&(x, y)| Point { x, y, err: None }).collect(),
        });
        if !pruned.is_empty() {
            series.push(Series {
                name: format!("{prefix}pruned (last value)"),
                color: dots,
                dashed: false,
                style: Style::Hollow,
                points: pruned,
            });
        }
        series.push(Series {
            name: format!("{prefix}best so far"),
            color: best,
            dashed,
            style: Style::Plain,
            points: steps,
        });
    }
    let direction = if maximize { "maximize" } else { "minimize" };
    let panel = Panel {
        title: format!("{metric} per configuration ({direction})"),
        x_label: "configuration, in order of first trial id".into(),
        y_label: metric.to_string(),
        series,
        y_limits: None,
    };
    Some(svg::render(&format!("{study}: search, best {metric} so far"), &[panel]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::group;
    use crate::svg::assert_well_formed;
    use crate::testutil::{trial, TrialSpec};
    use crate::{ReportOptions, TrialRow};

    fn t(id: i64, config: &'static str, seed: u64, lf: f64, status: TrialStatus, acc: Option<f64>) -> TrialRow {
        trial(TrialSpec { id, pipeline: "dec", config, seed, lf, status, acc })
    }

    fn xy(points: &[Point]) -> Vec<(f64, f64)> {
        points.iter().map(|p| (p.x, p.y)).collect()
    }

    #[test]
    fn best_so_far_steps_in_the_objectives_direction() {
        let pts = [(1.0, 0.5), (2.0, 0.7), (4.0, 0.6), (5.0, 0.8)];
        assert_eq!(
            xy(&best_so_far(&pts, true, 7.0)),
            [(1.0, 0.5), (2.0, 0.5), (2.0, 0.7), (5.0, 0.7), (5.0, 0.8), (7.0, 0.8)]
        );
        assert_eq!(xy(&best_so_far(&pts, false, 5.0)), [(1.0, 0.5), (5.0, 0.5)]);
        assert!(best_so_far(&[], true, 3.0).is_empty());
    }

    #[test]
    fn outcomes_follow_first_trial_id_and_separate_pruned_configurations() {
        use TrialStatus::*;
        let trials = [
            // Config "b" starts first (id 1): seeds 0.6 and 0.8 completed, one pruned at 0.1.
            t(1, "b", 0, 0.3, Completed, Some(0.6)),
            t(5, "b", 1, 0.3, Completed, Some(0.8)),
            t(6, "b", 2, 0.3, Pruned, Some(0.1)),
            // Config "a" (id 2): every seed pruned.
            t(2, "a", 0, 0.2, Pruned, Some(0.4)),
            t(7, "a", 1, 0.2, Pruned, Some(0.5)),
            // Config "c" (id 3): failed, nothing to draw.
            t(3, "c", 0, 0.5, Failed, None),
        ];
        let groups = group(&trials, &ReportOptions::default());
        let o = outcomes(&groups, "accuracy");
        let got: Vec<_> = o.iter().map(|o| (o.group.config_id, o.position, o.completed, o.pruned)).collect();
        assert_eq!(got[0].0, "b");
        assert_eq!(got[0].1, 1);
        assert!((got[0].2.unwrap() - 0.7).abs() < 1e-12 && got[0].3.is_none(), "completed mean, pruned seed ignored");
        assert_eq!(got[1].0, "a");
        assert_eq!(got[1].2, None);
        assert!((got[1].3.unwrap() - 0.45).abs() < 1e-12);
        assert_eq!((got[2].0, got[2].1, got[2].2, got[2].3), ("c", 3, None, None));
    }

    #[test]
    fn the_plot_is_drawn_only_for_a_search_with_hollow_pruned_markers() {
        use TrialStatus::*;
        let one = [t(1, "a", 0, 0.2, Completed, Some(0.5)), t(2, "a", 1, 0.2, Completed, Some(0.6))];
        assert!(plot("s", &group(&one, &ReportOptions::default()), "accuracy", true).is_none(), "one configuration");

        let trials = [
            t(1, "a", 0, 0.2, Completed, Some(0.5)),
            t(2, "b", 0, 0.4, Pruned, Some(0.3)),
            t(3, "c", 0, 0.6, Completed, Some(0.7)),
        ];
        let doc = plot("s<&>", &group(&trials, &ReportOptions::default()), "accuracy", true).unwrap();
        assert_well_formed(&doc);
        assert!(doc.contains("s&lt;&amp;&gt;: search, best accuracy so far"));
        assert!(doc.contains(">pruned (last value)</text>") && doc.contains(">best so far</text>"));
        // One hollow marker in the plot and one in the legend.
        assert_eq!(doc.matches("fill=\"white\" stroke=").count(), 2, "{doc}");
        // Two filled markers in the plot, one in the legend.
        assert_eq!(doc.matches("<circle").count() - 2, 3, "{doc}");
    }
}
