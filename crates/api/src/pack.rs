//! The pack key: what trials must agree on to be trained together as one stacked model.
//!
//! Two trials are packable when they run the same pipeline on the same dataset and agree on
//! every [`PackRole::Key`] parameter their pipeline reads; they may differ in the seed and in
//! every [`PackRole::PerMember`] parameter. A parameter the pipeline never reads (the baseline's
//! AE settings) does not split packs. `command` trials run an opaque program and are never
//! packed. This module is the only place the key is computed: the coordinator groups leases by
//! it and the worker checks a lease answer against it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::params::{PackRole, Params, Pipeline, SPECS};
use crate::wire::TrialJob;

/// The most trials one pack may hold: what a worker's `--pack` and a spec's `[resources] pack`
/// accept, and what the coordinator grants at most (a bound on one lease answer's size).
pub const MAX_PACK: u32 = 64;

/// How far a member's numbers may move with the size of its pack, relative to their magnitude:
/// its dropout masks and its arithmetic are its own, but libtorch's batched products and
/// reductions round differently for different K (measured up to 1.2e-5 in the packed engine's
/// tests, which assert this bound). `decsweep reproduce` reruns a packed trial alone within it.
pub const PACK_SIZE_TOLERANCE: f64 = 1e-4;

/// Reads a `--pack K` flag: a whole number of trials from 1 to [`MAX_PACK`]. The message is
/// what the flag parser prints after the flag's name.
pub fn parse_pack(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(k) if (1..=MAX_PACK).contains(&k) => Ok(k),
        Ok(k) => Err(format!("expected a number of trials from 1 to {MAX_PACK} trained together, got {k}")),
        Err(_) => Err(format!("expected a whole number of trials from 1 to {MAX_PACK}, got `{text}`")),
    }
}

/// What the trials of one pack share. Values are kept as their canonical text (the registry's
/// `Display`), so keys compare exactly and print readably.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PackKey {
    pub pipeline: Pipeline,
    /// The dataset's SHA-256.
    pub dataset: String,
    /// Every key parameter the pipeline reads, `name → value`, in name order.
    pub params: BTreeMap<&'static str, String>,
}

impl PackKey {
    /// The key of a model trial.
    pub fn of(pipeline: Pipeline, dataset: &str, params: &Params) -> PackKey {
        let params = SPECS
            .iter()
            .filter(|spec| spec.pack == PackRole::Key && pipeline.reads(spec))
            .map(|spec| (spec.name, params.get(spec.name).expect("registered").to_string()))
            .collect();
        PackKey { pipeline, dataset: dataset.to_string(), params }
    }

    /// The key of a leased job; `None` for a `command` trial, which is never packed.
    pub fn of_job(job: &TrialJob, dataset: &str) -> Option<PackKey> {
        match job {
            TrialJob::Model { pipeline, params } => Some(PackKey::of(*pipeline, dataset, params)),
            TrialJob::Command { .. } => None,
        }
    }

    /// The first key parameter two keys disagree on, as `name: a ≠ b` (the pipeline or the
    /// dataset when those differ), for error messages; `None` when the keys are equal.
    pub fn difference(&self, other: &PackKey) -> Option<String> {
        if self.pipeline != other.pipeline {
            return Some(format!("pipeline: {} ≠ {}", self.pipeline, other.pipeline));
        }
        if self.dataset != other.dataset {
            return Some(format!("dataset: {} ≠ {}", short(&self.dataset), short(&other.dataset)));
        }
        self.params
            .iter()
            .zip(&other.params)
            .find(|((_, a), (_, b))| a != b)
            .map(|((name, a), (_, b))| format!("{name}: {a} ≠ {b}"))
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

impl fmt::Display for PackKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.pipeline, short(&self.dataset))?;
        for (name, value) in &self.params {
            write!(f, " {name}={value}")?;
        }
        Ok(())
    }
}

/// The members of a pack as `decsweep-worker train-pack --pack-file` reads them (written by the
/// worker's agent, and by `decsweep reproduce` for a pack of one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackFile {
    /// The coordinator's pack id, recorded in each member's manifest.
    #[serde(default)]
    pub pack_id: Option<String>,
    pub members: Vec<PackFileMember>,
}

/// One trial of a pack file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackFileMember {
    /// The coordinator's trial id (0 outside a coordinator), recorded in the manifests.
    #[serde(default)]
    pub trial_id: i64,
    pub seed: u64,
    pub params: Params,
    /// The member's output directory (created).
    pub out: PathBuf,
    /// The member's trial checkpoint file: resumed from when valid, saved to as `train
    /// --checkpoint` does.
    #[serde(default)]
    pub checkpoint: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{Domain, ParamSpec, ParamValue, Stage};

    /// A valid value of `spec` other than its default.
    fn another_value(spec: &ParamSpec, default: &ParamValue) -> ParamValue {
        match (spec.domain, default) {
            (Domain::Float { max, .. }, ParamValue::Float(x)) => {
                let up = if *x == 0.0 { 0.05 } else { x * 1.5 };
                ParamValue::Float(if up <= max { up } else { x / 2.0 })
            }
            (Domain::Int { max, .. }, ParamValue::Int(i)) => ParamValue::Int(if *i < max { i + 1 } else { i - 1 }),
            (Domain::Choice(words), ParamValue::Str(s)) => {
                ParamValue::Str(words.iter().find(|w| *w != s).expect("a choice of at least two").to_string())
            }
            other => panic!("{}: default {other:?} does not fit its domain", spec.name),
        }
    }

    /// Over the whole registry: changing one parameter changes the key exactly when the
    /// parameter is a key parameter the pipeline reads.
    #[test]
    fn every_parameter_splits_packs_exactly_when_it_is_a_key_parameter() {
        let base = Params::default();
        for pipeline in Pipeline::ALL {
            let key = PackKey::of(pipeline, "abc", &base);
            for spec in SPECS {
                let mut changed = base.clone();
                changed.set(spec.name, &another_value(spec, &base.get(spec.name).unwrap())).unwrap();
                let differs = PackKey::of(pipeline, "abc", &changed) != key;
                let expected = spec.pack == PackRole::Key && pipeline.reads(spec);
                assert_eq!(differs, expected, "{pipeline}: {} ({:?})", spec.name, spec.pack);
                if differs {
                    let why = key.difference(&PackKey::of(pipeline, "abc", &changed)).unwrap();
                    assert!(why.starts_with(spec.name), "{why}");
                }
            }
        }
    }

    /// Shapes and schedules are integers or choices, and everything the data stage reads lays
    /// out the rows every member shares: none of them may differ inside a pack.
    #[test]
    fn shapes_schedules_and_data_layout_belong_to_the_key() {
        for spec in SPECS {
            let shaped = matches!(spec.domain, Domain::Int { .. } | Domain::Choice(_));
            if shaped || spec.stages.contains(&Stage::Data) {
                assert_eq!(spec.pack, PackRole::Key, "{} shapes the stacked model or its data", spec.name);
            }
        }
        let members: Vec<&str> = SPECS.iter().filter(|s| s.pack == PackRole::PerMember).map(|s| s.name).collect();
        assert_eq!(
            members,
            [
                "label_fraction",
                "dropout",
                "dof",
                "alpha_ae",
                "gamma_ae",
                "cluster_weight",
                "alpha",
                "beta",
                "gamma",
                "lr_ae",
                "lr_dec",
                "lr_ft",
                "weight_decay"
            ],
            "the scalars the packed engine keeps per member"
        );
    }

    #[test]
    fn pack_flags_take_whole_numbers_within_bounds() {
        assert_eq!(parse_pack("4"), Ok(4));
        assert_eq!(parse_pack("64"), Ok(64));
        assert!(parse_pack("0").unwrap_err().contains("from 1 to 64"));
        assert!(parse_pack("65").unwrap_err().contains("got 65"));
        assert!(parse_pack("four").unwrap_err().contains("got `four`"));
        assert!(parse_pack("-1").is_err() && parse_pack("2.5").is_err());
    }

    #[test]
    fn pipeline_dataset_and_command_jobs() {
        let p = Params::default();
        assert_ne!(PackKey::of(Pipeline::Dec, "abc", &p), PackKey::of(Pipeline::Baseline, "abc", &p));
        let other_data = PackKey::of(Pipeline::Dec, "abd", &p);
        let why = PackKey::of(Pipeline::Dec, "abc", &p).difference(&other_data).unwrap();
        assert_eq!(why, "dataset: abc ≠ abd");
        let job = TrialJob::Model { pipeline: Pipeline::Dec, params: p.clone() };
        assert_eq!(PackKey::of_job(&job, "abc"), Some(PackKey::of(Pipeline::Dec, "abc", &p)));
        let command =
            TrialJob::Command { argv: vec!["true".into()], env: BTreeMap::new(), workdir: None, stop_grace_s: 3.0 };
        assert_eq!(PackKey::of_job(&command, "abc"), None);
        let text = PackKey::of(Pipeline::Baseline, "0123456789abcdef", &p).to_string();
        assert!(text.starts_with("baseline on 0123456789ab ") && text.contains(" seq_len=30"), "{text}");
        assert!(!text.contains("lr_ft"), "per-member parameters are not in the key: {text}");
    }
}
