//! `table.md` and `table.tex`, in the style of the paper's Table 1.
//!
//! Both are rendered from one [`Model`] so they always say the same thing: one row per
//! configuration (model description, accuracy mean ± std in % and its 95% interval, weighted F1
//! mean ± std and its interval, number of seeds aggregated, parameter count), then the paired
//! dec-vs-baseline comparisons (mean difference, its interval, Cohen's d_z, raw and
//! Holm-adjusted p-values). Intervals follow [`crate::stats::interval95`]: logit-t for accuracy
//! and F1, none below [`crate::stats::MIN_INTERVAL_N`] seeds, where the cell says so.

mod latex;
mod markdown;

use crate::format::{fixed, grouped, p_value, signed};
use crate::model::{ConfigSummary, StudyModel};
use crate::stats::{IntervalMethod, Summary};
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
    /// An interval not given because only this many seeds (or pairs) were aggregated, fewer
    /// than [`crate::stats::MIN_INTERVAL_N`].
    NoInterval(usize),
    /// low–high, for a value that should be constant but is not.
    Range(String, String),
    /// No value.
    Missing,
}

/// One configuration's line in the results table.
pub(crate) struct ResultRow {
    pub cells: [Cell; 7],
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
    pub comparisons: Vec<[Cell; 10]>,
    /// Sizes of the Holm families: comparisons with a paired-t p-value, with a Wilcoxon one.
    pub m_t: usize,
    pub m_wilcoxon: usize,
    /// Labels of dec configurations no baseline matched.
    pub unmatched: Vec<String>,
    /// Whether some comparison puts a dec configuration on the baseline side (an extension past
    /// the paper against the plain dec configuration; see `pairing`).
    pub extensions: bool,
    /// How the results table's intervals were computed, for the caption.
    pub interval_method: String,
}

pub(crate) const RESULT_HEADERS: [&str; 7] =
    ["Model", "Accuracy (%)", "95% CI (%)", "F1 (weighted)", "95% CI", "n", "Param count"];

/// The tables' cells, spelled from the study's model.
pub(crate) fn model(study: &StudyModel) -> Model {
    let opts = ReportOptions { include_pruned: study.include_pruned, ..Default::default() };
    let groups = &study.configs;
    let comparisons = &study.paired;
    let mut methods = Vec::new();
    let results = groups
        .iter()
        .map(|g| {
            let acc = g.summary("accuracy");
            let f1 = g.summary("f1_weighted");
            methods.extend(acc.ci95.iter().chain(&f1.ci95).map(|c| c.method));
            ResultRow {
                cells: [
                    Cell::Text(g.label.clone()),
                    mean_std(&acc, 100.0, 2),
                    interval(&acc, 100.0, 2),
                    mean_std(&f1, 1.0, 3),
                    interval(&f1, 1.0, 3),
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
    let p = |p: Option<f64>| p.map_or(Cell::Missing, |p| Cell::Num(p_value(p)));
    let rows = comparisons
        .comparisons
        .iter()
        .map(|c| {
            let t = &c.t;
            let pct = |x: f64| signed(100.0 * x, 2);
            let ci = match t.ci95 {
                Some((lo, hi)) => Cell::Interval(pct(lo), pct(hi)),
                None if t.n > 0 => Cell::NoInterval(t.n),
                None => Cell::Missing,
            };
            [
                Cell::Text(groups[c.dec].label.clone()),
                Cell::Text(groups[c.baseline].label.clone()),
                Cell::Num(t.n.to_string()),
                t.mean.map_or(Cell::Missing, |m| Cell::Num(pct(m))),
                ci,
                t.d_z.map_or(Cell::Missing, |d| Cell::Num(signed(d, 2))),
                p(t.p_value),
                p(c.t_holm),
                p(c.wilcoxon_p()),
                p(c.wilcoxon_holm),
            ]
        })
        .collect();
    Model {
        study: study.study.clone(),
        include_pruned: opts.include_pruned,
        results,
        excluded,
        pruned: study.pruned(),
        comparisons: rows,
        m_t: comparisons.holm_m_t,
        m_wilcoxon: comparisons.holm_m_wilcoxon,
        unmatched: comparisons.unmatched.iter().map(|i| groups[*i].label.clone()).collect(),
        extensions: comparisons.comparisons.iter().any(|c| groups[c.baseline].pipeline == "dec"),
        interval_method: describe_methods(&methods),
    }
}

/// Said after the name of the logit-t method in a caption.
pub(crate) const LOGIT_WHY: &str =
    " (Student's t for the mean on the logit scale, mapped back, so it stays inside [0, 100]%)";

/// "logit-t interval", or both names when some configuration's values were not proportions.
pub(crate) fn describe_methods(methods: &[IntervalMethod]) -> String {
    let logit = methods.contains(&IntervalMethod::LogitT);
    let t = methods.contains(&IntervalMethod::T);
    match (logit, t) {
        (true, true) => "logit-t interval (t interval where values fall outside [0, 1])".to_string(),
        (false, true) => IntervalMethod::T.caption().to_string(),
        _ => IntervalMethod::LogitT.caption().to_string(),
    }
}

fn mean_std(s: &Summary, scale: f64, decimals: usize) -> Cell {
    match s.mean {
        Some(m) => Cell::MeanStd(fixed(scale * m, decimals), s.std.map(|sd| fixed(scale * sd, decimals))),
        None => Cell::Missing,
    }
}

fn interval(s: &Summary, scale: f64, decimals: usize) -> Cell {
    match s.ci95 {
        Some(c) => Cell::Interval(fixed(scale * c.low, decimals), fixed(scale * c.high, decimals)),
        None if s.n > 0 => Cell::NoInterval(s.n),
        None => Cell::Missing,
    }
}

/// The parameter count is a property of the architecture, so it should be one number per
/// configuration; if seeds disagree the range is shown rather than an average nobody built.
fn param_count(g: &ConfigSummary) -> Cell {
    match g.param_count {
        None => Cell::Missing,
        Some((lo, hi)) if lo == hi => Cell::Num(grouped(lo)),
        Some((lo, hi)) => Cell::Range(grouped(lo), grouped(hi)),
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
        let m = model(&StudyModel::of("s", &trials, &ReportOptions::default()));
        // baseline: mean 73.64, std of (73.14, 74.14) = √0.5 = 0.7071 → "0.71"; two seeds, so
        // no interval, and the cell says why.
        assert_eq!(
            m.results[0].cells,
            [
                Cell::Text("baseline".into()),
                Cell::MeanStd("73.64".into(), Some("0.71".into())),
                Cell::NoInterval(2),
                Cell::MeanStd("0.726".into(), Some("0.007".into())),
                Cell::NoInterval(2),
                Cell::Num("2".into()),
                Cell::Num("851,713".into()),
            ]
        );
        // One dec seed: no std, no interval.
        assert_eq!(m.results[1].cells[1..3], [Cell::MeanStd("75.86".into(), None), Cell::NoInterval(1)]);
        assert_eq!(m.excluded.len(), 1);
        assert_eq!(m.excluded[0].describe(), "1 failed");
        // One pair (seed 0): +2.72 pp, no interval, d_z or tests; nothing to adjust.
        assert_eq!(
            m.comparisons[0][2..],
            [
                Cell::Num("1".into()),
                Cell::Num("+2.72".into()),
                Cell::NoInterval(1),
                Cell::Missing,
                Cell::Missing,
                Cell::Missing,
                Cell::Missing,
                Cell::Missing
            ]
        );
        assert_eq!((m.m_t, m.m_wilcoxon), (0, 0));
    }

    #[test]
    fn three_seeds_get_a_logit_interval_in_percent() {
        // 0.70 0.74 0.78 0.80 0.83 → logit-t [0.7007380, 0.8271852] (see stats::interval).
        let trials: Vec<_> = [0.70, 0.74, 0.78, 0.80, 0.83]
            .into_iter()
            .enumerate()
            .map(|(i, acc)| {
                trial(TrialSpec {
                    id: i as i64,
                    pipeline: "baseline",
                    config: "b",
                    seed: i as u64,
                    acc: Some(acc),
                    ..Default::default()
                })
            })
            .collect();
        let m = model(&StudyModel::of("s", &trials, &ReportOptions::default()));
        assert_eq!(m.results[0].cells[2], Cell::Interval("70.07".into(), "82.72".into()));
        assert_eq!(m.interval_method, "logit-t interval");
        assert_eq!(describe_methods(&[IntervalMethod::T]), "t interval");
    }
}
