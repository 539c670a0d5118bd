//! Sweep specs: a TOML file describing a study, validated into a [`SweepSpec`] whose trials are
//! fixed by the file alone.
//!
//! # Format
//!
//! ```toml
//! [study]
//! name = "lr-vs-labels"               # names results/<name>/; letters, digits, - _ .
//! description = "fine-tune lr against the label budget"   # optional
//! # A file, relative to this spec file ...
//! dataset = "../data/mosi.safetensors"
//! # ... or the synthetic CMU-MOSI-shaped generator (n defaults to 2199, seed to 0):
//! # dataset = { synthetic = { seed = 0, n = 2199 } }
//! # ... or its clustered kind, with any of its knobs (the rest keep their defaults; see
//! # decsweep_data's `clustered` module): separation, subclusters, noise_text, noise_audio,
//! # noise_vision, share_text, share_audio, share_vision
//! # dataset = { synthetic = { kind = "clustered", seed = 0, separation = 2.5 } }
//! pipelines = ["baseline", "dec"]     # or ["command"], with a [command] table
//! seeds = [0, 1, 2]                   # every configuration runs once per seed
//! retries = 2                         # failed attempts retried per trial (default 2)
//!
//! [fixed]                             # applied to every trial, on top of the paper's defaults
//! epochs_ae = 50
//! zero_label = "drop"
//!
//! [space]                             # one dimension per swept parameter
//! label_fraction = { grid = [0.2, 0.4, 1.0] }   # always run in full, whatever the sampler
//! batch_size = { choice = [64, 128] }           # grid: enumerated; random: drawn
//! lr_ft = { loguniform = [1e-5, 1e-3] }         # log-uniform real
//! dropout = { uniform = [0.0, 0.3] }            # uniform real
//! epochs_ft = { int = [100, 500], step = 100 }  # integers lo, lo+step, ... ≤ hi
//! ff_dim = { int = [64, 512], log = true }      # integers, uniform in log space
//!
//! [sampler]
//! kind = "random"                     # "grid" (default), "random" or "tpe"
//! seed = 0                            # the random draws are a function of this seed
//! n_trials = 20                       # points drawn; required for random and tpe
//!
//! [objective]                         # what the tpe sampler optimises, and reports rank by
//! metric = "accuracy"                 # default "accuracy"
//! direction = "maximize"              # or "minimize"; default "maximize"
//!
//! [resources]                         # what one trial needs (sets `decsweep run`'s worker count)
//! gpus = 0.25                         # a share of one GPU (four trials per GPU); default 1
//! cpus = 1                            # cores per trial; default 1
//! checkpoint_every = 300              # seconds of training between saved trial states (resume
//!                                     # after preemption); default 300
//! pack = 8                            # trials trained together as one stacked model when the
//!                                     # worker has no --pack (same shapes only); default 1
//! ```
//!
//! The TPE sampler ([`crate::tpe`] documents the algorithm) proposes one point at a time from
//! the finished ones, and early stopping is a `[pruner]` table ([`crate::pruning`] gives the
//! exact rules; the coordinator applies them):
//!
//! ```text
//! [sampler]
//! kind = "tpe"
//! n_trials = 100                      # configurations to try (required)
//! seed = 0
//! n_startup_trials = 10               # uniform draws first (default 10)
//! n_ei_candidates = 128               # candidates scored per proposal (default 128)
//! multivariate = true                 # joint kernels over all dimensions (default true)
//! constant_liar = true                # running points count as worst (default true)
//! good_bandwidth_factor = 0.5         # good-trials kernel width vs Optuna's (default 0.5)
//!
//! [pruner]
//! kind = "median"                     # or "asha"
//! stage = "finetune"                  # whose epochs are the steps: "ae", "dec", "finetune" (default)
//! n_startup_trials = 5                # median: completed trials before pruning (default 5)
//! n_warmup_steps = 0                  # median: steps never pruned (default 0)
//! interval_steps = 1                  # median: check every k-th step (default 1)
//! # asha: min_resource = 1, reduction_factor = 4, min_early_stopping_rate = 0
//! ```
//!
//! Explicit configurations replace `study.pipelines` when a table needs named rows that are not a
//! product (Table 1's three models). Each entry names its pipeline, an optional `label` (the row
//! name in reports) and its own parameters; `[fixed]` and `[space]` apply to every entry:
//!
//! ```text
//! [[configs]]
//! label = "Transformer + DEC Pretraining (Full Dataset)"
//! pipeline = "dec"
//! params = { label_fraction = 1.0 }
//! ```
//!
//! The `command` pipeline runs any program (see [`crate::command`] for how parameters reach it):
//!
//! ```text
//! [study]
//! pipelines = ["command"]
//! [command]
//! program = ["python3", "train.py"]   # the last stdout line must be a JSON object of metrics
//! pass = "args"                       # "--name value" arguments (default) or "env": DECSWEEP_NAME
//! env = { OMP_NUM_THREADS = "1" }     # optional extra environment
//! workdir = "/srv/project"            # optional, on the worker
//! stop_grace = 3                      # seconds from SIGTERM to SIGKILL when stopped (default 3)
//! ```
//!
//! # Rules
//!
//! - Unknown keys anywhere are errors, with the nearest valid key suggested.
//! - For `baseline` and `dec`, every name in `[fixed]`, `[space]` and `params` is a registered
//!   parameter ([`decsweep_api::SPECS`]) that at least one of the spec's pipelines reads, and
//!   every value (each grid/choice element, each range end) is in the parameter's range. A name
//!   may be set in only one place. For `command`, any name that works as a `--flag` (and, with
//!   `pass = "env"`, as a variable name) is allowed, except `seed`, `trial_key` and `config_id`.
//! - `grid` and `choice` list at least one value, without repeats; `uniform` needs lo < hi,
//!   `loguniform` 0 < lo < hi, `int` integers lo < hi (`step` ≥ 1, or `log = true` with lo ≥ 1).
//! - The grid sampler enumerates `grid` and `choice` only; `n_trials`, if given, must equal the
//!   number of grid points. The random sampler requires `n_trials` and something to draw.
//! - The tpe sampler requires `n_trials`, something to choose, no `grid` dimension (use
//!   `choice`) and exactly one configuration (one pipeline or one `[[configs]]` entry): a point
//!   is one configuration, whose objective it learns. Its options are refused with other kinds.
//! - **Seeds and a sampler together**: each proposed configuration is run for every seed of
//!   `study.seeds`, and the sampler sees one observation per configuration: the **mean over its
//!   seeds** of `[objective] metric` (seeds that failed or were pruned left out; no seed
//!   finished: a failed observation). The coordinator asks for the next point when a worker is
//!   idle, passing the still-running points as pending.
//! - `[pruner]` needs `kind`; each kind takes only its own parameters (`interval_steps`,
//!   `min_resource` ≥ 1, `reduction_factor` ≥ 2); `stage = "ae"` or `"dec"` needs the dec
//!   pipeline.
//! - Seeds are distinct non-negative integers; a sweep expands to at most [`MAX_TRIALS`] trials
//!   (for tpe: `n_trials` × seeds).
//!
//! # Expansion
//!
//! Points (grid: the product of `grid`/`choice` values, first-declared parameter varying
//! slowest; random: `n_trials` draws, each crossed with every `grid` value; tpe: none in
//! advance, see [`SweepSpec::is_adaptive`]) × configurations
//! (`pipelines` in order, or `[[configs]]` in order) × seeds, in that nesting. A configuration a
//! pipeline cannot tell apart from an earlier one (a swept parameter it never reads) is run once.

use std::path::{Path, PathBuf};

use decsweep_api::{ParamValue, Pipeline, SynthKind};
use serde::{Deserialize, Serialize};

use crate::command::CommandSpec;
pub use crate::objective::{Direction, Objective};
use crate::pruning::PrunerSpec;
use crate::sampler::{GridSampler, Point, RandomSampler, Sampler};
use crate::space::Space;
use crate::tpe::{TpeSampler, TpeSettings};
use crate::trial::TrialPlan;

/// The most trials one spec may expand to; beyond it a typo (one grid too many) is more likely
/// than intent, and the expansion would eat memory.
pub const MAX_TRIALS: usize = 100_000;

/// Where a study's data comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dataset {
    /// A dataset file: as written in the spec, and resolved against the spec's directory.
    File { written: String, path: PathBuf },
    /// A synthetic CMU-MOSI-shaped generator: `linear` (the default) or `clustered`, with its
    /// knobs.
    Synthetic {
        seed: u64,
        n: u64,
        #[serde(default)]
        generator: SynthKind,
    },
    /// No dataset: a study whose pipelines are all `command` and that names none. Its programs
    /// read their own data; the coordinator records the empty file as the study's dataset.
    None,
}

/// The synthetic generator's default size: CMU-MOSI's 2199 utterances.
pub const SYNTHETIC_DEFAULT_N: u64 = 2199;

/// Which pipeline a configuration runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PipelineKind {
    Model(Pipeline),
    Command,
}

impl PipelineKind {
    pub const WORDS: &'static [&'static str] = &["baseline", "dec", "command"];

    pub fn name(self) -> &'static str {
        match self {
            PipelineKind::Model(p) => p.name(),
            PipelineKind::Command => "command",
        }
    }

    pub(crate) fn from_word(word: &str) -> Option<Self> {
        match word {
            "command" => Some(PipelineKind::Command),
            other => other.parse().ok().map(PipelineKind::Model),
        }
    }
}

/// One configuration of the sweep before the sampled parameters: a pipeline of
/// `study.pipelines`, or one `[[configs]]` entry with its label and parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub pipeline: PipelineKind,
    pub label: Option<String>,
    /// The entry's own parameters, in the order written (checked and converted).
    pub params: Vec<(String, ParamValue)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SamplerKind {
    Grid,
    Random,
    Tpe,
}

impl SamplerKind {
    pub const WORDS: &'static [&'static str] = &["grid", "random", "tpe"];
}

/// `[sampler]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamplerSpec {
    pub kind: SamplerKind,
    pub seed: u64,
    /// Points to draw (random, tpe); the grid's size if given for a grid.
    pub n_trials: Option<u64>,
    /// TPE's options (defaults when not `tpe`).
    #[serde(default)]
    pub tpe: TpeSettings,
}

/// `[resources]`: what one trial takes from a worker.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// Share of a GPU (0.25: four trials per GPU) or whole GPUs; `None`: the trial needs none.
    pub gpus: Option<f64>,
    pub cpus: Option<f64>,
    /// Seconds of training between the trial states a built-in pipeline saves (and its worker
    /// uploads) so that a preempted trial resumes; `None`: [`DEFAULT_CHECKPOINT_EVERY_S`].
    pub checkpoint_every: Option<f64>,
    /// The most trials of this study one worker process trains together as one stacked model
    /// when the worker names no `--pack` of its own; `None`: one at a time. Never set on a
    /// `command` study (the parser refuses it).
    #[serde(default)]
    pub pack: Option<u32>,
}

/// The default of `[resources] checkpoint_every`, in seconds.
pub const DEFAULT_CHECKPOINT_EVERY_S: f64 = 300.0;

impl Resources {
    pub fn checkpoint_every_s(&self) -> f64 {
        self.checkpoint_every.unwrap_or(DEFAULT_CHECKPOINT_EVERY_S)
    }
}

/// How strictly a spec is checked against the machine it is read on.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Require a dataset file to exist. Off where the spec is only inspected, or read on a
    /// machine other than the one that will hold the data.
    pub check_dataset: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { check_dataset: true }
    }
}

/// The default number of retries of a failed trial.
pub const DEFAULT_RETRIES: u32 = 2;

/// A validated sweep spec. Built only by [`SweepSpec::load`] and friends, which check
/// everything, including that every trial it plans has valid parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepSpec {
    pub(crate) path: PathBuf,
    pub(crate) source: String,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) dataset: Dataset,
    pub(crate) configs: Vec<Config>,
    pub(crate) fixed: Vec<(String, ParamValue)>,
    pub(crate) space: Space,
    pub(crate) seeds: Vec<u64>,
    pub(crate) retries: u32,
    pub(crate) sampler: SamplerSpec,
    pub(crate) pruner: Option<PrunerSpec>,
    pub(crate) objective: Objective,
    pub(crate) resources: Resources,
    pub(crate) command: Option<CommandSpec>,
    pub(crate) trials: Vec<TrialPlan>,
}

impl SweepSpec {
    /// Every trial of the sweep, in expansion order (see the module docs); empty for an adaptive
    /// sampler ([`SweepSpec::is_adaptive`]).
    pub fn expand(&self) -> Vec<TrialPlan> {
        self.trials.clone()
    }

    /// The trials without copying them.
    pub fn trials(&self) -> &[TrialPlan] {
        &self.trials
    }

    /// A fresh sampler of this spec's points. The grid sampler covers every dimension; the random
    /// sampler draws the non-`grid` ones, and [`SweepSpec::trials_for_point`] crosses the rest.
    /// The TPE sampler draws every dimension (validation refuses `grid` with it) and is built with
    /// the objective's direction, so its observations carry the raw metric (see
    /// [`crate::sampler`]).
    pub fn sampler(&self) -> Box<dyn Sampler> {
        match self.sampler.kind {
            SamplerKind::Grid => match GridSampler::new(&self.space) {
                Ok(g) => Box::new(g),
                // Validation refused a grid over non-enumerable dimensions, so this is not
                // reached; proposing nothing keeps the no-panic promise if it ever is.
                Err(_) => Box::new(NoPoints),
            },
            SamplerKind::Random => Box::new(RandomSampler::new(
                self.space.sampled(),
                self.sampler.seed,
                usize::try_from(self.sampler.n_trials.unwrap_or(0)).unwrap_or(usize::MAX),
            )),
            SamplerKind::Tpe => Box::new(TpeSampler::new(
                self.space.sampled(),
                self.objective.direction,
                self.sampler.tpe.clone(),
                self.sampler.seed,
                usize::try_from(self.sampler.n_trials.unwrap_or(0)).unwrap_or(usize::MAX),
            )),
        }
    }

    /// Whether the sweep's trials are planned as its sampler proposes them (TPE) rather than all
    /// at once: then [`SweepSpec::trials`] is empty, and the coordinator asks
    /// [`SweepSpec::sampler`] for each point and plans it with [`SweepSpec::trials_for_point`].
    pub fn is_adaptive(&self) -> bool {
        self.sampler.kind == SamplerKind::Tpe
    }

    /// `[pruner]`, when the spec asks for early stopping (see [`crate::pruning`]).
    pub fn pruner(&self) -> Option<&PrunerSpec> {
        self.pruner.as_ref()
    }

    /// The file the spec was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The spec's text as read, so a coordinator can store it and read it back identically.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// The configurations, one per pipeline of `study.pipelines` or per `[[configs]]` entry.
    pub fn configs(&self) -> &[Config] {
        &self.configs
    }

    /// The distinct pipelines the sweep runs, in order of first appearance.
    pub fn pipelines(&self) -> Vec<PipelineKind> {
        let mut out: Vec<PipelineKind> = Vec::new();
        for c in &self.configs {
            if !out.contains(&c.pipeline) {
                out.push(c.pipeline);
            }
        }
        out
    }

    /// `[fixed]`, in the order written, values checked and converted.
    pub fn fixed(&self) -> &[(String, ParamValue)] {
        &self.fixed
    }

    pub fn space(&self) -> &Space {
        &self.space
    }

    pub fn seeds(&self) -> &[u64] {
        &self.seeds
    }

    pub fn retries(&self) -> u32 {
        self.retries
    }

    pub fn sampler_spec(&self) -> &SamplerSpec {
        &self.sampler
    }

    pub fn objective(&self) -> &Objective {
        &self.objective
    }

    pub fn resources(&self) -> &Resources {
        &self.resources
    }

    /// `[command]`, present exactly when the sweep runs the `command` pipeline.
    pub fn command(&self) -> Option<&CommandSpec> {
        self.command.as_ref()
    }
}

/// A sampler with nothing to propose.
struct NoPoints;

impl Sampler for NoPoints {
    fn ask(&mut self, _history: &[crate::sampler::Observation], _pending: &[Point]) -> Option<Point> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first ```toml block of this file's module docs: the documented example must stay valid.
    fn documented_example() -> String {
        let mut out = String::new();
        let mut inside = false;
        for line in include_str!("spec.rs").lines() {
            let Some(doc) = line.strip_prefix("//!") else {
                continue;
            };
            let doc = doc.strip_prefix(' ').unwrap_or(doc);
            match (inside, doc.trim()) {
                (false, "```toml") => inside = true,
                (true, "```") => break,
                (true, _) => {
                    out.push_str(doc);
                    out.push('\n');
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn the_documented_example_is_a_valid_spec() {
        let text = documented_example();
        assert!(text.contains("[sampler]"), "example not found");
        let spec = SweepSpec::from_source(&text, "sweeps/example.toml", &LoadOptions { check_dataset: false })
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.name(), "lr-vs-labels");
        assert_eq!(spec.sampler_spec().kind, SamplerKind::Random);
        // 20 draws × 3 label fractions × 2 pipelines × 3 seeds.
        assert_eq!(spec.trials().len(), 20 * 3 * 2 * 3);
        assert_eq!(spec.resources().gpus, Some(0.25));
        assert_eq!(spec.objective(), &Objective::default());
        assert!(
            matches!(spec.dataset(), Dataset::File { path, .. } if path == Path::new("sweeps/../data/mosi.safetensors"))
        );
        assert_eq!(
            spec.space().dims.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["label_fraction", "batch_size", "lr_ft", "dropout", "epochs_ft", "ff_dim"]
        );
    }
}
