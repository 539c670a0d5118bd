//! `table.md` and `table.tex`, in the style of the paper's Table 1.
//!
//! Both are rendered from one [`Model`] so they always say the same thing: one row per
//! configuration, then the paired dec-vs-baseline comparisons (mean difference, its interval,
//! Cohen's d_z, raw and Holm-adjusted p-values).
//!
//! **One yardstick.** Validation rows are drawn from the labeled part of the training data, so
//! a study at 20% labels validates on a fifth of the rows one at 100% does, and validation
//! numbers at different label fractions are measured on different yardsticks. When the dataset
//! has a test split (some trial reports `test_accuracy`), the headline columns are therefore test
//! accuracy and weighted F1, measured on the same fixed rows for every trial, with validation
//! accuracy and F1 beside them; without one, the validation numbers are all there is. Either way
//! the row counts (`n` and `test_n` of `trials.csv`) are a column, and the notes say that
//! validation selects checkpoints and drives pruning and TPE.
//!
//! Intervals follow [`crate::stats::Summary`]: logit-t for accuracy and F1, Wilson's interval of
//! the pooled rows when the seeds have no spread, none below [`crate::stats::MIN_INTERVAL_N`]
//! seeds, where the cell says so.

mod latex;
mod markdown;
mod notes;

use crate::format::{fixed, grouped, p_value, signed};
use crate::model::StudyModel;
use crate::stats::{IntervalMethod, NoInterval, Summary};
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
    /// [low, high] from Wilson's interval of the seeds' pooled rows (no spread over seeds).
    PooledInterval(String, String),
    /// An interval not given, and why.
    NoInterval(NoInterval),
    /// low–high, for a value that should be constant but is not.
    Range(String, String),
    /// Validation rows / test rows, each a number or a range.
    Rows(Box<Cell>, Box<Cell>),
    /// No value.
    Missing,
}

/// What the headline columns measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Yardstick {
    /// The dataset's fixed test split, with validation beside it.
    Test,
    /// Validation only: the dataset has no test split.
    Validation,
}

impl Yardstick {
    /// The results table's column headers.
    pub(crate) fn headers(self) -> &'static [&'static str] {
        match self {
            Yardstick::Test => &[
                "Model",
                "Test accuracy (%)",
                "95% CI (%)",
                "Test F1 (weighted)",
                "95% CI",
                "Val accuracy (%)",
                "Val F1 (weighted)",
                "Seeds",
                "Rows (val / test)",
                "Param count",
            ],
            Yardstick::Validation => &[
                "Model",
                "Val accuracy (%)",
                "95% CI (%)",
                "Val F1 (weighted)",
                "95% CI",
                "Seeds",
                "Val rows",
                "Param count",
            ],
        }
    }
}

/// One configuration's line in the results table, in the order of [`Yardstick::headers`].
pub(crate) struct ResultRow {
    pub cells: Vec<Cell>,
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
    pub yardstick: Yardstick,
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
    /// Some headline interval is Wilson's of the pooled rows (the note explains it).
    pub pooled: bool,
    /// Some headline metric had no spread and no rows to pool, so no interval.
    pub no_spread: bool,
}

/// The tables' cells, spelled from the study's model.
pub(crate) fn model(study: &StudyModel) -> Model {
    let opts = ReportOptions { include_pruned: study.include_pruned, ..Default::default() };
    let groups = &study.configs;
    let comparisons = &study.paired;
    let yardstick =
        if groups.iter().any(|g| g.summary("test_accuracy").n > 0) { Yardstick::Test } else { Yardstick::Validation };
    let (acc_metric, f1_metric) = match yardstick {
        Yardstick::Test => ("test_accuracy", "test_f1_weighted"),
        Yardstick::Validation => ("accuracy", "f1_weighted"),
    };
    let mut intervals = Vec::new();
    let results = groups
        .iter()
        .map(|g| {
            let acc = g.summary(acc_metric);
            let f1 = g.summary(f1_metric);
            intervals.extend([acc, f1]);
            let mut cells = vec![
                Cell::Text(g.display_name().to_string()),
                mean_std(&acc, 100.0, 2),
                interval(&acc, 100.0, 2),
                mean_std(&f1, 1.0, 3),
                interval(&f1, 1.0, 3),
            ];
            if yardstick == Yardstick::Test {
                cells.extend([mean_std(&g.summary("accuracy"), 100.0, 2), mean_std(&g.summary("f1_weighted"), 1.0, 3)]);
            }
            cells.push(Cell::Num(acc.n.to_string()));
            cells.push(match yardstick {
                Yardstick::Test => Cell::Rows(Box::new(count_range(g.val_rows)), Box::new(count_range(g.test_rows))),
                Yardstick::Validation => count_range(g.val_rows),
            });
            cells.push(count_range(g.param_count));
            ResultRow { cells }
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
            (!counts.is_empty()).then(|| Excluded { label: g.display_name().to_string(), counts })
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
                None if t.n == 0 => Cell::Missing,
                None if t.n < crate::stats::MIN_INTERVAL_N => Cell::NoInterval(NoInterval::FewValues(t.n)),
                None => Cell::NoInterval(NoInterval::NoSpread),
            };
            [
                Cell::Text(groups[c.dec].display_name().to_string()),
                Cell::Text(groups[c.baseline].display_name().to_string()),
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
    let methods: Vec<IntervalMethod> = intervals.iter().filter_map(|s| s.ci95.map(|c| c.method)).collect();
    Model {
        study: study.study.clone(),
        include_pruned: opts.include_pruned,
        yardstick,
        results,
        excluded,
        pruned: study.pruned(),
        comparisons: rows,
        m_t: comparisons.holm_m_t,
        m_wilcoxon: comparisons.holm_m_wilcoxon,
        unmatched: comparisons.unmatched.iter().map(|i| groups[*i].display_name().to_string()).collect(),
        extensions: comparisons.comparisons.iter().any(|c| groups[c.baseline].pipeline == "dec"),
        interval_method: describe_methods(&methods),
        pooled: methods.contains(&IntervalMethod::WilsonPooled),
        no_spread: intervals.iter().any(|s| s.no_interval() == Some(NoInterval::NoSpread)),
    }
}

/// Said after the name of the logit-t method in a caption.
pub(crate) const LOGIT_WHY: &str =
    " (Student's t for the mean on the logit scale, mapped back, so it stays inside [0, 100]%)";

/// "logit-t interval", or both names when some configuration's values were not proportions.
/// Wilson's pooled interval is named in a note of its own (see [`Model::pooled`]).
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
    let spell = |x: f64| fixed(scale * x, decimals);
    match (s.ci95, s.no_interval()) {
        (Some(c), _) if c.method == IntervalMethod::WilsonPooled => Cell::PooledInterval(spell(c.low), spell(c.high)),
        (Some(c), _) => Cell::Interval(spell(c.low), spell(c.high)),
        (None, Some(why)) => Cell::NoInterval(why),
        (None, None) => Cell::Missing,
    }
}

/// A count that should be one number per configuration (the parameter count is a property of
/// the architecture, the row counts of the split); if seeds disagree the range is shown rather
/// than an average nobody measured.
fn count_range(range: Option<(f64, f64)>) -> Cell {
    match range {
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
        // No test split and no row counts: the validation layout, rows unknown.
        assert_eq!(m.yardstick, Yardstick::Validation);
        assert_eq!(
            m.results[0].cells,
            [
                Cell::Text("baseline".into()),
                Cell::MeanStd("73.64".into(), Some("0.71".into())),
                Cell::NoInterval(NoInterval::FewValues(2)),
                Cell::MeanStd("0.726".into(), Some("0.007".into())),
                Cell::NoInterval(NoInterval::FewValues(2)),
                Cell::Num("2".into()),
                Cell::Missing,
                Cell::Num("851,713".into()),
            ]
        );
        assert_eq!(m.results[0].cells.len(), Yardstick::Validation.headers().len());
        // One dec seed: no std, no interval.
        assert_eq!(
            m.results[1].cells[1..3],
            [Cell::MeanStd("75.86".into(), None), Cell::NoInterval(NoInterval::FewValues(1))]
        );
        assert_eq!(m.excluded.len(), 1);
        assert_eq!(m.excluded[0].describe(), "1 failed");
        // One pair (seed 0): +2.72 pp, no interval, d_z or tests; nothing to adjust.
        assert_eq!(
            m.comparisons[0][2..],
            [
                Cell::Num("1".into()),
                Cell::Num("+2.72".into()),
                Cell::NoInterval(NoInterval::FewValues(1)),
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

    /// Three seeds of one configuration with validation and test metrics and their row counts.
    fn scored(id: i64, pipeline: &'static str, lf: f64, val: (f64, f64), test: f64) -> Vec<crate::TrialRow> {
        (0..3)
            .map(|seed| {
                let mut t = trial(TrialSpec {
                    id: id + seed,
                    pipeline,
                    config: if lf < 0.5 { "low" } else { "high" },
                    seed: seed as u64,
                    lf,
                    acc: Some(val.0 + 0.01 * seed as f64),
                    ..Default::default()
                });
                t.config_id = format!("{pipeline}-{lf}");
                t.metrics.insert("n".into(), val.1);
                t.metrics.insert("test_n".into(), 655.0);
                t.metrics.insert("test_accuracy".into(), test);
                t.metrics.insert("test_f1_weighted".into(), test - 0.02 * seed as f64);
                t
            })
            .collect()
    }

    #[test]
    fn with_a_test_split_the_headline_is_test_with_validation_beside_it() {
        let mut trials = scored(1, "baseline", 0.2, (0.70, 21.0), 0.75);
        trials.extend(scored(10, "baseline", 1.0, (0.80, 104.0), 0.85));
        let m = model(&StudyModel::of("s", &trials, &ReportOptions::default()));
        assert_eq!(m.yardstick, Yardstick::Test);
        let row = &m.results[0].cells;
        assert_eq!(row.len(), Yardstick::Test.headers().len());
        // Test accuracy 0.75 on every seed: no spread, so Wilson of the pooled 3 × 655 rows
        // (1473.75 of 1965; by the module docs' formula: [0.730379, 0.768645]), marked as pooled.
        assert_eq!(row[1], Cell::MeanStd("75.00".into(), Some("0.00".into())));
        assert_eq!(row[2], Cell::PooledInterval("73.04".into(), "76.86".into()));
        // Validation beside it: 0.70 0.71 0.72.
        assert_eq!(row[5], Cell::MeanStd("71.00".into(), Some("1.00".into())));
        assert_eq!(row[7], Cell::Num("3".into()), "seeds");
        assert_eq!(row[8], Cell::Rows(Box::new(Cell::Num("21".into())), Box::new(Cell::Num("655".into()))));
        assert_eq!(
            m.results[1].cells[8],
            Cell::Rows(Box::new(Cell::Num("104".into())), Box::new(Cell::Num("655".into())))
        );
        assert!(m.pooled);
    }
}
