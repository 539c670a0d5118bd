//! The sentences both tables print under their headings, written once (the LaTeX writer
//! escapes them).

use super::Yardstick;

/// What the headline columns measure, what `n`/`test_n` are, and what validation is for.
pub(crate) fn yardstick(y: Yardstick) -> &'static str {
    match y {
        Yardstick::Test => {
            "Test accuracy (%) and weighted F1 are measured on the dataset's fixed test split: the \
             same rows for every trial (`test_n` in `trials.csv`), so configurations at different \
             label fractions are measured with one yardstick. Validation accuracy and F1 are \
             beside them: validation rows are drawn from the labeled part of the training data \
             (`n` in `trials.csv`), so there are fewer of them at lower label fractions and their \
             numbers move in coarser steps. Validation selects each trial's checkpoint and drives \
             pruning and the TPE sampler; the test split is used for neither. The paired \
             comparison below is on validation accuracy."
        }
        Yardstick::Validation => {
            "Accuracy (%) and weighted F1 on the validation split: rows drawn from the labeled \
             part of the training data (`n` in `trials.csv`, Val rows here), so there are fewer \
             of them at lower label fractions. The dataset has no test split, so these are the \
             only numbers; validation also selected each trial's checkpoint and drove pruning \
             and the TPE sampler."
        }
    }
}

/// Explains intervals marked as Wilson's of the pooled rows.
pub(crate) const POOLED: &str = " Where every seed scored the same, a t or logit-t interval would have \
     zero width; the interval marked W is then Wilson's score interval of the seeds' rows pooled \
     (`wilson_pooled` in `summary.csv`), the uncertainty of a proportion measured on that many rows.";

/// Explains intervals left out because the values have no spread.
pub(crate) const NO_SPREAD: &str = " An interval marked \"no spread\" is left out because every seed \
     scored the same and the row counts it would be pooled over are not recorded: a zero-width \
     interval would claim a certainty three seeds cannot give.";
