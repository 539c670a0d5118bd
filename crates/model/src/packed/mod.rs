//! Packed training: K trials of the same shapes trained as one stacked model.
//!
//! Every weight of the pack is a `[K, …]` tensor whose slice `k` is member `k`'s weight under
//! its solo name (`encoders.text.layers.0.linear1.weight`, …); linear layers are batched
//! matrix products, LayerNorm and BatchNorm are per member, and the losses are the sum of the
//! members' losses, so member `k`'s gradient is exactly the gradient of its own loss.
//!
//! # Contract
//!
//! - [`PackTrainer::run`] takes one [`PackMember`] per trial: its parameters, seed, prepared
//!   data ([`TrainSet`], so its own labeled subset and validation split), its stage cache, an
//!   optional [`TrialState`] to resume from, and its own [`Observer`]. It returns one
//!   `Result<PipelineOutcome, TrainError>` per member, in the members' order.
//! - Members must agree on the pack key (`decsweep_api::pack::PackKey`: every parameter the
//!   registry does not mark `per_member` that the pipeline reads, i.e. every shape and schedule)
//!   and on `seq_len` and the feature dimensions of their data; otherwise the whole run is refused
//!   with [`PackError::Mismatch`] naming the parameter and the members. Learning rates, weight
//!   decay, loss weights, `dof`, `dropout`, `label_fraction`, the seed and the data split may
//!   differ. DEC pseudo-labels (`pseudo_threshold` > 0) are refused: they train solo only.
//! - Each member's epochs go to its own observer. Its answer applies to it alone: `Stop` ends
//!   that member with [`TrainError::Stopped`], `Checkpoint` hands it its solo-format
//!   [`TrialState`], `Suspend` hands the state then ends it with [`TrainError::Suspended`]. A
//!   member that ends (stopped, suspended, diverged, failed) is dropped from the stacked tensors
//!   at that epoch boundary and the others go on; the log says so.
//! - A failure of the whole pack (an out-of-memory error, any other libtorch error outside one
//!   member) is [`PackError`]; [`PackError::is_out_of_memory`] tells the runner to retry with
//!   fewer members.
//! - Stage checkpoints are looked up and stored per member in its own [`StageCache`], with the
//!   solo names and shapes, so a stage a solo trial trained serves a packed one and back.
//!
//! # What a member keeps from its solo run
//!
//! Before each stage a member builds its solo network after seeding torch exactly as the solo
//! trainer does ([`crate::train::Trainer`]), so its initial weights, its DEC k-means centroids
//! and its cluster→class map are those of its solo run. Each epoch its shuffle is drawn from
//! torch's generator seeded by (seed, stage, epoch), as solo, so it sees the same batches in the
//! same order. Its Adam state is its own slice of the stacked moments with its own step counts;
//! at a step where it has no batch (fewer rows than a pack-mate) its weights, moments and step
//! counts are left exactly as they were.
//!
//! Dropout masks do not come from torch's generator as the members' draws would interleave
//! (which would make each member's masks depend on its pack-mates), but from a block per member
//! and step that is a function of that member's key, a hash of (seed, stage, epoch, step), only
//! ([`rng`]: a counter-based hash on the CPU, the generator reseeded with the key on a GPU), cut
//! in the same order every step. A member's masks therefore do not depend on its pack-mates or
//! on K, and a packed trial reruns identically as a pack of one. Its losses match across K to
//! rounding, not bit for bit in general (libtorch's batched products round differently for
//! different K; `tests/packed.rs` states the bound). The masks differ from the solo trainer's
//! (which draws them from the generator seeded per epoch), so with dropout > 0 a packed trial
//! and its solo run agree in distribution, not in value; with dropout 0 they agree to float
//! rounding.
//!
//! # Where a small model's step goes
//!
//! At the tiny sizes that packing is for, a step costs per operator, not per flop, so the engine
//! keeps the operator count flat in K: every trainable variable of a member lives in one
//! `[K, P]` tensor ([`layers::Stack`]) that Adam updates in a handful of operations, the scores
//! of attention are laid out so the softmax runs over a non-last dimension (libtorch's CPU
//! softmax over a last dimension of length T ≈ 10 is 14× slower), and the dropout block is drawn
//! in Rust on the CPU.
//!
//! Not supported: none of the per-member parameters is refused today; a parameter added to the
//! solo trainer later must be added here or refused in [`check_members`].

mod adam;
mod batches;
mod evaluate;
mod layers;
mod loss;
mod members;
mod nets;
mod pack;
pub mod rng;
mod stages;

use decsweep_api::{Params, Pipeline};
use tch::Device;

use crate::observe::{Observer, StageCache};
use crate::resume::TrialState;
use crate::train::{PipelineOutcome, TrainError, TrainSet};

pub use members::check_members;

/// One trial of a pack.
pub struct PackMember<'a> {
    pub params: &'a Params,
    pub seed: u64,
    /// The member's prepared rows on the pack's device (its own split and labeled subset).
    pub data: &'a TrainSet,
    /// Consulted before a stage trains and given every stage this member trains.
    pub cache: &'a mut dyn StageCache,
    /// Receives this member's epochs; its answer applies to this member alone.
    pub observer: &'a mut dyn Observer,
    /// A state to go on from (solo format: one saved by a solo trial or by a pack).
    pub resume: Option<TrialState>,
}

/// Why a whole pack could not be trained (as opposed to one member failing).
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("no members to train")]
    Empty,
    /// The members disagree on a parameter of the pack key.
    #[error(
        "members {first} and {other} of the pack disagree on {difference}: only trials of one pack key can be packed"
    )]
    Mismatch { first: usize, other: usize, difference: String },
    /// The device ran out of memory: retry with fewer members.
    #[error("out of memory training {members} members together: {message}")]
    OutOfMemory { members: usize, message: String },
    /// A member asks for something only the solo trainer does.
    #[error("member {member} cannot be packed: {what}")]
    Unsupported { member: usize, what: String },
    #[error("libtorch failed while training the pack: {0}")]
    Torch(String),
}

impl PackError {
    /// Whether the runner should retry with fewer members.
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, PackError::OutOfMemory { .. })
    }
}

/// Trains packs of trials of one pipeline on one device.
pub struct PackTrainer {
    pub pipeline: Pipeline,
    pub device: Device,
}

impl PackTrainer {
    /// Trains every member; one result per member, in order. See the module documentation.
    pub fn run(&self, members: Vec<PackMember<'_>>) -> Result<Vec<Result<PipelineOutcome, TrainError>>, PackError> {
        check_members(self.pipeline, &members)?;
        let k = members.len();
        // libtorch reports errors (CUDA out of memory among them) as panics of the infallible
        // tch calls; one is turned into a PackError here so the runner can shrink the pack.
        let run = std::panic::AssertUnwindSafe(|| stages::run_pipeline(self.pipeline, self.device, members));
        match std::panic::catch_unwind(run) {
            Ok(results) => Ok(results),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic without a message".to_string());
                if is_out_of_memory_message(&message) {
                    Err(PackError::OutOfMemory { members: k, message })
                } else {
                    Err(PackError::Torch(message))
                }
            }
        }
    }
}

/// Whether a libtorch error message reports exhausted memory (CUDA's allocator and the CPU's).
fn is_out_of_memory_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("out of memory") || m.contains("defaultcpuallocator: can't allocate memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_memory_messages_are_recognised() {
        assert!(is_out_of_memory_message("CUDA out of memory. Tried to allocate 2.00 GiB"));
        assert!(is_out_of_memory_message(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to allocate 1"
        ));
        assert!(!is_out_of_memory_message("shape mismatch"));
    }
}
