//! The Parzen estimators TPE fits to the good and the bad observations: one dimension's model
//! ([`Param`]), truncated-Gaussian and categorical kernels, and the log-space arithmetic that keeps
//! densities finite far into the tails.

use std::f64::consts::{PI, SQRT_2};

use decsweep_api::ParamValue;
use rand_chacha::ChaCha8Rng;

use super::settings::{weights, TpeSettings};
use crate::sampler::unit;
use crate::space::Dimension;

/// How one dimension is modelled.
#[derive(Clone, Debug)]
pub(super) enum Kind {
    /// In transformed space: bounds, grid step (0 when continuous).
    Num {
        lo: f64,
        hi: f64,
        step: f64,
    },
    Cat {
        n: usize,
    },
}

#[derive(Clone, Debug)]
pub(super) struct Param {
    pub(super) name: String,
    pub(super) dim: Dimension,
    pub(super) kind: Kind,
}

impl Param {
    pub(super) fn new(name: &str, dim: &Dimension) -> Param {
        let kind = match dim {
            Dimension::Grid(v) | Dimension::Choice(v) => Kind::Cat { n: v.len() },
            Dimension::Uniform { lo, hi } => Kind::Num { lo: *lo, hi: *hi, step: 0.0 },
            Dimension::LogUniform { lo, hi } => Kind::Num { lo: lo.ln(), hi: hi.ln(), step: 0.0 },
            Dimension::Int { lo, hi, log: true, .. } => {
                Kind::Num { lo: (*lo as f64 - 0.5).ln(), hi: (*hi as f64 + 0.5).ln(), step: 0.0 }
            }
            Dimension::Int { lo, hi, step, log: false } => {
                Kind::Num { lo: *lo as f64, hi: Dimension::int_last(*lo, *hi, *step) as f64, step: *step as f64 }
            }
        };
        Param { name: name.to_string(), dim: dim.clone(), kind }
    }

    /// A value of this dimension in the model's space; `None` if it is not one.
    pub(super) fn encode(&self, v: &ParamValue) -> Option<f64> {
        match &self.dim {
            Dimension::Grid(vs) | Dimension::Choice(vs) => vs.iter().position(|x| x == v).map(|i| i as f64),
            Dimension::Uniform { .. } => v.as_f64(),
            Dimension::LogUniform { .. } | Dimension::Int { log: true, .. } => {
                v.as_f64().filter(|x| *x > 0.0).map(f64::ln)
            }
            Dimension::Int { .. } => v.as_f64(),
        }
        .filter(|x| x.is_finite())
    }

    pub(super) fn decode(&self, x: f64) -> ParamValue {
        match &self.dim {
            Dimension::Grid(vs) | Dimension::Choice(vs) => {
                vs.get((x.max(0.0) as usize).min(vs.len().saturating_sub(1))).cloned().unwrap_or(ParamValue::Int(0))
            }
            Dimension::Uniform { lo, hi } => ParamValue::Float(x.clamp(*lo, *hi)),
            Dimension::LogUniform { lo, hi } => ParamValue::Float(x.exp().clamp(*lo, *hi)),
            Dimension::Int { lo, hi, log: true, .. } => ParamValue::Int((x.exp().round() as i64).clamp(*lo, *hi)),
            Dimension::Int { lo, hi, step, log: false } => {
                let last = Dimension::int_last(*lo, *hi, *step);
                let k = ((x - *lo as f64) / *step as f64).round().max(0.0);
                let v = (*lo as f64 + k * *step as f64).min(last as f64);
                // Re-anchor on the grid in integers so a large lo cannot drift off it.
                let k = ((v as i128 - i128::from(*lo)) / i128::from(*step)).max(0);
                let v = i128::from(*lo) + k * i128::from(*step);
                ParamValue::Int(i64::try_from(v).unwrap_or(last).clamp(*lo, last))
            }
        }
    }
}

/// The kernels of one dimension in one estimator: component `k` of the mixture.
#[derive(Clone, Debug)]
pub(super) enum DimKernels {
    Num {
        mus: Vec<f64>,
        sigmas: Vec<f64>,
        lo: f64,
        hi: f64,
        step: f64,
        /// log of each kernel's mass over the (widened) range, the truncation's normaliser.
        log_z: Vec<f64>,
        /// `−ln √(2π) − ln σ − log_z` per kernel: the continuous log density's constant part.
        log_norm: Vec<f64>,
        inv_sigma: Vec<f64>,
    },
    Cat {
        /// log probabilities, one row per component.
        log_p: Vec<Vec<f64>>,
    },
}

/// A Parzen estimator: a weighted mixture whose components each span a set of dimensions.
#[derive(Clone, Debug)]
pub(super) struct Parzen {
    pub(super) log_w: Vec<f64>,
    pub(super) cum_w: Vec<f64>,
    pub(super) dims: Vec<DimKernels>,
}

/// `log Q(z)`, the log upper tail of the standard normal, accurate far into the tail.
pub(super) fn log_q(z: f64) -> f64 {
    if z == f64::INFINITY {
        return f64::NEG_INFINITY;
    }
    if z < 25.0 {
        return (0.5 * erfc(z / SQRT_2)).ln();
    }
    let z2 = z * z;
    -0.5 * z2 - z.ln() - 0.5 * (2.0 * PI).ln() + (1.0 - 1.0 / z2 + 3.0 / (z2 * z2)).ln()
}

/// `log(Φ(b) − Φ(a))` for `a < b`, stable in both tails.
pub(super) fn log_gauss_mass(a: f64, b: f64) -> f64 {
    if a >= b {
        return f64::NEG_INFINITY;
    }
    if a >= 0.0 {
        let (qa, qb) = (log_q(a), log_q(b));
        qa + (-(qb - qa).exp()).ln_1p()
    } else if b <= 0.0 {
        log_gauss_mass(-b, -a)
    } else {
        // Φ(b) − Φ(a) = 1 − Q(b) − Q(−a).
        (1.0 - 0.5 * erfc(b / SQRT_2) - 0.5 * erfc(-a / SQRT_2)).max(f64::MIN_POSITIVE).ln()
    }
}

/// The complementary error function (Chebyshev fit, fractional error below 1.2e-7 everywhere).
pub(super) fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

pub(super) const LOG_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// Terms this far below the largest are skipped: each is under e^−40 ≈ 4e−18 of a sum that holds
/// at least 1, so even a thousand of them move the log by less than 1e−14, while most of a wide
/// mixture's kernels are that far from any one point and their exp is most of the cost of
/// scoring a candidate.
pub(super) const NEGLIGIBLE_LOG_TERM: f64 = -40.0;

pub(super) fn log_sum_exp(xs: &[f64]) -> f64 {
    let m = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + xs.iter().map(|x| x - m).filter(|d| *d > NEGLIGIBLE_LOG_TERM).map(f64::exp).sum::<f64>().ln()
}

/// Bandwidths of numeric kernels at `mus` (not including the prior) on the (step-widened)
/// range `[a, b]`: the larger gap to a sorted neighbour, the range ends standing beyond the first
/// and last centre; without `consider_endpoints` the first and last centres use their inner gap
/// only. Then the magic clip to `[(b − a) / min(100, 1 + n + 1), b − a]`.
pub(super) fn bandwidths(mus: &[f64], a: f64, b: f64, s: &TpeSettings) -> Vec<f64> {
    let range = b - a;
    let n = mus.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|i, j| mus[*i].total_cmp(&mus[*j]).then(i.cmp(j)));
    let mut ends = Vec::with_capacity(n + 2);
    ends.push(a);
    ends.extend(order.iter().map(|i| mus[*i]));
    ends.push(b);
    let mut sorted: Vec<f64> = (1..=n).map(|i| (ends[i] - ends[i - 1]).max(ends[i + 1] - ends[i])).collect();
    if !s.consider_endpoints && n >= 2 {
        sorted[0] = ends[2] - ends[1];
        sorted[n - 1] = ends[n] - ends[n - 1];
    }
    let min_sigma = if s.consider_magic_clip { range / (100.0f64).min(1.0 + (n + 1) as f64) } else { 1e-12 };
    let mut out = vec![0.0; n];
    for (k, i) in order.iter().enumerate() {
        out[*i] = sorted[k].clamp(min_sigma, range);
    }
    out
}

impl Parzen {
    /// The estimator over `obs` (rows of encoded values for `params`, oldest first).
    pub(super) fn new(params: &[&Param], obs: &[Vec<f64>], s: &TpeSettings, bandwidth_factor: f64) -> Parzen {
        let n = obs.len();
        let mut w = weights(n);
        w.push(s.prior_weight);
        let total: f64 = w.iter().sum();
        let log_w: Vec<f64> = w.iter().map(|x| (x / total).ln()).collect();
        let mut cum_w = Vec::with_capacity(w.len());
        let mut acc = 0.0;
        for x in &w {
            acc += x / total;
            cum_w.push(acc);
        }
        let dims = params
            .iter()
            .enumerate()
            .map(|(j, p)| match p.kind {
                Kind::Num { lo, hi, step } => {
                    let (a, b) = (lo - step / 2.0, hi + step / 2.0);
                    let mut mus: Vec<f64> = obs.iter().map(|r| r[j]).collect();
                    let mut sigmas: Vec<f64> =
                        bandwidths(&mus, a, b, s).into_iter().map(|sg| sg * bandwidth_factor).collect();
                    mus.push(0.5 * (a + b));
                    sigmas.push(b - a);
                    let log_z: Vec<f64> =
                        mus.iter().zip(&sigmas).map(|(m, sg)| log_gauss_mass((a - m) / sg, (b - m) / sg)).collect();
                    let log_norm = sigmas.iter().zip(&log_z).map(|(sg, z)| -LOG_SQRT_2PI - sg.ln() - z).collect();
                    let inv_sigma = sigmas.iter().map(|sg| 1.0 / sg).collect();
                    DimKernels::Num { mus, sigmas, lo, hi, step, log_z, log_norm, inv_sigma }
                }
                Kind::Cat { n: k } => {
                    let n_kernels = (n + 1) as f64;
                    let mut log_p = Vec::with_capacity(n + 1);
                    for r in obs {
                        let mut row = vec![s.prior_weight / n_kernels; k];
                        if let Some(x) = row.get_mut(r[j] as usize) {
                            *x += 1.0;
                        }
                        let sum: f64 = row.iter().sum();
                        log_p.push(row.iter().map(|x| (x / sum).ln()).collect());
                    }
                    log_p.push(vec![-(k as f64).ln(); k]);
                    DimKernels::Cat { log_p }
                }
            })
            .collect();
        Parzen { log_w, cum_w, dims }
    }

    /// One draw: a component, then every dimension from it.
    pub(super) fn sample(&self, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let u = unit(rng);
        let k = self.cum_w.iter().position(|c| u < *c).unwrap_or(self.cum_w.len() - 1);
        self.dims
            .iter()
            .map(|d| match d {
                DimKernels::Num { mus, sigmas, lo, hi, step, .. } => {
                    let (a, b) = (lo - step / 2.0, hi + step / 2.0);
                    let x = trunc_normal(rng, mus[k], sigmas[k], a, b);
                    if *step > 0.0 {
                        (lo + ((x - lo) / step).round() * step).clamp(*lo, *hi)
                    } else {
                        x.clamp(*lo, *hi)
                    }
                }
                DimKernels::Cat { log_p } => {
                    let u = unit(rng);
                    let mut acc = 0.0;
                    let row = &log_p[k];
                    let mut pick = row.len() - 1;
                    for (i, lp) in row.iter().enumerate() {
                        acc += lp.exp();
                        if u < acc {
                            pick = i;
                            break;
                        }
                    }
                    pick as f64
                }
            })
            .collect()
    }

    /// `log p(x)` of the mixture; `scratch` holds one entry per component.
    pub(super) fn log_pdf(&self, x: &[f64], scratch: &mut Vec<f64>) -> f64 {
        scratch.clear();
        scratch.extend_from_slice(&self.log_w);
        for (d, xv) in self.dims.iter().zip(x) {
            match d {
                DimKernels::Num { mus, sigmas, step, log_z, log_norm, inv_sigma, .. } => {
                    if *step > 0.0 {
                        for (k, acc) in scratch.iter_mut().enumerate() {
                            let (m, sg) = (mus[k], sigmas[k]);
                            *acc += log_gauss_mass((xv - step / 2.0 - m) / sg, (xv + step / 2.0 - m) / sg) - log_z[k];
                        }
                    } else {
                        for (k, acc) in scratch.iter_mut().enumerate() {
                            let z = (xv - mus[k]) * inv_sigma[k];
                            *acc += -0.5 * z * z + log_norm[k];
                        }
                    }
                }
                DimKernels::Cat { log_p } => {
                    let i = *xv as usize;
                    for (k, acc) in scratch.iter_mut().enumerate() {
                        *acc += log_p[k].get(i).copied().unwrap_or(f64::NEG_INFINITY);
                    }
                }
            }
        }
        log_sum_exp(scratch)
    }
}

/// A standard normal draw (Box–Muller).
pub(super) fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = 1.0 - unit(rng); // (0, 1]
    let u2 = unit(rng);
    (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
}

/// A draw of N(mu, sigma) restricted to [a, b], by rejection (mu lies in [a, b] and sigma is at
/// most the range, so at least a third of the draws are accepted); clamped after 1000 misses.
pub(super) fn trunc_normal(rng: &mut ChaCha8Rng, mu: f64, sigma: f64, a: f64, b: f64) -> f64 {
    for _ in 0..1000 {
        let x = mu + sigma * normal(rng);
        if a <= x && x <= b {
            return x;
        }
    }
    mu.clamp(a, b)
}
