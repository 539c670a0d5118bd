//! decsweep's data: the canonical dataset file (one `.safetensors` file, see [`load`] / [`save`]),
//! a synthetic CMU-MOSI generator ([`synthesize`]) and the pipeline's `data` stage ([`prepare`]):
//! binarised labels, train / validation / test parts, labeled subsets and normalised features.
//!
//! No torch here: the coordinator and the `decsweep` command link this crate; the worker turns a
//! [`Prepared`] into tensors itself.

mod dataset;
mod error;
mod format;
mod prep;
mod rng;
mod summary;
mod synth;

pub use dataset::{Dataset, Features, Metadata, MODALITIES};
pub use error::DataError;
pub use format::{content_hash, load, save, FORMAT};
pub use prep::{prepare, Part, PrepConfig, PrepStats, Prepared};
pub use summary::{summarize, Summary};
pub use synth::{synthesize, SynthConfig};
