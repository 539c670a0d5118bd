//! The loss terms of [`crate::losses`] per member over stacked batches: each returns `[K]`, the
//! term of every member computed over its real rows only (`rows [K, B]`, 1 for a real row), with
//! the solo normalisations (a mean over the member's rows of this batch).

use tch::{Kind, Tensor};

use super::batches::Stacked;

/// Real rows per member, at least 1 (a member without rows has every term 0).
fn row_count(rows: &Tensor) -> Tensor {
    rows.sum_dim_intlist(1, false, Kind::Float).clamp_min(1.0)
}

/// Binary cross-entropy with logits, the mean over each member's rows.
pub(super) fn bce_with_logits(logits: &Tensor, y: &Tensor, rows: &Tensor) -> Tensor {
    let per_row = logits.binary_cross_entropy_with_logits::<Tensor>(y, None, None, tch::Reduction::None);
    (per_row * rows).sum_dim_intlist(1, false, Kind::Float) / row_count(rows)
}

/// Equation 4: per modality the mean squared error over the valid (step, feature) entries of the
/// real rows, then the mean over modalities.
pub(super) fn reconstruction(recon: &[Tensor], batch: &Stacked) -> Tensor {
    let per_modality: Vec<Tensor> = recon
        .iter()
        .zip(batch.x.iter().zip(&batch.lengths))
        .map(|(xhat, (x, len))| {
            let t = x.size()[2];
            let steps = Tensor::arange(t, (Kind::Int64, x.device())).view([1, 1, t]);
            let valid = steps.lt_tensor(&len.unsqueeze(-1)).to_kind(x.kind()) * batch.rows.unsqueeze(-1);
            let valid = valid.unsqueeze(-1);
            let sq = ((xhat - x).square() * &valid).sum_dim_intlist([1, 2, 3].as_slice(), false, Kind::Float);
            let count = valid.sum_dim_intlist([1, 2, 3].as_slice(), false, Kind::Float) * x.size()[3] as f64;
            sq / count.clamp_min(1.0)
        })
        .collect();
    Tensor::stack(&per_modality, 0).mean_dim(0, false, Kind::Float)
}

/// Equations 5–6: the sum of squared off-diagonal entries of each member's batch covariance of
/// its centred latents.
pub(super) fn disentangle(z: &Tensor, rows: &Tensor) -> Tensor {
    let w = rows.unsqueeze(-1);
    let n = row_count(rows).view([-1, 1, 1]);
    let mean = (z * &w).sum_dim_intlist(1, true, Kind::Float) / &n;
    let centred = (z - mean) * &w;
    let cov = centred.transpose(1, 2).matmul(&centred) / n;
    let off = &cov - cov.diagonal(0, 1, 2).diag_embed(0, -2, -1);
    off.square().sum_dim_intlist([1, 2].as_slice(), false, Kind::Float)
}

/// Equation 2 per member: `Q [K, B, C]` of `z [K, B, L]` to the member's centroids `[K, C, L]`
/// under a Student-t kernel with the member's `dof [K]`.
pub(super) fn soft_assignment(z: &Tensor, centroids: &Tensor, dof: &Tensor) -> Tensor {
    let dist2 = (z.unsqueeze(2) - centroids.unsqueeze(1)).square().sum_dim_intlist(3, false, Kind::Float);
    let dof = dof.view([-1, 1, 1]);
    let exponent = -(&dof + 1.0) / 2.0;
    let kernel = (dist2 / &dof + 1.0).pow(&exponent);
    &kernel / kernel.sum_dim_intlist(2, true, Kind::Float)
}

/// Equation 1 per member: `Σ P log(P / Q)` over its rows and clusters, divided by its row count.
/// Padding rows have `P = 0` and add nothing.
pub(super) fn cluster_kl(p: &Tensor, q: &Tensor, rows: &Tensor) -> Tensor {
    let p = p * rows.unsqueeze(-1);
    (p.xlogy(&p) - &p * q.log()).sum_dim_intlist([1, 2].as_slice(), false, Kind::Float) / row_count(rows)
}

/// Class probabilities `[K, B, 2]` from `q [K, B, C]` and each member's `[K, C, 2]` map.
pub(super) fn class_probabilities(q: &Tensor, cluster_to_class: &Tensor) -> Tensor {
    q.matmul(cluster_to_class)
}

/// Equation 7 per member: cross-entropy of the class probabilities against the labels of the
/// member's labeled real rows, averaged over them; 0 when it has none.
pub(super) fn supervised(q: &Tensor, cluster_to_class: &Tensor, batch: &Stacked) -> Tensor {
    let probs = class_probabilities(q, cluster_to_class);
    let picked = probs.gather(2, &batch.y.to_kind(Kind::Int64).unsqueeze(-1), false).squeeze_dim(-1);
    let mask = batch.labeled.to_kind(Kind::Float) * &batch.rows;
    let n = mask.sum_dim_intlist(1, false, Kind::Float).clamp_min(1.0);
    -(picked.clamp_min(1e-12).log() * mask).sum_dim_intlist(1, false, Kind::Float) / n
}

/// Equation 8 per member: `Σ w_term[k] · term[k]`. A term whose weight is 0 for every member is
/// not computed at all, as in the solo trainer.
pub(super) struct Weighted {
    total: Tensor,
}

impl Weighted {
    pub fn new(k: i64, device: tch::Device) -> Weighted {
        Weighted { total: Tensor::zeros([k], (Kind::Float, device)) }
    }

    /// Adds `weights[k] · term()[k]`.
    pub fn add(&mut self, weights: &[f64], term: impl FnOnce() -> Tensor) {
        if weights.iter().all(|&w| w == 0.0) {
            return;
        }
        let device = self.total.device();
        let w = Tensor::from_slice(&weights.iter().map(|&w| w as f32).collect::<Vec<_>>()).to_device(device);
        // `where` rather than the bare product, so a term that is not finite for a member that
        // gives it weight 0 cannot make that member's loss NaN.
        let contribution = (term() * &w).where_self(&w.ne(0.0), &w.zeros_like());
        self.total = &self.total + contribution;
    }

    pub fn into_tensor(self) -> Tensor {
        self.total
    }
}
