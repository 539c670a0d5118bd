//! When two values are equal up to rounding: the one rule behind "no spread" and "tie".
//!
//! Accuracies are ratios of counts k/N, and values that are equal in exact arithmetic can
//! differ in the last bit once computed in floating point (one row of 29 gained comes out as
//! both 0.068965517241379226 and 0.068965517241379448). The seeds of one configuration, or of
//! one comparison, are scored on rows of one size N, so values that really differ are at least
//! 1/N ≥ 10⁻⁶ apart (N up to a million), while rounding moves them by about 10⁻¹⁶. A tolerance
//! of 10⁻⁹ relative to the largest magnitude in the sample separates the two with room on both
//! sides, and scales with the data for metrics that are not proportions (a loss of 1e5 or 1e-5).
//!
//! Used by the paired t-test ("no spread" in the differences), the Wilcoxon signed-rank test
//! (zeros and ties among |d|) and [`super::Summary`] (no spread over seeds: no t interval).

/// Relative tolerance under which two values of one sample count as equal.
const RELATIVE_TOLERANCE: f64 = 1e-9;

/// The absolute tolerance for the sample `xs`: [`RELATIVE_TOLERANCE`] times its largest |x|
/// (0 for an empty or all-zero sample, where only exact equality is equality).
pub(crate) fn tolerance(xs: &[f64]) -> f64 {
    RELATIVE_TOLERANCE * xs.iter().fold(0.0f64, |a, x| a.max(x.abs()))
}

/// Whether a sample with standard deviation `std` has no spread: every value equal up to
/// rounding. The largest deviation from the mean is at most std·√(n−1), and at least std, so
/// comparing std itself with the tolerance is the same rule up to that small factor.
pub(crate) fn no_spread(xs: &[f64], std: f64) -> bool {
    std <= tolerance(xs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_told_from_a_real_difference() {
        let (a, b): (f64, f64) = (0.06896551724137923, 0.06896551724137945);
        let std_ab = (a - b).abs() / 2f64.sqrt();
        assert!(no_spread(&[a, b], std_ab), "2/29 two ways: no spread");
        // 1/29 and 1/30, the closest two proportions of small validation sets can be.
        let (c, d) = (1.0 / 29.0, 1.0 / 30.0);
        assert!(!no_spread(&[c, d], (c - d).abs() / 2f64.sqrt()));
        assert!(no_spread(&[0.0, 0.0], 0.0));
        assert_eq!(tolerance(&[]), 0.0);
        // Scales with the data: a loss of 1e5 that differs by 1e-6 is equal, 1e-5 and 2e-5 are not.
        assert!(no_spread(&[1e5, 1e5 + 1e-6], 1e-6));
        assert!(!no_spread(&[1e-5, 2e-5], 7e-6));
    }
}
