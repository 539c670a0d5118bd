//! Which rows go to train, validation and test, and which of their labels training may see.
//!
//! Two properties matter beyond correctness (DESIGN.md, "Stages are content-addressed"):
//! the train/validation partition depends only on the data, `zero_label`, `val_fraction` and the
//! seed, never on `label_fraction`, so an autoencoder pretrained on a partition (labels unseen)
//! is reused across label fractions; and for one seed the labeled sets are nested across
//! fractions (5% ⊂ 10% ⊂ … ⊂ 100%), so a label-fraction curve varies one thing at a time.
//! Both follow from drawing each decision from its own seeded stream: a class's rows are
//! permuted once, and a fraction only decides how long a prefix of that permutation is labeled.

use decsweep_api::{SplitMode, ZeroLabel};

use crate::error::DataError;
use crate::rng::{stream, DetRng};

/// Binarised class per row: `Some(0)` negative, `Some(1)` positive, `None` dropped.
pub(super) fn binarise(labels: &[f32], zero: ZeroLabel) -> Vec<Option<u8>> {
    labels
        .iter()
        .map(|&y| {
            if y < 0.0 {
                Some(0)
            } else if y > 0.0 {
                Some(1)
            } else {
                match zero {
                    ZeroLabel::Drop => None,
                    ZeroLabel::Negative => Some(0),
                    ZeroLabel::Positive => Some(1),
                }
            }
        })
        .collect()
}

/// Dataset rows of each part, ascending.
#[derive(Debug, PartialEq)]
pub(super) struct Assignment {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
    pub dropped: usize,
}

pub(super) fn partition(
    classes: &[Option<u8>],
    split: Option<&[u8]>,
    mode: SplitMode,
    val_fraction: f64,
    seed: u64,
) -> Result<Assignment, DataError> {
    let dropped = classes.iter().filter(|c| c.is_none()).count();
    let kept = |i: &usize| classes[*i].is_some();
    let rows_with = |v: u8| -> Vec<usize> {
        match split {
            Some(s) => (0..classes.len()).filter(|&i| s[i] == v).filter(kept).collect(),
            None => Vec::new(),
        }
    };
    match mode {
        SplitMode::Dataset => {
            if split.is_none() {
                return Err(DataError::NoSplit);
            }
            Ok(Assignment { train: rows_with(0), val: rows_with(1), test: rows_with(2), dropped })
        }
        SplitMode::Random => {
            let test = rows_with(2);
            let pool: Vec<usize> =
                (0..classes.len()).filter(kept).filter(|&i| split.is_none_or(|s| s[i] != 2)).collect();
            let (train, val) = stratified(&pool, classes, val_fraction, seed);
            Ok(Assignment { train, val, test, dropped })
        }
    }
}

/// Splits `pool` into (train, val), `val_fraction` of each class going to val.
fn stratified(pool: &[usize], classes: &[Option<u8>], val_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for class in 0..2u8 {
        let mut members: Vec<usize> = pool.iter().copied().filter(|&i| classes[i] == Some(class)).collect();
        DetRng::new(seed, stream::PARTITION + class as u64).shuffle(&mut members);
        let k = ((val_fraction * members.len() as f64).round() as usize).min(members.len());
        val.extend_from_slice(&members[..k]);
        train.extend_from_slice(&members[k..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}

/// Which of `rows` (ascending dataset rows of one part) are labeled: per class, a seeded
/// permutation of that class's rows, of which the first `round(fraction · n_class)` (at least one
/// when the class has rows) are labeled. `stream_base` separates the parts.
pub(super) fn choose_labeled(
    rows: &[usize],
    classes: &[Option<u8>],
    fraction: f64,
    seed: u64,
    stream_base: u64,
) -> Vec<bool> {
    let mut labeled = vec![false; rows.len()];
    for class in 0..2u8 {
        let mut positions: Vec<usize> = (0..rows.len()).filter(|&p| classes[rows[p]] == Some(class)).collect();
        if positions.is_empty() {
            continue;
        }
        DetRng::new(seed, stream_base + class as u64).shuffle(&mut positions);
        let k = ((fraction * positions.len() as f64).round() as usize).clamp(1, positions.len());
        for &p in &positions[..k] {
            labeled[p] = true;
        }
    }
    labeled
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(n: usize) -> Vec<Option<u8>> {
        // Every 10th row dropped, otherwise alternating-ish classes with imbalance.
        (0..n).map(|i| if i % 10 == 0 { None } else { Some(u8::from(i % 3 != 0)) }).collect()
    }

    #[test]
    fn binarise_follows_zero_label() {
        let y = [-0.2, 0.0, 2.0];
        assert_eq!(binarise(&y, ZeroLabel::Drop), vec![Some(0), None, Some(1)]);
        assert_eq!(binarise(&y, ZeroLabel::Negative), vec![Some(0), Some(0), Some(1)]);
        assert_eq!(binarise(&y, ZeroLabel::Positive), vec![Some(0), Some(1), Some(1)]);
    }

    #[test]
    fn random_partition_is_stratified_and_keeps_file_test_rows_out() {
        let c = classes(1000);
        let split: Vec<u8> = (0..1000).map(|i| if i % 4 == 3 { 2 } else { 0 }).collect();
        let a = partition(&c, Some(&split), SplitMode::Random, 0.2, 5).unwrap();
        assert_eq!(a.dropped, 100);
        assert!(a.test.iter().all(|&i| split[i] == 2 && c[i].is_some()));
        assert!(a.train.iter().chain(&a.val).all(|&i| split[i] != 2 && c[i].is_some()));
        assert_eq!(a.train.len() + a.val.len() + a.test.len() + a.dropped, 1000);
        let pos = |rows: &[usize]| rows.iter().filter(|&&i| c[i] == Some(1)).count() as f64 / rows.len() as f64;
        assert!((pos(&a.train) - pos(&a.val)).abs() < 0.02, "stratified");
        assert!((a.val.len() as f64 / (a.train.len() + a.val.len()) as f64 - 0.2).abs() < 0.01);
        assert_ne!(a, partition(&c, Some(&split), SplitMode::Random, 0.2, 6).unwrap(), "seeded");
        let none = partition(&c, None, SplitMode::Random, 0.2, 5).unwrap();
        assert!(none.test.is_empty() && none.train.len() + none.val.len() == 900);
    }

    #[test]
    fn dataset_partition_uses_the_file_split() {
        let c = classes(30);
        let split: Vec<u8> = (0..30).map(|i| (i % 3) as u8).collect();
        let a = partition(&c, Some(&split), SplitMode::Dataset, 0.2, 0).unwrap();
        assert!(a.train.iter().all(|&i| i % 3 == 0) && a.val.iter().all(|&i| i % 3 == 1));
        assert!(a.test.iter().all(|&i| i % 3 == 2) && !a.train.contains(&0), "row 0 is dropped");
        assert!(matches!(partition(&c, None, SplitMode::Dataset, 0.2, 0), Err(DataError::NoSplit)));
    }

    #[test]
    fn labeled_sets_are_per_class_and_nested() {
        let c = classes(500);
        let rows: Vec<usize> = (0..500).filter(|&i| c[i].is_some()).collect();
        let mut previous: Option<Vec<bool>> = None;
        for f in [0.05, 0.1, 0.2, 0.4, 0.7, 1.0] {
            let l = choose_labeled(&rows, &c, f, 3, stream::LABELED_TRAIN);
            for class in 0..2 {
                let n_c = rows.iter().filter(|&&i| c[i] == Some(class)).count();
                let got = rows.iter().zip(&l).filter(|(&i, &lab)| lab && c[i] == Some(class)).count();
                assert_eq!(got, ((f * n_c as f64).round() as usize).max(1), "class {class} at {f}");
            }
            if let Some(prev) = previous {
                assert!(prev.iter().zip(&l).all(|(&a, &b)| !a || b), "{f}: not a superset of the smaller fraction");
            }
            previous = Some(l);
        }
        // A tiny class still gets one labeled row.
        let tiny = choose_labeled(&rows, &c, 0.0001, 3, stream::LABELED_TRAIN);
        assert_eq!(tiny.iter().filter(|&&x| x).count(), 2);
    }
}
