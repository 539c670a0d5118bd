//! Pairing each `dec` configuration with its `baseline` on the same seeds.
//!
//! A dec group is compared with every baseline group whose *shared* parameters are equal: those
//! both pipelines read according to the registry (label_fraction, seq_len, d_model, lr_ft, …).
//! A registered parameter a row leaves out counts as its default; unregistered parameters present
//! in both groups must be equal too. Pairs are the aggregated trials of both groups with the same
//! seed and a finite accuracy; seeds present on one side only are left out. The paired
//! difference is dec − baseline.
//!
//! A dec configuration that turns on an extension past the paper (a parameter the registry
//! reserves to the dec pipeline, [`decsweep_api::ParamSpec::only_in`], set away from its default:
//! DEC pseudo-labels) is also compared with the plain dec configuration, equal in every other
//! parameter with the extension's parameters at their defaults; that plain dec configuration then
//! stands on the "baseline" side of the comparison, so the difference is what the extension adds.
//!
//! The comparisons of one study are one family of tests: their paired-t p-values are
//! Holm-adjusted together, and so are their Wilcoxon p-values (see [`crate::stats::holm`]).
//! A comparison whose test could not be run (fewer than two pairs; for the t-test also
//! differences with no spread) is left out of its family and does not count in m.

use std::collections::BTreeMap;

use decsweep_api::{params::SPECS, Pipeline};
use tracing::warn;

use crate::groups::Group;
use crate::stats::{holm, paired_t_test, wilcoxon_signed_rank, PairedT, Wilcoxon};
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
    /// The paired-t p-value after Holm's correction over every comparison of the study.
    pub t_holm: Option<f64>,
    /// The Wilcoxon p-value after Holm's correction over every comparison of the study.
    pub wilcoxon_holm: Option<f64>,
}

impl Comparison<'_> {
    /// The Wilcoxon p-value, when there are at least two pairs: like the t-test, no test is
    /// reported from a single pair (its exact p-value could never be below 1).
    pub(crate) fn wilcoxon_p(&self) -> Option<f64> {
        (self.pairs.len() >= 2).then_some(self.wilcoxon.p_value)
    }
}

/// Every comparison of a study, with the size of each Holm family.
#[derive(Debug)]
pub(crate) struct Comparisons<'a> {
    pub list: Vec<Comparison<'a>>,
    /// Indices of the dec groups for which no baseline matched.
    pub unmatched: Vec<usize>,
    /// m of the Holm correction of the paired t-tests: comparisons with a t p-value.
    pub m_t: usize,
    /// m of the Holm correction of the Wilcoxon tests: comparisons with two or more pairs.
    pub m_wilcoxon: usize,
}

/// Every dec-vs-baseline comparison with Holm-adjusted p-values, and the dec groups for which
/// no baseline matched.
pub(crate) fn compare<'a>(groups: &[Group<'a>]) -> Comparisons<'a> {
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
            comparisons.push(comparison(di, bi, pair(dec, base)));
        }
        if !matched {
            unmatched.push(di);
        }
        if let Some(bi) = groups.iter().position(|g| is(g, Pipeline::Dec) && is_plain_dec_of(g, dec)) {
            comparisons.push(comparison(di, bi, pair(dec, &groups[bi])));
        }
    }
    let (t_holm, m_t) = holm(&comparisons.iter().map(|c| c.t.p_value).collect::<Vec<_>>());
    let (w_holm, m_wilcoxon) = holm(&comparisons.iter().map(Comparison::wilcoxon_p).collect::<Vec<_>>());
    for ((c, t), w) in comparisons.iter_mut().zip(t_holm).zip(w_holm) {
        c.t_holm = t;
        c.wilcoxon_holm = w;
    }
    Comparisons { list: comparisons, unmatched, m_t, m_wilcoxon }
}

fn comparison(dec: usize, baseline: usize, pairs: Vec<Pair<'_>>) -> Comparison<'_> {
    let diffs: Vec<f64> = pairs.iter().map(|p| p.dec_value - p.baseline_value).collect();
    Comparison {
        dec,
        baseline,
        t: paired_t_test(&diffs),
        wilcoxon: wilcoxon_signed_rank(&diffs),
        pairs,
        t_holm: None,
        wilcoxon_holm: None,
    }
}

/// Whether `plain` is `extended` with every dec-only parameter at its default, while `extended`
/// sets one of them otherwise; every other parameter, registered or not, equal.
fn is_plain_dec_of(plain: &Group, extended: &Group) -> bool {
    let defaults = decsweep_api::Params::default();
    let at_default =
        |g: &Group, name: &str| g.param(name).is_some_and(|v| v.same_as(&defaults.get(name).expect("registered")));
    let (extension, shared): (Vec<_>, Vec<_>) = SPECS.iter().partition(|s| s.only_in == Some(Pipeline::Dec));
    extension.iter().any(|s| !at_default(extended, s.name))
        && extension.iter().all(|s| at_default(plain, s.name))
        && shared.iter().all(|s| match (plain.param(s.name), extended.param(s.name)) {
            (Some(a), Some(b)) => a.same_as(&b),
            _ => false,
        })
        && unregistered_equal(plain, extended)
        && unregistered_equal(extended, plain)
}

/// Every unregistered parameter of `a` is equal in `b`, or absent there.
fn unregistered_equal(a: &Group, b: &Group) -> bool {
    a.params
        .iter()
        .filter(|(k, _)| decsweep_api::params::spec(k).is_err())
        .all(|(k, v)| b.params.get(k).is_none_or(|w| v.same_as(w)))
}

fn shared_params_equal(dec: &Group, base: &Group) -> bool {
    let registered = SPECS.iter().filter(|s| Pipeline::Dec.reads(s) && Pipeline::Baseline.reads(s)).all(|s| {
        match (dec.param(s.name), base.param(s.name)) {
            (Some(a), Some(b)) => a.same_as(&b),
            // A parameter the group's own trials disagree on cannot be matched.
            _ => false,
        }
    });
    registered && unregistered_equal(dec, base)
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
        let Comparisons { list: cmps, unmatched, m_t, .. } = compare(&groups);
        assert_eq!(cmps.len(), 1);
        let c = &cmps[0];
        // One comparison: Holm changes nothing.
        assert_eq!((m_t, c.t_holm), (1, c.t.p_value));
        assert_eq!((groups[c.dec].config_id, groups[c.baseline].config_id), ("d2", "b2"));
        let pairs: Vec<(u64, i64, i64)> = c.pairs.iter().map(|p| (p.seed, p.dec.id, p.baseline.id)).collect();
        assert_eq!(pairs, [(0, 5, 1), (1, 6, 2)]);
        // d = 0.05, 0.04: mean 0.045.
        assert!((c.t.mean.unwrap() - 0.045).abs() < 1e-12);
        assert_eq!(unmatched.iter().map(|i| groups[*i].config_id).collect::<Vec<_>>(), ["d9"]);
    }

    #[test]
    fn dec_with_pseudo_labels_meets_the_baseline_and_the_plain_dec() {
        let with = |mut t: crate::TrialRow, tau: f64| {
            t.params.insert("pseudo_threshold".into(), ParamValue::Float(tau));
            t
        };
        let mut trials = Vec::new();
        for seed in 0..3u64 {
            let id = 10 * seed as i64;
            let s = seed as f64 / 100.0;
            trials.push(t(id + 1, "baseline", "b", seed, 0.2, 0.60 + s));
            // The plain dec: τ = 0 written out in one group, left out (the default) in none.
            trials.push(with(t(id + 2, "dec", "d", seed, 0.2, 0.65 + s), 0.0));
            trials.push(with(t(id + 3, "dec", "p9", seed, 0.2, 0.70 + 2.0 * s), 0.9));
            // Another label fraction: its own plain dec, which the 0.2 groups must not pair with.
            trials.push(with(t(id + 4, "dec", "d4", seed, 0.4, 0.75), 0.0));
            // pseudo_weight changed, τ = 0: still an extension setting, paired with the plain dec.
            let mut w = with(t(id + 5, "dec", "w", seed, 0.2, 0.66 + s), 0.0);
            w.params.insert("pseudo_weight".into(), ParamValue::Float(0.5));
            trials.push(w);
        }
        let groups = group(&trials, &ReportOptions::default());
        let Comparisons { list: cmps, m_t, .. } = compare(&groups);
        let ids: Vec<(&str, &str)> =
            cmps.iter().map(|c| (groups[c.dec].config_id, groups[c.baseline].config_id)).collect();
        for expected in [("d", "b"), ("p9", "b"), ("p9", "d"), ("w", "b"), ("w", "d")] {
            assert!(ids.contains(&expected), "{expected:?} missing from {ids:?}");
        }
        assert!(!ids.iter().any(|(_, b)| *b == "d4" || *b == "p9" || *b == "w"), "{ids:?}");
        assert_eq!(cmps.len(), 5, "{ids:?}");
        // d − b, w − b and w − d are the same on every seed: no t-test, out of the Holm family.
        assert_eq!(m_t, 2, "{ids:?}");
        let p9_vs_d = cmps.iter().find(|c| (groups[c.dec].config_id, groups[c.baseline].config_id) == ("p9", "d"));
        // p9 − d per seed: 0.05, 0.06, 0.07.
        assert!((p9_vs_d.unwrap().t.mean.unwrap() - 0.06).abs() < 1e-12);
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
        let Comparisons { list: cmps, unmatched, .. } = compare(&groups);
        assert_eq!(cmps.len(), 1);
        assert_eq!(groups[cmps[0].dec].config_id, "d");
        assert_eq!(unmatched.iter().map(|i| groups[*i].label.as_str()).collect::<Vec<_>>(), ["dec seq=50"]);
        assert_eq!(groups[cmps[0].dec].label, "dec seq=30");
    }

    #[test]
    fn every_comparison_of_a_study_is_holm_adjusted_together() {
        // Three label fractions, three seeds each; dec − baseline per seed:
        //   lf 0.2: 0.05 0.04 0.06 → mean 0.05, sd 0.01, t = 0.05/(0.01/√3) = 8.660254, p₁
        //   lf 0.4: 0.01 0.03 0.02 → mean 0.02, sd 0.01, t = 3.464102, p₂
        //   lf 0.8: 0.00 0.01 −0.01 → t = 0, p₃ = 1
        // Holm: the smallest raw p ×3, the next ×2 (or the running max), the largest ×1.
        let mut trials = Vec::new();
        let mut id = 0;
        for (lf, diffs) in [(0.2, [0.05, 0.04, 0.06]), (0.4, [0.01, 0.03, 0.02]), (0.8, [0.0, 0.01, -0.01])] {
            for (seed, d) in diffs.into_iter().enumerate() {
                let base = 0.6 + 0.05 * seed as f64;
                id += 1;
                trials.push(t(id, "baseline", "b", seed as u64, lf, base));
                id += 1;
                trials.push(t(id, "dec", "d", seed as u64, lf, base + d));
            }
        }
        // Config ids must differ per label fraction for the groups to differ.
        for tr in trials.iter_mut() {
            let lf = tr.params["label_fraction"].as_f64().unwrap();
            tr.config_id = format!("{}-{lf}", tr.pipeline);
        }
        let groups = group(&trials, &ReportOptions::default());
        let cs = compare(&groups);
        assert_eq!((cs.list.len(), cs.m_t, cs.m_wilcoxon), (3, 3, 3));
        let raw: Vec<f64> = cs.list.iter().map(|c| c.t.p_value.unwrap()).collect();
        let holm: Vec<f64> = cs.list.iter().map(|c| c.t_holm.unwrap()).collect();
        assert!((cs.list[0].t.t.unwrap() - 8.660254).abs() < 1e-5);
        assert!((cs.list[1].t.t.unwrap() - 3.464102).abs() < 1e-5);
        assert_eq!(raw[2], 1.0);
        assert!(raw[0] < raw[1]);
        assert!((holm[0] - 3.0 * raw[0]).abs() < 1e-15);
        assert!((holm[1] - (2.0 * raw[1]).max(holm[0])).abs() < 1e-15);
        assert_eq!(holm[2], 1.0);
        // Wilcoxon with 3 pairs: all positive → exact p = 2/8 = 0.25 (twice); lf 0.8 has one zero
        // dropped, d = 0.01, −0.01 tie → normal approximation. Adjusted ≥ raw, monotone.
        for c in &cs.list {
            assert!(c.wilcoxon_holm.unwrap() >= c.wilcoxon.p_value);
        }
    }
}
