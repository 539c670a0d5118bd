//! 95% intervals of a mean over seeds: which method, and when there is none.
//!
//! - **When.** An interval needs at least [`MIN_INTERVAL_N`] values. With two seeds the t
//!   quantile has one degree of freedom (t_{0.975,1} = 12.71), so the interval is more than
//!   twelve standard errors wide and says nothing; with one there is no spread at all. Reports
//!   then print no interval and say why, rather than an interval nobody should read.
//! - **Unbounded metrics** (loss, times, counts, anything a `command` pipeline reports that is
//!   not known to be a proportion): Student's t, x̄ ± t_{0.975, n−1} · s / √n.
//! - **Metrics in [0, 1]** ([`is_unit_interval_metric`]: accuracies and F1 scores): the
//!   **logit-t interval**, a t interval of the mean built on the logit scale and mapped back:
//!
//!   ```text
//!   η = logit(x̄) = ln(x̄ / (1 − x̄)),   se_η = (s / √n) / (x̄ (1 − x̄)),
//!   interval = expit(η ± t_{0.975, n−1} · se_η),   expit(z) = 1 / (1 + e^{−z})
//!   ```
//!
//!   se_η is the delta-method standard error of logit(x̄) (d logit(p)/dp = 1/(p(1−p))). The
//!   interval lies inside (0, 1) whatever the data, always contains x̄, is asymmetric towards
//!   the middle (near 100% it reaches further down than up), and matches the t interval when
//!   x̄ is near 0.5 and the spread is small.
//!
//!   Why the logit of the *mean* rather than the mean of the logits: seeds that score exactly 0
//!   or 1 happen (small validation sets, easy data), and logit(1) = ∞. The mean of logits would
//!   need a clamp to [ε, 1 − ε], and its interval would move with the arbitrary ε; it is also
//!   an interval around the back-transformed mean of logits, which can miss the arithmetic mean
//!   the tables print and the plots draw. For `[1, 1, 1, 1, 0.9]` (mean 0.98) it is
//!   [0.9661, 0.9998] with ε = 10⁻³ and [0.9936, 1.0000] with ε = 10⁻⁶: neither contains 0.98
//!   (numpy, t_{0.975,4} = 2.776445). The logit of the mean needs no clamp: x̄ is 0 or 1 only
//!   when every value is, and then s = 0.
//!   If any value lies outside [0, 1] (a `command` pipeline reporting accuracy in percent), the
//!   metric is not a proportion after all and the t interval is used; the method is always
//!   recorded with the interval.
//! - **No spread over seeds** (every value equal up to rounding, see `rounding`): both intervals
//!   above would be the single point [x̄, x̄], a "95% interval" that claims certainty from three
//!   seeds. With 3 seeds of accuracies on 29 validation rows this happens in 6–37% of samples
//!   and pulls the logit-t method's coverage down to 0.63 (elsewhere it covers 0.94–0.96).
//!   - For a proportion whose rows are known (accuracy and F1, scored on `n` validation or
//!     `test_n` test rows), the **pooled Wilson interval** ([`wilson95`]) over all seeds' rows:
//!     p̂ = Σ xᵢ·Nᵢ / Σ Nᵢ (= x̄ here), N = Σ Nᵢ, and
//!
//!     ```text
//!     (p̂ + z²/2N ± z · √(p̂(1 − p̂)/N + z²/4N²)) / (1 + z²/N),   z = 1.959964
//!     ```
//!
//!     With no seed-to-seed spread the only uncertainty left to show is that of a proportion
//!     measured on finitely many rows, which is what the binomial model of the pooled rows
//!     describes. Wilson rather than Clopper–Pearson: it has a closed form (no inverse of the
//!     incomplete beta), stays inside [0, 1], never has zero width (at 29/29 it is
//!     [0.883, 1]), and its coverage is close to 95% where Clopper–Pearson's is well above it.
//!     For F1, which is not a ratio of counts, the same formula with the F1 as p̂ is an
//!     approximation (the F1 of N rows varies about as much as an accuracy of N rows).
//!   - For any other metric (loss, times) there is no such model: no interval is given, and
//!     the tables' note says why.

use super::dist::student_t_quantile;

/// Fewest values (seeds, or pairs of seeds) for which any 95% interval is reported.
pub const MIN_INTERVAL_N: usize = 3;

/// How an interval was computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntervalMethod {
    /// Student's t on the raw scale.
    T,
    /// Student's t for the mean on the logit scale, mapped back (see the module docs).
    LogitT,
    /// Wilson's score interval of the seeds' pooled rows, for a proportion with no spread
    /// over seeds (see the module docs).
    WilsonPooled,
}

impl IntervalMethod {
    /// The word in CSV files: `t` or `logit_t`.
    pub fn name(self) -> &'static str {
        match self {
            IntervalMethod::T => "t",
            IntervalMethod::LogitT => "logit_t",
            IntervalMethod::WilsonPooled => "wilson_pooled",
        }
    }

    /// How a caption names it: "t interval" or "logit-t interval".
    pub fn caption(self) -> &'static str {
        match self {
            IntervalMethod::T => "t interval",
            IntervalMethod::LogitT => "logit-t interval",
            IntervalMethod::WilsonPooled => "Wilson interval of the pooled rows",
        }
    }
}

/// A two-sided 95% interval and the method that produced it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
    pub method: IntervalMethod,
}

/// Whether a metric is known to lie in [0, 1], from its name: any `_`-separated word of it is
/// `accuracy`, `acc` or `f1` (`accuracy`, `test_accuracy`, `val_acc`, `f1_weighted`,
/// `test_f1_macro`, `balanced_accuracy`). Everything else (loss, times, counts, a `command`
/// pipeline's own metrics) is treated as unbounded.
pub fn is_unit_interval_metric(metric: &str) -> bool {
    metric.to_ascii_lowercase().split('_').any(|word| matches!(word, "accuracy" | "acc" | "f1"))
}

/// The method for `metric` given its values: logit-t for a metric in [0, 1] whose values all
/// are, t otherwise.
pub fn method_for(metric: &str, values: &[f64]) -> IntervalMethod {
    if is_unit_interval_metric(metric) && values.iter().all(|x| (0.0..=1.0).contains(x)) {
        IntervalMethod::LogitT
    } else {
        IntervalMethod::T
    }
}

/// The 95% interval of a mean `mean` with sample standard deviation `std` over `n` values, by
/// `method` (t or logit-t); `None` when n < [`MIN_INTERVAL_N`] or `std` is not positive, where
/// the interval would be a single point.
///
/// For [`IntervalMethod::LogitT`] the caller guarantees every value lies in [0, 1] (so does
/// the mean); with a positive spread the mean is then strictly inside (0, 1).
/// [`IntervalMethod::WilsonPooled`] needs row counts: see [`wilson95`].
pub fn interval95(method: IntervalMethod, n: usize, mean: f64, std: f64) -> Option<Interval> {
    if n < MIN_INTERVAL_N || std.is_nan() || std <= 0.0 {
        return None;
    }
    let t = student_t_quantile(0.975, (n - 1) as f64);
    let se = std / (n as f64).sqrt();
    let (low, high) = match method {
        IntervalMethod::LogitT if mean > 0.0 && mean < 1.0 => {
            let eta = (mean / (1.0 - mean)).ln();
            let se_eta = se / (mean * (1.0 - mean));
            (expit(eta - t * se_eta), expit(eta + t * se_eta))
        }
        // A mean of 0 or 1 with spread means values outside [0, 1]: not a proportion after all.
        IntervalMethod::LogitT | IntervalMethod::WilsonPooled => return None,
        IntervalMethod::T => (mean - t * se, mean + t * se),
    };
    Some(Interval { low, high, method })
}

/// z_{0.975} of the standard normal.
const Z975: f64 = 1.959_963_984_540_054;

/// Wilson's 95% score interval of a proportion `proportion` measured on `rows` rows (the
/// seeds' rows pooled); `None` when `rows` is not positive or `proportion` is outside [0, 1].
/// Never a single point: the half width is at least z²/(2N + 2z²) > 0.
pub fn wilson95(proportion: f64, rows: f64) -> Option<Interval> {
    if !(rows > 0.0 && rows.is_finite() && (0.0..=1.0).contains(&proportion)) {
        return None;
    }
    let (p, n, z2) = (proportion, rows, Z975 * Z975);
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = Z975 / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // At p̂ = 1 (or 0) the upper (lower) end is exactly 1 (0) in exact arithmetic; rounding
    // would otherwise leave it a hair inside.
    let low = if p == 0.0 { 0.0 } else { (centre - half).max(0.0) };
    let high = if p == 1.0 { 1.0 } else { (centre + half).min(1.0) };
    Some(Interval { low, high, method: IntervalMethod::WilsonPooled })
}

/// 1 / (1 + e^{−z}), without overflow for large |z|.
fn expit(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_sd(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        (m, (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt())
    }

    #[test]
    fn logit_t_interval_of_a_worked_sample() {
        // x = 0.70 0.74 0.78 0.80 0.83: x̄ = 0.77, s = √(0.0104/4) = 0.0509902, se = s/√5 =
        // 0.0228035; η = ln(0.77/0.23) = 1.2083112, se_η = 0.0228035/(0.77·0.23) = 0.1287606,
        // t_{0.975,4} = 2.776445 (printed table): η ± 0.3574973 = [0.8508139, 1.5658085],
        // expit → [0.7007380, 0.8271852]. The same numbers from numpy in .venv/bin/python:
        //   m=x.mean(); s=x.std(ddof=1); eta=log(m/(1-m)); se=s/sqrt(5)/(m*(1-m))
        //   1/(1+exp(-(eta∓2.776445*se))) → 0.700737950194433, 0.8271851881048555
        // The plain t interval would be [0.7066873, 0.8333127]: the logit one leans downwards.
        let xs = [0.70, 0.74, 0.78, 0.80, 0.83];
        let (m, s) = mean_sd(&xs);
        let ci = interval95(IntervalMethod::LogitT, 5, m, s).unwrap();
        assert_eq!(ci.method, IntervalMethod::LogitT);
        assert!((ci.low - 0.700737950194433).abs() < 1e-7, "{ci:?}");
        assert!((ci.high - 0.8271851881048555).abs() < 1e-7, "{ci:?}");
        let t = interval95(IntervalMethod::T, 5, m, s).unwrap();
        assert!((t.low - 0.7066873128372124).abs() < 1e-7 && (t.high - 0.8333126871627874).abs() < 1e-7);
    }

    #[test]
    fn logit_t_stays_inside_the_bounds_where_t_does_not() {
        // x = 1 1 1 1 0.9: x̄ = 0.98, s = 0.0447214; t: 0.98 ± 2.776445·0.02 = [0.9244711, 1.0355289],
        // past 100%. Logit: η = ln 49 = 3.8918203, se_η = 0.02/(0.98·0.02) = 1.0204082,
        // expit(3.8918203 ∓ 2.8331) = [0.7424446, 0.9988008] (numpy as above).
        let xs = [1.0, 1.0, 1.0, 1.0, 0.9];
        let (m, s) = mean_sd(&xs);
        let t = interval95(IntervalMethod::T, 5, m, s).unwrap();
        assert!(t.high > 1.0, "the t interval overshoots: {t:?}");
        let ci = interval95(IntervalMethod::LogitT, 5, m, s).unwrap();
        assert!((ci.low - 0.7424445508083527).abs() < 1e-7 && (ci.high - 0.9988008320389942).abs() < 1e-7, "{ci:?}");
        assert!(ci.low <= m && m <= ci.high, "contains the mean");
        // Extreme spread on few seeds still stays inside [0, 1].
        let xs = [0.0, 1.0, 1.0];
        let (m, s) = mean_sd(&xs);
        let ci = interval95(IntervalMethod::LogitT, 3, m, s).unwrap();
        assert!((0.0..=1.0).contains(&ci.low) && (0.0..=1.0).contains(&ci.high) && ci.low < m && m < ci.high);
        // Every value 1, or every value 0.7: no spread, and no point interval.
        assert_eq!(interval95(IntervalMethod::LogitT, 4, 1.0, 0.0), None);
        assert_eq!(interval95(IntervalMethod::LogitT, 4, 0.7, 0.0), None);
        assert_eq!(interval95(IntervalMethod::T, 4, 0.7, 0.0), None);
    }

    #[test]
    fn no_interval_below_three_values() {
        assert_eq!(interval95(IntervalMethod::LogitT, 2, 0.7, 0.1), None);
        assert_eq!(interval95(IntervalMethod::T, 2, 0.7, 0.1), None);
        assert_eq!(interval95(IntervalMethod::T, 1, 0.7, 0.0), None);
        assert!(interval95(IntervalMethod::T, 3, 0.7, 0.1).is_some());
    }

    #[test]
    fn bounded_metrics_are_told_by_name_and_values() {
        for m in ["accuracy", "test_accuracy", "val_acc", "f1_weighted", "test_f1_macro", "balanced_accuracy", "F1"] {
            assert!(is_unit_interval_metric(m), "{m}");
        }
        for m in ["loss", "time_ae_s", "param_count", "cache_reuses", "pruned_epoch", "accuracy2", "f10"] {
            assert!(!is_unit_interval_metric(m), "{m}");
        }
        assert_eq!(method_for("accuracy", &[0.7, 1.0, 0.0]), IntervalMethod::LogitT);
        assert_eq!(method_for("accuracy", &[70.0, 72.0]), IntervalMethod::T, "percent: not a proportion");
        assert_eq!(method_for("loss", &[0.5, 0.6]), IntervalMethod::T);
    }

    #[test]
    fn wilson_of_worked_proportions() {
        // All right: p̂ = 1 makes the ± term z²/2N over the same denominator, so the interval is
        // [N/(N + z²), 1]; for 29 rows and z² = 3.8414588: 29/32.8414588 = 0.8830302.
        let ci = wilson95(1.0, 29.0).unwrap();
        assert_eq!(ci.method, IntervalMethod::WilsonPooled);
        assert!((ci.low - 29.0 / (29.0 + Z975 * Z975)).abs() < 1e-12 && ci.high == 1.0, "{ci:?}");
        assert!((ci.low - 0.8830302).abs() < 1e-7);
        // 20/29 on each of 3 seeds: p̂ = 60/87 = 0.6896552, N = 87: denom = 1.0441547,
        // centre = (0.6896552 + 0.0220773) / denom = 0.6816351, half = 1.959964/1.0441547 ·
        // √(0.0024601 + 0.0001269) = 0.0954733 → [0.5861618, 0.7771084] (by hand with Python's
        // math module, the formula of the module docs).
        let ci = wilson95(60.0 / 87.0, 87.0).unwrap();
        assert!((ci.low - 0.5861618).abs() < 1e-6 && (ci.high - 0.7771084).abs() < 1e-6, "{ci:?}");
        assert!(ci.low < 60.0 / 87.0 && 60.0 / 87.0 < ci.high);
        // All wrong: by symmetry [0, z²/(N + z²)] = [0, 0.0422875]; never a point.
        let ci = wilson95(0.0, 87.0).unwrap();
        assert!(ci.low == 0.0 && (ci.high - 3.8414588 / (87.0 + 3.8414588)).abs() < 1e-6, "{ci:?}");
        assert_eq!(wilson95(0.5, 0.0), None);
        assert_eq!(wilson95(1.5, 10.0), None);
        assert_eq!(wilson95(0.5, f64::NAN), None);
    }
}
