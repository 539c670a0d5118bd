//! The paper's networks over stacked variables: the encoders, the classifier head and the
//! autoencoder of [`crate::encoder`], [`crate::classifier`] and [`crate::autoencoder`], with the
//! same variable names, each member applying its own weights to its own rows.
//!
//! Attention is written out (scores, mask, softmax, dropout, values) instead of the fused
//! kernel, so its dropout can draw from the per-member generator; in evaluation it computes the
//! same function as the solo encoder's fused attention, up to float rounding.

use std::cell::Cell;

use tch::{Kind, Tensor};

use super::batches::Stacked;
use super::layers::Stack;
use super::rng;
use crate::encoder::sinusoidal_positions;
use crate::ModelConfig;

/// The per-member dropout of one training step: each member's block of keep factors
/// ([`rng::keep_factors`]), cut site by site in the order the forward pass reaches them.
pub(super) struct Dropout {
    /// `[K, per_member]`: 0 where member `k` drops the element, `1 / (1 − p[k])` where it keeps
    /// it; built once per step so each site costs one product.
    keep_scaled: Tensor,
    /// Elements of the block already used by this step's forward pass.
    cursor: Cell<i64>,
}

impl Dropout {
    /// `None` when no member drops anything (every rate 0). `per_member` is the number of
    /// elements the step's masks take ([`Nets::dropout_elements`]).
    pub fn new(keys: &[i64], rates: &[f64], per_member: i64, device: tch::Device) -> Option<Dropout> {
        if rates.iter().all(|&p| p == 0.0) {
            return None;
        }
        Some(Dropout { keep_scaled: rng::keep_factors(keys, rates, per_member, device), cursor: Cell::new(0) })
    }

    /// Inverted dropout of `x [K, …]` with the next elements of each member's block.
    fn apply(&self, x: &Tensor) -> Tensor {
        let size = x.size();
        let n = size[1..].iter().product::<i64>();
        let at = self.cursor.get();
        self.cursor.set(at + n);
        x * self.keep_scaled.narrow(1, at, n).view(size.as_slice())
    }
}

/// The stacked networks of one step: the variables, the shapes, and the dropout when training.
pub(super) struct Nets<'a> {
    pub stack: &'a Stack,
    pub config: &'a ModelConfig,
    /// `None` in evaluation mode (or when no member uses dropout).
    pub dropout: Option<&'a Dropout>,
}

impl Nets<'_> {
    fn drop(&self, x: Tensor) -> Tensor {
        match self.dropout {
            Some(d) => d.apply(&x),
            None => x,
        }
    }

    /// Elements per member that the dropout masks of one training step take, with `rows` rows
    /// per member and `steps` time steps: the sum over the sites [`Nets::drop`] visits.
    pub fn dropout_elements(config: &ModelConfig, rows: i64, steps: i64, classifier: bool) -> i64 {
        let (d, h, ff) = (config.d_model, config.n_heads, config.ff_dim);
        let per_layer = rows * (h * steps * steps + steps * (d + ff + d));
        let per_modality = rows * steps * d + config.n_layers * per_layer;
        3 * per_modality + if classifier { rows * config.head_dims[0] } else { 0 }
    }

    /// One post-norm encoder layer; `x [K, B, T, d]`, `attend [K·B, 1, 1, T]`.
    fn encoder_layer(&self, prefix: &str, x: &Tensor, attend: &Tensor) -> Tensor {
        let (k, b, t, d) = x.size4().expect("[K, B, T, d]");
        let h = self.config.n_heads;
        let s = self.stack;
        let w = s.get(&format!("{prefix}.self_attn.in_proj_weight"));
        let bias = s.get(&format!("{prefix}.self_attn.in_proj_bias"));
        let qkv = bias.unsqueeze(1).baddbmm(&x.reshape([k, b * t, d]), &w.transpose(1, 2), 1.0, 1.0);
        let heads = |i: i64| qkv.narrow(2, i * d, d).reshape([k * b, t, h, d / h]).transpose(1, 2);
        let (q, key, v) = (heads(0), heads(1), heads(2));
        // Scores laid out [K·B, key, head, query], softmax over the keys (dim 1): libtorch's CPU
        // softmax over a last dimension as short as T is slow (1.1 ms fwd for 16 tiny members'
        // [K·B, h, T, T]), over dim 1 with h·T inner elements it is 14× faster. Each element's
        // arithmetic depends on its (head, query) position only, never on K.
        let scores = key.matmul(&q.transpose(-2, -1)).transpose(1, 2) * (1.0 / ((d / h) as f64).sqrt());
        let scores = scores.masked_fill(&attend.view([k * b, t, 1, 1]).logical_not(), f64::NEG_INFINITY);
        let weights = scores.softmax(1, Kind::Float);
        let weights = match self.dropout {
            Some(_) => self.drop(weights.view([k, b, t, h, t])).view([k * b, t, h, t]),
            None => weights,
        };
        let ctx = weights.permute([0, 2, 3, 1]).matmul(&v).transpose(1, 2).reshape([k, b, t, d]);
        let sa = self.drop(s.linear(&format!("{prefix}.self_attn.out_proj"), &ctx));
        let x = s.layer_norm(&format!("{prefix}.norm1"), &(x + sa));
        let hidden = self.drop(s.linear(&format!("{prefix}.linear1"), &x).relu());
        let ff = self.drop(s.linear(&format!("{prefix}.linear2"), &hidden));
        s.layer_norm(&format!("{prefix}.norm2"), &(x + ff))
    }

    /// One modality's encoder: `x [K, B, T, D_m]`, `lengths [K, B]` → `[K, B, d_model]`.
    fn modality(&self, prefix: &str, x: &Tensor, lengths: &Tensor) -> Tensor {
        let (k, b, t, _) = x.size4().expect("[K, B, T, D_m]");
        let steps = Tensor::arange(t, (Kind::Int64, x.device()));
        let valid = steps.view([1, 1, t]).lt_tensor(&lengths.unsqueeze(-1)); // [K, B, T]
        let attend = valid.view([k * b, 1, 1, t]);
        let pe = sinusoidal_positions(t, self.config.d_model, x.device());
        let mut h = self.drop(self.stack.linear(&format!("{prefix}.proj"), x) + pe.view([1, 1, t, -1]));
        for layer in 0..self.config.n_layers {
            h = self.encoder_layer(&format!("{prefix}.layers.{layer}"), &h, &attend);
        }
        let w = valid.to_kind(h.kind()).unsqueeze(-1);
        (h * &w).sum_dim_intlist(2, false, Kind::Float) / w.sum_dim_intlist(2, false, Kind::Float)
    }

    /// The three pooled embeddings concatenated, `[K, B, 3·d_model]`.
    pub fn encoders(&self, batch: &Stacked) -> Tensor {
        let pooled: Vec<Tensor> = decsweep_data::MODALITIES
            .iter()
            .enumerate()
            .map(|(m, name)| self.modality(&format!("encoders.{name}"), &batch.x[m], &batch.lengths[m]))
            .collect();
        Tensor::cat(&pooled, 2)
    }

    /// The classifier's logits `[K, B]`; `train` selects BatchNorm's batch statistics (and
    /// updates its running ones).
    pub fn classifier(&self, batch: &Stacked, train: bool) -> Tensor {
        let s = self.stack;
        let fused = self.encoders(batch);
        let h = s.batch_norm("head.bn0", &s.linear("head.fc0", &fused), &batch.rows, train).relu();
        let mut h = self.drop(h);
        let layers = self.config.head_dims.len();
        for i in 1..=layers {
            h = s.linear(&format!("head.fc{i}"), &h);
            if i < layers {
                h = h.relu();
            }
        }
        h.squeeze_dim(-1)
    }

    /// The autoencoder's latent `z [K, B, latent_dim]`.
    pub fn encode(&self, batch: &Stacked) -> Tensor {
        self.stack.linear("fusion", &self.encoders(batch))
    }

    /// The reconstructions `[K, B, T, D_m]` of the three modalities from `z`.
    pub fn decode(&self, z: &Tensor, batch: &Stacked) -> Vec<Tensor> {
        let s = self.stack;
        decsweep_data::MODALITIES
            .iter()
            .zip(&batch.x)
            .map(|(name, x)| {
                let t = x.size()[2];
                let pe = sinusoidal_positions(t, self.config.d_model, z.device());
                let prefix = format!("decoders.{name}");
                let h = (s.linear(&format!("{prefix}.from_latent"), z).unsqueeze(2) + pe.view([1, 1, t, -1])).relu();
                s.linear(&format!("{prefix}.out"), &s.linear(&format!("{prefix}.hidden"), &h).relu())
            })
            .collect()
    }
}
