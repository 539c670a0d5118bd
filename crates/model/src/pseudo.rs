//! DEC pseudo-labels for fine-tuning, one step past the paper, and what DEC's own head scores.
//!
//! The paper's fine-tuning trains a fresh classifier on the labeled rows only; whatever the
//! clustering learnt about the unlabeled rows reaches it through the encoders' weights alone.
//! With `pseudo_threshold` τ > 0, an unlabeled training row whose largest soft assignment
//! `max_j q_ij` (equation 2, with the final DEC weights) is at least τ takes the class of its
//! cluster, and the classifier's loss becomes `BCE(labeled rows) + λ · BCE(pseudo-labeled rows)`
//! (λ = `pseudo_weight`).
//!
//! The class of a cluster is the majority class of the labeled training rows assigned to it
//! (argmax of q) at the end of the DEC stage. A cluster with no labeled rows, or with as many of
//! one class as the other, has no class: its rows get no pseudo-label. Guessing would put labels
//! in the loss that nothing labeled supports. (The DEC head's own map, fixed from the k-means
//! assignments when the stage starts, must give every class a cluster so that equation 7 can
//! score every label; the pseudo-labels carry no such duty.)
//!
//! Everything here is a function of the DEC checkpoint and the data, computed in evaluation mode
//! (no dropout, no random draws), so a DEC stage loaded from the stage cache yields the same
//! pseudo-labels as one trained on the spot. A resumed fine-tuning stage takes them from the
//! trial's state ([`crate::TrialState::dec_readout`]).

use tch::{Device, Kind, Tensor};

use crate::batch::Batch;
use crate::losses;

/// The pseudo-label of a row that has none (labeled rows included).
pub const NO_PSEUDO_LABEL: f32 = -1.0;

/// What the end of the DEC stage hands to fine-tuning and to the trial's metrics.
#[derive(Debug)]
pub struct DecReadout {
    /// Accuracy of the DEC head (each row's most probable class through the head's
    /// cluster → class map) on the labeled validation rows; `None` when there are none.
    pub head_val_accuracy: Option<f64>,
    /// The same on every test row; `None` without a test split.
    pub head_test_accuracy: Option<f64>,
    /// Per training row (CPU, float): its pseudo-label 0 or 1, or [`NO_PSEUDO_LABEL`]. `None`
    /// when pseudo-labels are off (τ = 0).
    pub pseudo_labels: Option<Tensor>,
}

impl DecReadout {
    /// How many training rows carry a pseudo-label.
    pub fn pseudo_count(&self) -> Option<i64> {
        self.pseudo_labels.as_ref().map(|p| p.ge(0.0).sum(Kind::Int64).int64_value(&[]))
    }

    /// Share of the pseudo-labels that agree with the rows' withheld labels (`train.y`): a
    /// diagnostic only, never used in training. `None` when off or when no row has one.
    pub fn pseudo_accuracy(&self, train: &Batch) -> Option<f64> {
        let pseudo = self.pseudo_labels.as_ref()?;
        let has = pseudo.ge(0.0);
        let n = has.sum(Kind::Int64).int64_value(&[]);
        (n > 0).then(|| {
            let truth = train.y.to_device(Device::Cpu);
            let agree = pseudo.eq_tensor(&truth).logical_and(&has).sum(Kind::Int64).int64_value(&[]);
            agree as f64 / n as f64
        })
    }

    /// Another handle on the same values (the pseudo-labels are never modified in place).
    pub fn shallow_clone(&self) -> DecReadout {
        DecReadout {
            head_val_accuracy: self.head_val_accuracy,
            head_test_accuracy: self.head_test_accuracy,
            pseudo_labels: self.pseudo_labels.as_ref().map(Tensor::shallow_clone),
        }
    }
}

/// The class (0 or 1) of each of `k` clusters by the majority of its labeled members; `None` for
/// a cluster with no labeled member or a tie.
pub fn majority_classes(assign: &[i64], labels: &[f32], labeled: &[bool], k: usize) -> Vec<Option<u8>> {
    let mut votes = vec![[0usize; 2]; k];
    for ((&c, &y), &is_labeled) in assign.iter().zip(labels).zip(labeled) {
        if is_labeled {
            votes[c as usize][(y > 0.5) as usize] += 1;
        }
    }
    votes
        .iter()
        .map(|[neg, pos]| match neg.cmp(pos) {
            std::cmp::Ordering::Greater => Some(0),
            std::cmp::Ordering::Less => Some(1),
            std::cmp::Ordering::Equal => None,
        })
        .collect()
}

/// Pseudo-labels of the training rows from their soft assignments `q [N, K]`: an unlabeled row
/// whose largest assignment is at least `threshold` gets the class of that cluster, when the
/// cluster has one; every other row gets [`NO_PSEUDO_LABEL`]. `labels`/`labeled` are the rows'
/// labels and whether training may use them; the map comes from the labeled rows only.
pub fn pseudo_labels(q: &Tensor, labels: &[f32], labeled: &[bool], threshold: f64) -> Vec<f32> {
    let q = q.to_device(Device::Cpu).to_kind(Kind::Float);
    let k = q.size()[1] as usize;
    let (confidence, cluster) = q.max_dim(1, false);
    let confidence = Vec::<f32>::try_from(confidence).expect("float confidences");
    let cluster = Vec::<i64>::try_from(cluster).expect("int64 clusters");
    let classes = majority_classes(&cluster, labels, labeled, k);
    // Compared in the assignments' own precision, so a τ written as 0.7 takes a q of 0.7f32.
    let threshold = threshold as f32;
    cluster
        .iter()
        .zip(&confidence)
        .zip(labeled)
        .map(|((&c, &conf), &is_labeled)| match classes[c as usize] {
            Some(class) if !is_labeled && conf >= threshold => f32::from(class),
            _ => NO_PSEUDO_LABEL,
        })
        .collect()
}

/// The fine-tuning loss with pseudo-labels: the mean BCE of the rows `labeled` marks, plus
/// `weight` times the mean BCE of the others (the pseudo-labeled rows, whose `y` holds their
/// pseudo-label). A term whose rows the batch lacks is 0.
pub fn pseudo_label_loss(logits: &Tensor, y: &Tensor, labeled: &Tensor, weight: f64) -> Tensor {
    let per_row = logits.binary_cross_entropy_with_logits::<Tensor>(y, None, None, tch::Reduction::None);
    let masked_mean = |mask: &Tensor| {
        let mask = mask.to_kind(per_row.kind());
        (&per_row * &mask).sum(per_row.kind()) / mask.sum(per_row.kind()).clamp_min(1.0)
    };
    masked_mean(labeled) + masked_mean(&labeled.logical_not()) * weight
}

/// The fine-tuning rows: every labeled training row, and every row with a pseudo-label, whose
/// `y` becomes that pseudo-label (`labeled` stays false for it, so the loss can weigh it apart).
pub fn fine_tuning_rows(train: &Batch, pseudo: &Tensor) -> Batch {
    let pseudo = pseudo.to_device(train.y.device()).to_kind(train.y.kind());
    let has_pseudo = pseudo.ge(0.0);
    let keep = train.labeled.logical_or(&has_pseudo).nonzero().squeeze_dim(1);
    let y = train.y.where_self(&train.labeled, &pseudo);
    let rows = Batch {
        x: std::array::from_fn(|m| train.x[m].shallow_clone()),
        lengths: std::array::from_fn(|m| train.lengths[m].shallow_clone()),
        y,
        labeled: train.labeled.shallow_clone(),
    };
    rows.select(&keep)
}

/// Accuracy of the DEC head on `rows` (every row of the batch, at least one), from their soft
/// assignments `q`: each row's most probable class through the cluster → class map.
pub fn head_accuracy(q: &Tensor, cluster_to_class: &Tensor, rows: &Batch) -> f64 {
    let predicted = losses::class_probabilities(q, cluster_to_class).argmax(1, false);
    predicted.to_kind(Kind::Float).eq_tensor(&rows.y).to_kind(Kind::Double).mean(Kind::Double).double_value(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32], shape: &[i64]) -> Tensor {
        Tensor::from_slice(v).view(shape)
    }

    #[test]
    fn clusters_take_the_majority_of_their_labeled_rows() {
        // Cluster 0: labeled 0,0,1 → 0; cluster 1: labeled 1 (the unlabeled 0 does not vote) → 1;
        // cluster 2: 1 vs 1 → none; cluster 3: no labeled row → none.
        let assign = [0, 0, 0, 1, 1, 2, 2, 3];
        let labels = [0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0];
        let labeled = [true, true, true, true, false, true, true, false];
        assert_eq!(majority_classes(&assign, &labels, &labeled, 4), vec![Some(0), Some(1), None, None]);
    }

    #[test]
    fn only_confident_unlabeled_rows_of_decided_clusters_get_a_label() {
        // Two clusters; rows 0-1 labeled (cluster 0 → class 1), the rest unlabeled.
        let q = t(&[0.9, 0.1, 0.8, 0.2, 0.95, 0.05, 0.6, 0.4, 0.1, 0.9, 0.7, 0.3], &[6, 2]);
        let labels = [1.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        let labeled = [true, true, false, false, false, false];
        // τ = 0.7: row 2 (0.95) and row 5 (0.7, at the threshold) take cluster 0's class 1; row 3
        // (0.6) is not confident; row 4 belongs to cluster 1, which has no labeled row.
        assert_eq!(pseudo_labels(&q, &labels, &labeled, 0.7), vec![-1.0, -1.0, 1.0, -1.0, -1.0, 1.0]);
        // τ = 0.96: no row is confident enough.
        assert!(pseudo_labels(&q, &labels, &labeled, 0.96).iter().all(|&p| p == NO_PSEUDO_LABEL));
    }

    /// Labeled row: logit 0, y 1 → ln 2. Pseudo rows: logit 0, y 0 → ln 2; logit ln 3, y 1 →
    /// ln(4/3); their mean (ln 2 + ln 4/3) / 2, weighted by 0.5.
    #[test]
    fn the_loss_weighs_pseudo_labeled_rows_apart() {
        let logits = t(&[0.0, 0.0, 3f32.ln()], &[3]);
        let y = t(&[1.0, 0.0, 1.0], &[3]);
        let labeled = Tensor::from_slice(&[1u8, 0, 0]).to_kind(Kind::Bool);
        let expected = 2f64.ln() + 0.5 * (2f64.ln() + (4.0f64 / 3.0).ln()) / 2.0;
        let got = pseudo_label_loss(&logits, &y, &labeled, 0.5).double_value(&[]);
        assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
        // Weight 0: only the labeled rows count, as the plain BCE of those rows.
        let plain = losses::bce_with_logits(&logits.narrow(0, 0, 1), &y.narrow(0, 0, 1)).double_value(&[]);
        assert!((pseudo_label_loss(&logits, &y, &labeled, 0.0).double_value(&[]) - plain).abs() < 1e-6);
        // A batch of pseudo-labeled rows only: the labeled term is 0, not NaN.
        let none = Tensor::zeros([3], (Kind::Bool, Device::Cpu));
        let only_pseudo = pseudo_label_loss(&logits, &y, &none, 1.0).double_value(&[]);
        assert!(only_pseudo.is_finite() && only_pseudo > 0.0);
    }

    #[test]
    fn fine_tuning_rows_are_the_labeled_and_the_pseudo_labeled() {
        let n = 4;
        let batch = Batch {
            x: std::array::from_fn(|_| Tensor::arange(n, (Kind::Float, Device::Cpu)).view([n, 1, 1])),
            lengths: std::array::from_fn(|_| Tensor::ones([n], (Kind::Int64, Device::Cpu))),
            y: t(&[1.0, 0.0, 1.0, 0.0], &[4]),
            labeled: Tensor::from_slice(&[1u8, 0, 0, 0]).to_kind(Kind::Bool),
        };
        // Row 1 pseudo-labeled 1 (its withheld label is 0), row 2 none, row 3 pseudo 0.
        let rows = fine_tuning_rows(&batch, &t(&[-1.0, 1.0, -1.0, 0.0], &[4]));
        assert_eq!(Vec::<f32>::try_from(rows.x[0].view([-1])).unwrap(), vec![0.0, 1.0, 3.0]);
        assert_eq!(Vec::<f32>::try_from(&rows.y).unwrap(), vec![1.0, 1.0, 0.0]);
        assert_eq!(Vec::<bool>::try_from(&rows.labeled).unwrap(), vec![true, false, false]);
        let readout = DecReadout {
            head_val_accuracy: None,
            head_test_accuracy: None,
            pseudo_labels: Some(t(&[-1.0, 1.0, -1.0, 0.0], &[4])),
        };
        assert_eq!(readout.pseudo_count(), Some(2));
        assert_eq!(readout.pseudo_accuracy(&batch), Some(0.5), "row 3 right, row 1 wrong");
    }

    #[test]
    fn head_accuracy_reads_the_clusters_classes() {
        let q = t(&[0.9, 0.1, 0.2, 0.8, 0.6, 0.4], &[3, 2]);
        let map = t(&[0.0, 1.0, 1.0, 0.0], &[2, 2]); // cluster 0 → class 1, cluster 1 → class 0
        let rows = Batch {
            x: std::array::from_fn(|_| Tensor::zeros([3, 1, 1], (Kind::Float, Device::Cpu))),
            lengths: std::array::from_fn(|_| Tensor::ones([3], (Kind::Int64, Device::Cpu))),
            y: t(&[1.0, 0.0, 0.0], &[3]),
            labeled: Tensor::ones([3], (Kind::Bool, Device::Cpu)),
        };
        assert_eq!(head_accuracy(&q, &map, &rows), 2.0 / 3.0);
    }
}
