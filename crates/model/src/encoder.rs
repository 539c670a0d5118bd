//! Per-modality Transformer encoders (paper §3.2): linear projection to `d_model`, sinusoidal
//! positions, `n_layers` post-norm Transformer layers, masked mean over the valid time steps.
//!
//! Variable names follow PyTorch's `nn.TransformerEncoderLayer` (`self_attn.in_proj_weight`,
//! `linear1`, `norm1`, ...) so a state dict maps one-to-one onto the parity reference.

use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use crate::batch::Batch;
use crate::{init, ModelConfig};

/// `pe[t, 2i] = sin(t / 10000^(2i/d))`, `pe[t, 2i+1] = cos(t / 10000^(2i/d))`, shape `[t, d]`.
pub fn sinusoidal_positions(steps: i64, d: i64, device: Device) -> Tensor {
    let pos = Tensor::arange(steps, (Kind::Float, device)).unsqueeze(1);
    let half = Tensor::arange_start_step(0, d, 2, (Kind::Float, device));
    let inv_freq = (&half * (-(10000f64.ln()) / d as f64)).exp();
    let angles = pos * inv_freq.unsqueeze(0); // [t, ceil(d/2)]
    let pe = Tensor::zeros([steps, d], (Kind::Float, device));
    let odd_cols = d / 2;
    pe.slice(1, 0, d, 2).copy_(&angles.sin());
    pe.slice(1, 1, d, 2).copy_(&angles.slice(1, 0, odd_cols, 1).cos());
    pe
}

/// `[B, T]` boolean, true at valid steps `t < length`.
pub fn valid_mask(lengths: &Tensor, steps: i64) -> Tensor {
    let t = Tensor::arange(steps, (Kind::Int64, lengths.device())).unsqueeze(0);
    t.lt_tensor(&lengths.unsqueeze(1))
}

/// One post-norm Transformer encoder layer with ReLU feed-forward, as PyTorch's default.
#[derive(Debug)]
struct EncoderLayer {
    in_proj_weight: Tensor,
    in_proj_bias: Tensor,
    out_proj: nn::Linear,
    linear1: nn::Linear,
    linear2: nn::Linear,
    norm1: nn::LayerNorm,
    norm2: nn::LayerNorm,
    n_heads: i64,
    dropout: f64,
}

impl EncoderLayer {
    fn new(vs: nn::Path, cfg: &ModelConfig) -> Self {
        let d = cfg.d_model;
        let attn = &vs / "self_attn";
        // PyTorch initialises the packed projection with Xavier-uniform and zero bias.
        let bound = (6.0 / (d + 3 * d) as f64).sqrt();
        let in_proj_weight = attn.var("in_proj_weight", &[3 * d, d], nn::Init::Uniform { lo: -bound, up: bound });
        let in_proj_bias = attn.zeros("in_proj_bias", &[3 * d]);
        let ln = nn::LayerNormConfig { eps: 1e-5, ..Default::default() };
        EncoderLayer {
            in_proj_weight,
            in_proj_bias,
            out_proj: init::linear_zero_bias(&attn / "out_proj", d, d),
            linear1: init::linear(&vs / "linear1", d, cfg.ff_dim),
            linear2: init::linear(&vs / "linear2", cfg.ff_dim, d),
            norm1: nn::layer_norm(&vs / "norm1", vec![d], ln),
            norm2: nn::layer_norm(&vs / "norm2", vec![d], ln),
            n_heads: cfg.n_heads,
            dropout: cfg.dropout,
        }
    }

    /// `x: [B, T, d]`; `attend: [B, 1, 1, T]` true where a key may be attended to.
    fn forward(&self, x: &Tensor, attend: &Tensor, train: bool) -> Tensor {
        let (b, t, d) = x.size3().expect("encoder input is [B, T, d]");
        let h = self.n_heads;
        let qkv = x.linear(&self.in_proj_weight, Some(&self.in_proj_bias));
        let heads = |i: i64| qkv.narrow(2, i * d, d).view([b, t, h, d / h]).transpose(1, 2);
        let (q, k, v) = (heads(0), heads(1), heads(2));
        let p = if train { self.dropout } else { 0.0 };
        // Fused attention, as torch.nn.MultiheadAttention uses in training.
        let ctx = Tensor::scaled_dot_product_attention(&q, &k, &v, Some(attend), p, false, None, false);
        let ctx = ctx.transpose(1, 2).contiguous().view([b, t, d]);
        let sa = self.out_proj.forward(&ctx).dropout(self.dropout, train);
        let x = self.norm1.forward(&(x + sa));
        let ff = self
            .linear2
            .forward(&self.linear1.forward(&x).relu().dropout(self.dropout, train))
            .dropout(self.dropout, train);
        self.norm2.forward(&(x + ff))
    }
}

/// The encoder of one modality: `[B, T, D_m]` features → `[B, d_model]` pooled embedding.
#[derive(Debug)]
pub struct ModalityEncoder {
    proj: nn::Linear,
    layers: Vec<EncoderLayer>,
    dropout: f64,
    d_model: i64,
}

impl ModalityEncoder {
    pub fn new(vs: nn::Path, input_dim: i64, cfg: &ModelConfig) -> Self {
        let layers = (0..cfg.n_layers).map(|i| EncoderLayer::new(&vs / "layers" / i, cfg)).collect();
        ModalityEncoder {
            proj: init::linear(&vs / "proj", input_dim, cfg.d_model),
            layers,
            dropout: cfg.dropout,
            d_model: cfg.d_model,
        }
    }

    pub fn forward(&self, x: &Tensor, lengths: &Tensor, train: bool) -> Tensor {
        let steps = x.size()[1];
        let valid = valid_mask(lengths, steps); // [B, T]
        let attend = valid.unsqueeze(1).unsqueeze(1);
        let pe = sinusoidal_positions(steps, self.d_model, x.device());
        let mut h = (self.proj.forward(x) + pe.unsqueeze(0)).dropout(self.dropout, train);
        for layer in &self.layers {
            h = layer.forward(&h, &attend, train);
        }
        masked_mean(&h, &valid)
    }
}

/// Mean of `h: [B, T, d]` over the steps where `valid: [B, T]` is true.
pub fn masked_mean(h: &Tensor, valid: &Tensor) -> Tensor {
    let w = valid.to_kind(h.kind()).unsqueeze(-1);
    (h * &w).sum_dim_intlist(1, false, h.kind()) / w.sum_dim_intlist(1, false, h.kind())
}

/// The three modality encoders, stored under `encoders.{text,audio,vision}`.
#[derive(Debug)]
pub struct Encoders {
    pub modalities: Vec<ModalityEncoder>,
}

impl Encoders {
    pub fn new(vs: &nn::Path, cfg: &ModelConfig) -> Self {
        let root = vs / "encoders";
        let modalities = decsweep_data::MODALITIES
            .iter()
            .zip(cfg.input_dims)
            .map(|(name, dim)| ModalityEncoder::new(&root / *name, dim, cfg))
            .collect();
        Encoders { modalities }
    }

    /// Concatenation of the pooled embeddings, `[B, 3 * d_model]`.
    pub fn forward(&self, batch: &Batch, train: bool) -> Tensor {
        let pooled: Vec<Tensor> = self
            .modalities
            .iter()
            .zip(batch.x.iter().zip(&batch.lengths))
            .map(|(enc, (x, len))| enc.forward(x, len, train))
            .collect();
        Tensor::cat(&pooled, 1)
    }
}
