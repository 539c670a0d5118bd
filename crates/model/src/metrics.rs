//! Binary classification metrics, computed on the host from predictions and labels.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BinaryMetrics {
    pub accuracy: f64,
    /// F1 of each class weighted by its support (scikit-learn's `average="weighted"`).
    pub f1_weighted: f64,
    /// Unweighted mean of the two classes' F1.
    pub f1_macro: f64,
    pub n: usize,
}

impl BinaryMetrics {
    /// `predicted` and `truth` are 0/1 classes. A class that is never predicted nor present has
    /// F1 0, as scikit-learn's `zero_division=0`.
    pub fn compute(predicted: &[u8], truth: &[u8]) -> BinaryMetrics {
        assert_eq!(predicted.len(), truth.len(), "one prediction per label");
        let n = truth.len();
        let mut confusion = [[0usize; 2]; 2]; // [truth][predicted]
        for (&p, &t) in predicted.iter().zip(truth) {
            confusion[t as usize][p as usize] += 1;
        }
        let f1 = |c: usize| {
            let tp = confusion[c][c] as f64;
            let fp = confusion[1 - c][c] as f64;
            let fn_ = confusion[c][1 - c] as f64;
            if tp == 0.0 {
                0.0
            } else {
                2.0 * tp / (2.0 * tp + fp + fn_)
            }
        };
        let support = |c: usize| (confusion[c][0] + confusion[c][1]) as f64;
        let (f0, f1v) = (f1(0), f1(1));
        let total = n.max(1) as f64;
        BinaryMetrics {
            accuracy: (confusion[0][0] + confusion[1][1]) as f64 / total,
            f1_weighted: (f0 * support(0) + f1v * support(1)) / total,
            f1_macro: (f0 + f1v) / 2.0,
            n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// truth 1,1,1,0,0 / predicted 1,1,0,0,1: class 1 tp 2 fp 1 fn 1 → F1 2/3;
    /// class 0 tp 1 fp 1 fn 1 → F1 1/2; weighted (3·2/3 + 2·1/2)/5 = 0.6; macro 7/12.
    #[test]
    fn f1_scores_by_hand() {
        let m = BinaryMetrics::compute(&[1, 1, 0, 0, 1], &[1, 1, 1, 0, 0]);
        assert!((m.accuracy - 0.6).abs() < 1e-12);
        assert!((m.f1_weighted - 0.6).abs() < 1e-12);
        assert!((m.f1_macro - 7.0 / 12.0).abs() < 1e-12);
    }

    #[test]
    fn constant_predictions_give_zero_f1_for_the_missing_class() {
        let m = BinaryMetrics::compute(&[1, 1, 1, 1], &[1, 1, 0, 0]);
        assert_eq!(m.accuracy, 0.5);
        assert!((m.f1_macro - (2.0 / 3.0) / 2.0).abs() < 1e-12);
    }
}
