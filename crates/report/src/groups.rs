//! Grouping trials into configurations and naming them.
//!
//! A group is every trial with the same `(pipeline, config_id)`: the seeds of one configuration.
//! Statistics use only the group's *aggregated* trials: completed ones, plus pruned ones when
//! [`crate::ReportOptions::include_pruned`] is set. Pruned trials stop early by design and their
//! metrics describe a model nobody would keep, so by default they are counted but not averaged;
//! failed, pending and running trials have no final metrics and are only counted.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use decsweep_api::labels::{self, Configuration};
use decsweep_api::ParamValue;
use tracing::warn;

use crate::columns::rows_metric;
use crate::stats::Summary;
use crate::{ReportOptions, TrialRow, TrialStatus};

/// The trials of one configuration.
#[derive(Clone, Debug)]
pub(crate) struct Group<'a> {
    pub pipeline: &'a str,
    pub config_id: &'a str,
    /// The parameter values all of the group's trials agree on.
    pub params: BTreeMap<String, ParamValue>,
    /// Parameters the group's trials disagree on (a store bug): reported as unknown.
    pub disputed: BTreeSet<String>,
    /// The spec's `[[configs]]` label its trials carry, when they agree on one.
    pub spec_label: Option<&'a str>,
    /// Every trial of the group, by (seed, id).
    pub trials: Vec<&'a TrialRow>,
    /// The trials statistics are computed from, by (seed, id).
    pub aggregated: Vec<&'a TrialRow>,
    /// Readable name: see [`decsweep_api::labels`].
    pub label: String,
}

impl<'a> Group<'a> {
    pub(crate) fn count(&self, status: TrialStatus) -> usize {
        self.trials.iter().filter(|t| t.status == status).count()
    }

    /// The finite values of `metric` over the aggregated trials, with the trials they came from.
    pub(crate) fn values(&self, metric: &str) -> Vec<(&'a TrialRow, f64)> {
        self.aggregated
            .iter()
            .filter_map(|t| t.metrics.get(metric).filter(|x| x.is_finite()).map(|x| (*t, *x)))
            .collect()
    }

    /// Statistics of `metric` over the aggregated trials, with the interval method that suits
    /// it (logit-t for accuracy and F1; with no spread, Wilson over the rows each trial was
    /// scored on, its `n` or `test_n`).
    pub(crate) fn summary(&self, metric: &str) -> Summary {
        let rows = rows_metric(metric);
        Summary::of_scored(metric, self.values(metric).into_iter().map(|(t, x)| (x, t.metrics.get(rows).copied())))
    }

    /// A parameter's value, falling back to the registry default for a registered parameter the
    /// row leaves out (the store may record only what a spec set explicitly).
    pub(crate) fn param(&self, name: &str) -> Option<ParamValue> {
        self.configuration().value(name)
    }

    /// The group as the labelling rules see it.
    pub(crate) fn configuration(&self) -> Configuration<'_> {
        Configuration::new(self.pipeline, self.config_id, &self.params)
            .with_spec_label(self.spec_label)
            .with_disputed(&self.disputed)
    }
}

/// Groups `trials` by (pipeline, config_id), ordered by pipeline, then parameter values, then
/// config id, so a label-fraction sweep reads top to bottom in increasing fraction.
pub(crate) fn group<'a>(trials: &'a [TrialRow], opts: &ReportOptions) -> Vec<Group<'a>> {
    let mut by_key: BTreeMap<(&str, &str), Vec<&TrialRow>> = BTreeMap::new();
    for t in trials {
        by_key.entry((t.pipeline.as_str(), t.config_id.as_str())).or_default().push(t);
    }
    let mut groups: Vec<Group> = by_key
        .into_iter()
        .map(|((pipeline, config_id), mut members)| {
            members.sort_by_key(|t| (t.seed, t.id));
            let aggregated = members.iter().copied().filter(|t| opts.aggregates(t.status)).collect();
            let (params, disputed) = agreed_params(pipeline, config_id, &members);
            let first_label = members.first().and_then(|t| t.spec_label.as_deref());
            let spec_label = first_label.filter(|l| members.iter().all(|t| t.spec_label.as_deref() == Some(*l)));
            Group {
                pipeline,
                config_id,
                params,
                disputed,
                spec_label,
                trials: members,
                aggregated,
                label: String::new(),
            }
        })
        .collect();
    groups.sort_by(|a, b| {
        a.pipeline
            .cmp(b.pipeline)
            .then_with(|| cmp_params(&a.params, &b.params))
            .then_with(|| a.config_id.cmp(b.config_id))
    });
    label(&mut groups);
    groups
}

/// The parameters every member agrees on. Members of one configuration should agree on all of
/// them; a disagreement means the store's config ids are wrong, which is logged, and the
/// parameter is left out of the group rather than reported with one member's value.
fn agreed_params(
    pipeline: &str,
    config_id: &str,
    members: &[&TrialRow],
) -> (BTreeMap<String, ParamValue>, BTreeSet<String>) {
    let mut agreed = BTreeMap::new();
    let mut disputed = BTreeSet::new();
    let keys: BTreeSet<&String> = members.iter().flat_map(|t| t.params.keys()).collect();
    for k in keys {
        let mut values = members.iter().map(|t| t.params.get(k));
        let first = values.next().flatten();
        match first {
            Some(v) if values.all(|w| w.is_some_and(|w| v.same_as(w))) => {
                agreed.insert(k.clone(), v.clone());
            }
            _ => {
                warn!(pipeline, config_id, param = k.as_str(), "trials of one configuration disagree on a parameter");
                disputed.insert(k.clone());
            }
        }
    }
    (agreed, disputed)
}

fn cmp_params(a: &BTreeMap<String, ParamValue>, b: &BTreeMap<String, ParamValue>) -> Ordering {
    for ((ka, va), (kb, vb)) in a.iter().zip(b) {
        let o = ka.cmp(kb).then_with(|| va.cmp_readable(vb));
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

/// Parameters that take at least two different values across the groups whose pipeline reads
/// them (a registered parameter a group leaves out counts as its default).
pub(crate) fn varying_params(groups: &[Group]) -> BTreeSet<String> {
    let configs: Vec<Configuration> = groups.iter().map(Group::configuration).collect();
    labels::varying(&configs).into_iter().collect()
}

/// Names each group by [`labels::label_all`].
fn label(groups: &mut [Group]) {
    let configs: Vec<Configuration> = groups.iter().map(Group::configuration).collect();
    let names = labels::label_all(&configs);
    for (g, name) in groups.iter_mut().zip(names) {
        g.label = name;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{trial, TrialSpec};

    #[test]
    fn groups_by_pipeline_and_config_in_a_readable_order() {
        let trials = vec![
            trial(TrialSpec {
                id: 1,
                pipeline: "dec",
                config: "d8",
                seed: 1,
                lf: 0.8,
                acc: Some(0.8),
                ..Default::default()
            }),
            trial(TrialSpec {
                id: 2,
                pipeline: "dec",
                config: "d2",
                seed: 0,
                lf: 0.2,
                acc: Some(0.7),
                ..Default::default()
            }),
            trial(TrialSpec {
                id: 3,
                pipeline: "baseline",
                config: "b2",
                seed: 0,
                lf: 0.2,
                acc: Some(0.6),
                ..Default::default()
            }),
            trial(TrialSpec {
                id: 4,
                pipeline: "dec",
                config: "d8",
                seed: 0,
                lf: 0.8,
                acc: Some(0.9),
                ..Default::default()
            }),
            trial(TrialSpec {
                id: 5,
                pipeline: "dec",
                config: "d8",
                seed: 2,
                lf: 0.8,
                status: TrialStatus::Pruned,
                acc: Some(0.1),
            }),
        ];
        let groups = group(&trials, &ReportOptions::default());
        let keys: Vec<_> = groups.iter().map(|g| (g.pipeline, g.config_id)).collect();
        assert_eq!(keys, [("baseline", "b2"), ("dec", "d2"), ("dec", "d8")]);
        let d8 = &groups[2];
        assert_eq!(d8.trials.iter().map(|t| t.id).collect::<Vec<_>>(), [4, 1, 5], "by seed");
        assert_eq!(d8.aggregated.iter().map(|t| t.id).collect::<Vec<_>>(), [4, 1], "pruned left out");
        assert_eq!(d8.count(TrialStatus::Pruned), 1);
        assert_eq!(d8.summary("accuracy").n, 2);
        assert_eq!(d8.label, "dec lf=0.8");
        assert_eq!(groups[0].label, "baseline lf=0.2");

        let with_pruned = group(&trials, &ReportOptions { include_pruned: true, ..Default::default() });
        assert_eq!(with_pruned[2].aggregated.len(), 3);
    }

    #[test]
    fn labels_show_only_varying_parameters_the_pipeline_reads() {
        let mut a = trial(TrialSpec { id: 1, pipeline: "dec", config: "a", ..Default::default() });
        a.params.insert("beta".into(), ParamValue::Float(0.5));
        let mut b = trial(TrialSpec { id: 2, pipeline: "dec", config: "b", ..Default::default() });
        b.params.insert("beta".into(), ParamValue::Float(0.0));
        // The baseline row carries beta too (a store may record every parameter) but never reads it.
        let mut c = trial(TrialSpec { id: 3, pipeline: "baseline", config: "c", ..Default::default() });
        c.params.insert("beta".into(), ParamValue::Float(0.5));
        let trials = [a, b, c];
        let groups = group(&trials, &ReportOptions::default());
        let labels: Vec<&str> = groups.iter().map(|g| g.label.as_str()).collect();
        assert_eq!(labels, ["baseline", "dec beta=0", "dec beta=0.5"]);
    }

    #[test]
    fn identical_labels_are_told_apart_by_config_id() {
        let trials = [
            trial(TrialSpec { id: 1, pipeline: "dec", config: "x", ..Default::default() }),
            trial(TrialSpec { id: 2, pipeline: "dec", config: "y", ..Default::default() }),
        ];
        let groups = group(&trials, &ReportOptions::default());
        assert_eq!(groups[0].label, "dec #x");
        assert_eq!(groups[1].label, "dec #y");
    }

    #[test]
    fn a_spec_label_its_trials_agree_on_names_the_configuration() {
        let named = |id, config: &'static str, lf, label: Option<&str>| {
            let mut t = trial(TrialSpec { id, pipeline: "dec", config, lf, seed: id as u64, ..Default::default() });
            t.spec_label = label.map(str::to_string);
            t
        };
        let trials = [
            named(1, "full", 1.0, Some("DEC (full dataset)")),
            named(2, "full", 1.0, Some("DEC (full dataset)")),
            named(3, "forty", 0.4, None),
        ];
        let groups = group(&trials, &ReportOptions::default());
        let labels: Vec<&str> = groups.iter().map(|g| g.label.as_str()).collect();
        assert_eq!(labels, ["lf=0.4", "DEC (full dataset)"]);
    }

    #[test]
    fn disagreeing_members_drop_the_parameter() {
        let a = trial(TrialSpec { id: 1, pipeline: "dec", config: "x", lf: 0.2, ..Default::default() });
        let b = trial(TrialSpec { id: 2, pipeline: "dec", config: "x", lf: 0.4, seed: 1, ..Default::default() });
        let trials = [a, b];
        let groups = group(&trials, &ReportOptions::default());
        assert!(!groups[0].params.contains_key("label_fraction"));
        assert!(groups[0].disputed.contains("label_fraction"));
        // Neither value, nor the registry default, is claimed for it.
        assert_eq!(groups[0].param("label_fraction"), None);
        assert_eq!(groups[0].param("seq_len"), Some(ParamValue::Int(30)), "left out → default");
    }
}
