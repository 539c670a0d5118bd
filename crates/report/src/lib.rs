//! Reports of a decsweep study, regenerated from the store at any time.
//!
//! The coordinator maps its rows to [`TrialRow`] and [`CurvePoint`] and calls [`write_all`],
//! which writes into `results/<study>/`:
//!
//! | file | what |
//! | --- | --- |
//! | `trials.csv` | one row per trial: id, pipeline, config_id, every parameter, seed, status, attempts, worker, error, every metric |
//! | `summary.csv` | one row per configuration (pipeline, config_id): trial counts by status, the aggregated seeds and trial ids, and n, mean, std, 95% CI of every metric |
//! | `paired.csv` | the seed pairs behind the dec-vs-baseline comparison |
//! | `table.md`, `table.tex` | the paper's Table 1 layout (model, accuracy % mean ± std, weighted F1, n, parameter count) and the paired comparison |
//! | `accuracy_vs_label_fraction.svg` | only when the label fraction varies |
//! | `curves_<trial_id>.svg` | train/validation loss per epoch and stage of each configuration's representative trial |
//!
//! Conventions every file shares:
//! - **What is aggregated.** Completed trials only, unless [`ReportOptions::include_pruned`];
//!   failed, pruned, pending and running trials are counted per configuration (in
//!   `summary.csv` and under the tables) but never averaged. Non-finite metric values are left
//!   out of statistics and not counted in `n`.
//! - **Statistics.** Sample standard deviation (n − 1); 95% intervals mean ± t_{0.975, n−1} ·
//!   std/√n; paired comparisons by a two-sided paired t-test with a Wilcoxon signed-rank test
//!   beside it. See [`stats`] for how they are computed.
//! - **Traceability.** CSV numbers are written in Rust's shortest round-trip form, and
//!   `summary.csv` / `paired.csv` name the trial ids they come from, so every number in a report
//!   can be recomputed from rows of `trials.csv`.
//! - **Atomicity.** Everything is rendered in memory first; each file is then written to a
//!   temporary file and renamed into place. Plot files of an earlier run that this run did not
//!   produce are removed.

mod columns;
mod error;
mod format;
mod groups;
mod input;
mod paired_csv;
mod pairing;
mod plots;
pub mod stats;
mod summary_csv;
mod svg;
mod tables;
#[cfg(test)]
mod testutil;
mod trials_csv;
mod write;

use std::path::{Path, PathBuf};

use tracing::info;

pub use error::ReportError;
pub use input::{CurvePoint, StudyReport, TrialRow, TrialStatus};

/// Choices a report can make differently from the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportOptions {
    /// Aggregate pruned trials together with completed ones. Off by default: a pruned trial was
    /// stopped early because it looked worse, so averaging it in biases every mean downwards.
    pub include_pruned: bool,
}

impl ReportOptions {
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
    report.validate()?;
    let groups = groups::group(report.trials, opts);
    let (comparisons, unmatched) = pairing::compare(&groups);
    let model = tables::model(report.study, &groups, &comparisons, &unmatched, opts);

    let file = |name: &str, contents: String| ReportFile { name: name.to_string(), contents };
    let mut files = vec![
        file(trials_csv::FILE, trials_csv::render(report.trials)?),
        file(summary_csv::FILE, summary_csv::render(report.trials, &groups)?),
        file(paired_csv::FILE, paired_csv::render(&groups, &comparisons)?),
        file(tables::MD_FILE, tables::render_markdown(&model)),
        file(tables::TEX_FILE, tables::render_latex(&model)),
    ];
    if let Some(doc) = plots::label_fraction_plot(report.study, &groups) {
        files.push(file(plots::LABEL_FRACTION_FILE, doc));
    }
    files.extend(plots::curve_plots(report.study, &groups, report.curves).into_iter().map(|(n, c)| file(&n, c)));
    Ok(files)
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

        let md = fs::read_to_string(dir.join("table.md")).unwrap();
        assert!(md.starts_with("# Study label-fraction & co\n"), "{md}");
        assert!(md.contains("| Model | Accuracy (%) | F1 (weighted) | n | Param count |"), "{md}");
        assert!(md.contains("| dec (label_fraction=0.2) |"), "{md}");
        assert!(md.contains("- baseline (label_fraction=0.4): 1 failed"), "{md}");
        assert!(md.contains("- dec (label_fraction=0.4): 1 pending, 1 pruned"), "{md}");
        assert!(md.contains("| dec (label_fraction=0.2) | baseline (label_fraction=0.2) | 4 |"), "{md}");

        let tex = fs::read_to_string(dir.join("table.tex")).unwrap();
        assert!(tex.contains("\\texttt{label-fraction \\& co}"), "{tex}");
        assert_eq!(tex.matches("\\begin{table}").count(), 2);
        assert_eq!(tex.matches("\\begin{").count(), tex.matches("\\end{").count());
        assert_eq!(tex.matches("\\toprule").count(), 2);
        let unescaped = tex.replace("\\{", "").replace("\\}", "");
        assert_eq!(unescaped.matches('{').count(), unescaped.matches('}').count(), "balanced braces");
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
        let line = md.lines().find(|l| l.starts_with("| dec (label_fraction=0.2) | baseline")).unwrap();
        assert!(line.contains(&format!("| +{mean:.2} |")), "{line} vs {mean}");
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
    fn pruned_trials_can_be_aggregated_on_request() {
        let (trials, _) = study();
        let report = StudyReport { study: "s", trials: &trials, curves: &[] };
        let opts = ReportOptions { include_pruned: true };
        let files = render(&report, &opts).unwrap();
        let md = &files.iter().find(|f| f.name == "table.md").unwrap().contents;
        assert!(md.contains("completed and pruned trials"));
        assert!(md.contains("- dec (label_fraction=0.4): 1 pending\n"), "{md}");
    }
}
