//! The sentiment classifier (paper §3.2, Figure 1): the three encoders' pooled embeddings are
//! concatenated and passed through FC → BatchNorm → ReLU → Dropout, then narrowing FC layers
//! down to one logit.

use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

use crate::batch::Batch;
use crate::encoder::Encoders;
use crate::{init, ModelConfig};

#[derive(Debug)]
pub struct Classifier {
    pub encoders: Encoders,
    fc0: nn::Linear,
    bn0: nn::BatchNorm,
    narrowing: Vec<nn::Linear>,
    dropout: f64,
}

impl Classifier {
    /// Variables live under `encoders.*` (shared names with the autoencoder, so they transfer)
    /// and `head.*`.
    pub fn new(vs: nn::Path, cfg: &ModelConfig) -> Self {
        let head = &vs / "head";
        let fused = 3 * cfg.d_model;
        let first = cfg.head_dims[0];
        let mut narrowing = Vec::new();
        let mut width = first;
        for (i, &next) in cfg.head_dims[1..].iter().chain(std::iter::once(&1)).enumerate() {
            narrowing.push(init::linear(&head / format!("fc{}", i + 1), width, next));
            width = next;
        }
        Classifier {
            encoders: Encoders::new(&vs, cfg),
            fc0: init::linear(&head / "fc0", fused, first),
            bn0: init::batch_norm1d(&head / "bn0", first),
            narrowing,
            dropout: cfg.dropout,
        }
    }

    /// Logits `[B]`.
    pub fn forward(&self, batch: &Batch, train: bool) -> Tensor {
        let fused = self.encoders.forward(batch, train);
        let mut h = self.bn0.forward_t(&self.fc0.forward(&fused), train).relu().dropout(self.dropout, train);
        let last = self.narrowing.len() - 1;
        for (i, fc) in self.narrowing.iter().enumerate() {
            h = fc.forward(&h);
            if i < last {
                h = h.relu();
            }
        }
        h.squeeze_dim(1)
    }
}
