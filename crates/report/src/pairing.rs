//! Pairing each `dec` configuration with its `baseline` on the same seeds.
//!
//! A dec group is compared with every baseline group whose *shared* parameters are equal: those
//! both pipelines read according to the registry (label_fraction, seq_len, d_model, lr_ft, …).
//! A registered parameter a row leaves out counts as its default; unregistered parameters present
//! in both groups must be equal too. Pairs are the aggregated trials of both groups with the same
//! seed and a finite accuracy; seeds present on one side only are left out. The paired
//! difference is dec − baseline.

use std::collections::BTreeMap;

use decsweep_api::{params::SPECS, Pipeline};
use tracing::warn;

use crate::format::same_value;
use crate::groups::Group;
use crate::stats::{paired_t_test, wilcoxon_signed_rank, PairedT, Wilcoxon};
use crate::TrialRow;

/// The metric the comparison is about.
pub(crate) const METRIC: &str = "accuracy";

/// One seed run by both configurations.
#[derive(Debug)]
pub(crate) struct Pair<'a> {
    pub seed: u64,
    pub dec: &'a TrialRow,
    pub baseline: &'a TrialRow,
    pub dec_value: f64,
    pub baseline_value: f64,
}

/// A dec group against one matching baseline group.
#[derive(Debug)]
pub(crate) struct Comparison<'a> {
    /// Indices into the groups.
    pub dec: usize,
    pub baseline: usize,
    pub pairs: Vec<Pair<'a>>,
    pub t: PairedT,
    pub wilcoxon: Wilcoxon,
}

/// Every dec-vs-baseline comparison, and the dec groups for which no baseline matched.
pub(crate) fn compare<'a>(groups: &[Group<'a>]) -> (Vec<Comparison<'a>>, Vec<usize>) {
    let is = |g: &Group, p: Pipeline| g.pipeline == p.name();
    let mut comparisons = Vec::new();
    let mut unmatched = Vec::new();
    for (di, dec) in groups.iter().enumerate().filter(|(_, g)| is(g, Pipeline::Dec)) {
        let mut matched = false;
        for (bi, base) in groups.iter().enumerate().filter(|(_, g)| is(g, Pipeline::Baseline)) {
            if !shared_params_equal(dec, base) {
                continue;
            }
            matched = true;
            let pairs = pair(dec, base);
            let diffs: Vec<f64> = pairs.iter().map(|p| p.dec_value - p.baseline_value).collect();
            comparisons.push(Comparison {
                dec: di,
                baseline: bi,
                t: paired_t_test(&diffs),
                wilcoxon: wilcoxon_signed_rank(&diffs),
                pairs,
            });
        }
        if !matched {
            unmatched.push(di);
        }
    }
    (comparisons, unmatched)
}

fn shared_params_equal(dec: &Group, base: &Group) -> bool {
    let registered = SPECS.iter().filter(|s| Pipeline::Dec.reads(s) && Pipeline::Baseline.reads(s)).all(|s| {
        match (dec.param(s.name), base.param(s.name)) {
            (Some(a), Some(b)) => same_value(&a, &b),
            // A parameter the group's own trials disagree on cannot be matched.
            _ => false,
        }
    });
    let unregistered = dec
        .params
        .iter()
        .filter(|(k, _)| decsweep_api::params::spec(k).is_err())
        .all(|(k, v)| base.params.get(k).is_none_or(|w| same_value(v, w)));
    registered && unregistered
}

/// The seeds both groups ran, with one trial from each side.
fn pair<'a>(dec: &Group<'a>, base: &Group<'a>) -> Vec<Pair<'a>> {
    let by_seed = |g: &Group<'a>| {
        let mut m: BTreeMap<u64, (&'a TrialRow, f64)> = BTreeMap::new();
        // `values` is in (seed, id) order, so the first trial of a seed is kept.
        for (t, x) in g.values(METRIC) {
            if let Some((kept, _)) = m.get(&t.seed) {
                warn!(
                    config_id = g.config_id,
                    seed = t.seed,
                    kept = kept.id,
                    ignored = t.id,
                    "two trials share a seed; pairing the first"
                );
            } else {
                m.insert(t.seed, (t, x));
            }
        }
        m
    };
    let d = by_seed(dec);
    let b = by_seed(base);
    d.iter()
        .filter_map(|(seed, (dt, dx))| {
            b.get(seed).map(|(bt, bx)| Pair { seed: *seed, dec: dt, baseline: bt, dec_value: *dx, baseline_value: *bx })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::group;
    use crate::testutil::{trial, TrialSpec};
    use crate::{ReportOptions, TrialStatus};
    use decsweep_api::ParamValue;

    fn t(id: i64, pipeline: &'static str, config: &'static str, seed: u64, lf: f64, acc: f64) -> crate::TrialRow {
        trial(TrialSpec { id, pipeline, config, seed, lf, acc: Some(acc), ..Default::default() })
    }

    #[test]
    fn dec_meets_the_baseline_with_equal_shared_parameters_on_common_seeds() {
        let mut trials = vec![
            t(1, "baseline", "b2", 0, 0.2, 0.60),
            t(2, "baseline", "b2", 1, 0.2, 0.62),
            t(3, "baseline", "b2", 2, 0.2, 0.64),
            t(4, "baseline", "b4", 0, 0.4, 0.70),
            t(5, "dec", "d2", 0, 0.2, 0.65),
            t(6, "dec", "d2", 1, 0.2, 0.66),
            t(7, "dec", "d2", 3, 0.2, 0.99), // seed 3: no baseline partner
            t(8, "dec", "d9", 0, 0.9, 0.80), // no baseline at 0.9
        ];
        trials.push(trial(TrialSpec {
            id: 9,
            pipeline: "dec",
            config: "d2",
            seed: 2,
            lf: 0.2,
            status: TrialStatus::Failed,
            ..Default::default()
        }));
        // dec-only parameters do not stop the match.
        for tr in trials.iter_mut().filter(|t| t.pipeline == "dec") {
            tr.params.insert("beta".into(), ParamValue::Float(0.5));
        }
        let groups = group(&trials, &ReportOptions::default());
        let (cmps, unmatched) = compare(&groups);
        assert_eq!(cmps.len(), 1);
        let c = &cmps[0];
        assert_eq!((groups[c.dec].config_id, groups[c.baseline].config_id), ("d2", "b2"));
        let pairs: Vec<(u64, i64, i64)> = c.pairs.iter().map(|p| (p.seed, p.dec.id, p.baseline.id)).collect();
        assert_eq!(pairs, [(0, 5, 1), (1, 6, 2)]);
        // d = 0.05, 0.04: mean 0.045.
        assert!((c.t.mean.unwrap() - 0.045).abs() < 1e-12);
        assert_eq!(unmatched.iter().map(|i| groups[*i].config_id).collect::<Vec<_>>(), ["d9"]);
    }

    #[test]
    fn a_missing_registered_parameter_counts_as_its_default() {
        let mut b = t(1, "baseline", "b", 0, 0.4, 0.7);
        b.params.clear(); // label_fraction left out → 0.4
        let d = t(2, "dec", "d", 0, 0.4, 0.72);
        let mut d_other = t(3, "dec", "e", 0, 0.4, 0.72);
        d_other.params.insert("seq_len".into(), ParamValue::Int(50));
        let trials = [b, d, d_other];
        let groups = group(&trials, &ReportOptions::default());
        let (cmps, unmatched) = compare(&groups);
        assert_eq!(cmps.len(), 1);
        assert_eq!(groups[cmps[0].dec].config_id, "d");
        assert_eq!(unmatched.iter().map(|i| groups[*i].label.as_str()).collect::<Vec<_>>(), ["dec (seq_len=50)"]);
        assert_eq!(groups[cmps[0].dec].label, "dec (seq_len=30)");
    }
}
