//! The one error type of this crate. Every variant about a file names the file and the tensor
//! (and row, step, feature where there is one) so a user can find the bad value.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    #[error("{}: no such file", path.display())]
    NotFound { path: PathBuf },

    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: cannot write: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: not a valid safetensors file (truncated or not safetensors at all?): {source}", path.display())]
    NotSafetensors {
        path: PathBuf,
        #[source]
        source: safetensors::SafeTensorError,
    },

    /// The safetensors header does not fit the file.
    #[error("{}: invalid safetensors header: {reason}", path.display())]
    BadHeader { path: PathBuf, reason: String },

    /// A tensor's entry in the safetensors header does not fit the file (a shape larger than
    /// the data, offsets past the end, an unknown dtype).
    #[error("{}: tensor `{tensor}` in the safetensors header {reason}", path.display())]
    BadTensorHeader { path: PathBuf, tensor: String, reason: String },

    #[error("{}: header metadata `{key}` is invalid: {reason}", path.display())]
    BadMetadata { path: PathBuf, key: String, reason: String },

    #[error("{}: missing tensor `{tensor}` ({expected})", path.display())]
    MissingTensor { path: PathBuf, tensor: String, expected: String },

    #[error("{}: tensor `{tensor}` has dtype {got}, expected {expected}", path.display())]
    WrongDtype { path: PathBuf, tensor: String, expected: String, got: String },

    #[error("{}: tensor `{tensor}` has shape {got:?}, expected {expected}", path.display())]
    WrongShape { path: PathBuf, tensor: String, expected: String, got: Vec<usize> },

    #[error("{}: tensor `{tensor}` has {got} rows but `{reference}` has {expected}; every tensor needs one row per utterance", path.display())]
    RowCountMismatch { path: PathBuf, tensor: String, got: usize, reference: String, expected: usize },

    #[error("{}: tensor `{tensor}` holds {value} at [row {row}, step {step}, feature {feature}]; features must be finite (the converters in tools/ replace NaN/inf by 0)", path.display())]
    NonFinite { path: PathBuf, tensor: String, row: usize, step: usize, feature: usize, value: f32 },

    #[error("{}: tensor `label` row {row} is {value}; labels must be finite sentiment scores in [-3, 3]", path.display())]
    BadLabel { path: PathBuf, row: usize, value: f32 },

    #[error("{}: tensor `{tensor}` row {row} is {value}; a length must be in 1..={max} (`{modality}` has {max} steps)", path.display())]
    BadLength { path: PathBuf, tensor: String, modality: String, row: usize, value: i64, max: usize },

    #[error("{}: tensor `split` row {row} is {value}; expected 0 (train), 1 (valid) or 2 (test)", path.display())]
    BadSplit { path: PathBuf, row: usize, value: i64 },

    #[error("{}: metadata `meta.ids` lists {ids} ids but the tensors have {n} rows", path.display())]
    IdCount { path: PathBuf, ids: usize, n: usize },

    #[error("label_fraction = {0} is outside (0, 1]")]
    BadLabelFraction(f64),

    #[error("val_fraction = {0} is outside (0, 1)")]
    BadValFraction(f64),

    #[error("seq_len must be at least 1")]
    BadSeqLen,

    #[error("split = dataset needs a `split` tensor in the dataset file, and this one has none; use split = random")]
    NoSplit,

    /// A part of the prepared data came out empty or without a class.
    #[error("{what}; {hint}")]
    Insufficient { what: String, hint: String },
}

impl DataError {
    /// Whether the error is the user's input (a missing, invalid or unsuitable dataset, or
    /// parameters that do not fit it) rather than a failure of this machine (a write that failed).
    /// The `decsweep` command exits 2 for the former and 1 for the latter.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, DataError::Write { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_file_tensor_and_position() {
        let e = DataError::NonFinite {
            path: "d/x.safetensors".into(),
            tensor: "audio".into(),
            row: 3,
            step: 4,
            feature: 5,
            value: f32::NEG_INFINITY,
        };
        let text = e.to_string();
        assert!(text.starts_with("d/x.safetensors: tensor `audio`"), "{text}");
        assert!(text.contains("[row 3, step 4, feature 5]") && text.contains("-inf"), "{text}");
        assert!(e.is_bad_input());
        let w = DataError::Write { path: "o".into(), source: std::io::Error::other("disk full") };
        assert!(!w.is_bad_input());
    }
}
