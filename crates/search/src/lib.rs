//! decsweep's sweep specs, search spaces and samplers (no torch).
//!
//! A TOML spec ([`spec`] documents the format) is read into a validated [`SweepSpec`]: every
//! problem is a [`SpecError`] with file, line and column. [`SweepSpec::expand`] then lists the
//! study's trials, each a [`TrialPlan`] with stable keys, ready to be stored by a coordinator.
//!
//! ```
//! use decsweep_search::{LoadOptions, SweepSpec};
//!
//! let text = r#"
//! [study]
//! name = "tiny"
//! dataset = { synthetic = { seed = 0 } }
//! pipelines = ["baseline", "dec"]
//! seeds = [0, 1]
//! [space]
//! label_fraction = { grid = [0.2, 0.4] }
//! "#;
//! let spec = SweepSpec::from_source(text, "tiny.toml", &LoadOptions::default()).unwrap();
//! assert_eq!(spec.expand().len(), 2 * 2 * 2);
//!
//! let err = SweepSpec::from_source("[study]\nnmae = 1\n", "bad.toml", &LoadOptions::default()).unwrap_err();
//! // One line per problem, `path:line:column: message`, in source order.
//! let text = err.to_string();
//! assert!(text.contains("bad.toml:1:1: missing `name` in [study]"));
//! assert!(text.contains("bad.toml:2:1: unknown key `nmae` in [study]; did you mean `name`?"));
//! ```

pub mod command;
pub mod error;
mod expand;
pub mod objective;
mod parse;
pub mod pruning;
mod reader;
pub mod sampler;
pub mod space;
pub mod spec;
mod suggest;
pub mod tpe;
pub mod trial;

pub use command::{parse_metrics, CommandSpec, Invocation, MetricsError, PassMode};
pub use error::{LoadError, SpecError, SpecErrors};
pub use expand::PlanError;
pub use pruning::{PruneStage, PrunerKind, PrunerSpec};
pub use sampler::{GridSampler, Observation, Point, RandomSampler, Sampler, SamplerError};
pub use space::{Dimension, Space};
pub use spec::{
    Config, Dataset, Direction, LoadOptions, Objective, PipelineKind, Resources, SamplerKind, SamplerSpec, SweepSpec,
    DEFAULT_CHECKPOINT_EVERY_S, MAX_TRIALS,
};
pub use tpe::{TpeSampler, TpeSettings};
pub use trial::{Job, TrialPlan};
