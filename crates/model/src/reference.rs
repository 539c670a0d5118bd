//! The exchange format with the PyTorch reference (`tests/parity/reference.py`), used by the
//! parity tests and `decsweep-worker bench-train`: the model's shape, loss weights and a batch
//! as named CPU tensors in one safetensors file.

use tch::{Device, Tensor};

use crate::{Batch, ModelConfig};

/// `config/<name>` entries: the network's shape, `seq_len`, dropout, and the given scalars
/// (loss weights, dof, ...).
pub fn config_tensors(cfg: &ModelConfig, seq_len: i64, scalars: &[(&str, f64)]) -> Vec<(String, Tensor)> {
    let ints = [
        ("seq_len", seq_len),
        ("d_model", cfg.d_model),
        ("n_heads", cfg.n_heads),
        ("n_layers", cfg.n_layers),
        ("ff_dim", cfg.ff_dim),
        ("latent_dim", cfg.latent_dim),
        ("n_clusters", cfg.n_clusters),
    ];
    let mut out: Vec<(String, Tensor)> =
        ints.into_iter().map(|(n, v)| (format!("config/{n}"), Tensor::from(v))).collect();
    out.push(("config/input_dims".into(), Tensor::from_slice(&cfg.input_dims)));
    out.push(("config/head_dims".into(), Tensor::from_slice(&cfg.head_dims)));
    let dropout = [("dropout", cfg.dropout)];
    out.extend(dropout.iter().chain(scalars).map(|(n, v)| (format!("config/{n}"), Tensor::from(*v))));
    out
}

/// `batch/x/<modality>`, `batch/lengths/<modality>`, `batch/y`, `batch/labeled`, on the CPU.
pub fn batch_tensors(batch: &Batch) -> Vec<(String, Tensor)> {
    let cpu = |t: &Tensor| t.to_device(Device::Cpu);
    let mut out = Vec::new();
    for (m, name) in decsweep_data::MODALITIES.iter().enumerate() {
        out.push((format!("batch/x/{name}"), cpu(&batch.x[m])));
        out.push((format!("batch/lengths/{name}"), cpu(&batch.lengths[m])));
    }
    out.push(("batch/y".into(), cpu(&batch.y)));
    out.push(("batch/labeled".into(), cpu(&batch.labeled)));
    out
}
