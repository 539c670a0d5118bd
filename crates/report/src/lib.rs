//! Reports of a decsweep study, regenerated from the store at any time.
//!
//! The coordinator maps its rows to [`TrialRow`] and [`CurvePoint`] and calls [`write_all`],
//! which writes into `results/<study>/`:
//!
//! | file | what |
//! | --- | --- |
//! | `trials.csv` | one row per trial: id, pipeline, config_id, label, every parameter, seed, status, attempts, resumes, resumed_from (`stage:epoch`), pack (the trials trained together, `3+5+8`), worker, error, every metric |
//! | `summary.csv` | one row per configuration (pipeline, config_id, label): trial counts by status, the aggregated seeds and trial ids, and n, mean, std, 95% CI (and its method) of every metric |
//! | `paired.csv` | the seed pairs behind the dec-vs-baseline comparison, with each comparison's mean difference, interval, d_z, raw and Holm-adjusted p-values |
//! | `table.md`, `table.tex` | the paper's Table 1 layout (model, accuracy % mean ± std and 95% CI, weighted F1 and its CI, seeds, rows, parameter count; test accuracy and F1 with validation beside them when the dataset has a test split) and the paired comparison |
//! | `accuracy_vs_label_fraction.svg` | only when the label fraction varies |
//! | `search.svg` | only for an adaptive search ([`ReportOptions::adaptive`], a TPE study): the objective of each configuration in order of its first trial id, pruned ones hollow, and the best so far as a step line. A grid or random study proposes its configurations in an order that means nothing, so it has no best-so-far |
//! | `importance.csv` | for any search (a pipeline with several configurations differing in a parameter, grid and random included): per pipeline and varying parameter, the share of the objective's variance across completed configurations explained by that parameter alone (η²), see the module docs of `importance` |
//! | `curves_<trial_id>.svg` | train/validation loss per epoch and stage of each configuration's representative trial |
//!
//! Every statistic is computed once, into a [`StudyModel`] (summaries over seeds with their
//! interval methods, paired comparisons with Holm-adjusted p-values, importance): the CSV,
//! Markdown and LaTeX writers render that model, and so does the dashboard
//! ([`render_with_model`]), which draws its extra charts with [`charts`] on the same [`svg`]
//! writer.
//!
//! Conventions every file shares:
//! - **What is aggregated.** Completed trials only, unless [`ReportOptions::include_pruned`];
//!   failed, pruned, pending and running trials are counted per configuration (in
//!   `summary.csv` and under the tables) but never averaged. Non-finite metric values are left
//!   out of statistics and not counted in `n`. `search.svg` and `importance.csv` always rank
//!   configurations by the objective's mean over *completed* seeds (what the sampler sees);
//!   pruned-only configurations appear in `search.svg` as hollow markers and nowhere else.
//! - **Statistics.** Sample standard deviation (n − 1). 95% intervals of a mean: for metrics in
//!   [0, 1] (accuracy, F1) the logit-t interval, which stays inside the bounds; for the others
//!   (loss, times) mean ± t_{0.975, n−1} · std/√n; none from fewer than 3 seeds
//!   ([`stats::MIN_INTERVAL_N`]). Never a zero-width interval: when every seed scores the same,
//!   accuracy and F1 get Wilson's interval of the seeds' pooled rows (`n` or `test_n`) and other
//!   metrics none. Ties and "no spread" are judged up to rounding (a relative tolerance of
//!   10⁻⁹), the same rule in the t-test, the Wilcoxon test and the summaries. Paired comparisons by a two-sided paired t-test with a
//!   Wilcoxon signed-rank test beside it, the mean difference with its t interval and Cohen's
//!   d_z, and both tests' p-values Holm-adjusted over every comparison of the study. See
//!   [`stats`] for how they are computed.
//! - **Traceability.** CSV numbers are written in Rust's shortest round-trip form, and
//!   `summary.csv` / `paired.csv` name the trial ids they come from, so every number in a report
//!   can be recomputed from rows of `trials.csv`.
//! - **Atomicity.** Everything is rendered in memory first; each file is then written to a
//!   temporary file and renamed into place. Plot files of an earlier run that this run did not
//!   produce are removed.

pub mod charts;
mod columns;
mod error;
mod format;
mod groups;
mod importance;
mod input;
mod model;
mod paired_csv;
mod pairing;
mod plots;
mod search;
pub mod stats;
mod summary_csv;
pub mod svg;
mod tables;
#[cfg(test)]
mod testutil;
mod trials_csv;
mod write;

use std::path::{Path, PathBuf};

use tracing::info;

pub use error::ReportError;
pub use format::readable as readable_number;
pub use input::{CurvePoint, StudyReport, TrialRow, TrialStatus};
pub use model::{Comparison, ConfigSummary, Importance, ImportanceMethod, Paired, SeedPair, StudyModel};

/// The objective when [`ReportOptions::objective`] is `None`: validation accuracy, maximised.
pub const DEFAULT_OBJECTIVE: (&str, bool) = ("accuracy", true);

/// Choices a report can make differently from the default.
///
/// Build it from [`Default`] so that options added later do not break callers:
/// `ReportOptions { include_pruned: true, ..Default::default() }` or
/// `ReportOptions::default().with_objective("loss", false)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportOptions {
    /// Aggregate pruned trials together with completed ones. Off by default: a pruned trial was
    /// stopped early because it looked worse, so averaging it in biases every mean downwards.
    pub include_pruned: bool,
    /// The metric a search optimises and whether larger is better, `(metric, maximize)`, for
    /// `search.svg` and `importance.csv`; `None` means [`DEFAULT_OBJECTIVE`] (accuracy,
    /// maximised). Normally the spec's `[objective]`.
    pub objective: Option<(String, bool)>,
    /// The study's configurations were proposed one by one by an adaptive sampler (TPE), each
    /// informed by the results before it: only then does the order of configurations mean
    /// something and `search.svg` (best so far) get written. Normally
    /// `decsweep_api::wire::StudyInfo::adaptive`.
    pub adaptive: bool,
}

impl ReportOptions {
    /// These options with `objective` set to `(metric, maximize)`.
    pub fn with_objective(mut self, metric: impl Into<String>, maximize: bool) -> Self {
        self.objective = Some((metric.into(), maximize));
        self
    }

    /// These options with `adaptive` set.
    pub fn with_adaptive(mut self, adaptive: bool) -> Self {
        self.adaptive = adaptive;
        self
    }

    /// The objective in effect: `(metric, maximize)`.
    pub fn objective(&self) -> (&str, bool) {
        match &self.objective {
            Some((metric, maximize)) => (metric.as_str(), *maximize),
            None => DEFAULT_OBJECTIVE,
        }
    }

    /// Whether a trial in `status` contributes to means, deviations and intervals.
    pub(crate) fn aggregates(&self, status: TrialStatus) -> bool {
        status == TrialStatus::Completed || (self.include_pruned && status == TrialStatus::Pruned)
    }
}

/// One rendered report file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportFile {
    /// File name inside the results directory.
    pub name: String,
    pub contents: String,
}

/// Renders every report file in memory, without touching the disk (for serving reports over
/// HTTP, or for tests).
pub fn render(report: &StudyReport, opts: &ReportOptions) -> Result<Vec<ReportFile>, ReportError> {
    Ok(render_with_model(report, opts)?.1)
}

/// [`render`], also handing back the [`StudyModel`] the files were rendered from (the
/// dashboard shows both: the model's tables and the plot files).
pub fn render_with_model(
    report: &StudyReport,
    opts: &ReportOptions,
) -> Result<(StudyModel, Vec<ReportFile>), ReportError> {
    report.validate()?;
    let groups = groups::group(report.trials, opts);
    let model = StudyModel::from_groups(report.study, report.trials, &groups, opts);
    let tables = tables::model(&model);

    let file = |name: &str, contents: String| ReportFile { name: name.to_string(), contents };
    let mut files = vec![
        file(trials_csv::FILE, trials_csv::render(report.trials, &model)?),
        file(summary_csv::FILE, summary_csv::render(&model)?),
        file(paired_csv::FILE, paired_csv::render(&model)?),
        file(tables::MD_FILE, tables::render_markdown(&tables)),
        file(tables::TEX_FILE, tables::render_latex(&tables)),
    ];
    if let Some(doc) = plots::label_fraction_plot(report.study, &groups) {
        files.push(file(plots::LABEL_FRACTION_FILE, doc));
    }
    let (metric, maximize) = opts.objective();
    if let Some(rows) = &model.importance {
        if opts.adaptive {
            if let Some(doc) = search::plot(report.study, &groups, metric, maximize) {
                files.push(file(search::FILE, doc));
            }
        }
        files.push(file(importance::FILE, importance::render(rows)?));
    }
    files.extend(plots::curve_plots(report.study, &groups, report.curves).into_iter().map(|(n, c)| file(&n, c)));
    Ok((model, files))
}

/// Writes every report file of `report` into `dir` (normally `results/<study>/`, created if
/// missing) with the default [`ReportOptions`], and returns their paths.
pub fn write_all(report: &StudyReport, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    write_all_with(report, dir, &ReportOptions::default())
}

/// [`write_all`] with explicit options.
pub fn write_all_with(report: &StudyReport, dir: &Path, opts: &ReportOptions) -> Result<Vec<PathBuf>, ReportError> {
    let files = render(report, opts)?;
    let paths = write::write_files(dir, &files)?;
    info!(
        study = report.study,
        dir = %dir.display(),
        files = paths.len(),
        trials = report.trials.len(),
        "wrote report"
    );
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::fs;

    use super::*;
    use crate::svg::assert_well_formed;
    use crate::testutil::study;

    fn names(files: &[ReportFile]) -> BTreeSet<&str> {
        files.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn a_whole_study_is_written_and_every_file_is_valid() {
        let (trials, curves) = study();
        let report = StudyReport { study: "label-fraction & co", trials: &trials, curves: &curves };
        // Set DECSWEEP_REPORT_SAMPLE_DIR to keep the sample report for a look.
        let keep = std::env::var_os("DECSWEEP_REPORT_SAMPLE_DIR");
        let tmp = tempfile::tempdir().unwrap();
        let dir = keep.map(PathBuf::from).unwrap_or_else(|| tmp.path().join("results/label-fraction"));
        let paths = write_all(&report, &dir).unwrap();
        let written: BTreeSet<String> =
            paths.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        let expected = [
            "trials.csv",
            "summary.csv",
            "paired.csv",
            "table.md",
            "table.tex",
            "accuracy_vs_label_fraction.svg",
            // Each pipeline has two configurations that differ in label_fraction: a (tiny) grid
            // search, so parameter importance but no best-so-far plot (not adaptive).
            "importance.csv",
            // Representatives: base-lf20 → trial 1 (seed 0), dec-lf20 → trial 9 (seed 0; trial 10,
            // its seed 1, has curves too but is not chosen); the lf40 configurations have none.
            "curves_1.svg",
            "curves_9.svg",
        ];
        assert_eq!(written, expected.iter().map(|s| s.to_string()).collect());
        for p in &paths {
            let text = fs::read_to_string(p).unwrap();
            if p.extension().is_some_and(|e| e == "svg") {
                assert_well_formed(&text);
            }
        }

        // Two configurations per pipeline, two groups: η² is 1 by construction (see importance).
        let imp = fs::read_to_string(dir.join("importance.csv")).unwrap();
        assert_eq!(
            imp,
            "pipeline,parameter,importance,normalized,n,groups,method\n\
             baseline,label_fraction,1,1,2,2,eta_squared_by_value\n\
             dec,label_fraction,1,1,2,2,eta_squared_by_value\n"
        );

        let md = fs::read_to_string(dir.join("table.md")).unwrap();
        assert!(md.starts_with("# Study label-fraction & co\n"), "{md}");
        assert!(
            md.contains("| Model | Val accuracy (%) | 95% CI (%) | Val F1 (weighted) | 95% CI | Seeds | Val rows | Param count |"),
            "{md}"
        );
        // Accuracies 0.704 0.693 0.711 0.698: mean 70.15%, sd 0.78, logit-t [68.90, 71.37]
        // (numpy: 68.8995, 71.3711 with t_{0.975,3} = 3.182446).
        assert!(md.contains("| baseline lf=0.2 | 70.15 ± 0.78 | [68.90, 71.37] |"), "{md}");
        assert!(md.contains("| dec lf=0.2 |"), "{md}");
        assert!(md.contains("- baseline lf=0.4: 1 failed"), "{md}");
        assert!(md.contains("- dec lf=0.4: 1 pending, 1 pruned"), "{md}");
        assert!(md.contains("| dec lf=0.2 | baseline lf=0.2 | 4 |"), "{md}");

        let tex = fs::read_to_string(dir.join("table.tex")).unwrap();
        assert!(tex.contains("\\texttt{label-fraction \\& co}"), "{tex}");
        assert_eq!(tex.matches("\\begin{table}").count(), 2);
        assert_eq!(tex.matches("\\begin{").count(), tex.matches("\\end{").count());
        assert_eq!(tex.matches("\\toprule").count(), 2);
        let unescaped = tex.replace("\\{", "").replace("\\}", "");
        assert_eq!(unescaped.matches('{').count(), unescaped.matches('}').count(), "balanced braces");
    }

    /// A 24-configuration search of a `command` pipeline over `lr` (numeric) and `opt`
    /// (categorical), two seeds each; every fifth configuration pruned.
    fn search_study() -> Vec<TrialRow> {
        use decsweep_api::ParamValue;
        let mut trials = Vec::new();
        for c in 0..24i64 {
            let lr = 0.05 * ((c * 7) % 24) as f64 / 23.0 + 0.001;
            let opt = if c % 3 == 0 { "sgd" } else { "adam" };
            for seed in 0..2u64 {
                let id = 2 * c + seed as i64 + 1;
                let acc =
                    0.8 - 60.0 * (lr - 0.02).powi(2) - if opt == "sgd" { 0.03 } else { 0.0 } + 0.002 * seed as f64;
                let mut t = crate::testutil::trial(crate::testutil::TrialSpec {
                    id,
                    pipeline: "command",
                    config: "",
                    seed,
                    acc: Some(acc),
                    ..Default::default()
                });
                t.config_id = format!("cfg{c}");
                t.params.insert("lr".into(), ParamValue::Float(lr));
                t.params.insert("opt".into(), ParamValue::Str(opt.into()));
                t.metrics.insert("loss".into(), 1.0 - acc);
                if c % 5 == 4 {
                    t.status = TrialStatus::Pruned;
                    t.metrics.insert("accuracy".into(), acc - 0.1);
                    t.metrics.insert("pruned_epoch".into(), 3.0);
                }
                trials.push(t);
            }
        }
        trials
    }

    #[test]
    fn a_search_gets_its_plot_and_importance_in_the_objectives_direction() {
        let trials = search_study();
        let report = StudyReport { study: "tpe", trials: &trials, curves: &[] };
        let adaptive = ReportOptions::default().with_adaptive(true);
        // Set DECSWEEP_REPORT_SEARCH_SAMPLE_DIR to keep the sample for a look.
        if let Some(dir) = std::env::var_os("DECSWEEP_REPORT_SEARCH_SAMPLE_DIR") {
            write_all_with(&report, Path::new(&dir), &adaptive).unwrap();
        }
        let files = render(&report, &adaptive).unwrap();
        let get = |name: &str| files.iter().find(|f| f.name == name).map(|f| f.contents.clone());
        let svg = get("search.svg").unwrap();
        assert_well_formed(&svg);
        assert!(svg.contains("accuracy per configuration (maximize)"), "{svg}");
        let imp = get("importance.csv").unwrap();
        let lines: Vec<&str> = imp.lines().collect();
        // 24 − 4 pruned = 20 completed configurations; lr matters most (20 distinct → 5 bins).
        assert_eq!(lines.len(), 3, "{imp}");
        assert!(lines[1].starts_with("command,lr,") && lines[1].ends_with(",20,5,eta_squared_quantile_bins"), "{imp}");
        assert!(lines[2].starts_with("command,opt,") && lines[2].ends_with(",20,2,eta_squared_by_value"), "{imp}");

        let opts = adaptive.clone().with_objective("loss", false);
        assert_eq!(opts.objective(), ("loss", false));
        let files = render(&report, &opts).unwrap();
        let svg = &files.iter().find(|f| f.name == "search.svg").unwrap().contents;
        assert!(svg.contains("loss per configuration (minimize)"), "{svg}");
        assert_eq!(ReportOptions::default().objective(), DEFAULT_OBJECTIVE);
    }

    #[test]
    fn search_svg_only_for_an_adaptive_study() {
        // The same configurations: planned up front (grid or random) they get importance.csv
        // only; proposed one by one by TPE they get the best-so-far plot too.
        let trials = search_study();
        let report = StudyReport { study: "s", trials: &trials, curves: &[] };
        let planned = render(&report, &ReportOptions::default()).unwrap();
        let planned = names(&planned);
        assert!(planned.contains("importance.csv") && !planned.contains("search.svg"), "{planned:?}");
        let adaptive = render(&report, &ReportOptions::default().with_adaptive(true)).unwrap();
        assert!(names(&adaptive).contains("search.svg"));
        // A study with one configuration per pipeline is no search either way.
        let (trials, _) = study();
        let one: Vec<TrialRow> = trials.into_iter().filter(|t| t.config_id.ends_with("lf20")).collect();
        let report = StudyReport { study: "s", trials: &one, curves: &[] };
        let files = render(&report, &ReportOptions::default().with_adaptive(true)).unwrap();
        assert!(!names(&files).contains("search.svg") && !names(&files).contains("importance.csv"));
    }

    #[test]
    fn the_paired_table_agrees_with_paired_csv() {
        let (trials, curves) = study();
        let report = StudyReport { study: "s", trials: &trials, curves: &curves };
        let files = render(&report, &ReportOptions::default()).unwrap();
        let paired = &files.iter().find(|f| f.name == "paired.csv").unwrap().contents;
        let mut r = csv::Reader::from_reader(paired.as_bytes());
        let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
        // lf20: seeds 0..3 on both sides; lf40: baseline seed 1 failed and dec seed 1 pruned → 3 pairs.
        let lf20: Vec<f64> = rows.iter().filter(|r| &r[0] == "dec-lf20").map(|r| r[9].parse().unwrap()).collect();
        let lf40 = rows.iter().filter(|r| &r[0] == "dec-lf40").count();
        assert_eq!((lf20.len(), lf40), (4, 3));
        for row in &rows {
            let (d, b, diff): (f64, f64, f64) =
                (row[7].parse().unwrap(), row[8].parse().unwrap(), row[9].parse().unwrap());
            assert_eq!(d - b, diff);
        }
        // The table's Δ for lf20 is the mean of paired.csv's differences, in points.
        let mean = 100.0 * lf20.iter().sum::<f64>() / lf20.len() as f64;
        let md = &files.iter().find(|f| f.name == "table.md").unwrap().contents;
        let line = md.lines().find(|l| l.starts_with("| dec lf=0.2 | baseline")).unwrap();
        assert!(line.contains(&format!("| +{mean:.2} |")), "{line} vs {mean}");

        // Every comparison statistic is recomputable from the rows: one comparison per dec config.
        let headers = r.headers().unwrap().clone();
        let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
        let (mean_c, sd_c, dz_c, p_c, holm_c, m_c) =
            (col("mean_difference"), col("std_difference"), col("d_z"), col("p_t"), col("p_t_holm"), col("holm_m_t"));
        let mut raw = Vec::new();
        for dec in ["dec-lf20", "dec-lf40"] {
            let rows: Vec<&csv::StringRecord> = rows.iter().filter(|r| &r[0] == dec).collect();
            let d: Vec<f64> = rows.iter().map(|r| r[9].parse().unwrap()).collect();
            let n = d.len() as f64;
            let m = d.iter().sum::<f64>() / n;
            let sd = (d.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
            let num = |r: &csv::StringRecord, c: usize| r[c].parse::<f64>().unwrap();
            for r in &rows {
                assert!((num(r, mean_c) - m).abs() < 1e-15 && (num(r, sd_c) - sd).abs() < 1e-15);
                assert!((num(r, dz_c) - m / sd).abs() < 1e-12, "d_z = mean / sd");
                assert_eq!(&r[m_c], "2", "two comparisons in the study");
            }
            raw.push((num(rows[0], p_c), num(rows[0], holm_c)));
        }
        // Holm with m = 2: the smaller p doubled, the larger kept unless below it (capped at 1).
        let (lo, hi) = if raw[0].0 <= raw[1].0 { (raw[0], raw[1]) } else { (raw[1], raw[0]) };
        assert!((lo.1 - (2.0 * lo.0).min(1.0)).abs() < 1e-15, "{raw:?}");
        assert!((hi.1 - hi.0.max(lo.1)).abs() < 1e-15, "{raw:?}");
        assert!(md.contains("m = 2 paired t-tests, m = 2 Wilcoxon tests"), "{md}");
        let tex = &files.iter().find(|f| f.name == "table.tex").unwrap().contents;
        assert!(tex.contains("($m = 2$ $t$-tests, $m = 2$ Wilcoxon tests)"), "{tex}");
    }

    #[test]
    fn an_empty_study_still_gets_its_files() {
        let report = StudyReport { study: "empty", trials: &[], curves: &[] };
        let files = render(&report, &ReportOptions::default()).unwrap();
        assert_eq!(names(&files), ["paired.csv", "summary.csv", "table.md", "table.tex", "trials.csv"].into());
        let md = &files.iter().find(|f| f.name == "table.md").unwrap().contents;
        assert!(md.contains("No trials."));
    }

    #[test]
    fn bad_input_writes_nothing() {
        let (mut trials, _) = study();
        trials[3].id = trials[0].id;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        let report = StudyReport { study: "s", trials: &trials, curves: &[] };
        let err = write_all(&report, &dir).unwrap_err();
        assert!(matches!(err, ReportError::DuplicateTrialId { id: 1, .. }), "{err}");
        assert!(!dir.exists());
    }

    #[test]
    fn pruned_trials_are_listed_with_their_last_metric_but_not_aggregated() {
        let (trials, _) = study();
        let report = StudyReport { study: "s", trials: &trials, curves: &[] };
        let files = render(&report, &ReportOptions::default()).unwrap();
        let get = |name: &str| files.iter().find(|f| f.name == name).unwrap().contents.clone();
        let rows = |text: &str| -> Vec<std::collections::HashMap<String, String>> {
            let mut r = csv::Reader::from_reader(text.as_bytes());
            let h = r.headers().unwrap().clone();
            r.records()
                .map(|rec| h.iter().zip(rec.unwrap().iter()).map(|(k, v)| (k.into(), v.into())).collect())
                .collect()
        };
        // Trial 14 (dec lf40, seed 1) was pruned at epoch 40.
        let trials_csv = rows(&get("trials.csv"));
        let t14 = trials_csv.iter().find(|r| r["id"] == "14").unwrap();
        assert_eq!(t14["status"], "pruned");
        assert_eq!(t14["pruned_epoch"], "40");
        assert_eq!(t14["accuracy"].parse::<f64>().unwrap(), trials[13].metrics["accuracy"]);
        // summary.csv counts it but aggregates only the completed seeds 0, 2, 3.
        let summary = rows(&get("summary.csv"));
        let dec40 = summary.iter().find(|r| r["config_id"] == "dec-lf40").unwrap();
        assert_eq!(dec40["n_pruned"], "1");
        assert_eq!(dec40["trial_ids"], "13;15;16");
        assert_eq!(dec40["accuracy_n"], "3");
        assert_eq!(dec40["pruned_epoch_n"], "0");
        let md = get("table.md");
        assert!(
            md.contains("\nPruned: 1 trial was stopped early by the pruner and not aggregated; their last"),
            "{md}"
        );
    }

    #[test]
    fn pruned_trials_can_be_aggregated_on_request() {
        let (trials, _) = study();
        let report = StudyReport { study: "s", trials: &trials, curves: &[] };
        let opts = ReportOptions { include_pruned: true, ..Default::default() };
        let files = render(&report, &opts).unwrap();
        let md = &files.iter().find(|f| f.name == "table.md").unwrap().contents;
        assert!(md.contains("completed and pruned trials"));
        assert!(md.contains("- dec lf=0.4: 1 pending\n"), "{md}");
        assert!(md.contains("pruner and aggregated with the completed ones above"), "{md}");
    }
}
