//! The pipeline's `data` stage (DESIGN.md, "The pipeline"): binarised labels, train / validation /
//! test parts, labeled subsets, sequences brought to `seq_len` steps (padded, and truncated or
//! resampled by `time_pool`), and per-feature normalisation fitted on the training part after
//! pooling, so on exactly the values the model sees.

mod normalize;
mod part;
mod pool;
mod split;

use decsweep_api::{Params, SplitMode, TimePool, ZeroLabel};
use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::DataError;
use crate::rng::stream;

pub use part::Part;

/// Everything the `data` stage reads.
#[derive(Clone, Debug, PartialEq)]
pub struct PrepConfig {
    pub seq_len: usize,
    /// How rows longer than `seq_len` are shortened.
    pub time_pool: TimePool,
    /// Fraction of each class's rows whose labels training may see, in (0, 1].
    pub label_fraction: f64,
    pub zero_label: ZeroLabel,
    pub split: SplitMode,
    /// Fraction of the non-test rows held out for validation by `SplitMode::Random`, in (0, 1).
    pub val_fraction: f64,
    pub seed: u64,
}

impl PrepConfig {
    pub fn from_params(p: &Params, seed: u64) -> Self {
        PrepConfig {
            // A negative value (never valid) becomes 0, which `prepare` refuses.
            seq_len: usize::try_from(p.seq_len).unwrap_or(0),
            time_pool: p.time_pool,
            label_fraction: p.label_fraction,
            zero_label: p.zero_label,
            split: p.split,
            val_fraction: p.val_fraction,
            seed,
        }
    }
}

/// Row counts of a preparation, for logs and reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepStats {
    /// Rows dropped because their label is exactly 0 (`zero_label = drop`), in any part.
    pub dropped_zero: usize,
    pub n_train_labeled: usize,
    pub n_train_unlabeled: usize,
    pub n_val_labeled: usize,
    pub n_val_unlabeled: usize,
    pub n_test: usize,
}

/// The prepared data of one trial.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    /// Features per modality: text, audio, vision.
    pub dims: [usize; 3],
    pub seq_len: usize,
    pub train: Part,
    pub val: Part,
    /// The rows the file marks as test (split 2); `None` when it marks none.
    pub test: Option<Part>,
    pub stats: PrepStats,
}

/// Runs the `data` stage on a dataset. Deterministic for a config.
pub fn prepare(ds: &Dataset, cfg: &PrepConfig) -> Result<Prepared, DataError> {
    if !(cfg.label_fraction > 0.0 && cfg.label_fraction <= 1.0) {
        return Err(DataError::BadLabelFraction(cfg.label_fraction));
    }
    if cfg.split == SplitMode::Random && !(cfg.val_fraction > 0.0 && cfg.val_fraction < 1.0) {
        return Err(DataError::BadValFraction(cfg.val_fraction));
    }
    if cfg.seq_len == 0 {
        return Err(DataError::BadSeqLen);
    }
    // A dataset built in memory has not been through `load`; keep every index below in bounds.
    ds.validate_structure(std::path::Path::new("<dataset>"))?;

    let classes = split::binarise(&ds.labels, cfg.zero_label);
    let parts = split::partition(&classes, ds.split.as_deref(), cfg.split, cfg.val_fraction, cfg.seed)?;
    let train_labeled =
        split::choose_labeled(&parts.train, &classes, cfg.label_fraction, cfg.seed, stream::LABELED_TRAIN);
    let val_labeled = split::choose_labeled(&parts.val, &classes, cfg.label_fraction, cfg.seed, stream::LABELED_VAL);
    check_sizes(ds, cfg, &parts, &classes, &train_labeled)?;

    let pooled: Vec<pool::Pooled> =
        (0..3).map(|m| pool::pool(&ds.modalities[m], &ds.lengths[m], cfg.seq_len, cfg.time_pool)).collect();
    let scalers: Vec<normalize::Scaler> =
        pooled.iter().map(|p| normalize::Scaler::fit(&p.features, &p.lengths, &parts.train, cfg.seq_len)).collect();
    let build = |rows: &[usize], labeled: Vec<bool>| Part {
        features: std::array::from_fn(|m| scalers[m].apply(&pooled[m].features, &pooled[m].lengths, rows, cfg.seq_len)),
        lengths: std::array::from_fn(|m| rows.iter().map(|&i| pooled[m].lengths[i] as i64).collect()),
        labels: rows.iter().map(|&i| classes[i].map_or(0.0, f32::from)).collect(),
        labeled,
        rows: rows.to_vec(),
    };
    let train = build(&parts.train, train_labeled);
    let val = build(&parts.val, val_labeled);
    // Test labels are for evaluation only, never for training.
    let test = (!parts.test.is_empty()).then(|| build(&parts.test, vec![false; parts.test.len()]));

    let stats = PrepStats {
        dropped_zero: parts.dropped,
        n_train_labeled: train.n_labeled(),
        n_train_unlabeled: train.len() - train.n_labeled(),
        n_val_labeled: val.n_labeled(),
        n_val_unlabeled: val.len() - val.n_labeled(),
        n_test: parts.test.len(),
    };
    tracing::debug!(?stats, seq_len = cfg.seq_len, time_pool = ?cfg.time_pool, seed = cfg.seed, "prepared data");
    Ok(Prepared { dims: ds.modalities.each_ref().map(|f| f.d), seq_len: cfg.seq_len, train, val, test, stats })
}

/// Refuses preparations a model cannot train or be validated on, saying what to change.
fn check_sizes(
    ds: &Dataset,
    cfg: &PrepConfig,
    parts: &split::Assignment,
    classes: &[Option<u8>],
    train_labeled: &[bool],
) -> Result<(), DataError> {
    let context = format!(
        "{} rows in the dataset, {} dropped as zero labels, {} train, {} validation, {} test",
        ds.n(),
        parts.dropped,
        parts.train.len(),
        parts.val.len(),
        parts.test.len()
    );
    let source = match cfg.split {
        SplitMode::Random => "raise val_fraction or use a dataset with more rows",
        SplitMode::Dataset => "the file's split has no usable row with split = 1; use split = random",
    };
    if parts.train.is_empty() {
        return Err(DataError::Insufficient {
            what: format!("the training part is empty ({context})"),
            hint: "use a dataset with more rows".into(),
        });
    }
    for (class, name) in [(0u8, "negative (label < 0)"), (1, "positive (label > 0)")] {
        let labeled = parts.train.iter().zip(train_labeled).filter(|(&i, &l)| l && classes[i] == Some(class)).count();
        if labeled == 0 {
            return Err(DataError::Insufficient {
                what: format!("the labeled training set has no {name} row ({context})"),
                hint: format!(
                    "raise label_fraction (now {}) or use a dataset with more rows of that class",
                    cfg.label_fraction
                ),
            });
        }
    }
    if parts.val.is_empty() {
        return Err(DataError::Insufficient {
            what: format!("the validation part is empty ({context})"),
            hint: source.into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
