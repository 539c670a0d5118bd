//! Mean, sample standard deviation and 95% interval of one sample.

use super::interval::{interval95, method_for, Interval, IntervalMethod};

/// What `summary.csv` says about one metric of one configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Number of finite values the numbers below are computed from.
    pub n: usize,
    /// `None` when n = 0.
    pub mean: Option<f64>,
    /// Sample standard deviation (divisor n − 1); `None` when n < 2.
    pub std: Option<f64>,
    /// Two-sided 95% interval of the mean (see [`super::interval95`] for the methods); `None` when
    /// n < [`super::MIN_INTERVAL_N`].
    pub ci95: Option<Interval>,
}

impl Summary {
    /// Summarises the finite values of `values` with a t interval; NaN and ±∞ are left out (and
    /// so not counted in `n`), since one diverged run would otherwise turn every statistic into
    /// NaN.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Summary {
        Summary::with(values, |_| IntervalMethod::T)
    }

    /// Like [`Summary::of`], with the interval method that suits `metric`: logit-t for a metric
    /// in [0, 1] (accuracy, F1), t otherwise ([`super::method_for`]).
    pub fn of_metric(metric: &str, values: impl IntoIterator<Item = f64>) -> Summary {
        Summary::with(values, |xs| method_for(metric, xs))
    }

    fn with(values: impl IntoIterator<Item = f64>, method: impl FnOnce(&[f64]) -> IntervalMethod) -> Summary {
        let xs: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        let n = xs.len();
        if n == 0 {
            return Summary { n, mean: None, std: None, ci95: None };
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        if n == 1 {
            return Summary { n, mean: Some(mean), std: None, ci95: None };
        }
        // Two-pass variance: subtracting the mean first avoids the cancellation of Σx² − n·mean².
        let ss: f64 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
        let std = (ss / (n - 1) as f64).sqrt();
        Summary { n, mean: Some(mean), std: Some(std), ci95: interval95(method(&xs), n, mean, std) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_a_hand_worked_sample() {
        // x = 2 4 4 4 5 5 7 9: mean 40/8 = 5; squared deviations 9+1+1+1+0+0+4+16 = 32;
        // sample variance 32/7, std = √(32/7) = 2.138090; t_{0.975,7} = 2.364624;
        // half width = 2.364624 · 2.138090 / √8 = 1.787488 → CI [3.212512, 6.787488].
        let s = Summary::of([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(s.n, 8);
        assert_eq!(s.mean, Some(5.0));
        assert!((s.std.unwrap() - (32.0f64 / 7.0).sqrt()).abs() < 1e-15);
        let ci = s.ci95.unwrap();
        assert_eq!(ci.method, IntervalMethod::T);
        assert!((ci.low - 3.212512).abs() < 1e-6 && (ci.high - 6.787488).abs() < 1e-6, "{ci:?}");
    }

    #[test]
    fn bounded_metrics_get_the_logit_interval_and_two_seeds_none() {
        // The worked sample of `interval::tests`: logit-t [0.7007380, 0.8271852].
        let xs = [0.70, 0.74, 0.78, 0.80, 0.83];
        let ci = Summary::of_metric("accuracy", xs).ci95.unwrap();
        assert_eq!(ci.method, IntervalMethod::LogitT);
        assert!((ci.low - 0.700737950194433).abs() < 1e-7 && (ci.high - 0.8271851881048555).abs() < 1e-7);
        assert_eq!(Summary::of_metric("loss", xs).ci95.unwrap().method, IntervalMethod::T);
        // n = 2: mean and std, no interval, whatever the metric.
        for metric in ["accuracy", "loss"] {
            let s = Summary::of_metric(metric, [0.7068965517241379, 0.8508771929824561]);
            assert_eq!((s.n, s.ci95), (2, None), "{metric}");
            assert!(s.std.is_some());
        }
    }

    #[test]
    fn small_and_non_finite_samples() {
        assert_eq!(Summary::of([]), Summary { n: 0, mean: None, std: None, ci95: None });
        assert_eq!(Summary::of([0.7]), Summary { n: 1, mean: Some(0.7), std: None, ci95: None });
        let s = Summary::of([1.0, f64::NAN, 3.0, f64::INFINITY]);
        assert_eq!((s.n, s.mean), (2, Some(2.0)));
        // All equal: std 0 and a zero-width interval, not NaN.
        for s in [Summary::of([0.5, 0.5, 0.5]), Summary::of_metric("accuracy", [0.5, 0.5, 0.5])] {
            assert_eq!((s.std, s.ci95.map(|c| (c.low, c.high))), (Some(0.0), Some((0.5, 0.5))));
        }
    }
}
