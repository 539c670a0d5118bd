//! The typed study report: every statistic of a study, computed once.
//!
//! [`StudyModel::of`] groups the trials into configurations, summarises each metric over the
//! aggregated seeds (naming the interval method per metric), pairs dec with baseline
//! configurations with Holm-adjusted p-values, and estimates parameter importance. The CSV,
//! Markdown and LaTeX writers and the dashboard render this one model, so they cannot disagree;
//! none of them computes a statistic of its own.
//!
//! The model owns its data (no borrows of the trial rows), so a server can cache it.

use std::collections::BTreeMap;

use decsweep_api::ParamValue;

use crate::columns::metric_names;
use crate::groups::{self, Group};
use crate::importance;
use crate::pairing::{self, Comparisons};
use crate::search;
use crate::stats::{PairedT, Summary, Wilcoxon};
use crate::{ReportOptions, TrialRow, TrialStatus};

pub use crate::importance::{Method as ImportanceMethod, Row as Importance};

/// Every statistic of one study.
#[derive(Clone, Debug, PartialEq)]
pub struct StudyModel {
    pub study: String,
    /// Pruned trials were aggregated with completed ones ([`ReportOptions::include_pruned`]).
    pub include_pruned: bool,
    /// Parameter names of the configurations (agreed on or disputed), sorted.
    pub params: Vec<String>,
    /// Every metric name of the study's trials, in report order (see `columns`).
    pub metrics: Vec<String>,
    /// One per configuration, ordered by pipeline, parameter values, then config id.
    pub configs: Vec<ConfigSummary>,
    /// The dec-vs-baseline comparisons, p-values Holm-adjusted over the study.
    pub paired: Paired,
    /// Parameter importance for the objective; `None` when the study is not a search.
    pub importance: Option<Vec<Importance>>,
}

/// One configuration: its trials counted by status, and each metric summarised over the
/// aggregated seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigSummary {
    pub pipeline: String,
    pub config_id: String,
    /// Human name: pipeline plus the parameters that tell it apart from the others.
    pub label: String,
    /// The parameter values all of its trials agree on.
    pub params: BTreeMap<String, ParamValue>,
    /// Trials by status, every status of [`TrialStatus::ALL`] present.
    pub counts: BTreeMap<TrialStatus, usize>,
    /// Seeds and ids of the aggregated trials, by (seed, id).
    pub seeds: Vec<u64>,
    pub trial_ids: Vec<i64>,
    /// Every metric of [`StudyModel::metrics`] (plus accuracy and F1, which the tables always
    /// show), with the interval method that suits it.
    pub metrics: BTreeMap<String, Summary>,
    /// Smallest and largest `param_count` over the aggregated seeds (one architecture should
    /// give one number).
    pub param_count: Option<(f64, f64)>,
    /// Smallest and largest number of validation rows (`n`) the aggregated seeds were scored
    /// on: drawn from the labeled part, so it grows with the label fraction.
    pub val_rows: Option<(f64, f64)>,
    /// Smallest and largest number of test rows (`test_n`): the dataset's fixed test split, the
    /// same for every trial; `None` without a test split.
    pub test_rows: Option<(f64, f64)>,
}

impl ConfigSummary {
    /// The name a reader sees for this configuration in legends, tables and pages.
    pub fn display_name(&self) -> &str {
        &self.label
    }

    /// Trials of the configuration.
    pub fn n_trials(&self) -> usize {
        self.counts.values().sum()
    }

    /// Trials in `status`.
    pub fn count(&self, status: TrialStatus) -> usize {
        self.counts.get(&status).copied().unwrap_or(0)
    }

    /// The summary of `metric`; the empty summary (n = 0) for a metric it has no value of.
    pub fn summary(&self, metric: &str) -> Summary {
        self.metrics.get(metric).copied().unwrap_or_else(|| Summary::of_metric(metric, []))
    }
}

/// Every dec-vs-baseline comparison of a study.
#[derive(Clone, Debug, PartialEq)]
pub struct Paired {
    pub comparisons: Vec<Comparison>,
    /// Size of the Holm family of the paired t-tests: comparisons with a t p-value.
    pub holm_m_t: usize,
    /// Size of the Holm family of the Wilcoxon tests: comparisons with two or more pairs.
    pub holm_m_wilcoxon: usize,
    /// Indices into [`StudyModel::configs`] of dec configurations no baseline matched.
    pub unmatched: Vec<usize>,
}

/// A dec configuration against a matching baseline on their common seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// Indices into [`StudyModel::configs`].
    pub dec: usize,
    pub baseline: usize,
    /// The metric compared (accuracy).
    pub metric: &'static str,
    pub pairs: Vec<SeedPair>,
    pub t: PairedT,
    pub wilcoxon: Wilcoxon,
    /// The paired-t p-value after Holm's correction over every comparison of the study.
    pub t_holm: Option<f64>,
    /// The Wilcoxon p-value (see [`Comparison::wilcoxon_p`]) after Holm's correction.
    pub wilcoxon_holm: Option<f64>,
}

impl Comparison {
    /// The Wilcoxon p-value, when there are at least two pairs: like the t-test, no test is
    /// reported from a single pair (its exact p-value could never be below 1).
    pub fn wilcoxon_p(&self) -> Option<f64> {
        (self.pairs.len() >= 2).then_some(self.wilcoxon.p_value)
    }
}

/// One seed run by both sides of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedPair {
    pub seed: u64,
    pub dec_trial_id: i64,
    pub baseline_trial_id: i64,
    pub dec_value: f64,
    pub baseline_value: f64,
}

impl SeedPair {
    /// dec − baseline.
    pub fn difference(&self) -> f64 {
        self.dec_value - self.baseline_value
    }
}

impl StudyModel {
    /// Computes the model of `trials` (the study's every trial) under `opts`.
    pub fn of(study: &str, trials: &[TrialRow], opts: &ReportOptions) -> StudyModel {
        let groups = groups::group(trials, opts);
        StudyModel::from_groups(study, trials, &groups, opts)
    }

    /// The model of trials already grouped (the writers group once for the model and the plots).
    pub(crate) fn from_groups(study: &str, trials: &[TrialRow], groups: &[Group], opts: &ReportOptions) -> StudyModel {
        let mut params: Vec<String> = groups.iter().flat_map(|g| g.params.keys().chain(&g.disputed)).cloned().collect();
        params.sort();
        params.dedup();
        let metrics = metric_names(trials);
        let configs = groups.iter().map(|g| config(g, &metrics)).collect();
        let (metric, _) = opts.objective();
        StudyModel {
            study: study.to_string(),
            include_pruned: opts.include_pruned,
            params,
            configs,
            paired: paired(pairing::compare(groups)),
            importance: search::is_search(groups).then(|| importance::rows(groups, metric)),
            metrics,
        }
    }

    /// Pruned trials in the whole study.
    pub fn pruned(&self) -> usize {
        self.configs.iter().map(|c| c.count(TrialStatus::Pruned)).sum()
    }
}

/// The metrics the tables show whether or not any trial has them.
const TABLE_METRICS: [&str; 2] = ["accuracy", "f1_weighted"];

fn config(g: &Group, metrics: &[String]) -> ConfigSummary {
    let summaries =
        metrics.iter().map(String::as_str).chain(TABLE_METRICS).map(|m| (m.to_string(), g.summary(m))).collect();
    ConfigSummary {
        pipeline: g.pipeline.to_string(),
        config_id: g.config_id.to_string(),
        label: g.label.clone(),
        params: g.params.clone(),
        counts: TrialStatus::ALL.into_iter().map(|st| (st, g.count(st))).collect(),
        seeds: g.aggregated.iter().map(|t| t.seed).collect(),
        trial_ids: g.aggregated.iter().map(|t| t.id).collect(),
        metrics: summaries,
        param_count: range(g, "param_count"),
        val_rows: range(g, "n"),
        test_rows: range(g, "test_n"),
    }
}

/// Smallest and largest finite value of `metric` over the aggregated seeds; `None` without one.
fn range(g: &Group, metric: &str) -> Option<(f64, f64)> {
    g.values(metric).into_iter().map(|(_, x)| x).fold(None, |acc, x| match acc {
        None => Some((x, x)),
        Some((lo, hi)) => Some((f64::min(lo, x), f64::max(hi, x))),
    })
}

fn paired(c: Comparisons) -> Paired {
    let comparisons = c
        .list
        .into_iter()
        .map(|c| Comparison {
            dec: c.dec,
            baseline: c.baseline,
            metric: pairing::METRIC,
            pairs: c
                .pairs
                .iter()
                .map(|p| SeedPair {
                    seed: p.seed,
                    dec_trial_id: p.dec.id,
                    baseline_trial_id: p.baseline.id,
                    dec_value: p.dec_value,
                    baseline_value: p.baseline_value,
                })
                .collect(),
            t: c.t,
            wilcoxon: c.wilcoxon,
            t_holm: c.t_holm,
            wilcoxon_holm: c.wilcoxon_holm,
        })
        .collect();
    Paired { comparisons, holm_m_t: c.m_t, holm_m_wilcoxon: c.m_wilcoxon, unmatched: c.unmatched }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::study;

    #[test]
    fn the_model_names_interval_methods_and_holm_adjusts_comparisons() {
        let (trials, _) = study();
        let m = StudyModel::of("s", &trials, &ReportOptions::default());
        assert_eq!(m.configs.len(), 4);
        let dec40 = m.configs.iter().find(|c| c.config_id == "dec-lf40").unwrap();
        assert_eq!((dec40.count(TrialStatus::Completed), dec40.count(TrialStatus::Pruned)), (3, 1));
        assert_eq!(dec40.n_trials(), 5);
        let acc = dec40.summary("accuracy");
        assert_eq!(acc.ci95.map(|c| c.method), Some(crate::stats::IntervalMethod::LogitT));
        assert_eq!(dec40.summary("loss").ci95, None, "two finite losses: no interval");
        assert!(!m.paired.comparisons.is_empty());
        for c in &m.paired.comparisons {
            if let (Some(raw), Some(adj)) = (c.t.p_value, c.t_holm) {
                assert!(adj >= raw);
            }
        }
        assert_eq!(m.importance.as_ref().map(Vec::len), Some(2));
    }
}
