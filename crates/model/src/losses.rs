//! The loss terms of the paper's equations 1–8, each a scalar tensor.
//!
//! Normalisations (the paper leaves them open): sums over samples are divided by the number of
//! samples in the batch, as PyTorch's `reduction="mean"` / `"batchmean"`, so α, β and γ keep
//! their meaning whatever the batch size.
//!
//! - Eq. 1, KL(P‖Q): summed over clusters, divided by the batch size (`batchmean`); `P log P` is
//!   0 where P is 0.
//! - Eq. 2, the Student-t soft assignment Q with `dof` degrees of freedom; eq. 3, the target P
//!   over the rows given (every training row).
//! - Eq. 4, reconstruction: for each modality the mean squared error over its valid
//!   (step, feature) entries, then the mean over the three modalities.
//! - Eq. 5–6, disentanglement: the sum of squared off-diagonal entries of `ẑᵀẑ / N`.
//! - Eq. 7, supervised: cross-entropy of the class probabilities `Q · map` against the labels of
//!   the batch's labeled rows, averaged over them (0 when there are none).
//! - Eq. 8: `L_cluster + α L_recon + β L_supervised + γ L_disentangle`. The AE stage uses cluster
//!   and supervised weights 0, α = `alpha_ae` and γ = `gamma_ae`. A term of weight 0 is not
//!   computed.

use tch::{Kind, Tensor};

use crate::batch::Batch;
use crate::encoder::valid_mask;

/// Equation 4 over valid steps only: for each modality the mean squared error over its valid
/// `(step, feature)` entries, then the mean over modalities (so a 300-dim text modality does not
/// drown a 5-dim audio one).
pub fn reconstruction(recon: &[Tensor], batch: &Batch) -> Tensor {
    let per_modality: Vec<Tensor> = recon
        .iter()
        .zip(batch.x.iter().zip(&batch.lengths))
        .map(|(xhat, (x, len))| {
            let valid = valid_mask(len, x.size()[1]).to_kind(x.kind()).unsqueeze(-1);
            let sq = (xhat - x).square() * &valid;
            let count = valid.sum(x.kind()) * x.size()[2] as f64;
            sq.sum(x.kind()) / count
        })
        .collect();
    Tensor::stack(&per_modality, 0).mean(Kind::Float)
}

/// Equations 5–6: the sum of squared off-diagonal entries of the batch covariance of the
/// centred latent, `C = ẑᵀẑ / N`.
pub fn disentangle(z: &Tensor) -> Tensor {
    let n = z.size()[0] as f64;
    let centred = z - z.mean_dim(0, true, z.kind());
    let cov = centred.transpose(0, 1).matmul(&centred) / n;
    let off = &cov - cov.diagonal(0, 0, 1).diag_embed(0, -2, -1);
    off.square().sum(z.kind())
}

/// Equation 2: soft assignment `Q [B, K]` of latents `z [B, L]` to centroids `[K, L]` under a
/// Student-t kernel with `dof` degrees of freedom.
pub fn soft_assignment(z: &Tensor, centroids: &Tensor, dof: f64) -> Tensor {
    let dist2 = (z.unsqueeze(1) - centroids.unsqueeze(0)).square().sum_dim_intlist(2, false, z.kind());
    let kernel = (dist2 / dof + 1.0).pow_tensor_scalar(-(dof + 1.0) / 2.0);
    &kernel / kernel.sum_dim_intlist(1, true, kernel.kind())
}

/// Equation 3: the target distribution `P` sharpening `Q` and normalising by cluster frequency.
pub fn target_distribution(q: &Tensor) -> Tensor {
    let weight = q.square() / q.sum_dim_intlist(0, true, q.kind());
    &weight / weight.sum_dim_intlist(1, true, weight.kind())
}

/// Equation 1: `KL(P ‖ Q) = Σ_ij P_ij log(P_ij / Q_ij)`, divided by the batch size.
/// `P log P` is taken as 0 where `P = 0`.
pub fn cluster_kl(p: &Tensor, q: &Tensor) -> Tensor {
    let n = p.size()[0] as f64;
    (p.xlogy(p) - p * q.log()).sum(p.kind()) / n
}

/// Class probabilities `[B, C]` from cluster probabilities `q [B, K]` and the `[K, C]` one-hot
/// map from each cluster to the class it stands for.
pub fn class_probabilities(q: &Tensor, cluster_to_class: &Tensor) -> Tensor {
    q.matmul(cluster_to_class)
}

/// Equation 7: cross-entropy of the clustering's class probabilities against the labels of the
/// labeled rows (`labeled [B]` bool, `y [B]` in {0, 1}), averaged over those rows; 0 when the
/// batch holds none.
pub fn supervised(q: &Tensor, cluster_to_class: &Tensor, y: &Tensor, labeled: &Tensor) -> Tensor {
    let probs = class_probabilities(q, cluster_to_class);
    let picked = probs.gather(1, &y.to_kind(Kind::Int64).unsqueeze(1), false).squeeze_dim(1);
    let mask = labeled.to_kind(probs.kind());
    let n_labeled = mask.sum(probs.kind()).clamp_min(1.0);
    -(picked.clamp_min(1e-12).log() * mask).sum(probs.kind()) / n_labeled
}

/// Binary cross-entropy with logits, averaged over the batch (the classifier's loss).
pub fn bce_with_logits(logits: &Tensor, y: &Tensor) -> Tensor {
    logits.binary_cross_entropy_with_logits::<Tensor>(y, None, None, tch::Reduction::Mean)
}

/// The weights of equation 8; a stage sets those it does not use to 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossWeights {
    pub cluster: f64,
    pub alpha: f64,
    pub beta: f64,
    pub gamma: f64,
}

/// The terms of equation 8 for one batch, and their weighted total.
pub struct LossTerms {
    pub cluster: Tensor,
    pub recon: Tensor,
    pub supervised: Tensor,
    pub disentangle: Tensor,
}

impl LossTerms {
    /// Equation 8. Terms with weight 0 are left out of the graph entirely.
    pub fn total(&self, w: LossWeights) -> Tensor {
        let mut total = Tensor::zeros([], (self.recon.kind(), self.recon.device()));
        for (weight, term) in [
            (w.cluster, &self.cluster),
            (w.alpha, &self.recon),
            (w.beta, &self.supervised),
            (w.gamma, &self.disentangle),
        ] {
            if weight != 0.0 {
                total += term * weight;
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn t(v: &[f32], shape: &[i64]) -> Tensor {
        Tensor::from_slice(v).view(shape)
    }

    fn close(a: &Tensor, b: f64) {
        close_f(a.double_value(&[]), b);
    }

    fn close_f(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }

    /// Worked by hand: z = [[0,0],[2,0]], centroids [[0,0],[2,0]], dof 1.
    /// Row 0: d² = (0, 4) → kernel (1, 1/5) → Q = (5/6, 1/6); row 1 mirrors it.
    /// Column sums f = (1, 1); P_0 ∝ (25/36, 1/36) → (25/26, 1/26).
    /// KL row 0 = 25/26 ln((25/26)/(5/6)) + 1/26 ln((1/26)/(1/6)); batch mean = that value.
    #[test]
    fn dec_terms_match_hand_computation() {
        let z = t(&[0., 0., 2., 0.], &[2, 2]);
        let mu = t(&[0., 0., 2., 0.], &[2, 2]);
        let q = soft_assignment(&z, &mu, 1.0);
        close_f(q.double_value(&[0, 0]), 5.0 / 6.0);
        close_f(q.double_value(&[1, 0]), 1.0 / 6.0);
        let p = target_distribution(&q);
        close_f(p.double_value(&[0, 0]), 25.0 / 26.0);
        let kl = cluster_kl(&p, &q);
        let expected =
            25.0 / 26.0 * ((25.0f64 / 26.0) / (5.0 / 6.0)).ln() + 1.0 / 26.0 * ((1.0f64 / 26.0) / (1.0 / 6.0)).ln();
        close(&kl, expected);
    }

    /// dof = 3: kernel (1 + d²/3)^-2; d² = 4 → (7/3)^-2 = 9/49; Q_00 = 1 / (1 + 9/49) = 49/58.
    #[test]
    fn student_t_degrees_of_freedom() {
        let z = t(&[0., 0.], &[1, 2]);
        let mu = t(&[0., 0., 2., 0.], &[2, 2]);
        close_f(soft_assignment(&z, &mu, 3.0).double_value(&[0, 0]), 49.0 / 58.0);
    }

    /// z = [[1,2],[3,0],[2,1]]: mean (2,1); centred [[-1,1],[1,-1],[0,0]];
    /// C = [[2,-2],[-2,2]]/3 → off-diagonal squares 2·(4/9) = 8/9.
    #[test]
    fn disentangle_is_sum_of_squared_off_diagonal_covariance() {
        let z = t(&[1., 2., 3., 0., 2., 1.], &[3, 2]);
        close(&disentangle(&z), 8.0 / 9.0);
    }

    /// Two modalities, T = 2, lengths (1, 2). Errors at valid entries only:
    /// m0 (D=1): row0 step0 err 1, row1 steps err 2,0 → (1+4+0)/3; m1 (D=2): all errors 1 → 1.
    /// The padded step of row 0 has a huge error that must not count. Mean = (5/3 + 1) / 2.
    #[test]
    fn reconstruction_ignores_padding() {
        let len = Tensor::from_slice(&[1i64, 2]);
        let x0 = Tensor::zeros([2, 2, 1], (Kind::Float, Device::Cpu));
        let r0 = t(&[1., 100., 2., 0.], &[2, 2, 1]);
        let x1 = Tensor::zeros([2, 2, 2], (Kind::Float, Device::Cpu));
        let r1 = t(&[1., 1., 100., 100., 1., 1., 1., 1.], &[2, 2, 2]);
        let batch = Batch {
            x: [x0, x1.shallow_clone(), x1],
            lengths: [len.shallow_clone(), len.shallow_clone(), len],
            y: Tensor::zeros([2], (Kind::Float, Device::Cpu)),
            labeled: Tensor::ones([2], (Kind::Bool, Device::Cpu)),
        };
        let recon = reconstruction(&[r0, r1.shallow_clone(), r1], &batch);
        close(&recon, (5.0 / 3.0 + 1.0 + 1.0) / 3.0);
    }

    /// K = 3 clusters mapped to classes (0, 1, 1). Row 0 (label 1): p1 = 0.3 + 0.2 = 0.5;
    /// row 1 (label 0): p0 = 0.8; row 2 unlabeled. CE = -(ln 0.5 + ln 0.8) / 2.
    #[test]
    fn supervised_term_uses_only_labeled_rows() {
        let q = t(&[0.5, 0.3, 0.2, 0.8, 0.1, 0.1, 0.1, 0.1, 0.8], &[3, 3]);
        let map = t(&[1., 0., 0., 1., 0., 1.], &[3, 2]);
        let y = t(&[1., 0., 1.], &[3]);
        let labeled = Tensor::from_slice(&[1u8, 1, 0]).to_kind(Kind::Bool);
        close(&supervised(&q, &map, &y, &labeled), -((0.5f64).ln() + (0.8f64).ln()) / 2.0);
        let none = Tensor::zeros([3], (Kind::Bool, Device::Cpu));
        close(&supervised(&q, &map, &y, &none), 0.0);
    }
}
