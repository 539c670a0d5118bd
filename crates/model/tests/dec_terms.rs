//! The DEC loss terms (paper equations 1–8) on small tensors, against values worked out by hand
//! from the equations; complements the unit tests in `src/losses.rs`.

use decsweep_api::Params;
use decsweep_model::losses::{self, LossTerms, LossWeights};
use tch::{Kind, Tensor};

fn t(v: &[f32], shape: &[i64]) -> Tensor {
    Tensor::from_slice(v).view(shape)
}

fn scalar(x: f64) -> Tensor {
    Tensor::from(x as f32)
}

#[track_caller]
fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-6 * b.abs().max(1.0), "{a} vs {b}");
}

fn values(x: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(x.to_kind(Kind::Double).flatten(0, -1)).expect("f64 values")
}

/// Equation 1 with P holding exact zeros (a one-hot row): 0·log 0 counts as 0, not NaN.
/// P = [[1, 0], [1/4, 3/4]], Q = [[0.8, 0.2], [1/2, 1/2]]:
/// row 0 = 1·ln(1/0.8) = ln 1.25; row 1 = ¼ ln(½) + ¾ ln(3/2); divided by the batch size 2.
/// ∂/∂Q_ij = −P_ij / (2 Q_ij) = [[−0.625, 0], [−0.25, −0.75]]: zero, not NaN, where P is 0.
#[test]
fn kl_with_zeros_in_p() {
    let p = t(&[1.0, 0.0, 0.25, 0.75], &[2, 2]);
    let q = t(&[0.8, 0.2, 0.5, 0.5], &[2, 2]).set_requires_grad(true);
    let kl = losses::cluster_kl(&p, &q);
    let expected = ((1.25f64).ln() + 0.25 * (0.5f64).ln() + 0.75 * (1.5f64).ln()) / 2.0;
    close(kl.double_value(&[]), expected);
    kl.backward();
    let grad = values(&q.grad());
    for (g, e) in grad.iter().zip([-0.625, 0.0, -0.25, -0.75]) {
        close(*g, e);
    }
}

/// KL(Q‖Q) = 0, and KL(P‖Q) > 0 for the sharpened target of a non-trivial Q.
#[test]
fn kl_vanishes_only_at_equal_distributions() {
    let q = t(&[0.7, 0.2, 0.1, 0.3, 0.3, 0.4], &[2, 3]);
    close(losses::cluster_kl(&q, &q).double_value(&[]), 0.0);
    assert!(losses::cluster_kl(&losses::target_distribution(&q), &q).double_value(&[]) > 1e-3);
}

/// Equation 3 with unequal cluster frequencies. Q = [[.9,.1],[.6,.4],[.2,.8]], f = (1.7, 1.3):
/// row 0: (.81/1.7, .01/1.3) → P = (1053/1070, 17/1070);
/// row 1: (.36/1.7, .16/1.3) → P = (117/185, 68/185);
/// row 2: (.04/1.7, .64/1.3) → P = (13/285, 272/285).
#[test]
fn target_distribution_divides_by_cluster_frequency() {
    let q = t(&[0.9, 0.1, 0.6, 0.4, 0.2, 0.8], &[3, 2]);
    let p = values(&losses::target_distribution(&q));
    let expected = [1053.0 / 1070.0, 17.0 / 1070.0, 117.0 / 185.0, 68.0 / 185.0, 13.0 / 285.0, 272.0 / 285.0];
    for (a, e) in p.iter().zip(expected) {
        close(*a, e);
    }
}

/// Equation 2 with three centroids. z = (1, 0); μ = (0,0), (3,0), (1,2): ‖z − μ‖² = 1, 4, 4.
/// dof 1: kernel 1/(1 + d²) = (1/2, 1/5, 1/5) → Q = (5/9, 2/9, 2/9).
/// dof 2: kernel (1 + d²/2)^(−3/2) = (1.5^−1.5, 3^−1.5, 3^−1.5).
#[test]
fn soft_assignment_three_centroids() {
    let z = t(&[1.0, 0.0], &[1, 2]);
    let mu = t(&[0.0, 0.0, 3.0, 0.0, 1.0, 2.0], &[3, 2]);
    let q = values(&losses::soft_assignment(&z, &mu, 1.0));
    for (a, e) in q.iter().zip([5.0 / 9.0, 2.0 / 9.0, 2.0 / 9.0]) {
        close(*a, e);
    }
    let (k1, k4) = (1.5f64.powf(-1.5), 3f64.powf(-1.5));
    let q = values(&losses::soft_assignment(&z, &mu, 2.0));
    for (a, e) in q.iter().zip([k1, k4, k4]) {
        close(*a, e / (k1 + 2.0 * k4));
    }
}

/// The gradients of KL(P‖Q) with P held fixed, against the closed form of the DEC paper (Xie et
/// al. 2016, dof 1), divided by our batch size n:
/// ∂L/∂z_i = (2/n) Σ_j (1 + ‖z_i − μ_j‖²)⁻¹ (p_ij − q_ij)(z_i − μ_j), ∂L/∂μ_j = −(2/n) Σ_i (same).
#[test]
fn kl_gradients_match_the_dec_closed_form() {
    let zv = [0.5f64, -1.0, 2.0, 0.3, -0.7, 1.1];
    let muv = [0.0f64, 0.0, 1.5, 0.5];
    let (n, k, l) = (3usize, 2usize, 2usize);
    let to_t =
        |v: &[f64], r: i64| Tensor::from_slice(v).view([r, l as i64]).to_kind(Kind::Float).set_requires_grad(true);
    let (z, mu) = (to_t(&zv, n as i64), to_t(&muv, k as i64));
    let q = losses::soft_assignment(&z, &mu, 1.0);
    let p = losses::target_distribution(&q.detach());
    losses::cluster_kl(&p, &q).backward();
    let (qv, pv) = (values(&q), values(&p));
    let mut gz = vec![0.0; n * l];
    let mut gmu = vec![0.0; k * l];
    for i in 0..n {
        for j in 0..k {
            let d2: f64 = (0..l).map(|c| (zv[i * l + c] - muv[j * l + c]).powi(2)).sum();
            let w = 2.0 / n as f64 / (1.0 + d2) * (pv[i * k + j] - qv[i * k + j]);
            for c in 0..l {
                gz[i * l + c] += w * (zv[i * l + c] - muv[j * l + c]);
                gmu[j * l + c] -= w * (zv[i * l + c] - muv[j * l + c]);
            }
        }
    }
    for (a, e) in values(&z.grad()).iter().zip(&gz).chain(values(&mu.grad()).iter().zip(&gmu)) {
        assert!((a - e).abs() < 1e-6, "{a} vs {e}");
    }
}

/// Equations 5–6 for z = I₃ (N = 3): centred rows (⅔, −⅓, −⅓), ...; C = ẑᵀẑ / 3 has diagonal
/// 2/9 and off-diagonal −1/9 → six squared off-diagonal entries sum to 6/81 = 2/27.
/// Uncorrelated columns give 0; scaling z by 2 scales the loss by 2⁴.
#[test]
fn disentangle_by_hand() {
    let eye = Tensor::eye(3, (Kind::Float, tch::Device::Cpu));
    close(losses::disentangle(&eye).double_value(&[]), 2.0 / 27.0);
    let uncorrelated = t(&[1.0, 1.0, 1.0, -1.0, -1.0, 1.0, -1.0, -1.0], &[4, 2]);
    close(losses::disentangle(&uncorrelated).double_value(&[]), 0.0);
    close(losses::disentangle(&(eye * 2.0)).double_value(&[]), 16.0 * 2.0 / 27.0);
}

/// Equation 7 with K = 2 clusters standing for classes 0 and 1 is the usual cross-entropy:
/// Q = [[.9,.1],[.3,.7],[.5,.5]], y = (0, 1, 1) → −(ln .9 + ln .7 + ln .5) / 3.
#[test]
fn supervised_with_identity_map_is_cross_entropy() {
    let q = t(&[0.9, 0.1, 0.3, 0.7, 0.5, 0.5], &[3, 2]);
    let map = t(&[1.0, 0.0, 0.0, 1.0], &[2, 2]);
    let y = t(&[0.0, 1.0, 1.0], &[3]);
    let labeled = Tensor::from_slice(&[1u8, 1, 1]).to_kind(Kind::Bool);
    let expected = -((0.9f64).ln() + (0.7f64).ln() + (0.5f64).ln()) / 3.0;
    close(losses::supervised(&q, &map, &y, &labeled).double_value(&[]), expected);
}

/// The classifier loss: logits (0, 2, −1), labels (1, 0, 0) → (ln 2 + ln(1 + e²) + ln(1 + e⁻¹)) / 3.
#[test]
fn bce_with_logits_by_hand() {
    let loss = losses::bce_with_logits(&t(&[0.0, 2.0, -1.0], &[3]), &t(&[1.0, 0.0, 0.0], &[3]));
    let e = std::f64::consts::E;
    close(loss.double_value(&[]), ((2f64).ln() + (1.0 + e * e).ln() + (1.0 + 1.0 / e).ln()) / 3.0);
}

/// Equation 8 with the paper's DEC weights (α 0.1, β 0.5, γ 0 by default; γ set to 0.001 here):
/// 0.3 + 0.1·2 + 0.5·0.7 + 0.001·5 = 0.855, and ∂total/∂term = its weight. A term with weight 0
/// is not in the total at all, so even a NaN there leaves it finite.
#[test]
fn equation_8_weighted_total() {
    let defaults = Params::default();
    assert_eq!((defaults.alpha, defaults.beta, defaults.gamma), (0.1, 0.5, 0.0), "the paper's DEC weights");
    let leaf = |x: f64| scalar(x).set_requires_grad(true);
    let terms = LossTerms { cluster: leaf(0.3), recon: leaf(2.0), supervised: leaf(0.7), disentangle: leaf(5.0) };
    let weights = LossWeights { cluster: 1.0, alpha: defaults.alpha, beta: defaults.beta, gamma: 0.001 };
    let total = terms.total(weights);
    close(total.double_value(&[]), 0.855);
    total.backward();
    for (term, w) in [(&terms.cluster, 1.0), (&terms.recon, 0.1), (&terms.supervised, 0.5), (&terms.disentangle, 0.001)]
    {
        close(term.grad().double_value(&[]), w);
    }

    let with_nan =
        LossTerms { cluster: scalar(0.3), recon: scalar(2.0), supervised: scalar(0.7), disentangle: scalar(f64::NAN) };
    close(with_nan.total(LossWeights { gamma: 0.0, ..weights }).double_value(&[]), 0.85);
}
