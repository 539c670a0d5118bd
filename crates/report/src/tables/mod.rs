//! `table.md` and `table.tex`, in the style of the paper's Table 1.
//!
//! Both are rendered from one [`Model`] so they always say the same thing: one row per
//! configuration (model description, accuracy mean ± std in %, weighted F1 mean ± std, number of
//! seeds aggregated, parameter count), then the paired dec-vs-baseline comparisons.

mod latex;
mod markdown;

use crate::format::{fixed, grouped, p_value, signed};
use crate::groups::Group;
use crate::pairing::Comparison;
use crate::stats::Summary;
use crate::{ReportOptions, TrialStatus};

pub(crate) use latex::{render as render_latex, FILE as TEX_FILE};
pub(crate) use markdown::{render as render_markdown, FILE as MD_FILE};

/// A table cell, kept structured until a renderer spells it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cell {
    /// Free text (escaped by the renderer).
    Text(String),
    /// A formatted number, possibly signed or "<0.001".
    Num(String),
    /// mean ± std; the std is absent with a single seed.
    MeanStd(String, Option<String>),
    /// [low, high].
    Interval(String, String),
    /// low–high, for a value that should be constant but is not.
    Range(String, String),
    /// No value.
    Missing,
}

/// One configuration's line in the results table.
pub(crate) struct ResultRow {
    pub cells: [Cell; 5],
}

/// Trials of one configuration left out of its statistics.
pub(crate) struct Excluded {
    pub label: String,
    /// (status word, count), non-zero counts only.
    pub counts: Vec<(&'static str, usize)>,
}

pub(crate) struct Model {
    pub study: String,
    pub include_pruned: bool,
    pub results: Vec<ResultRow>,
    pub excluded: Vec<Excluded>,
    /// Pruned trials in the whole study.
    pub pruned: usize,
    pub comparisons: Vec<[Cell; 7]>,
    /// Labels of dec configurations no baseline matched.
    pub unmatched: Vec<String>,
}

pub(crate) const RESULT_HEADERS: [&str; 5] = ["Model", "Accuracy (%)", "F1 (weighted)", "n", "Param count"];

pub(crate) fn model(
    study: &str,
    groups: &[Group],
    comparisons: &[Comparison],
    unmatched: &[usize],
    opts: &ReportOptions,
) -> Model {
    let results = groups
        .iter()
        .map(|g| {
            let acc = g.summary("accuracy");
            ResultRow {
                cells: [
                    Cell::Text(g.label.clone()),
                    mean_std(&acc, 100.0, 2),
                    mean_std(&g.summary("f1_weighted"), 1.0, 3),
                    Cell::Num(acc.n.to_string()),
                    param_count(g),
                ],
            }
        })
        .collect();
    let excluded = groups
        .iter()
        .filter_map(|g| {
            let counts: Vec<(&'static str, usize)> = TrialStatus::ALL
                .into_iter()
                .filter(|st| !opts.aggregates(*st))
                .map(|st| (st.name(), g.count(st)))
                .filter(|(_, n)| *n > 0)
                .collect();
            (!counts.is_empty()).then(|| Excluded { label: g.label.clone(), counts })
        })
        .collect();
    let comparisons = comparisons
        .iter()
        .map(|c| {
            let t = &c.t;
            let pct = |x: f64| signed(100.0 * x, 2);
            [
                Cell::Text(groups[c.dec].label.clone()),
                Cell::Text(groups[c.baseline].label.clone()),
                Cell::Num(t.n.to_string()),
                t.mean.map_or(Cell::Missing, |m| Cell::Num(pct(m))),
                t.ci95.map_or(Cell::Missing, |(lo, hi)| Cell::Interval(pct(lo), pct(hi))),
                t.p_value.map_or(Cell::Missing, |p| Cell::Num(p_value(p))),
                // Like the t-test, no test from a single pair.
                if t.n < 2 { Cell::Missing } else { Cell::Num(p_value(c.wilcoxon.p_value)) },
            ]
        })
        .collect();
    Model {
        study: study.to_string(),
        include_pruned: opts.include_pruned,
        results,
        excluded,
        pruned: groups.iter().map(|g| g.count(TrialStatus::Pruned)).sum(),
        comparisons,
        unmatched: unmatched.iter().map(|i| groups[*i].label.clone()).collect(),
    }
}

fn mean_std(s: &Summary, scale: f64, decimals: usize) -> Cell {
    match s.mean {
        Some(m) => Cell::MeanStd(fixed(scale * m, decimals), s.std.map(|sd| fixed(scale * sd, decimals))),
        None => Cell::Missing,
    }
}

/// The parameter count is a property of the architecture, so it should be one number per
/// configuration; if seeds disagree the range is shown rather than an average nobody built.
fn param_count(g: &Group) -> Cell {
    let counts: Vec<f64> = g.values("param_count").into_iter().map(|(_, x)| x).collect();
    let lo = counts.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = counts.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if counts.is_empty() {
        Cell::Missing
    } else if lo == hi {
        Cell::Num(grouped(lo))
    } else {
        Cell::Range(grouped(lo), grouped(hi))
    }
}

impl Excluded {
    /// "1 failed, 2 pruned"
    pub(crate) fn describe(&self) -> String {
        self.counts.iter().map(|(st, n)| format!("{n} {st}")).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::group;
    use crate::pairing::compare;
    use crate::testutil::{trial, TrialSpec};

    #[test]
    fn model_rows_carry_the_papers_columns() {
        let mut trials = vec![];
        for (i, (acc, seed)) in [(0.7314, 0), (0.7414, 1)].into_iter().enumerate() {
            trials.push(trial(TrialSpec {
                id: i as i64,
                pipeline: "baseline",
                config: "b",
                seed,
                acc: Some(acc),
                ..Default::default()
            }));
        }
        trials.push(trial(TrialSpec {
            id: 10,
            pipeline: "dec",
            config: "d",
            seed: 0,
            acc: Some(0.7586),
            ..Default::default()
        }));
        trials.push(trial(TrialSpec {
            id: 11,
            pipeline: "dec",
            config: "d",
            seed: 1,
            status: TrialStatus::Failed,
            ..Default::default()
        }));
        let groups = group(&trials, &ReportOptions::default());
        let (cmps, unmatched) = compare(&groups);
        let m = model("s", &groups, &cmps, &unmatched, &ReportOptions::default());
        // baseline: mean 73.64, std of (73.14, 74.14) = √0.5 = 0.7071 → "0.71".
        assert_eq!(
            m.results[0].cells,
            [
                Cell::Text("baseline".into()),
                Cell::MeanStd("73.64".into(), Some("0.71".into())),
                Cell::MeanStd("0.726".into(), Some("0.007".into())),
                Cell::Num("2".into()),
                Cell::Num("851,713".into()),
            ]
        );
        // One dec seed: no std.
        assert_eq!(m.results[1].cells[1], Cell::MeanStd("75.86".into(), None));
        assert_eq!(m.excluded.len(), 1);
        assert_eq!(m.excluded[0].describe(), "1 failed");
        // One pair (seed 0): +2.72 pp, no interval or t-test p.
        assert_eq!(m.comparisons[0][2..5], [Cell::Num("1".into()), Cell::Num("+2.72".into()), Cell::Missing]);
    }
}
