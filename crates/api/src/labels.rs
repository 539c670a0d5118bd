//! Readable names of a study's configurations, e.g. `dec lf=0.1 lr_ft=5e-4`.
//!
//! A configuration is identified by its `config_id` (a hash of its pipeline and parameters);
//! people need a name. [`label_all`] names every configuration of a study from the study's set of
//! configurations alone:
//!
//! - **What is shown.** The parameters that vary within the study (take two or more values
//!   across the configurations whose pipeline reads them; a registered parameter a configuration
//!   leaves out counts as its default), in registry order, then unregistered ones (a `command`
//!   pipeline's) by name, each as `short=value` with the registry's short name
//!   ([`crate::params::short_name`]). A configuration shows only the ones its pipeline reads.
//! - **The pipeline** leads the label when the study has more than one, or when nothing else
//!   would be shown; a study of one pipeline and one swept parameter `x` gives `x=1`, `x=2`.
//! - **A spec's own name.** A `[[configs]]` entry's `label` leads instead of the pipeline, and
//!   only the parameters that vary among the configurations sharing that name follow (the entry
//!   crossed with a `[space]`): the spec already chose how to tell its entries apart.
//! - **Values** are compact: integers as they are, numbers rounded to 4 significant digits in
//!   the shorter of decimal and exponent form (`0.1`, `0.02`, `5e-4`, `1.235e-4`), words as
//!   they are; `?` where the configuration's trials disagree on the value. A parameter a
//!   configuration was never given (and has no registry default) is left out of its label.
//! - **Collisions.** Configurations that would still share a label (values equal after rounding,
//!   or spec names that repeat) get ` #` and the shortest prefix (at least 6 characters) of their
//!   `config_id` that tells them apart.
//!
//! The labels depend on nothing but the set of configurations: not on their order, database ids,
//! or which trials finished, so the report files, the dashboard and `decsweep status` name a
//! configuration alike on every run. In an adaptive study a configuration proposed later can
//! still change an earlier one's label (a parameter that starts to vary, a new collision).
//!
//! This lives in the API crate because every side that names configurations (the report, the
//! dashboard through the coordinator's queries, the CLI through `/v1`) already depends on it, and
//! the registry's short names and "which pipeline reads what" live here.

use std::collections::{BTreeMap, BTreeSet};

use crate::params::{self, ParamValue, Params, Pipeline};

/// One configuration of a study, as [`label_all`] reads it.
#[derive(Clone, Copy, Debug)]
pub struct Configuration<'a> {
    /// `baseline`, `dec` or `command` (any other name is taken to read every parameter given).
    pub pipeline: &'a str,
    pub config_id: &'a str,
    /// The `label` of the spec's `[[configs]]` entry, when it has one.
    pub spec_label: Option<&'a str>,
    /// The parameter values of the configuration's trials.
    pub params: &'a BTreeMap<String, ParamValue>,
    /// Parameters its trials disagree on (a store fault the report warns about): shown as `?`.
    pub disputed: &'a BTreeSet<String>,
}

/// No disputed parameters.
static NONE_DISPUTED: BTreeSet<String> = BTreeSet::new();

impl<'a> Configuration<'a> {
    /// A configuration without a spec label whose parameters all agree.
    pub fn new(pipeline: &'a str, config_id: &'a str, params: &'a BTreeMap<String, ParamValue>) -> Self {
        Configuration { pipeline, config_id, spec_label: None, params, disputed: &NONE_DISPUTED }
    }

    /// This configuration named `label` by its spec (`None` keeps it unnamed).
    pub fn with_spec_label(self, label: Option<&'a str>) -> Self {
        Configuration { spec_label: label, ..self }
    }

    /// This configuration with parameters whose value is unknown.
    pub fn with_disputed(self, disputed: &'a BTreeSet<String>) -> Self {
        Configuration { disputed, ..self }
    }

    /// The value of `name`: the configuration's own, else the registry default for a
    /// registered parameter of a known pipeline (the store may record only what a spec set);
    /// `None` when disputed or unknown.
    pub fn value(&self, name: &str) -> Option<ParamValue> {
        if self.disputed.contains(name) {
            return None;
        }
        if let Some(v) = self.params.get(name) {
            return Some(v.clone());
        }
        self.pipeline.parse::<Pipeline>().ok().and_then(|_| Params::default().get(name).ok())
    }

    /// Whether the configuration's pipeline reads `name`.
    pub fn reads(&self, name: &str) -> bool {
        pipeline_reads(self.pipeline, name)
    }
}

/// Whether `pipeline` reads parameter `name`. Pipelines or parameters the registry does not know
/// (a `command` pipeline) are taken to read everything they were given.
pub fn pipeline_reads(pipeline: &str, name: &str) -> bool {
    match (pipeline.parse::<Pipeline>(), params::spec(name)) {
        (Ok(p), Ok(spec)) => p.reads(spec),
        _ => true,
    }
}

/// The parameters that take two or more values (a disputed one counting as its own value)
/// across the configurations whose pipeline reads them, in label order: registry order, then
/// unregistered names alphabetically.
pub fn varying(configs: &[Configuration]) -> Vec<String> {
    let names: BTreeSet<&str> =
        configs.iter().flat_map(|c| c.params.keys().chain(c.disputed.iter())).map(String::as_str).collect();
    let mut out: Vec<String> = names
        .into_iter()
        .filter(|name| {
            let mut seen: Vec<Option<ParamValue>> = Vec::new();
            for c in configs.iter().filter(|c| c.reads(name)) {
                let v = c.value(name);
                if !seen.iter().any(|s| same(s, &v)) {
                    seen.push(v);
                }
            }
            seen.len() > 1
        })
        .map(str::to_string)
        .collect();
    out.sort_by_key(|name| label_rank(name));
    out
}

/// Sort key of a parameter in a label: its registry position, unregistered names after.
fn label_rank(name: &str) -> (usize, String) {
    let position = params::SPECS.iter().position(|s| s.name == name).unwrap_or(params::SPECS.len());
    (position, name.to_string())
}

fn same(a: &Option<ParamValue>, b: &Option<ParamValue>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.same_as(b),
        (None, None) => true,
        _ => false,
    }
}

/// The label of each configuration, in the order given (see the module docs for the rules).
pub fn label_all(configs: &[Configuration]) -> Vec<String> {
    let mut labels = describe_all(configs);
    tell_apart(configs, &mut labels);
    labels
}

/// [`label_all`] without the suffix that tells colliding labels apart: configurations that
/// differ only in what was left out of them share a description. A plot that puts one
/// parameter on its x axis describes its lines this way, with that parameter removed.
pub fn describe_all(configs: &[Configuration]) -> Vec<String> {
    let study_varying = varying(configs);
    let pipelines: BTreeSet<&str> = configs.iter().map(|c| c.pipeline).collect();
    // Configurations sharing a spec label are told apart by what varies among them alone.
    let mut by_spec_label: BTreeMap<&str, Vec<Configuration>> = BTreeMap::new();
    for c in configs {
        if let Some(name) = c.spec_label {
            by_spec_label.entry(name).or_default().push(*c);
        }
    }
    let spec_varying: BTreeMap<&str, Vec<String>> =
        by_spec_label.iter().map(|(name, members)| (*name, varying(members))).collect();

    configs
        .iter()
        .map(|c| {
            let shown = match c.spec_label {
                Some(name) => &spec_varying[name],
                None => &study_varying,
            };
            let parts: Vec<String> = shown
                .iter()
                .filter(|name| c.reads(name))
                .filter_map(|name| {
                    let value = match c.value(name) {
                        Some(v) => compact(&v),
                        None if c.disputed.contains(name.as_str()) => "?".to_string(),
                        // A parameter this configuration was never given (a `command` pipeline's).
                        None => return None,
                    };
                    Some(format!("{}={value}", params::short_name(name)))
                })
                .collect();
            let lead = match c.spec_label {
                Some(name) => Some(name),
                None if pipelines.len() > 1 || parts.is_empty() => Some(c.pipeline),
                None => None,
            };
            lead.into_iter().map(str::to_string).chain(parts).collect::<Vec<_>>().join(" ")
        })
        .collect()
}

/// Appends ` #<config id prefix>` to labels shared by several configurations.
fn tell_apart(configs: &[Configuration], labels: &mut [String]) {
    let mut holders: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, label) in labels.iter().enumerate() {
        holders.entry(label.clone()).or_default().push(i);
    }
    for members in holders.values().filter(|m| m.len() > 1) {
        let ids: Vec<&str> = members.iter().map(|&i| configs[i].config_id).collect();
        let longest = ids.iter().map(|id| id.chars().count()).max().unwrap_or(0);
        let distinct = |n: usize| {
            let prefixes: BTreeSet<String> = ids.iter().map(|id| id.chars().take(n).collect()).collect();
            prefixes.len() == ids.len()
        };
        let n = (6..=longest).find(|&n| distinct(n)).unwrap_or(longest);
        for &i in members {
            let prefix: String = configs[i].config_id.chars().take(n).collect();
            labels[i] = format!("{} #{prefix}", labels[i]);
        }
    }
}

/// Significant digits of a non-integral number in a label: enough to tell grid values apart,
/// few enough to read; exact values are in the CSV files.
const SIGNIFICANT: usize = 4;

/// A parameter value as a label shows it: integers exactly, other numbers to 4 significant
/// digits in the shorter of decimal and exponent form (a tie goes to decimal), words as they are.
pub fn compact(value: &ParamValue) -> String {
    match value {
        ParamValue::Int(i) => i.to_string(),
        ParamValue::Float(x) => compact_number(*x),
        ParamValue::Str(s) => s.clone(),
    }
}

fn compact_number(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    if x.fract() == 0.0 && x.abs() < 1e6 {
        // Whole numbers below a million print exactly (`-0` as `0`).
        return format!("{}", x as i64);
    }
    let sci = format!("{x:.prec$e}", prec = SIGNIFICANT - 1);
    let (mantissa, exponent) = sci.split_once('e').expect("`{:e}` always writes an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}` writes an integer exponent");
    let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
    let scientific = if exponent == 0 { mantissa.to_string() } else { format!("{mantissa}e{exponent}") };
    let fraction_digits = mantissa.split_once('.').map_or(0, |(_, f)| f.len()) as i32;
    let decimals = usize::try_from(fraction_digits - exponent).unwrap_or(0);
    let rounded: f64 = sci.parse().expect("`{:e}` output reads back");
    let decimal = format!("{rounded:.decimals$}");
    if decimal.len() <= scientific.len() {
        decimal
    } else {
        scientific
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, ParamValue)]) -> BTreeMap<String, ParamValue> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    fn f(x: f64) -> ParamValue {
        ParamValue::Float(x)
    }

    #[test]
    fn values_are_compact_without_float_noise() {
        let cases = [
            (0.1, "0.1"),
            (0.02, "0.02"),
            (0.0005, "5e-4"),
            (4e-5, "4e-5"),
            (0.001, "1e-3"),
            (0.01, "0.01"),
            (0.1 + 0.2, "0.3"),
            (1.0, "1"),
            (-0.0, "0"),
            (128.0, "128"),
            (2.5, "2.5"),
            (0.000123456789, "1.235e-4"),
            (0.23456789, "0.2346"),
            (12345.678, "12350"),
            (1.5e7, "1.5e7"),
            (-0.0005, "-5e-4"),
        ];
        for (x, want) in cases {
            assert_eq!(compact(&f(x)), want, "{x:?}");
        }
        assert_eq!(compact(&ParamValue::Int(128)), "128");
        assert_eq!(compact(&ParamValue::Str("resample".into())), "resample");
        assert_eq!(compact(&f(f64::NAN)), "NaN");
    }

    #[test]
    fn labels_show_the_pipeline_and_what_varies_in_short_names() {
        let grid: Vec<(String, BTreeMap<String, ParamValue>)> = ["baseline", "dec"]
            .iter()
            .flat_map(|p| {
                [0.1, 0.4].into_iter().flat_map(move |lf| {
                    [5e-4, 1e-3].into_iter().map(move |lr| {
                        (
                            p.to_string(),
                            params(&[("label_fraction", f(lf)), ("lr_ft", f(lr)), ("batch_size", ParamValue::Int(64))]),
                        )
                    })
                })
            })
            .collect();
        let ids: Vec<String> = (0..grid.len()).map(|i| format!("cfg{i}")).collect();
        let configs: Vec<Configuration> =
            grid.iter().zip(&ids).map(|((p, params), id)| Configuration::new(p, id, params)).collect();
        let labels = label_all(&configs);
        assert_eq!(labels[0], "baseline lf=0.1 lr_ft=5e-4");
        assert_eq!(labels[7], "dec lf=0.4 lr_ft=1e-3");
        assert!(labels.iter().all(|l| !l.contains("bs=")), "batch_size is the same everywhere: {labels:?}");
        assert_eq!(labels.iter().collect::<BTreeSet<_>>().len(), labels.len());
    }

    #[test]
    fn one_pipeline_and_one_swept_parameter_give_bare_assignments() {
        let (a, b) = (params(&[("x", ParamValue::Int(1))]), params(&[("x", ParamValue::Int(2))]));
        let configs = [Configuration::new("command", "h1", &a), Configuration::new("command", "h2", &b)];
        assert_eq!(label_all(&configs), ["x=1", "x=2"]);
    }

    #[test]
    fn labels_do_not_depend_on_the_order_of_configurations() {
        let sets: Vec<BTreeMap<String, ParamValue>> =
            [0.05, 0.1, 0.2].iter().map(|lf| params(&[("label_fraction", f(*lf)), ("lr_dec", f(lf * 1e-3))])).collect();
        let ids = ["c0", "c1", "c2"];
        let forward: Vec<Configuration> =
            sets.iter().zip(ids).map(|(p, id)| Configuration::new("dec", id, p)).collect();
        let mut backward = forward.clone();
        backward.reverse();
        let mut a = label_all(&forward);
        a.reverse();
        assert_eq!(a, label_all(&backward));
        assert_eq!(label_all(&forward)[0], "lf=0.05 lr_dec=5e-5");
    }

    #[test]
    fn colliding_labels_get_the_shortest_distinct_config_id_prefix() {
        // Equal after rounding to 4 significant digits.
        let (a, b, c) =
            (params(&[("lr_ft", f(1.00001e-4))]), params(&[("lr_ft", f(1.00002e-4))]), params(&[("lr_ft", f(3e-4))]));
        let configs = [
            Configuration::new("dec", "7ad7fe0e3ebf", &a),
            Configuration::new("dec", "7ad7fe1f0000", &b),
            Configuration::new("dec", "99", &c),
        ];
        assert_eq!(label_all(&configs), ["lr_ft=1e-4 #7ad7fe0", "lr_ft=1e-4 #7ad7fe1", "lr_ft=3e-4"]);

        // Nothing tells two configurations apart: six characters of each id do.
        let none = BTreeMap::new();
        let same = [Configuration::new("dec", "abcdef01", &none), Configuration::new("dec", "12345678", &none)];
        assert_eq!(label_all(&same), ["dec #abcdef", "dec #123456"]);
    }

    #[test]
    fn a_study_where_nothing_varies_is_named_by_its_pipelines() {
        let p = params(&[("label_fraction", f(0.4))]);
        assert_eq!(label_all(&[Configuration::new("dec", "a", &p)]), ["dec"]);
        let both = [Configuration::new("baseline", "a", &p), Configuration::new("dec", "b", &p)];
        assert_eq!(label_all(&both), ["baseline", "dec"]);
        assert!(label_all(&[]).is_empty());
    }

    #[test]
    fn only_parameters_the_pipeline_reads_are_shown_and_left_out_ones_are_defaults() {
        let (a, b, c) = (params(&[("beta", f(0.5))]), params(&[("beta", f(0.0))]), params(&[("beta", f(0.5))]));
        let configs = [
            Configuration::new("dec", "a", &a),
            Configuration::new("dec", "b", &b),
            Configuration::new("baseline", "c", &c),
        ];
        assert_eq!(label_all(&configs), ["dec beta=0.5", "dec beta=0", "baseline"]);

        // beta left out of the first is its default, 0.5: the same as the third.
        let none = BTreeMap::new();
        let configs = [Configuration::new("dec", "a", &none), Configuration::new("dec", "b", &b)];
        assert_eq!(label_all(&configs), ["beta=0.5", "beta=0"]);
        assert_eq!(
            varying(&[Configuration::new("dec", "a", &none), Configuration::new("dec", "c", &c)]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn spec_labels_lead_and_only_what_varies_among_their_namesakes_follows() {
        let lf = |x: f64, lr: f64| params(&[("label_fraction", f(x)), ("lr_ft", f(lr))]);
        let (a1, a2, b1) = (lf(0.4, 1e-4), lf(0.4, 2e-4), lf(1.0, 1e-4));
        let configs = [
            Configuration::new("baseline", "a1", &a1).with_spec_label(Some("Transformer (40%)")),
            Configuration::new("baseline", "a2", &a2).with_spec_label(Some("Transformer (40%)")),
            Configuration::new("dec", "b1", &b1).with_spec_label(Some("DEC (full)")),
        ];
        assert_eq!(label_all(&configs), ["Transformer (40%) lr_ft=1e-4", "Transformer (40%) lr_ft=2e-4", "DEC (full)"]);
    }

    #[test]
    fn disputed_values_show_as_unknown_and_count_as_varying() {
        let (a, b) = (params(&[("seq_len", ParamValue::Int(30))]), params(&[]));
        let disputed = BTreeSet::from(["seq_len".to_string()]);
        let configs = [Configuration::new("dec", "a", &a), Configuration::new("dec", "b", &b).with_disputed(&disputed)];
        assert_eq!(label_all(&configs), ["seq=30", "seq=?"]);
    }

    #[test]
    fn a_parameter_never_given_is_left_out() {
        let (a, b) =
            (params(&[("x", ParamValue::Int(1))]), params(&[("x", ParamValue::Int(1)), ("y", ParamValue::Int(2))]));
        let configs = [Configuration::new("command", "a", &a), Configuration::new("command", "b", &b)];
        assert_eq!(label_all(&configs), ["command", "y=2"]);
    }

    #[test]
    fn registered_parameters_come_in_registry_order_before_unregistered_ones() {
        let (a, b) = (
            params(&[("lr_ft", f(1e-4)), ("label_fraction", f(0.1)), ("zeta", ParamValue::Int(1))]),
            params(&[("lr_ft", f(2e-4)), ("label_fraction", f(0.2)), ("zeta", ParamValue::Int(2))]),
        );
        let configs = [Configuration::new("mystery", "a", &a), Configuration::new("mystery", "b", &b)];
        assert_eq!(label_all(&configs)[0], "lf=0.1 lr_ft=1e-4 zeta=1");
    }
}
