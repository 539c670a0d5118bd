//! The Tree-structured Parzen Estimator (TPE) sampler, written for decsweep (no crate in the
//! Rust ecosystem implements TPE with Optuna's estimator; this follows the algorithm Optuna
//! documents, with its defaults except two that `decsweep-bench-search` measured better:
//! `n_ei_candidates` and `good_bandwidth_factor`).
//!
//! # Algorithm
//!
//! Each ask, the finished configurations (failed ones, `value = None` or non-finite, are left
//! out, as Optuna leaves out failed trials) get a loss: the value when minimising, `-value` when
//! maximising. Pruned configurations (`pruned_at`) rank below every completed one, those
//! stopped at a later step first and then by their last value, as in Optuna's TPE: they count
//! as finished, so they land in the "bad" group and steer proposals away. With `constant_liar`
//! (default, as in Optuna 5; decsweep's workers run in parallel) every pending point joins them
//! with a loss worse than every value seen, so it lands in the "bad" group and pushes the next
//! proposal away from it (it does not count towards the size of the good group).
//!
//! - **Startup**: while fewer than `n_startup_trials` (10) configurations count (finished, plus
//!   pending ones with the liar), points are drawn uniformly like the random sampler, redrawn
//!   while equal to a pending or finished point.
//! - **Split**: sorted by loss (ties: earlier first), the best `gamma(n) = min(ceil(0.1·n), 25)`
//!   are "good" (l), the rest "bad" (g). Each group keeps its chronological order.
//! - **Weights** of a group of n, oldest first: 1 each below 25; otherwise a ramp
//!   `linspace(1/n, 1, n − 25)` for the oldest then 25 ones (Optuna's default `weights`).
//!   A prior component of weight `prior_weight` (1.0) is appended; weights are normalised.
//! - **Kernels**, per dimension, in a transformed space: `uniform` as is; `loguniform` in
//!   `[ln lo, ln hi]`; `int` with `log` in `[ln(lo − ½), ln(hi + ½)]` (continuous kernels, the
//!   sample rounded, like the random sampler's log ints); `int` without `log` as a *discrete*
//!   truncated normal on the grid `lo, lo+step, …`: the mass of `[x − step/2, x + step/2]`
//!   over that of `[lo − step/2, last + step/2]`; `choice` as a categorical kernel.
//!   - Numeric: one truncated normal per observation centred on it, plus the prior
//!     `N((a+b)/2, b − a)` where `[a, b] = [lo − step/2, hi + step/2]` (step 0 when continuous).
//!     Bandwidths (Optuna ≥ 4's rule, in both modes): sort the centres, put `a` and `b` at the
//!     ends, σᵢ = the larger gap to a neighbour; without `consider_endpoints` (default) the first
//!     and last σ use their inner gap only (when there are at least two centres). Then the magic
//!     clip: σ ∈ [(b − a) / min(100, 1 + n + 1), b − a]. In the good-trials estimator only,
//!     these σ (not the prior's) are then multiplied by `good_bandwidth_factor` (0.5; Optuna's
//!     estimator is factor 1): l concentrates on the best points while g keeps Optuna's width.
//!   - Choice with k values: each observation's kernel puts `prior_weight / (n + 1)` on every
//!     value and 1 more on its own, normalised; the prior kernel is uniform.
//! - **Proposal**: draw `n_ei_candidates` (128; Optuna's is 24, see below) points from l, keep
//!   the one maximising
//!   `log l(x) − log g(x)`. Multivariate (default, as in Optuna ≥ 4 for one objective; measured
//!   better than univariate by `decsweep-bench-search` on 4–5 of its 5 functions): one mixture
//!   over all dimensions whose components are joint (a component is drawn, then every
//!   dimension from it; log densities of a component add over dimensions). Univariate
//!   (`multivariate = false`, Optuna's historical default): each dimension has its own pair of
//!   one-dimensional mixtures and picks its candidate independently.
//! - A proposal equal to a pending point is replaced by the next best candidate point, and
//!   failing that a uniform draw, so two idle workers never receive the same point.
//!
//! # Determinism
//!
//! The random stream of an ask is ChaCha8(`seed`) stream `history.len() + pending.len()`: the
//! index of the point being proposed. So the proposal is a function of the seed and the
//! arguments alone (the sampler keeps no state), and a restarted coordinator that passes the same
//! history and pending points gets the same point. `ask` returns `None` once that index reaches
//! `n_trials`.

use std::f64::consts::{PI, SQRT_2};

use decsweep_api::ParamValue;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::sampler::{draw, unit, Observation, Point, Sampler};
use crate::space::{Dimension, Space};
use crate::spec::Direction;

/// `[sampler]` options of `kind = "tpe"`; the defaults are those of Optuna 5's `TPESampler`
/// for one objective (multivariate, constant liar on), except two that were measured better:
/// `n_ei_candidates` (128) and `good_bandwidth_factor` (0.5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TpeSettings {
    /// Uniform draws before the model is used.
    pub n_startup_trials: usize,
    /// Candidates drawn from the good-trials estimator per proposal.
    pub n_ei_candidates: usize,
    /// Joint kernels over all dimensions instead of one estimator per dimension.
    pub multivariate: bool,
    /// Count pending points as worse than every value seen.
    pub constant_liar: bool,
    /// Weight of the prior component.
    pub prior_weight: f64,
    /// Let the outermost kernels' bandwidth reach the range ends.
    pub consider_endpoints: bool,
    /// Clip bandwidths to `[range / min(100, 1 + n_kernels), range]`.
    pub consider_magic_clip: bool,
    /// Multiplies the bandwidths of the good-trials estimator's observation kernels (not its
    /// prior, not the bad-trials estimator): below 1 the proposals stay closer to the best points.
    /// Optuna has no such option (it is 1 there).
    #[serde(default = "default_good_bandwidth_factor")]
    pub good_bandwidth_factor: f64,
}

fn default_good_bandwidth_factor() -> f64 {
    TpeSettings::default().good_bandwidth_factor
}

impl Default for TpeSettings {
    fn default() -> Self {
        TpeSettings {
            n_startup_trials: 10,
            // Optuna's default is 24. With the narrower good-trials kernels below, 64, 128, 256
            // and 512 were all better than Optuna on `decsweep-bench-search`'s tuning seeds;
            // 128 had the lowest geometric-mean regret ratio over 200 of them (bench/RESULTS.md).
            n_ei_candidates: 128,
            multivariate: true,
            constant_liar: true,
            prior_weight: 1.0,
            consider_endpoints: false,
            consider_magic_clip: true,
            // Measured on the tuning seeds of `decsweep-bench-search` (bench/RESULTS.md): halving
            // the good kernels' bandwidths cut the median regret on all five functions (to
            // 0.3–0.8× of factor 1's on four of them), where shrinking both estimators' kernels
            // alike made Hartmann-6 worse.
            good_bandwidth_factor: 0.5,
        }
    }
}

/// The number of good trials among `n`: `min(ceil(0.1·n), 25)`.
pub fn gamma(n: usize) -> usize {
    n.div_ceil(10).min(25)
}

/// Optuna's default weights of `n` observations, oldest first.
pub fn weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let m = n - 25;
    let start = 1.0 / n as f64;
    let mut out: Vec<f64> =
        (0..m).map(|i| if m == 1 { start } else { start + (1.0 - start) * i as f64 / (m - 1) as f64 }).collect();
    out.extend(std::iter::repeat_n(1.0, 25));
    out
}

/// How one dimension is modelled.
#[derive(Clone, Debug)]
enum Kind {
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
struct Param {
    name: String,
    dim: Dimension,
    kind: Kind,
}

impl Param {
    fn new(name: &str, dim: &Dimension) -> Param {
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
    fn encode(&self, v: &ParamValue) -> Option<f64> {
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

    fn decode(&self, x: f64) -> ParamValue {
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
enum DimKernels {
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
struct Parzen {
    log_w: Vec<f64>,
    cum_w: Vec<f64>,
    dims: Vec<DimKernels>,
}

/// `log Q(z)`, the log upper tail of the standard normal, accurate far into the tail.
fn log_q(z: f64) -> f64 {
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
fn log_gauss_mass(a: f64, b: f64) -> f64 {
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
fn erfc(x: f64) -> f64 {
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

const LOG_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// Terms this far below the largest are skipped: each is under e^−40 ≈ 4e−18 of a sum that holds
/// at least 1, so even a thousand of them move the log by less than 1e−14, while most of a wide
/// mixture's kernels are that far from any one point and their exp is most of the cost of
/// scoring a candidate.
const NEGLIGIBLE_LOG_TERM: f64 = -40.0;

fn log_sum_exp(xs: &[f64]) -> f64 {
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
fn bandwidths(mus: &[f64], a: f64, b: f64, s: &TpeSettings) -> Vec<f64> {
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
    fn new(params: &[&Param], obs: &[Vec<f64>], s: &TpeSettings, bandwidth_factor: f64) -> Parzen {
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
    fn sample(&self, rng: &mut ChaCha8Rng) -> Vec<f64> {
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
    fn log_pdf(&self, x: &[f64], scratch: &mut Vec<f64>) -> f64 {
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
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = 1.0 - unit(rng); // (0, 1]
    let u2 = unit(rng);
    (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
}

/// A draw of N(mu, sigma) restricted to [a, b], by rejection (mu lies in [a, b] and sigma is at
/// most the range, so at least a third of the draws are accepted); clamped after 1000 misses.
fn trunc_normal(rng: &mut ChaCha8Rng, mu: f64, sigma: f64, a: f64, b: f64) -> f64 {
    for _ in 0..1000 {
        let x = mu + sigma * normal(rng);
        if a <= x && x <= b {
            return x;
        }
    }
    mu.clamp(a, b)
}

/// The TPE sampler (see the module docs).
#[derive(Clone, Debug)]
pub struct TpeSampler {
    space: Space,
    params: Vec<Param>,
    direction: Direction,
    settings: TpeSettings,
    seed: u64,
    n_trials: usize,
}

impl TpeSampler {
    /// A sampler over `space` (its `grid` dimensions are modelled like `choice`), proposing
    /// `n_trials` points in all, for an objective optimised in `direction`.
    pub fn new(space: Space, direction: Direction, settings: TpeSettings, seed: u64, n_trials: usize) -> TpeSampler {
        let params = space.dims.iter().map(|(n, d)| Param::new(n, d)).collect();
        TpeSampler { space, params, direction, settings, seed, n_trials }
    }

    fn random_point(&self, rng: &mut ChaCha8Rng) -> Point {
        self.space.dims.iter().map(|(name, dim)| (name.clone(), draw(rng, dim))).collect()
    }

    /// Encoded rows and losses of the observations the model uses, oldest first.
    fn rows(&self, history: &[Observation], pending: &[Point]) -> (Vec<Vec<f64>>, Vec<f64>) {
        let mut rows = Vec::new();
        let mut losses = Vec::new();
        let encode = |p: &Point| -> Option<Vec<f64>> {
            self.params.iter().map(|prm| p.get(&prm.name).and_then(|v| prm.encode(v))).collect()
        };
        let orient = |v: f64| match self.direction {
            Direction::Minimize => v,
            Direction::Maximize => -v,
        };
        // (row, furthest step, oriented last value) of each pruned configuration.
        let mut pruned: Vec<(usize, u32, f64)> = Vec::new();
        for o in history {
            let value = o.value.filter(|v| v.is_finite());
            if o.pruned_at.is_none() && value.is_none() {
                continue; // failed
            }
            let Some(row) = encode(&o.point) else {
                continue;
            };
            match o.pruned_at {
                Some(step) => {
                    pruned.push((rows.len(), step, value.map_or(f64::INFINITY, orient)));
                    losses.push(f64::NAN); // ranked below
                }
                None => losses.push(orient(value.expect("checked above"))),
            }
            rows.push(row);
        }
        // Pruned configurations rank below every completed one (Optuna's order): those that got
        // further first, then by their last value. Only the order of losses matters to TPE.
        if !pruned.is_empty() {
            let worst = losses.iter().filter(|l| l.is_finite()).fold(0.0f64, |a, l| a.max(*l));
            pruned.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.total_cmp(&b.2)).then(a.0.cmp(&b.0)));
            for (rank, (i, _, _)) in pruned.iter().enumerate() {
                losses[*i] = worst.abs() * 2.0 + 1.0 + rank as f64;
            }
        }
        if self.settings.constant_liar {
            for p in pending {
                if let Some(row) = encode(p) {
                    rows.push(row);
                    losses.push(f64::INFINITY);
                }
            }
        }
        (rows, losses)
    }

    /// The model's proposal: candidates ranked best first (each a full point).
    fn propose(&self, rows: &[Vec<f64>], losses: &[f64], rng: &mut ChaCha8Rng) -> Vec<Point> {
        let n = rows.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|a, b| losses[*a].total_cmp(&losses[*b]).then(a.cmp(b)));
        // Pending points (infinite loss) never count towards the good group's size.
        let n_below = gamma(losses.iter().filter(|l| l.is_finite()).count());
        let mut below_idx = order[..n_below].to_vec();
        let mut above_idx = order[n_below..].to_vec();
        below_idx.sort_unstable();
        above_idx.sort_unstable();
        let groups: Vec<Vec<usize>> = if self.settings.multivariate {
            vec![(0..self.params.len()).collect()]
        } else {
            (0..self.params.len()).map(|j| vec![j]).collect()
        };
        let n_cand = self.settings.n_ei_candidates.max(1);
        // Per group: its candidates sorted by score, best first.
        let mut ranked: Vec<Vec<Vec<f64>>> = Vec::with_capacity(groups.len());
        let mut scratch = Vec::new();
        for g in &groups {
            let ps: Vec<&Param> = g.iter().map(|j| &self.params[*j]).collect();
            let pick = |idx: &[usize]| -> Vec<Vec<f64>> {
                idx.iter().map(|i| g.iter().map(|j| rows[*i][*j]).collect()).collect()
            };
            let below = Parzen::new(&ps, &pick(&below_idx), &self.settings, self.settings.good_bandwidth_factor);
            let above = Parzen::new(&ps, &pick(&above_idx), &self.settings, 1.0);
            let mut cands: Vec<(f64, usize, Vec<f64>)> = (0..n_cand)
                .map(|i| {
                    let x = below.sample(rng);
                    let score = below.log_pdf(&x, &mut scratch) - above.log_pdf(&x, &mut scratch);
                    (if score.is_nan() { f64::NEG_INFINITY } else { score }, i, x)
                })
                .collect();
            cands.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            ranked.push(cands.into_iter().map(|c| c.2).collect());
        }
        // The r-th proposal takes every group's r-th best candidate.
        (0..n_cand)
            .map(|r| {
                let mut point = Point::new();
                for (g, cands) in groups.iter().zip(&ranked) {
                    for (pos, j) in g.iter().enumerate() {
                        let p = &self.params[*j];
                        point.insert(p.name.clone(), p.decode(cands[r][pos]));
                    }
                }
                point
            })
            .collect()
    }
}

impl Sampler for TpeSampler {
    fn ask(&mut self, history: &[Observation], pending: &[Point]) -> Option<Point> {
        let index = history.len() + pending.len();
        if index >= self.n_trials {
            return None;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(index as u64);
        let (rows, losses) = self.rows(history, pending);
        let n_finished = losses.iter().filter(|l| l.is_finite()).count();
        let counted = if self.settings.constant_liar { rows.len() } else { n_finished };
        if counted >= self.settings.n_startup_trials.max(1) && n_finished > 0 && !self.params.is_empty() {
            for p in self.propose(&rows, &losses, &mut rng) {
                if !pending.contains(&p) {
                    return Some(p);
                }
            }
        }
        // Startup, or every candidate was pending: a uniform draw unlike the others.
        let mut p = self.random_point(&mut rng);
        for _ in 0..100 {
            if !pending.contains(&p) && !history.iter().any(|o| o.point == p) {
                break;
            }
            p = self.random_point(&mut rng);
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests;
