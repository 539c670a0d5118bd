//! Trials as a spec plans them, and the stable keys that identify them.

use std::collections::BTreeMap;

use decsweep_api::{ParamValue, Params, Pipeline};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::command::CommandSpec;

/// What a trial runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Job {
    /// One of decsweep's pipelines with every parameter resolved: defaults, then `[fixed]`, then
    /// the config's own, then the sampled point. Parameters the pipeline never reads are kept at
    /// their defaults, so the same computation always has the same `Params`.
    Model { pipeline: Pipeline, params: Params },
    /// An external program and the parameters it is given.
    Command { command: CommandSpec, params: BTreeMap<String, ParamValue> },
}

/// One trial of a sweep: a configuration and a seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialPlan {
    pub job: Job,
    pub seed: u64,
    /// The `label` of the `[[configs]]` entry this trial comes from (a table row's name).
    pub label: Option<String>,
    /// Stable hash of the pipeline and its parameters, without the seed: the seeds of one
    /// configuration share it, which is how reports group them.
    pub config_id: String,
    /// Stable hash of the pipeline, parameters and seed; unique within a study, so inserting the
    /// same plan twice can be recognised.
    pub trial_key: String,
}

impl TrialPlan {
    pub fn pipeline_name(&self) -> &'static str {
        match &self.job {
            Job::Model { pipeline, .. } => pipeline.name(),
            Job::Command { .. } => "command",
        }
    }

    /// The parameters as `name → value`: for our pipelines, only those the pipeline reads.
    pub fn param_map(&self) -> BTreeMap<String, ParamValue> {
        match &self.job {
            Job::Model { pipeline, params } => read_params(*pipeline, params),
            Job::Command { params, .. } => params.clone(),
        }
    }

    /// Builds a plan and its keys.
    pub(crate) fn new(job: Job, seed: u64, label: Option<String>) -> Self {
        let (pipeline, params) = match &job {
            Job::Model { pipeline, params } => (pipeline.name(), read_params(*pipeline, params)),
            Job::Command { params, .. } => ("command", params.clone()),
        };
        let config_id = config_id(pipeline, &params);
        let trial_key = trial_key(pipeline, &params, seed);
        TrialPlan { job, seed, label, config_id, trial_key }
    }
}

/// The parameters `pipeline` reads, by name.
fn read_params(pipeline: Pipeline, params: &Params) -> BTreeMap<String, ParamValue> {
    decsweep_api::SPECS
        .iter()
        .filter(|s| pipeline.reads(s))
        .filter_map(|s| params.get(s.name).ok().map(|v| (s.name.to_string(), v)))
        .collect()
}

/// Key of a configuration: pipeline and parameters, no seed.
pub fn config_id(pipeline: &str, params: &BTreeMap<String, ParamValue>) -> String {
    digest(&format!("{{\"params\":{},\"pipeline\":{}}}", canonical_params(params), json_string(pipeline)))
}

/// Key of a trial: pipeline, parameters and seed.
pub fn trial_key(pipeline: &str, params: &BTreeMap<String, ParamValue>, seed: u64) -> String {
    digest(&format!(
        "{{\"params\":{},\"pipeline\":{},\"seed\":{seed}}}",
        canonical_params(params),
        json_string(pipeline)
    ))
}

/// Canonical JSON of a parameter map, written by hand so the bytes hashed never depend on a
/// serializer's settings (a JSON map that keeps insertion order, say): keys sorted, no spaces,
/// integers as integers, floats in their shortest round-trip form with a `.0` or exponent
/// marking them as floats.
fn canonical_params(params: &BTreeMap<String, ParamValue>) -> String {
    let fields: Vec<String> =
        params.iter().map(|(k, v)| format!("{}:{}", json_string(k), canonical_value(v))).collect();
    format!("{{{}}}", fields.join(","))
}

fn canonical_value(v: &ParamValue) -> String {
    match v {
        ParamValue::Int(i) => i.to_string(),
        // Non-finite floats never pass validation; spell them out rather than emit invalid JSON.
        ParamValue::Float(x) if !x.is_finite() => json_string(&x.to_string()),
        ParamValue::Float(x) => serde_json::to_string(x).unwrap_or_else(|_| x.to_string()),
        ParamValue::Str(s) => json_string(s),
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{}\"", s.escape_default()))
}

/// First 128 bits of SHA-256 in hex: ample to keep the keys of one study apart, and short
/// enough for file names and log lines.
fn digest(text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    hash[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_is_sorted_and_typed() {
        let p = BTreeMap::from([
            ("b".to_string(), ParamValue::Float(1.0)),
            ("a".to_string(), ParamValue::Int(1)),
            ("c".to_string(), ParamValue::Str("x\"y".into())),
            ("d".to_string(), ParamValue::Float(1e-5)),
        ]);
        assert_eq!(canonical_params(&p), r#"{"a":1,"b":1.0,"c":"x\"y","d":0.00001}"#);
    }

    #[test]
    fn keys_are_stable_and_separate_seeds() {
        let p = BTreeMap::from([("lr".to_string(), ParamValue::Float(0.001))]);
        // Pinned: a change here re-keys every stored study, so it must be deliberate.
        assert_eq!(config_id("command", &p), digest(r#"{"params":{"lr":0.001},"pipeline":"command"}"#));
        assert_eq!(config_id("command", &p).len(), 32);
        assert_ne!(trial_key("command", &p, 0), trial_key("command", &p, 1));
        assert_ne!(config_id("command", &p), config_id("dec", &p));
        assert_eq!(digest("abc"), "ba7816bf8f01cfea414140de5dae2223");
    }

    #[test]
    fn model_plans_hash_only_what_the_pipeline_reads() {
        // Baseline never reads beta.
        let other = Params { beta: 0.0, ..Params::default() };
        let a = TrialPlan::new(Job::Model { pipeline: Pipeline::Baseline, params: Params::default() }, 0, None);
        let b = TrialPlan::new(Job::Model { pipeline: Pipeline::Baseline, params: other.clone() }, 0, None);
        assert_eq!(a.trial_key, b.trial_key);
        let c = TrialPlan::new(Job::Model { pipeline: Pipeline::Dec, params: other }, 0, None);
        let d = TrialPlan::new(Job::Model { pipeline: Pipeline::Dec, params: Params::default() }, 0, None);
        assert_ne!(c.config_id, d.config_id);
        assert!(!a.param_map().contains_key("beta") && d.param_map().contains_key("beta"));
        assert_eq!(a.pipeline_name(), "baseline");
    }

    #[test]
    fn plans_round_trip_through_json() {
        let a = TrialPlan::new(Job::Model { pipeline: Pipeline::Dec, params: Params::default() }, 3, Some("x".into()));
        let text = serde_json::to_string(&a).unwrap();
        assert!(text.contains(r#""kind":"model""#), "{text}");
        assert_eq!(serde_json::from_str::<TrialPlan>(&text).unwrap(), a);
    }
}
