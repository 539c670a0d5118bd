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

mod parzen;
mod settings;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use self::parzen::{Param, Parzen};
pub use self::settings::{gamma, weights, TpeSettings};
use crate::objective::Direction;
use crate::sampler::{draw, Observation, Point, Sampler};
use crate::space::Space;

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
