//! Correction for multiple comparisons: Holm's step-down procedure.
//!
//! A study with seven label fractions makes seven dec-vs-baseline tests; at α = 0.05 each, the
//! chance that at least one rejects by luck alone is up to 1 − 0.95⁷ = 30%. Holm (1979) controls
//! that family-wise error rate at α with no assumption about how the tests depend on each other
//! (the comparisons of one study share seeds and so are correlated), and is uniformly more
//! powerful than Bonferroni.
//!
//! Adjusted p-values, for the m p-values sorted ascending p₍₁₎ ≤ … ≤ p₍ₘ₎:
//!
//! ```text
//! p̃₍ᵢ₎ = min(1, max_{j ≤ i} (m − j + 1) · p₍ⱼ₎)
//! ```
//!
//! The running maximum keeps the adjusted values in the order of the raw ones (the step-down
//! stops at the first non-rejection); equal raw p-values get equal adjusted ones. A hypothesis
//! is rejected at level α exactly when its adjusted p-value is ≤ α.

/// Holm-adjusted p-values, in the order given, and m, the number of p-values adjusted over.
///
/// `None` or NaN entries (a test that could not be run: fewer than two pairs, or no spread to
/// test against) are not part of the family: they stay `None` and do not count in m.
pub fn holm(p_values: &[Option<f64>]) -> (Vec<Option<f64>>, usize) {
    let mut order: Vec<(usize, f64)> =
        p_values.iter().enumerate().filter_map(|(i, p)| p.filter(|p| !p.is_nan()).map(|p| (i, p))).collect();
    let m = order.len();
    // A stable sort keeps ties in input order; they end up equal anyway (see the module docs).
    order.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut adjusted = vec![None; p_values.len()];
    let mut running = 0.0f64;
    for (rank, (i, p)) in order.into_iter().enumerate() {
        running = running.max(((m - rank) as f64 * p).min(1.0));
        adjusted[i] = Some(running);
    }
    (adjusted, m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: &[Option<f64>], want: &[Option<f64>]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            match (g, w) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}"),
                _ => assert_eq!(g, w, "{got:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn holm_on_a_worked_set_with_ties_and_the_monotone_step() {
        // p = 0.01 0.04 0.03 0.04 0.005 0.2, m = 6. Sorted with multipliers 6..1:
        //   0.005·6 = 0.03   → 0.03
        //   0.01 ·5 = 0.05   → 0.05
        //   0.03 ·4 = 0.12   → 0.12
        //   0.04 ·3 = 0.12   → 0.12
        //   0.04 ·2 = 0.08   → max(0.12, 0.08) = 0.12   (the monotone step; the tie stays tied)
        //   0.2  ·1 = 0.2    → 0.2
        // Back in input order: 0.05 0.12 0.12 0.12 0.03 0.2.
        let p = [0.01, 0.04, 0.03, 0.04, 0.005, 0.2].map(Some);
        let (adj, m) = holm(&p);
        assert_eq!(m, 6);
        close(&adj, &[0.05, 0.12, 0.12, 0.12, 0.03, 0.2].map(Some));
    }

    #[test]
    fn holm_caps_at_one_and_skips_tests_that_were_not_run() {
        // 0.4·3 = 1.2 → 1; 0.7·2 = 1.4 → 1; 0.9 → max(1, 0.9) = 1.
        let (adj, m) = holm(&[Some(0.4), Some(0.9), Some(0.7)]);
        assert_eq!(m, 3);
        close(&adj, &[Some(1.0), Some(1.0), Some(1.0)]);
        // Untestable comparisons are not in the family: m = 2, 0.02·2 = 0.04, 0.03·1 → 0.04.
        let (adj, m) = holm(&[None, Some(0.03), Some(f64::NAN), Some(0.02)]);
        assert_eq!(m, 2);
        close(&adj, &[None, Some(0.04), None, Some(0.04)]);
        // One test: unchanged.
        assert_eq!(holm(&[Some(0.013)]), (vec![Some(0.013)], 1));
        assert_eq!(holm(&[]), (vec![], 0));
    }
}
