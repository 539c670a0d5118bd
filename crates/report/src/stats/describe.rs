//! Mean, sample standard deviation and Student-t confidence interval of one sample.

use super::dist::student_t_quantile;

/// What `summary.csv` says about one metric of one configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Number of finite values the numbers below are computed from.
    pub n: usize,
    /// `None` when n = 0.
    pub mean: Option<f64>,
    /// Sample standard deviation (divisor n − 1); `None` when n < 2.
    pub std: Option<f64>,
    /// Two-sided 95% interval mean ± t_{0.975, n−1} · std / √n; `None` when n < 2.
    pub ci95: Option<(f64, f64)>,
}

impl Summary {
    /// Summarises the finite values of `values`; NaN and ±∞ are left out (and so not counted in
    /// `n`), since one diverged run would otherwise turn every statistic into NaN.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Summary {
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
        let half = student_t_quantile(0.975, (n - 1) as f64) * std / (n as f64).sqrt();
        Summary { n, mean: Some(mean), std: Some(std), ci95: Some((mean - half, mean + half)) }
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
        let (lo, hi) = s.ci95.unwrap();
        assert!((lo - 3.212512).abs() < 1e-6 && (hi - 6.787488).abs() < 1e-6, "{lo} {hi}");
    }

    #[test]
    fn small_and_non_finite_samples() {
        assert_eq!(Summary::of([]), Summary { n: 0, mean: None, std: None, ci95: None });
        assert_eq!(Summary::of([0.7]), Summary { n: 1, mean: Some(0.7), std: None, ci95: None });
        let s = Summary::of([1.0, f64::NAN, 3.0, f64::INFINITY]);
        assert_eq!((s.n, s.mean), (2, Some(2.0)));
        // All equal: std 0 and a zero-width interval, not NaN.
        let s = Summary::of([0.5, 0.5, 0.5]);
        assert_eq!((s.std, s.ci95), (Some(0.0), Some((0.5, 0.5))));
    }
}
