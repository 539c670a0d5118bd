//! decsweep's data: the canonical dataset file (one `.safetensors` file, see [`load`] / [`save`]),
//! synthetic CMU-MOSI generators ([`synthesize`], [`synthesize_clustered`]) and the pipeline's `data` stage ([`prepare`]):
//! binarised labels, train / validation / test parts, labeled subsets and normalised features.
//!
//! No torch here: the coordinator and the `decsweep` command link this crate; the worker turns a
//! [`Prepared`] into tensors itself.

mod clustered;
mod dataset;
mod error;
mod format;
mod prep;
mod rng;
mod summary;
mod synth;
mod synth_shape;

pub use clustered::synthesize_clustered;
pub use dataset::{Dataset, Features, Metadata, MODALITIES};
pub use error::DataError;
pub use format::{content_hash, load, save, FORMAT};
pub use prep::{prepare, Part, PrepConfig, PrepStats, Prepared};
pub use summary::{long_sequence_warning, summarize, Summary, LONG_SEQUENCE_FACTOR};
pub use synth::{synthesize, synthesize_kind};
pub use synth_shape::SynthConfig;
