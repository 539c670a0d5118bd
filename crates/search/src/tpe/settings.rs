//! TPE's options and Optuna's schedules of good trials and observation weights.

use serde::{Deserialize, Serialize};

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
