//! The paper's networks, losses and training stages in tch (libtorch).
//!
//! - [`encoder`]: per-modality Transformer encoders;
//! - [`classifier`]: the sentiment classifier of §3.2;
//! - [`autoencoder`], [`cluster`], [`losses`]: the semi-supervised DEC network of §3.3;
//! - [`train`]: the stages (AE pretraining, DEC, classifier) and the two pipelines;
//! - [`optim`], [`resume`]: Adam with a saveable state, and a trial's resumable state and its file.
//!
//! # The networks
//!
//! - Encoder per modality: `Linear(D_m → d_model)` + sinusoidal positions + dropout, `n_layers`
//!   post-norm Transformer layers (PyTorch's `TransformerEncoderLayer` semantics, ReLU, fused
//!   scaled-dot-product attention with the padding mask), masked mean over valid steps. Variable
//!   names follow PyTorch's so a `state_dict` maps one to one (`tests/parity/`).
//! - Classifier: the three pooled embeddings concatenated → `Linear → BatchNorm1d → ReLU →
//!   Dropout` → `Linear → ReLU → Linear → 1 logit`, head widths 32 and 16.
//! - Autoencoder: the same encoders, `fusion: Linear(3·d_model → latent_dim)` = z; a decoder per
//!   modality maps z to `d_model`, adds each step's sinusoidal position and applies a two-layer
//!   per-step MLP back to `D_m`.
//! - DEC head: centroids `[K, latent_dim]` (trainable) and a fixed `[K, 2]` cluster → class map.
//!
//! The losses of equations 1–8 and their normalisations are in [`losses`].
//!
//! # Optimiser
//!
//! [`Adam`] is PyTorch's Adam written with tensor operations (L2 weight decay added to the
//! gradient, per-parameter step counts, a parameter without gradient left alone), because tch's
//! `nn::Adam` wraps libtorch's C++ optimiser and exposes none of its state, which a resumable
//! trial must save. It agrees with libtorch's Adam to 1e-6 over 30 steps (a unit test), not bit
//! for bit: it updates the moments with `lerp` as PyTorch's Python Adam does.

pub mod autoencoder;
pub mod batch;
pub mod checkpoint;
pub mod classifier;
pub mod cluster;
pub mod encoder;
pub mod evaluate;
pub mod init;
pub mod losses;
pub mod metrics;
pub mod observe;
pub mod optim;
pub mod packed;
pub mod records;
pub mod reference;
pub mod resume;
mod seeding;
pub mod train;

use decsweep_api::Params;

pub use batch::Batch;
pub use checkpoint::Checkpoint;
pub use metrics::BinaryMetrics;
pub use optim::Adam;
pub use packed::{PackError, PackMember, PackTrainer};
pub use resume::{ResumeError, TrialState};
pub use train::{
    Control, EpochRecord, NoCache, Observer, PipelineOutcome, Session, StageCache, StageReport, TrainError, TrainSet,
    Trainer,
};

/// Which revision of the training numerics this build has. Bump it with any change that makes a
/// stage train to different weights from the same inputs (initialisation, seeding, optimiser,
/// losses, batching): the worker's shared stage checkpoints and a trial's resumable state carry
/// it in their keys, so what an older build trained is never mixed into a newer build's trial.
/// 1: seeded once per stage; 2: torch reseeded at every epoch from (seed, stage, epoch).
pub const TRAINER_REVISION: u32 = 2;

/// Shapes of the networks, derived from the trial's parameters and the dataset's feature dims.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub input_dims: [i64; 3],
    pub d_model: i64,
    pub n_heads: i64,
    pub n_layers: i64,
    pub ff_dim: i64,
    pub dropout: f64,
    pub latent_dim: i64,
    pub n_clusters: i64,
    /// Widths of the classifier head after the concatenated embeddings, before the final logit.
    /// Chosen so the default model lands near the paper's 851,713 parameters (it reports no
    /// head widths).
    pub head_dims: Vec<i64>,
}

impl ModelConfig {
    pub fn new(params: &Params, input_dims: [usize; 3]) -> Self {
        ModelConfig {
            input_dims: input_dims.map(|d| d as i64),
            d_model: params.d_model,
            n_heads: params.n_heads,
            n_layers: params.n_layers,
            ff_dim: params.ff_dim,
            dropout: params.dropout,
            latent_dim: params.latent_dim,
            n_clusters: params.n_clusters,
            head_dims: vec![32, 16],
        }
    }
}

/// Whether libtorch can use a CUDA device in this process.
pub fn cuda_available() -> bool {
    tch::Cuda::is_available()
}
