//! Mean, sample standard deviation and 95% interval of one sample.

use super::interval::{interval95, is_unit_interval_metric, method_for, wilson95, Interval, IntervalMethod};
use super::rounding;
use super::MIN_INTERVAL_N;

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
    /// n < [`super::MIN_INTERVAL_N`], or when the values have no spread and are not a
    /// proportion of known rows ([`Summary::no_interval`] says which).
    pub ci95: Option<Interval>,
}

/// Why a summary has no interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoInterval {
    /// Fewer than [`super::MIN_INTERVAL_N`] values (this many).
    FewValues(usize),
    /// Every value is equal up to rounding, and the metric is not a proportion whose rows are
    /// known, so nothing models the uncertainty a zero-width interval would hide.
    NoSpread,
}

impl Summary {
    /// Summarises the finite values of `values` with a t interval; NaN and ±∞ are left out (and
    /// so not counted in `n`), since one diverged run would otherwise turn every statistic into
    /// NaN.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Summary {
        Summary::with(values.into_iter().map(|x| (x, None)), |_| IntervalMethod::T).summary
    }

    /// Like [`Summary::of`], with the interval method that suits `metric`: logit-t for a metric
    /// in [0, 1] (accuracy, F1), t otherwise ([`super::method_for`]).
    pub fn of_metric(metric: &str, values: impl IntoIterator<Item = f64>) -> Summary {
        Summary::of_scored(metric, values.into_iter().map(|x| (x, None)))
    }

    /// Like [`Summary::of_metric`], each value with the number of rows it was scored on (the
    /// trial's `n` or `test_n`), when known. When the values have no spread and the metric is a
    /// proportion, the interval is Wilson's over the pooled rows ([`super::wilson95`]), which
    /// needs every value's rows; without them there is no interval.
    pub fn of_scored(metric: &str, values: impl IntoIterator<Item = (f64, Option<f64>)>) -> Summary {
        let mut summary = Summary::with(values, |xs| method_for(metric, xs));
        if !is_unit_interval_metric(metric) {
            summary.pooled = None;
        }
        summary.finish()
    }

    /// Why there is no interval; `None` when there is one or there are no values at all.
    pub fn no_interval(&self) -> Option<NoInterval> {
        match (self.ci95, self.n) {
            (Some(_), _) | (None, 0) => None,
            (None, n) if n < MIN_INTERVAL_N => Some(NoInterval::FewValues(n)),
            (None, _) => Some(NoInterval::NoSpread),
        }
    }

    fn with(
        values: impl IntoIterator<Item = (f64, Option<f64>)>,
        method: impl FnOnce(&[f64]) -> IntervalMethod,
    ) -> Pending {
        let scored: Vec<(f64, Option<f64>)> = values.into_iter().filter(|(x, _)| x.is_finite()).collect();
        let xs: Vec<f64> = scored.iter().map(|(x, _)| *x).collect();
        let n = xs.len();
        if n == 0 {
            return Pending::done(Summary { n, mean: None, std: None, ci95: None });
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        if n == 1 {
            return Pending::done(Summary { n, mean: Some(mean), std: None, ci95: None });
        }
        // Two-pass variance: subtracting the mean first avoids the cancellation of Σx² − n·mean².
        let ss: f64 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
        let std = (ss / (n - 1) as f64).sqrt();
        let summary = Summary { n, mean: Some(mean), std: Some(std), ci95: None };
        if n < MIN_INTERVAL_N {
            return Pending::done(summary);
        }
        if !rounding::no_spread(&xs, std) {
            return Pending::done(Summary { ci95: interval95(method(&xs), n, mean, std), ..summary });
        }
        // No spread: a t or logit-t interval would be the point [x̄, x̄]. The pooled rows, if
        // every value has them, are kept for a proportion's Wilson interval.
        let rows: Option<Vec<f64>> = scored.iter().map(|(_, r)| r.filter(|r| r.is_finite() && *r > 0.0)).collect();
        let pooled = rows.map(|rows| {
            let total: f64 = rows.iter().sum();
            let hits: f64 = xs.iter().zip(&rows).map(|(x, r)| x * r).sum();
            (hits / total, total)
        });
        Pending { summary, pooled }
    }
}

/// A summary whose interval still depends on whether the metric is a proportion.
struct Pending {
    summary: Summary,
    /// (pooled proportion, pooled rows) of values with no spread.
    pooled: Option<(f64, f64)>,
}

impl Pending {
    fn done(summary: Summary) -> Pending {
        Pending { summary, pooled: None }
    }

    fn finish(self) -> Summary {
        match self.pooled {
            Some((p, rows)) => Summary { ci95: wilson95(p, rows), ..self.summary },
            None => self.summary,
        }
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
        // All equal: std 0 and no interval (a zero-width one would claim certainty), not NaN.
        for s in [Summary::of([0.5, 0.5, 0.5]), Summary::of_metric("accuracy", [0.5, 0.5, 0.5])] {
            assert_eq!((s.std, s.ci95, s.no_interval()), (Some(0.0), None, Some(NoInterval::NoSpread)));
        }
        assert_eq!(Summary::of([0.5, 0.6]).no_interval(), Some(NoInterval::FewValues(2)));
        assert_eq!(Summary::of([]).no_interval(), None);
    }

    #[test]
    fn no_spread_in_a_proportion_gives_the_pooled_wilson_interval() {
        // Three seeds, each 20 of 29 validation rows right; 20/29 spelled two ways, as two
        // differently computed accuracies can be: equal up to rounding, so no spread.
        let (a, b) = (20.0 / 29.0, 0.689_655_172_413_793_3);
        assert_ne!(a, b);
        let rows = Some(29.0);
        let s = Summary::of_scored("accuracy", [(a, rows), (b, rows), (a, rows)]);
        let ci = s.ci95.expect("an interval from the pooled rows");
        assert_eq!(ci.method, IntervalMethod::WilsonPooled);
        // Wilson of 60/87 (see interval::tests): [0.5861618, 0.7771084].
        assert!((ci.low - 0.5861618).abs() < 1e-6 && (ci.high - 0.7771084).abs() < 1e-6, "{ci:?}");
        assert!(ci.high - ci.low > 0.1, "not zero width");
        // Every seed 100%: [87/(87 + z²), 1].
        let s = Summary::of_scored("test_accuracy", [(1.0, Some(29.0)); 3]);
        assert!(s.ci95.is_some_and(|c| c.high == 1.0 && c.low < 0.96 && c.low > 0.95), "{s:?}");
        // F1 with no spread: the same rule.
        let s = Summary::of_scored("f1_weighted", [(0.8, Some(10.0)); 3]);
        assert_eq!(s.ci95.map(|c| c.method), Some(IntervalMethod::WilsonPooled));
        // A row count missing on one seed: no pooled rows, so no interval, and why.
        let s = Summary::of_scored("accuracy", [(0.8, Some(10.0)), (0.8, None), (0.8, Some(10.0))]);
        assert_eq!((s.ci95, s.no_interval()), (None, Some(NoInterval::NoSpread)));
        // Not a proportion: no interval, even with rows.
        let s = Summary::of_scored("loss", [(0.3, Some(10.0)); 3]);
        assert_eq!((s.ci95, s.no_interval()), (None, Some(NoInterval::NoSpread)));
        // Spread: logit-t as before, the rows unused.
        let s = Summary::of_scored("accuracy", [(0.7, Some(10.0)), (0.8, Some(10.0)), (0.9, Some(10.0))]);
        assert_eq!(s.ci95.map(|c| c.method), Some(IntervalMethod::LogitT));
    }
}
