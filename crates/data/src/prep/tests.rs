use std::collections::BTreeSet;

use super::*;
use crate::synth::synthesize;
use crate::SynthConfig;

fn data() -> Dataset {
    synthesize(&SynthConfig { n: 400, seed: 11, dims: [6, 4, 3], max_len: 12, min_len: 2 })
}

fn cfg(label_fraction: f64, seed: u64) -> PrepConfig {
    PrepConfig {
        seq_len: 8,
        time_pool: TimePool::Truncate,
        label_fraction,
        zero_label: ZeroLabel::Drop,
        split: SplitMode::Random,
        val_fraction: 0.2,
        seed,
    }
}

fn labeled_rows(p: &Part) -> BTreeSet<usize> {
    p.rows.iter().zip(&p.labeled).filter(|(_, &l)| l).map(|(&r, _)| r).collect()
}

#[test]
fn partition_ignores_label_fraction_and_labeled_sets_are_nested() {
    let ds = data();
    let fractions = [0.05, 0.1, 0.2, 0.4, 0.6, 1.0];
    let prepared: Vec<Prepared> = fractions.iter().map(|&f| prepare(&ds, &cfg(f, 3)).unwrap()).collect();
    for p in &prepared[1..] {
        assert_eq!(p.train.rows, prepared[0].train.rows, "train rows depend only on the seed");
        assert_eq!(p.val.rows, prepared[0].val.rows);
        // Identical features too: normalisation is fitted on all train rows, labeled or not.
        assert_eq!(p.train.features, prepared[0].train.features);
    }
    for pair in prepared.windows(2) {
        assert!(labeled_rows(&pair[0].train).is_subset(&labeled_rows(&pair[1].train)));
        assert!(labeled_rows(&pair[0].val).is_subset(&labeled_rows(&pair[1].val)));
        assert!(pair[0].stats.n_train_labeled < pair[1].stats.n_train_labeled);
    }
    let all = prepared.last().unwrap();
    assert_eq!(all.stats.n_train_unlabeled, 0);
    assert_eq!(all.train.labeled_only(), all.train);
    // Another seed gives another partition.
    assert_ne!(prepare(&ds, &cfg(0.4, 4)).unwrap().train.rows, prepared[3].train.rows);
}

#[test]
fn labeled_fraction_is_per_class() {
    let ds = data();
    let p = prepare(&ds, &cfg(0.4, 0)).unwrap();
    for class in [0.0, 1.0] {
        let n = p.train.labels.iter().filter(|&&y| y == class).count();
        let l = p.train.labels.iter().zip(&p.train.labeled).filter(|(&y, &l)| l && y == class).count();
        assert_eq!(l, (0.4 * n as f64).round() as usize, "class {class}");
    }
}

#[test]
fn random_mode_holds_out_the_files_test_rows() {
    let ds = data();
    let split = ds.split.clone().unwrap();
    let p = prepare(&ds, &cfg(0.4, 0)).unwrap();
    let test = p.test.as_ref().unwrap();
    let expected: Vec<usize> = (0..ds.n()).filter(|&i| split[i] == 2 && ds.labels[i] != 0.0).collect();
    assert_eq!(test.rows, expected);
    assert!(test.labeled.iter().all(|&l| !l), "test labels are never for training");
    let zeros = ds.labels.iter().filter(|&&y| y == 0.0).count();
    assert_eq!(p.stats.dropped_zero, zeros);
    let s = &p.stats;
    assert_eq!(
        s.n_train_labeled + s.n_train_unlabeled + s.n_val_labeled + s.n_val_unlabeled + s.n_test + zeros,
        ds.n()
    );
    let val_share = p.val.len() as f64 / (p.val.len() + p.train.len()) as f64;
    assert!((val_share - 0.2).abs() < 0.01, "{val_share}");

    let mut no_split = ds.clone();
    no_split.split = None;
    let p = prepare(&no_split, &cfg(0.4, 0)).unwrap();
    assert!(p.test.is_none());
    assert_eq!(p.train.len() + p.val.len() + p.stats.dropped_zero, ds.n());
}

#[test]
fn dataset_mode_uses_the_files_split() {
    let ds = data();
    let split = ds.split.clone().unwrap();
    let c = PrepConfig { split: SplitMode::Dataset, zero_label: ZeroLabel::Positive, ..cfg(0.5, 0) };
    let p = prepare(&ds, &c).unwrap();
    assert!(p.train.rows.iter().all(|&i| split[i] == 0));
    assert!(p.val.rows.iter().all(|&i| split[i] == 1));
    assert_eq!(p.test.as_ref().unwrap().len(), split.iter().filter(|&&s| s == 2).count());
    assert_eq!(p.stats.dropped_zero, 0);
    // Zeros count as positive here.
    for (k, &i) in p.train.rows.iter().enumerate() {
        assert_eq!(p.train.labels[k], if ds.labels[i] >= 0.0 { 1.0 } else { 0.0 });
    }
    let mut no_split = ds.clone();
    no_split.split = None;
    assert!(matches!(prepare(&no_split, &c), Err(DataError::NoSplit)));
}

#[test]
fn sequences_are_truncated_or_padded_and_normalised_on_train() {
    let ds = data();
    let p = prepare(&ds, &cfg(1.0, 0)).unwrap();
    assert_eq!((p.dims, p.seq_len), ([6, 4, 3], 8));
    for part in [&p.train, &p.val, p.test.as_ref().unwrap()] {
        for m in 0..3 {
            let d = p.dims[m];
            assert_eq!(part.features[m].len(), part.len() * 8 * d);
            for (k, &row) in part.rows.iter().enumerate() {
                let len = part.lengths[m][k] as usize;
                assert_eq!(len, (ds.lengths[m][row] as usize).min(8));
                assert!(len >= 1);
                let block = &part.features[m][k * 8 * d..(k + 1) * 8 * d];
                assert!(block[len * d..].iter().all(|&x| x == 0.0), "padded steps are exactly 0");
            }
        }
    }
    // On the train part, every non-constant feature has mean 0 and std 1 over the valid steps.
    for m in 0..3 {
        let d = p.dims[m];
        for j in 0..d {
            let mut values = Vec::new();
            for (k, &len) in p.train.lengths[m].iter().enumerate() {
                for s in 0..len as usize {
                    values.push(p.train.features[m][(k * 8 + s) * d + j] as f64);
                }
            }
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
            let constant = values.iter().all(|&v| v == 0.0);
            assert!(constant || (mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3), "m {m} j {j}: {mean} {var}");
        }
    }
    // seq_len longer than the file's T pads.
    let long = prepare(&ds, &PrepConfig { seq_len: 20, ..cfg(1.0, 0) }).unwrap();
    assert_eq!(long.train.features[0].len(), long.train.len() * 20 * 6);
}

#[test]
fn preparation_is_deterministic() {
    let ds = data();
    assert_eq!(prepare(&ds, &cfg(0.3, 9)).unwrap(), prepare(&ds, &cfg(0.3, 9)).unwrap());
}

#[test]
fn unusable_settings_are_refused_with_advice() {
    let ds = data();
    for f in [0.0, -0.1, 1.5, f64::NAN] {
        assert!(matches!(prepare(&ds, &cfg(f, 0)), Err(DataError::BadLabelFraction(_))), "{f}");
    }
    let bad_val = PrepConfig { val_fraction: 1.0, ..cfg(0.4, 0) };
    assert!(matches!(prepare(&ds, &bad_val), Err(DataError::BadValFraction(_))));
    assert!(matches!(prepare(&ds, &PrepConfig { seq_len: 0, ..cfg(0.4, 0) }), Err(DataError::BadSeqLen)));

    // Too few rows for a validation part.
    let mut tiny = synthesize(&SynthConfig { n: 4, seed: 0, dims: [2, 2, 2], max_len: 3, min_len: 1 });
    tiny.labels = vec![-1.0, 1.0, -1.0, 1.0];
    tiny.split = None;
    let e = prepare(&tiny, &PrepConfig { val_fraction: 0.1, ..cfg(0.4, 0) }).unwrap_err().to_string();
    assert!(e.contains("validation part is empty") && e.contains("val_fraction"), "{e}");

    // No negative row at all.
    let mut one_class = ds.clone();
    one_class.labels.iter_mut().for_each(|y| *y = (y.abs() + 0.2).min(3.0));
    let e = prepare(&one_class, &cfg(0.4, 0)).unwrap_err().to_string();
    assert!(e.contains("no negative (label < 0) row") && e.contains("label_fraction"), "{e}");
}

#[test]
fn an_inconsistent_in_memory_dataset_is_an_error_not_a_panic() {
    let mut ds = data();
    ds.lengths[1].pop();
    assert!(matches!(prepare(&ds, &cfg(0.4, 0)), Err(DataError::RowCountMismatch { .. })));
    let mut ds = data();
    ds.split.as_mut().unwrap().truncate(3);
    assert!(matches!(prepare(&ds, &cfg(0.4, 0)), Err(DataError::RowCountMismatch { .. })));
}

#[test]
fn from_params_reads_the_data_parameters() {
    let p = Params { seq_len: 12, label_fraction: 0.1, zero_label: ZeroLabel::Negative, ..Params::default() };
    let c = PrepConfig::from_params(&p, 5);
    let resample = Params { time_pool: TimePool::Resample, ..p.clone() };
    assert_eq!(PrepConfig::from_params(&resample, 5).time_pool, TimePool::Resample);
    assert_eq!(
        c,
        PrepConfig {
            seq_len: 12,
            time_pool: TimePool::Truncate,
            label_fraction: 0.1,
            zero_label: ZeroLabel::Negative,
            split: SplitMode::Random,
            val_fraction: 0.2,
            seed: 5
        }
    );
}

/// Mean and variance of feature `j` of modality `m` over a part's valid steps.
fn moments(part: &Part, m: usize, d: usize, seq_len: usize, j: usize) -> (f64, f64) {
    let mut values = Vec::new();
    for (k, &len) in part.lengths[m].iter().enumerate() {
        for s in 0..len as usize {
            values.push(part.features[m][(k * seq_len + s) * d + j] as f64);
        }
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    (mean, values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64)
}

#[test]
fn resample_keeps_every_step_and_normalises_what_the_model_sees() {
    // Rows of 5 to 500 steps, as in unaligned CMU-MOSI files.
    let ds = synthesize(&SynthConfig { n: 120, seed: 4, dims: [3, 2, 2], max_len: 500, min_len: 5 });
    let c = |time_pool| PrepConfig { seq_len: 30, time_pool, ..cfg(1.0, 0) };
    let truncated = prepare(&ds, &c(TimePool::Truncate)).unwrap();
    let resampled = prepare(&ds, &c(TimePool::Resample)).unwrap();
    assert_eq!(truncated.train.rows, resampled.train.rows, "pooling does not move rows between parts");
    assert_eq!(truncated.train.lengths, resampled.train.lengths, "both give min(length, seq_len) steps");
    assert_ne!(truncated.train.features, resampled.train.features);
    // Fitted after pooling: on the training part the window means, not the raw steps, have mean
    // 0 and variance 1 (window means of noisy steps vary far less than single steps do).
    for m in 0..3 {
        for j in 0..resampled.dims[m] {
            let (mean, var) = moments(&resampled.train, m, resampled.dims[m], 30, j);
            let constant = var == 0.0 && mean == 0.0;
            assert!(constant || (mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3), "m {m} j {j}: {mean} {var}");
        }
    }
}

#[test]
fn resample_changes_nothing_when_no_row_is_longer_than_seq_len() {
    // data() has rows of at most 12 steps.
    let ds = data();
    let c = |time_pool| PrepConfig { seq_len: 12, time_pool, ..cfg(0.5, 1) };
    assert_eq!(prepare(&ds, &c(TimePool::Truncate)).unwrap(), prepare(&ds, &c(TimePool::Resample)).unwrap());
    // With seq_len 8 the rows of 9 to 12 steps differ, and only they.
    let t = prepare(&ds, &cfg(0.5, 1)).unwrap();
    let r = prepare(&ds, &PrepConfig { time_pool: TimePool::Resample, ..cfg(0.5, 1) }).unwrap();
    assert_ne!(t.train.features, r.train.features);
}
