//! From points to trials: a point × configurations × seeds.

use std::collections::{BTreeMap, HashSet};

use decsweep_api::{ParamError, Params, Pipeline, SPECS};

use crate::sampler::{GridSampler, Point, Sampler};
use crate::space::{Dimension, Space};
use crate::spec::{Config, PipelineKind, SweepSpec};
use crate::trial::{Job, TrialPlan};

/// Why a point cannot become trials.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("`{name}` is not a dimension of [space]")]
    UnknownDimension { name: String },
    #[error("`{name}` = {value} is outside its {kind} dimension")]
    OutOfSpace { name: String, value: String, kind: &'static str },
    #[error("the point gives no value for `{name}`")]
    Missing { name: String },
    #[error("{config}: {source}")]
    Param {
        config: String,
        #[source]
        source: ParamError,
    },
    #[error("the command pipeline needs a [command] table")]
    NoCommand,
    #[error("the grid dimensions have more points than can be counted")]
    TooLarge,
}

impl SweepSpec {
    /// The trials of one point proposed by a sampler: the point × any `grid` dimension it leaves
    /// out × configurations × seeds. This is how a sampler that learns from finished trials
    /// (TPE) turns its proposals into work.
    pub fn trials_for_point(&self, point: &Point) -> Result<Vec<TrialPlan>, PlanError> {
        trials_for_point(self, point)
    }
}

pub(crate) fn trials_for_point(spec: &SweepSpec, point: &Point) -> Result<Vec<TrialPlan>, PlanError> {
    for (name, value) in point {
        let dim = spec.space.get(name).ok_or_else(|| PlanError::UnknownDimension { name: name.clone() })?;
        if !dim.contains(value) {
            return Err(PlanError::OutOfSpace { name: name.clone(), value: value.to_string(), kind: dim.kind() });
        }
    }
    let mut left_out = Space::default();
    for (name, dim) in &spec.space.dims {
        if point.contains_key(name) {
            continue;
        }
        if !matches!(dim, Dimension::Grid(_)) {
            return Err(PlanError::Missing { name: name.clone() });
        }
        left_out.dims.push((name.clone(), dim.clone()));
    }
    // Only grid dimensions are left, so the grid sampler accepts them.
    let mut crossed = GridSampler::new(&left_out).map_err(|_| PlanError::TooLarge)?;
    let mut out = Vec::new();
    while let Some(rest) = crossed.ask(&[], &[]) {
        let mut full = point.clone();
        full.extend(rest);
        for config in &spec.configs {
            out.extend(config_trials(spec, config, &full)?);
        }
    }
    Ok(out)
}

/// Every trial of the spec; configurations a pipeline cannot tell apart are kept once.
pub(crate) fn expand_all(spec: &SweepSpec) -> Result<Vec<TrialPlan>, PlanError> {
    if spec.is_adaptive() {
        // Trials are planned as TPE proposes them. Plan some uniform draws of the same space
        // now, so parameter combinations the pipelines refuse are reported while reading the spec.
        let n = spec.sampler.n_trials.unwrap_or(0).min(32) as usize;
        let mut probe = crate::sampler::RandomSampler::new(spec.space.sampled(), spec.sampler.seed, n);
        while let Some(point) = probe.ask(&[], &[]) {
            trials_for_point(spec, &point)?;
        }
        return Ok(Vec::new());
    }
    let mut sampler = spec.sampler();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut repeats = 0usize;
    while let Some(point) = sampler.ask(&[], &[]) {
        for trial in trials_for_point(spec, &point)? {
            if seen.insert(trial.trial_key.clone()) {
                out.push(trial);
            } else {
                repeats += 1;
            }
        }
    }
    if repeats > 0 {
        tracing::debug!(
            study = %spec.name,
            repeats,
            "trials identical to earlier ones (a swept parameter their pipeline does not read, or a repeated draw) are planned once"
        );
    }
    Ok(out)
}

fn config_trials(spec: &SweepSpec, config: &Config, point: &Point) -> Result<Vec<TrialPlan>, PlanError> {
    let job = match config.pipeline {
        PipelineKind::Model(pipeline) => Job::Model { pipeline, params: model_params(spec, config, pipeline, point)? },
        PipelineKind::Command => {
            let command = spec.command.clone().ok_or(PlanError::NoCommand)?;
            let params: BTreeMap<_, _> = spec
                .fixed
                .iter()
                .chain(&config.params)
                .map(|(n, v)| (n.clone(), v.clone()))
                .chain(point.iter().map(|(n, v)| (n.clone(), v.clone())))
                .collect();
            Job::Command { command, params }
        }
    };
    Ok(spec.seeds.iter().map(|seed| TrialPlan::new(job.clone(), *seed, config.label.clone())).collect())
}

/// Defaults, then `[fixed]`, then the config's own parameters, then the point; parameters the
/// pipeline never reads go back to their defaults so equal computations get equal keys.
fn model_params(spec: &SweepSpec, config: &Config, pipeline: Pipeline, point: &Point) -> Result<Params, PlanError> {
    let context = || describe(config, point);
    let wrap = |source| PlanError::Param { config: context(), source };
    let mut params = Params::default();
    let written = spec.fixed.iter().chain(&config.params).map(|(n, v)| (n, v));
    for (name, value) in written.chain(point.iter()) {
        params.set(name, value).map_err(wrap)?;
    }
    let defaults = Params::default();
    for s in SPECS.iter().filter(|s| !pipeline.reads(s)) {
        let default = defaults.get(s.name).map_err(wrap)?;
        params.set(s.name, &default).map_err(wrap)?;
    }
    params.validate().map_err(wrap)?;
    Ok(params)
}

/// "pipeline dec (label) with a=1, b=2" for messages.
fn describe(config: &Config, point: &Point) -> String {
    let mut text = format!("pipeline {}", config.pipeline.name());
    if let Some(label) = &config.label {
        text.push_str(&format!(" ({label})"));
    }
    if !point.is_empty() {
        let values: Vec<String> = point.iter().map(|(n, v)| format!("{n}={v}")).collect();
        text.push_str(&format!(" with {}", values.join(", ")));
    }
    text
}

#[cfg(test)]
mod tests {
    use decsweep_api::ParamValue;

    use super::*;
    use crate::spec::LoadOptions;

    fn spec(text: &str) -> SweepSpec {
        match SweepSpec::from_source(text, "t.toml", &LoadOptions { check_dataset: false }) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    const HEAD: &str = "[study]\nname = \"t\"\ndataset = { synthetic = { seed = 0 } }\n";

    fn model(t: &TrialPlan) -> (Pipeline, &Params) {
        match &t.job {
            Job::Model { pipeline, params } => (*pipeline, params),
            Job::Command { .. } => panic!("not a model trial"),
        }
    }

    #[test]
    fn grid_is_points_then_pipelines_then_seeds() {
        let s = spec(&format!(
            "{HEAD}pipelines = [\"baseline\", \"dec\"]\nseeds = [0, 1, 2]\n[space]\nlabel_fraction = {{ grid = [0.2, 0.4] }}\nlr_ft = {{ choice = [1e-4, 1e-3] }}\n"
        ));
        let trials = s.expand();
        assert_eq!(trials.len(), 2 * 2 * 2 * 3);
        let order: Vec<(f64, f64, &str, u64)> = trials
            .iter()
            .map(|t| {
                let (p, params) = model(t);
                (params.label_fraction, params.lr_ft, p.name(), t.seed)
            })
            .collect();
        assert_eq!(order[0], (0.2, 1e-4, "baseline", 0));
        assert_eq!(order[2], (0.2, 1e-4, "baseline", 2));
        assert_eq!(order[3], (0.2, 1e-4, "dec", 0));
        assert_eq!(order[6], (0.2, 1e-3, "baseline", 0));
        assert_eq!(order[12], (0.4, 1e-4, "baseline", 0));
        assert_eq!(order[23], (0.4, 1e-3, "dec", 2));

        // The seeds of a configuration share its id; every trial has its own key.
        for chunk in trials.chunks(3) {
            assert!(chunk.iter().all(|t| t.config_id == chunk[0].config_id));
        }
        let ids: HashSet<&str> = trials.iter().map(|t| t.config_id.as_str()).collect();
        let keys: HashSet<&str> = trials.iter().map(|t| t.trial_key.as_str()).collect();
        assert_eq!((ids.len(), keys.len()), (8, 24));
        assert_eq!(s.expand(), spec(s.source()).expand(), "expansion is deterministic");
    }

    #[test]
    fn fixed_values_apply_on_top_of_the_defaults_where_read() {
        let s = spec(&format!(
            "{HEAD}pipelines = [\"baseline\", \"dec\"]\nseeds = [0]\n[fixed]\nalpha = 1\nepochs_ft = 7\n"
        ));
        let trials = s.expand();
        let (_, baseline) = model(&trials[0]);
        let (_, dec) = model(&trials[1]);
        assert_eq!((dec.alpha, dec.epochs_ft), (1.0, 7));
        assert_eq!((baseline.alpha, baseline.epochs_ft), (Params::default().alpha, 7), "baseline never reads alpha");
        assert_eq!(s.fixed()[0], ("alpha".to_string(), ParamValue::Float(1.0)), "converted to the parameter's type");
    }

    #[test]
    fn configurations_a_pipeline_cannot_tell_apart_run_once() {
        let s = spec(&format!(
            "{HEAD}pipelines = [\"baseline\", \"dec\"]\nseeds = [0]\n[space]\nbeta = {{ grid = [0.0, 0.5] }}\n"
        ));
        let names: Vec<&str> = s.trials().iter().map(|t| t.pipeline_name()).collect();
        assert_eq!(names, ["baseline", "dec", "dec"]);
    }

    #[test]
    fn random_draws_are_reproducible_and_crossed_with_grids() {
        let text = |seed: u64| {
            format!(
                "{HEAD}pipelines = [\"dec\"]\nseeds = [0, 1]\n[sampler]\nkind = \"random\"\nseed = {seed}\nn_trials = 5\n[space]\nlr_ft = {{ loguniform = [1e-5, 1e-3] }}\nlabel_fraction = {{ grid = [0.2, 1.0] }}\nepochs_ft = {{ int = [10, 50], step = 10 }}\n"
            )
        };
        let a = spec(&text(7));
        assert_eq!(a.trials().len(), 5 * 2 * 2);
        assert_eq!(a.expand(), spec(&text(7)).expand());
        let lrs = |s: &SweepSpec| s.trials().iter().map(|t| model(t).1.lr_ft).collect::<Vec<_>>();
        assert_ne!(lrs(&a), lrs(&spec(&text(8))));
        // Each draw is run at both label fractions, seeds innermost.
        let first: Vec<(f64, f64, u64)> =
            a.trials()[..4].iter().map(|t| (model(t).1.lr_ft, model(t).1.label_fraction, t.seed)).collect();
        assert_eq!(first[0].0, first[3].0);
        assert_eq!((first[0].1, first[1].1, first[2].1), (0.2, 0.2, 1.0));
    }

    /// Property: over many sampler seeds, every planned trial's parameters lie in the space.
    #[test]
    fn planned_parameters_lie_in_the_space_for_every_seed() {
        for seed in 0..50 {
            let s = spec(&format!(
                "{HEAD}pipelines = [\"dec\"]\nseeds = [0]\n[sampler]\nkind = \"random\"\nseed = {seed}\nn_trials = 20\n[space]\nlr_dec = {{ loguniform = [1e-6, 1e-2] }}\ndropout = {{ uniform = [0.0, 0.5] }}\nff_dim = {{ int = [16, 1024], log = true }}\nepochs_dec = {{ int = [5, 95], step = 15 }}\nzero_label = {{ choice = [\"drop\", \"positive\"] }}\n"
            ));
            assert_eq!(s.trials().len(), 20);
            for t in s.trials() {
                let p = model(t).1;
                assert!((1e-6..=1e-2).contains(&p.lr_dec) && (0.0..=0.5).contains(&p.dropout));
                assert!((16..=1024).contains(&p.ff_dim));
                assert!((5..=95).contains(&p.epochs_dec) && (p.epochs_dec - 5) % 15 == 0);
                assert!(matches!(p.zero_label, decsweep_api::ZeroLabel::Drop | decsweep_api::ZeroLabel::Positive));
            }
        }
    }

    #[test]
    fn configs_carry_their_label_and_parameters() {
        let s = spec(&format!(
            "{HEAD}seeds = [0, 1]\n[[configs]]\nlabel = \"base 40%\"\npipeline = \"baseline\"\n[[configs]]\nlabel = \"dec full\"\npipeline = \"dec\"\nparams = {{ label_fraction = 1.0 }}\n"
        ));
        let rows: Vec<(Option<&str>, &str, f64, u64)> = s
            .trials()
            .iter()
            .map(|t| (t.label.as_deref(), t.pipeline_name(), model(t).1.label_fraction, t.seed))
            .collect();
        assert_eq!(
            rows,
            [
                (Some("base 40%"), "baseline", 0.4, 0),
                (Some("base 40%"), "baseline", 0.4, 1),
                (Some("dec full"), "dec", 1.0, 0),
                (Some("dec full"), "dec", 1.0, 1)
            ]
        );
        assert_eq!(s.pipelines(), [PipelineKind::Model(Pipeline::Baseline), PipelineKind::Model(Pipeline::Dec)]);
    }

    #[test]
    fn command_trials_carry_the_program_and_free_parameters() {
        let s = spec(&format!(
            "{HEAD}pipelines = [\"command\"]\nseeds = [3]\n[command]\nprogram = [\"python3\", \"train.py\"]\n[fixed]\nepochs = 2\n[space]\nlr = {{ grid = [0.1, 0.01] }}\n"
        ));
        assert_eq!(s.trials().len(), 2);
        let t = &s.trials()[1];
        let Job::Command { command, params } = &t.job else { panic!("command job expected") };
        let inv = command.invocation(params, t.seed, &t.trial_key, &t.config_id);
        assert_eq!(inv.argv, ["python3", "train.py", "--epochs", "2", "--lr", "0.01", "--seed", "3"]);
        assert_eq!(t.param_map(), *params);
    }

    #[test]
    fn a_sampler_proposal_becomes_trials() {
        let s = spec(&format!(
            "{HEAD}pipelines = [\"baseline\", \"dec\"]\nseeds = [0, 1]\n[sampler]\nkind = \"random\"\nn_trials = 3\n[space]\nlr_ft = {{ loguniform = [1e-5, 1e-3] }}\nlabel_fraction = {{ grid = [0.2, 1.0] }}\n"
        ));
        // What a model-based sampler would do: ask with the history, then plan the proposal.
        let mut sampler = s.sampler();
        let proposal = sampler.ask(&[], &[]).unwrap();
        assert_eq!(proposal.keys().collect::<Vec<_>>(), ["lr_ft"], "grid dimensions are crossed, not drawn");
        let trials = s.trials_for_point(&proposal).unwrap();
        assert_eq!(trials.len(), 2 * 2 * 2);
        assert_eq!(trials, s.trials()[..8].to_vec());

        let point = |k: &str, v: f64| Point::from([(k.to_string(), ParamValue::Float(v))]);
        assert!(matches!(s.trials_for_point(&point("lr_ft", 1.0)), Err(PlanError::OutOfSpace { .. })));
        assert!(matches!(s.trials_for_point(&point("lr_ae", 1e-4)), Err(PlanError::UnknownDimension { .. })));
        assert!(matches!(s.trials_for_point(&Point::new()), Err(PlanError::Missing { .. })));
    }
}
