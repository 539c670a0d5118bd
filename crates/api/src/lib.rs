//! Vocabulary shared by every decsweep crate: the pipeline parameters (their names are the same
//! in sweep specs, `--set`, CSV columns and the HTTP API), their defaults and the stages that
//! read them, and the JSON bodies of the coordinator's HTTP API. No torch here: the coordinator
//! links this crate.

pub mod labels;
pub mod lifecycle;
pub mod pack;
pub mod params;
pub mod synth;
pub mod wire;

pub use lifecycle::{LeaseOutcome, TrialStatus};
pub use pack::PackKey;
pub use params::{
    Domain, PackRole, ParamError, ParamSpec, ParamValue, Params, Pipeline, SplitMode, Stage, TimePool, ZeroLabel, SPECS,
};
pub use synth::{ClusteredKnobs, SynthKind, CLUSTERED_KNOBS};
