//! Tests on paired differences: Student's paired t-test and the Wilcoxon signed-rank test.

use super::dist::{normal_cdf, student_t_two_sided_p};
use super::interval::{interval95, IntervalMethod};
use super::rounding;

/// A two-sided paired t-test of H0: mean difference = 0, with the 95% interval of the mean
/// difference and the standardised effect size d_z.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PairedT {
    /// Number of pairs (finite differences).
    pub n: usize,
    /// Mean difference; `None` when n = 0.
    pub mean: Option<f64>,
    /// Sample standard deviation of the differences; `None` when n < 2.
    pub std: Option<f64>,
    /// mean ± t_{0.975, n−1} · std / √n; `None` when n < [`super::MIN_INTERVAL_N`] (two pairs
    /// give t_{0.975,1} = 12.7 and an interval that says nothing) or when the differences have
    /// no spread (the interval would have zero width).
    pub ci95: Option<(f64, f64)>,
    /// Cohen's d_z = mean / std of the differences (= t / √n): the mean difference in units of
    /// its own seed-to-seed spread. `None` when n < 2 or the differences have no spread (all
    /// equal up to rounding), where the ratio is 0/0 or infinite and means nothing.
    pub d_z: Option<f64>,
    /// The t statistic; `None` when n < 2 or when every difference is the same non-zero value.
    pub t: Option<f64>,
    /// Two-sided p-value; `None` when `t` is.
    pub p_value: Option<f64>,
}

/// Runs the paired t-test on differences `a_i − b_i`. Non-finite differences are left out.
pub fn paired_t_test(diffs: &[f64]) -> PairedT {
    let d: Vec<f64> = diffs.iter().copied().filter(|x| x.is_finite()).collect();
    let n = d.len();
    let mean = (n > 0).then(|| d.iter().sum::<f64>() / n as f64);
    let (Some(m), true) = (mean, n >= 2) else {
        return PairedT { n, mean, std: None, ci95: None, d_z: None, t: None, p_value: None };
    };
    let df = (n - 1) as f64;
    let sd = (d.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / df).sqrt();
    let se = sd / (n as f64).sqrt();
    // Identical differences (equal up to rounding: accuracies are ratios of counts, so two
    // seeds that each gained one validation row differ by 1e-16) have no spread. All zero: no
    // evidence of a difference (t = 0, p = 1). All the same non-zero value: the formula says
    // |t| = ∞ and p = 0, but with no spread there is nothing to test the mean against, so the
    // test is left undefined rather than reporting p < 0.001 from two pairs; the Wilcoxon test
    // still answers.
    let tol = rounding::tolerance(&d);
    let spread = sd > tol;
    let t = if spread {
        Some(m / se)
    } else if m.abs() <= tol {
        Some(0.0)
    } else {
        None
    };
    PairedT {
        n,
        mean,
        std: Some(sd),
        // With no spread the t interval would have zero width: an interval that claims
        // certainty from a handful of seeds. None is given, and the tables say why.
        ci95: spread.then(|| interval95(IntervalMethod::T, n, m, sd)).flatten().map(|c| (c.low, c.high)),
        d_z: spread.then(|| m / sd),
        t,
        p_value: t.map(|t| student_t_two_sided_p(t, df)),
    }
}

/// How a Wilcoxon p-value was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WilcoxonMethod {
    /// The exact null distribution of W+ (no ties among |d|, at most [`EXACT_MAX_N`] pairs).
    Exact,
    /// Normal approximation with tie-corrected variance and a continuity correction.
    Normal,
}

/// Largest number of non-zero differences for which the exact distribution is enumerated; the
/// subset counts (≤ 2^50) still fit exactly in a u64.
pub const EXACT_MAX_N: usize = 50;

/// A two-sided Wilcoxon signed-rank test of H0: the differences are symmetric about 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Wilcoxon {
    /// Number of non-zero differences (zeros are dropped, Wilcoxon's original treatment).
    pub n: usize,
    /// Sum of the ranks of |d| over the positive differences (ties get average ranks).
    pub w_plus: f64,
    pub p_value: f64,
    pub method: WilcoxonMethod,
}

/// Runs the signed-rank test on differences `a_i − b_i`. Non-finite differences are left out.
///
/// Zeros and ties among |d| are found with the paired t-test's rule ([`rounding::tolerance`]):
/// a difference within the tolerance of 0 is a zero, and |d| values within the tolerance of the
/// smallest of their run share one average rank. Comparing with `==` instead would rank two
/// equal k/N differences as distinct values whenever their last bits differ, and report an
/// exact p-value for a sample that has ties.
pub fn wilcoxon_signed_rank(diffs: &[f64]) -> Wilcoxon {
    let finite: Vec<f64> = diffs.iter().copied().filter(|x| x.is_finite()).collect();
    let tol = rounding::tolerance(&finite);
    let mut d: Vec<f64> = finite.into_iter().filter(|x| x.abs() > tol).collect();
    let n = d.len();
    if n == 0 {
        return Wilcoxon { n, w_plus: 0.0, p_value: 1.0, method: WilcoxonMethod::Exact };
    }
    d.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    // Average ranks over runs of |d| equal up to rounding. A run is measured from its first
    // (smallest) member, so a chain of near-equal values cannot stretch a tie indefinitely.
    let mut ranks = vec![0.0; n];
    let mut ties = false;
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && d[j].abs() - d[i].abs() <= tol {
            j += 1;
        }
        ties |= j - i > 1;
        let avg = (i + 1 + j) as f64 / 2.0;
        ranks[i..j].iter_mut().for_each(|r| *r = avg);
        i = j;
    }
    let w_plus: f64 = d.iter().zip(&ranks).filter(|(x, _)| **x > 0.0).map(|(_, r)| r).sum();

    if !ties && n <= EXACT_MAX_N {
        let p_value = exact_two_sided(n, w_plus.round() as usize);
        return Wilcoxon { n, w_plus, p_value, method: WilcoxonMethod::Exact };
    }
    // Under H0 each rank carries a sign that is + or − with probability 1/2, independently, so
    // E[W+] = Σr/2 and Var[W+] = Σr²/4; with average ranks this is the tie-corrected variance.
    let mean: f64 = ranks.iter().sum::<f64>() / 2.0;
    let var: f64 = ranks.iter().map(|r| r * r).sum::<f64>() / 4.0;
    let z = ((w_plus - mean).abs() - 0.5).max(0.0) / var.sqrt();
    let p_value = (2.0 * normal_cdf(-z)).min(1.0);
    Wilcoxon { n, w_plus, p_value, method: WilcoxonMethod::Normal }
}

/// 2 · min(P(W+ ≤ w), P(W+ ≥ w)), capped at 1, under the exact null distribution of W+ for n
/// untied non-zero differences.
fn exact_two_sided(n: usize, w: usize) -> f64 {
    // counts[s] = number of subsets of {1..n} whose sum is s; each subset (the ranks that are
    // positive) has probability 2^−n.
    let max = n * (n + 1) / 2;
    let mut counts = vec![0u64; max + 1];
    counts[0] = 1;
    for k in 1..=n {
        for s in (k..=max).rev() {
            counts[s] += counts[s - k];
        }
    }
    let total = 2f64.powi(n as i32);
    let w = w.min(max);
    let lower: u64 = counts[..=w].iter().sum();
    let upper: u64 = counts[w..].iter().sum();
    (2.0 * lower.min(upper) as f64 / total).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_t_on_a_hand_worked_example() {
        // baseline 0.70 0.71 0.72 0.73 0.74, dec 0.71 0.73 0.75 0.77 0.79:
        // d = 0.01 0.02 0.03 0.04 0.05, mean 0.03, Σ(d−mean)² = 0.001, sd = √(0.001/4) = 0.0158114,
        // se = sd/√5 = 0.00707107, t = 0.03/0.00707107 = 3√2 = 4.242641 on 4 df.
        // Independently of the incomplete beta: for 4 df, F(t) = 1/2 + (3/4)α(1 − α²/3) with
        // α = t/√(4+t²) = √(18/22) = 3/√11, so p = 2(1 − F(t)) = 1 − (3/2)α(1 − α²/3)
        // = 1 − (3/2)(3/√11)(8/11) = 1 − 36/(11√11) = 0.0132356.
        // CI: 0.03 ± t_{0.975,4}·se = 0.03 ± 2.776445·0.00707107 = [0.0103676, 0.0496324].
        let base = [0.70, 0.71, 0.72, 0.73, 0.74];
        let dec = [0.71, 0.73, 0.75, 0.77, 0.79];
        let d: Vec<f64> = dec.iter().zip(&base).map(|(a, b)| a - b).collect();
        let r = paired_t_test(&d);
        assert_eq!(r.n, 5);
        assert!((r.mean.unwrap() - 0.03).abs() < 1e-12);
        assert!((r.t.unwrap() - 3.0 * 2f64.sqrt()).abs() < 1e-9);
        let want_p = 1.0 - 36.0 / (11.0 * 11f64.sqrt());
        assert!((r.p_value.unwrap() - want_p).abs() < 1e-10, "{:?}", r.p_value);
        let (lo, hi) = r.ci95.unwrap();
        assert!((lo - 0.0103676).abs() < 1e-7 && (hi - 0.0496324).abs() < 1e-7, "{lo} {hi}");
        // d_z = 0.03 / 0.0158114 = 3/√2.5 = 1.8973666 (numpy: d.mean()/d.std(ddof=1)
        // = 1.897366596101028), which is also t/√n = 3√2/√5.
        assert!((r.d_z.unwrap() - 1.897366596101028).abs() < 1e-12, "{:?}", r.d_z);
        assert!((r.d_z.unwrap() - r.t.unwrap() / 5f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn cohens_d_z_of_a_second_worked_sample() {
        // d = −0.02, 0.01, 0.04: mean 0.01, deviations −0.03 0 0.03, sd = √(0.0018/2) = 0.03,
        // d_z = 0.01/0.03 = 1/3; t = 0.01/(0.03/√3) = 0.5773503 = d_z·√3.
        let r = paired_t_test(&[-0.02, 0.01, 0.04]);
        assert!((r.d_z.unwrap() - 1.0 / 3.0).abs() < 1e-12, "{:?}", r.d_z);
        assert!((r.t.unwrap() - 3f64.sqrt() / 3.0).abs() < 1e-12);
        // Two pairs: a p-value and d_z, but no interval (t_{0.975,1} = 12.7).
        let two = paired_t_test(&[0.01, 0.03]);
        assert_eq!(two.ci95, None);
        assert!(two.p_value.is_some() && two.d_z.is_some());
    }

    #[test]
    fn paired_t_degenerate_cases() {
        assert_eq!(paired_t_test(&[]).mean, None);
        let one = paired_t_test(&[0.02]);
        assert_eq!((one.n, one.mean, one.p_value, one.d_z), (1, Some(0.02), None, None));
        let same = paired_t_test(&[0.01, 0.01, 0.01]);
        assert_eq!((same.t, same.p_value, same.ci95), (None, None, None), "no spread: undefined, no interval");
        assert_eq!(same.d_z, None, "no spread: d_z undefined");
        // One validation row of 29 gained in both seeds, as the demo's accuracies give it.
        let rounded = paired_t_test(&[0.034_482_758_620_689_724, 0.034_482_758_620_689_61]);
        assert_eq!(rounded.p_value, None, "equal up to rounding is equal");
        assert_eq!(rounded.d_z, None);
        let zeros = paired_t_test(&[0.0, 0.0]);
        assert_eq!((zeros.p_value, zeros.d_z), (Some(1.0), None));
    }

    #[test]
    fn wilcoxon_exact_by_counting_subsets() {
        // d = 1..5 all positive: W+ = 15, the largest value, reached only by the full set:
        // P(W+ ≥ 15) = 1/32, two-sided p = 2/32 = 0.0625.
        let w = wilcoxon_signed_rank(&[0.01, 0.02, 0.03, 0.04, 0.05]);
        assert_eq!((w.n, w.w_plus, w.method), (5, 15.0, WilcoxonMethod::Exact));
        assert!((w.p_value - 0.0625).abs() < 1e-15);
        // d = −1, 2, 3 (ranks 1, 2, 3): W+ = 5. Subsets of {1,2,3} with sum ≥ 5: {2,3}, {1,2,3}
        // → 2/8; with sum ≤ 5: all but {1,2,3} → 7/8. p = 2 · 2/8 = 0.5.
        let w = wilcoxon_signed_rank(&[-1.0, 2.0, 3.0]);
        assert_eq!(w.w_plus, 5.0);
        assert!((w.p_value - 0.5).abs() < 1e-15);
        // Zeros are dropped before ranking.
        assert_eq!(wilcoxon_signed_rank(&[0.0, -1.0, 2.0, 3.0]).p_value, w.p_value);
        assert_eq!(wilcoxon_signed_rank(&[0.0, 0.0]).p_value, 1.0);
    }

    #[test]
    fn wilcoxon_with_ties_uses_the_normal_approximation() {
        // |d| = 1, 1, 2, 2 with signs +, +, +, −: ranks 1.5 1.5 3.5 3.5, W+ = 6.5.
        // E = 10/2 = 5, Var = (2.25+2.25+12.25+12.25)/4 = 7.25, z = (1.5 − 0.5)/√7.25 = 0.371391,
        // p = 2Φ(−0.371391) = 0.710347.
        let w = wilcoxon_signed_rank(&[1.0, 1.0, 2.0, -2.0]);
        assert_eq!((w.w_plus, w.method), (6.5, WilcoxonMethod::Normal));
        assert!((w.p_value - 0.710347).abs() < 1e-6, "{}", w.p_value);
    }

    #[test]
    fn wilcoxon_ties_are_equal_up_to_rounding_like_the_t_test() {
        // 2/29 computed two ways, as the demo's accuracies give it (0.068965517241379226 and
        // 0.068965517241379448 to 18 digits): equal in exact arithmetic.
        let (a, b) = (0.06896551724137923, 0.06896551724137945);
        assert_ne!(a, b, "the two spellings differ in the last bit");
        // The demo's label fraction 0.1: dec − baseline = −2/29, +1/29, −2/29. Ranks 1, 2.5, 2.5
        // (the two 2/29 tie): W+ = 1, E = 3, Var = (1 + 6.25 + 6.25)/4 = 3.375,
        // z = (2 − 0.5)/√3.375 = 0.8164966, p = 2Φ(−0.8164966) = 0.4142162 (scipy's
        // wilcoxon(..., method="approx", correction=True) agrees). With `==` the two were ranked
        // 2 and 3, no tie, and the exact p was 0.5.
        let w = wilcoxon_signed_rank(&[-a, 0.03448275862068961, -b]);
        assert_eq!((w.n, w.w_plus, w.method), (3, 1.0, WilcoxonMethod::Normal));
        assert!((w.p_value - 0.4142161782425251).abs() < 1e-9, "{}", w.p_value);
        // A difference that is zero up to rounding is a zero, as in the t-test.
        let w = wilcoxon_signed_rank(&[1e-17, 0.1, 0.2, 0.3]);
        assert_eq!((w.n, w.method), (3, WilcoxonMethod::Exact));
        // Genuinely different values close together stay distinct: 1/29 and 1/30 differ by 1e-3.
        let w = wilcoxon_signed_rank(&[1.0 / 29.0, 1.0 / 30.0, 0.5]);
        assert_eq!(w.method, WilcoxonMethod::Exact);
        // The same rule in the t-test: these two differences have no spread.
        assert_eq!(paired_t_test(&[a, b]).t, None);
    }
}
