//! `importance.csv`: which parameters the objective depends on, by a simple, stated method.
//!
//! Written for any search, grid and random included (when some pipeline has more than one
//! configuration and a parameter varies; an adaptive study also gets `search.svg`). For each
//! pipeline, over its configurations with at least one completed seed (y = the objective's mean
//! over the completed seeds, as in `search.svg`), and for each parameter that varies among them:
//!
//! 1. The configurations are split into groups by the parameter's value. A numeric parameter
//!    with more than [`MAX_BINS`] distinct values is binned instead into up to [`MAX_BINS`]
//!    quantile bins of about equal count (equal values always share a bin); every other
//!    parameter, numeric or not, is grouped by value.
//! 2. importance = η² (the correlation ratio squared) = SS_between / SS_total, where
//!    SS_total = Σ (y − ȳ)² over the configurations and SS_between = Σ_groups n_g (ȳ_g − ȳ)²:
//!    the fraction of the objective's variance across configurations explained by that
//!    parameter alone, in [0, 1].
//! 3. normalized = importance / Σ importance over the pipeline's parameters, so a pipeline's
//!    rows sum to 1.
//!
//! Columns: `pipeline, parameter, importance, normalized, n, groups, method`, where `n` is the
//! number of configurations used (those whose value of the parameter is known), `groups` the
//! number of non-empty groups and `method` `eta_squared_by_value` or `eta_squared_quantile_bins`.
//! Rows are by pipeline, then by importance, largest first. When the objective does not vary
//! (SS_total = 0) importance and normalized are empty cells, not a made-up 0. Recompute a row
//! from `summary.csv`'s `<objective>_mean` per configuration (with completed trials only, the
//! default) and the parameter columns.
//!
//! Limits, read before quoting a number: η² is *marginal*. It credits a parameter with
//! everything that co-varies with it and ignores interactions, so under a model-based sampler,
//! which concentrates on good regions and correlates parameters, the numbers need not add up to
//! anything and do not say what would happen if the parameter were changed alone. It is biased
//! upwards with few configurations per group: with n configurations and k groups, a parameter
//! that does nothing scores about (k − 1)/(n − 1) on average, hence the `n` and `groups`
//! columns. A functional ANOVA on a fitted random forest (as fANOVA / Optuna's default
//! importance evaluator) would handle interactions and continuous parameters better; it needs a
//! fitted model, which this crate deliberately does not carry.

use std::cmp::Ordering;

use decsweep_api::ParamValue;

use crate::format::csv_opt;
use crate::groups::{varying_params, Group};
use crate::search::{outcomes, subset};
use crate::ReportError;

pub(crate) const FILE: &str = "importance.csv";

/// Most groups a numeric parameter is split into.
pub(crate) const MAX_BINS: usize = 5;

const HEADERS: [&str; 7] = ["pipeline", "parameter", "importance", "normalized", "n", "groups", "method"];

/// How the configurations were grouped for one parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    ByValue,
    QuantileBins,
}

impl Method {
    /// The word in `importance.csv`.
    pub fn name(self) -> &'static str {
        match self {
            Method::ByValue => "eta_squared_by_value",
            Method::QuantileBins => "eta_squared_quantile_bins",
        }
    }
}

/// One parameter's importance for one pipeline: a row of the file.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub pipeline: String,
    pub parameter: String,
    pub importance: Option<f64>,
    pub normalized: Option<f64>,
    pub n: usize,
    pub groups: usize,
    pub method: Method,
}

/// Assigns each value a group index: by value, or by quantile bin for a numeric parameter with
/// more than [`MAX_BINS`] distinct values. Returns the indices and the number of groups.
pub(crate) fn partition(values: &[ParamValue]) -> (Vec<usize>, usize, Method) {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].cmp_readable(&values[b]));
    let mut distinct = 0;
    for (r, &i) in order.iter().enumerate() {
        if r == 0 || !values[order[r - 1]].same_as(&values[i]) {
            distinct += 1;
        }
    }
    let numeric = values.iter().all(|v| v.as_f64().is_some_and(f64::is_finite));
    let method = if numeric && distinct > MAX_BINS { Method::QuantileBins } else { Method::ByValue };
    let n = values.len();
    let mut group = vec![0; n];
    let mut next = 0;
    for (r, &i) in order.iter().enumerate() {
        let g = if r > 0 && values[order[r - 1]].same_as(&values[i]) {
            group[order[r - 1]]
        } else {
            match method {
                Method::ByValue => {
                    next += 1;
                    next - 1
                }
                // Rank r of n falls in bin ⌊r·k/n⌋; a tie stays in its first member's bin.
                Method::QuantileBins => {
                    let b = r * MAX_BINS / n;
                    next = b + 1;
                    b
                }
            }
        };
        group[i] = g;
    }
    let groups = {
        let mut used: Vec<usize> = group.clone();
        used.sort_unstable();
        used.dedup();
        used.len()
    };
    (group, groups, method)
}

/// η² = SS_between / SS_total of `ys` split by `group`; `None` when there are no values or they
/// are all equal.
pub(crate) fn eta_squared(ys: &[f64], group: &[usize]) -> Option<f64> {
    let n = ys.len();
    if n == 0 {
        return None;
    }
    let mean = ys.iter().sum::<f64>() / n as f64;
    let total: f64 = ys.iter().map(|y| (y - mean) * (y - mean)).sum();
    if total <= 0.0 || !total.is_finite() {
        return None;
    }
    let k = group.iter().copied().max().map_or(0, |m| m + 1);
    let mut sums = vec![0.0; k];
    let mut counts = vec![0usize; k];
    for (&y, &g) in ys.iter().zip(group) {
        sums[g] += y;
        counts[g] += 1;
    }
    let between: f64 = sums
        .iter()
        .zip(&counts)
        .filter(|(_, &c)| c > 0)
        .map(|(&s, &c)| {
            let m = s / c as f64;
            c as f64 * (m - mean) * (m - mean)
        })
        .sum();
    Some((between / total).clamp(0.0, 1.0))
}

/// The importance rows of every pipeline with two or more completed configurations.
pub(crate) fn rows(groups: &[Group], metric: &str) -> Vec<Row> {
    let outcomes = outcomes(groups, metric);
    let mut pipelines: Vec<&str> = groups.iter().map(|g| g.pipeline).collect();
    pipelines.dedup();
    let mut out = Vec::new();
    for p in pipelines {
        // (index into `groups`, objective) of the pipeline's completed configurations.
        let done: Vec<(usize, f64)> = outcomes
            .iter()
            .filter(|o| o.group.pipeline == p)
            .filter_map(|o| o.completed.map(|y| (o.index, y)))
            .collect();
        if done.len() < 2 {
            continue;
        }
        let idx: Vec<usize> = done.iter().map(|(i, _)| *i).collect();
        let mut rows: Vec<Row> = varying_params(&subset(groups, &idx))
            .into_iter()
            .map(|k| {
                let (values, ys): (Vec<ParamValue>, Vec<f64>) =
                    done.iter().filter_map(|&(i, y)| groups[i].param(&k).map(|v| (v, y))).unzip();
                let (group, n_groups, method) = partition(&values);
                Row {
                    pipeline: p.to_string(),
                    parameter: k,
                    importance: eta_squared(&ys, &group),
                    normalized: None,
                    n: ys.len(),
                    groups: n_groups,
                    method,
                }
            })
            .collect();
        let sum: f64 = rows.iter().filter_map(|r| r.importance).sum();
        if sum > 0.0 {
            for r in &mut rows {
                r.normalized = r.importance.map(|x| x / sum);
            }
        }
        rows.sort_by(|a, b| {
            match (a.importance, b.importance) {
                (Some(x), Some(y)) => y.total_cmp(&x),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            }
            .then_with(|| a.parameter.cmp(&b.parameter))
        });
        out.extend(rows);
    }
    out
}

pub(crate) fn render(rows: &[Row]) -> Result<String, ReportError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(HEADERS).map_err(|e| ReportError::csv(FILE, e))?;
    for r in rows {
        w.write_record([
            r.pipeline.clone(),
            r.parameter.clone(),
            csv_opt(r.importance),
            csv_opt(r.normalized),
            r.n.to_string(),
            r.groups.to_string(),
            r.method.name().to_string(),
        ])
        .map_err(|e| ReportError::csv(FILE, e))?;
    }
    let bytes = w.into_inner().map_err(|e| ReportError::csv(FILE, e.into_error()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::group;
    use crate::testutil::{trial, TrialSpec};
    use crate::{ReportOptions, TrialRow, TrialStatus};

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn eta_squared_by_hand() {
        // y = 1 1 2 2 3 3, ȳ = 2, SS_total = 1+1+0+0+1+1 = 4.
        let ys = [1.0, 1.0, 2.0, 2.0, 3.0, 3.0];
        // Groups {1,1} {2,2} {3,3}: every group mean equals its members → SS_between = 4 → 1.
        assert!(close(eta_squared(&ys, &[0, 0, 1, 1, 2, 2]), 1.0));
        // Groups {1,2,3} {1,2,3}: both means 2 → SS_between = 0 → 0.
        assert!(close(eta_squared(&ys, &[0, 1, 0, 1, 0, 1]), 0.0));
        // Groups {1,1,2} {2,3,3}: means 4/3, 8/3; SS_between = 3·(2/3)² + 3·(2/3)² = 8/3 → 2/3.
        assert!(close(eta_squared(&ys, &[0, 0, 0, 1, 1, 1]), 2.0 / 3.0));
        assert_eq!(eta_squared(&[0.5, 0.5], &[0, 1]), None, "no variance to explain");
        assert_eq!(eta_squared(&[], &[]), None);
    }

    #[test]
    fn partition_by_value_and_by_quantile_bins() {
        let words: Vec<ParamValue> = ["b", "a", "b", "c"].iter().map(|s| ParamValue::Str(s.to_string())).collect();
        let (g, k, m) = partition(&words);
        assert_eq!((g, k, m), (vec![1, 0, 1, 2], 3, Method::ByValue));
        // 1 and 1.0 are one value.
        let (g, k, _) = partition(&[ParamValue::Int(1), ParamValue::Float(1.0), ParamValue::Float(2.0)]);
        assert_eq!((g, k), (vec![0, 0, 1], 2));
        // Ten distinct numbers, shuffled → five bins of two, in value order.
        let xs: Vec<ParamValue> =
            [9, 0, 8, 1, 7, 2, 6, 3, 5, 4].iter().map(|&i| ParamValue::Float(f64::from(i) / 10.0)).collect();
        let (g, k, m) = partition(&xs);
        assert_eq!((k, m), (5, Method::QuantileBins));
        assert_eq!(g, [4, 0, 4, 0, 3, 1, 3, 1, 2, 2]);
        // Ties never straddle a bin: eight values, three of them 0.1.
        let xs: Vec<ParamValue> =
            [0.1, 0.1, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6].iter().map(|&x| ParamValue::Float(x)).collect();
        let (g, k, _) = partition(&xs);
        // Ranks 0..8 → bins 0 0 1 1 2 3 3 4 without ties; ranks 1, 2 (ties of rank 0) → bin 0.
        assert_eq!(g, [0, 0, 0, 1, 2, 3, 3, 4]);
        assert_eq!(k, 5);
    }

    fn config(id: i64, config: &'static str, a: f64, b: &str, c: &str, y: f64) -> TrialRow {
        let mut t = trial(TrialSpec { id, pipeline: "command", config, acc: Some(y), ..Default::default() });
        t.params.insert("a".into(), ParamValue::Float(a));
        t.params.insert("b".into(), ParamValue::Str(b.into()));
        t.params.insert("c".into(), ParamValue::Str(c.into()));
        t
    }

    #[test]
    fn six_configurations_worked_by_hand() {
        // a explains everything, b nothing, c two thirds (see eta_squared_by_hand).
        let mut trials = vec![
            config(1, "k1", 1.0, "x", "p", 1.0),
            config(2, "k2", 1.0, "y", "p", 1.0),
            config(3, "k3", 2.0, "x", "p", 2.0),
            config(4, "k4", 2.0, "y", "q", 2.0),
            config(5, "k5", 3.0, "x", "q", 3.0),
            config(6, "k6", 3.0, "y", "q", 3.0),
        ];
        // A pruned and a failed configuration are left out.
        let mut pruned = config(7, "k7", 9.0, "z", "r", 0.0);
        pruned.status = TrialStatus::Pruned;
        let mut failed = config(8, "k8", 9.0, "z", "r", 0.0);
        failed.status = TrialStatus::Failed;
        trials.extend([pruned, failed]);
        let groups = group(&trials, &ReportOptions::default());
        let rows = rows(&groups, "accuracy");
        type Got<'r> = (&'r str, Option<f64>, Option<f64>, usize, usize);
        let got: Vec<Got> =
            rows.iter().map(|r| (r.parameter.as_str(), r.importance, r.normalized, r.n, r.groups)).collect();
        assert_eq!(got.len(), 3, "label_fraction does not vary: {got:?}");
        assert_eq!((got[0].0, got[1].0, got[2].0), ("a", "c", "b"), "by importance");
        // Σ importance = 1 + 2/3 + 0 = 5/3 → normalized 0.6, 0.4, 0.
        assert!(close(got[0].1, 1.0) && close(got[0].2, 0.6));
        assert!(close(got[1].1, 2.0 / 3.0) && close(got[1].2, 0.4));
        assert!(close(got[2].1, 0.0) && close(got[2].2, 0.0));
        assert_eq!((got[0].3, got[0].4), (6, 3));
        assert!(rows.iter().all(|r| r.method == Method::ByValue));

        let csv = render(&rows).unwrap();
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("pipeline,parameter,importance,normalized,n,groups,method"));
        let first = lines.next().unwrap();
        assert!(first.starts_with("command,a,1,0.6") && first.ends_with(",6,3,eta_squared_by_value"), "{first}");
    }

    #[test]
    fn a_constant_objective_has_no_importance() {
        let trials = [config(1, "k1", 1.0, "x", "p", 0.5), config(2, "k2", 2.0, "y", "p", 0.5)];
        let groups = group(&trials, &ReportOptions::default());
        let csv = render(&rows(&groups, "accuracy")).unwrap();
        assert!(csv.contains("command,a,,,2,2,eta_squared_by_value"), "{csv}");
        // A metric nobody reported: no completed values, no rows.
        assert_eq!(render(&rows(&groups, "nope")).unwrap().lines().count(), 1);
    }
}
