//! The autoencoder of the DEC stage (paper §3.3, Figure 2): the classifier's encoders, a fusion
//! layer to the latent `z`, and one decoder per modality reconstructing that modality's steps.
//!
//! Each decoder maps `z` to `d_model`, adds the sinusoidal position of every step and applies a
//! two-layer MLP per step, so it can rebuild a `[T, D_m]` sequence from one vector; only the
//! valid steps count in the reconstruction loss.

use tch::nn::{self, Module};
use tch::Tensor;

use crate::batch::Batch;
use crate::encoder::{sinusoidal_positions, Encoders};
use crate::{init, ModelConfig};

#[derive(Debug)]
struct Decoder {
    from_latent: nn::Linear,
    hidden: nn::Linear,
    out: nn::Linear,
    d_model: i64,
}

impl Decoder {
    fn new(vs: nn::Path, output_dim: i64, cfg: &ModelConfig) -> Self {
        Decoder {
            from_latent: init::linear(&vs / "from_latent", cfg.latent_dim, cfg.d_model),
            hidden: init::linear(&vs / "hidden", cfg.d_model, cfg.d_model),
            out: init::linear(&vs / "out", cfg.d_model, output_dim),
            d_model: cfg.d_model,
        }
    }

    /// `z: [B, latent]` → `[B, steps, D_m]`.
    fn forward(&self, z: &Tensor, steps: i64) -> Tensor {
        let pe = sinusoidal_positions(steps, self.d_model, z.device());
        let h = (self.from_latent.forward(z).unsqueeze(1) + pe.unsqueeze(0)).relu();
        self.out.forward(&self.hidden.forward(&h).relu())
    }
}

#[derive(Debug)]
pub struct Autoencoder {
    pub encoders: Encoders,
    fusion: nn::Linear,
    decoders: Vec<Decoder>,
}

impl Autoencoder {
    /// Variables: `encoders.*` (transferable to the classifier), `fusion`, `decoders.<modality>`.
    pub fn new(vs: nn::Path, cfg: &ModelConfig) -> Self {
        let dec_root = &vs / "decoders";
        let decoders = decsweep_data::MODALITIES
            .iter()
            .zip(cfg.input_dims)
            .map(|(name, dim)| Decoder::new(&dec_root / *name, dim, cfg))
            .collect();
        Autoencoder {
            encoders: Encoders::new(&vs, cfg),
            fusion: init::linear(&vs / "fusion", 3 * cfg.d_model, cfg.latent_dim),
            decoders,
        }
    }

    /// The latent `z: [B, latent]`.
    pub fn encode(&self, batch: &Batch, train: bool) -> Tensor {
        self.fusion.forward(&self.encoders.forward(batch, train))
    }

    /// Reconstructions of the three modalities from `z`.
    pub fn decode(&self, z: &Tensor, batch: &Batch) -> Vec<Tensor> {
        self.decoders.iter().zip(&batch.x).map(|(dec, x)| dec.forward(z, x.size()[1])).collect()
    }
}
