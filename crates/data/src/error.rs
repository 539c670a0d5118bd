//! The one error type of this crate. Every variant about a file names the file and the tensor
//! (and row, step, feature where there is one) so a user can find the bad value.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    #[error("{}: no such file", path.display())]
    NotFound { path: PathBuf },

    // The causes below are part of the message and deliberately not `#[source]`: a chain
    // printer (`{:#}`) would print them a second time (`header too small: header too small`).
    #[error("{}: cannot read: {cause}", path.display())]
    Read { path: PathBuf, cause: std::io::Error },

    #[error("{}: cannot write: {cause}", path.display())]
    Write { path: PathBuf, cause: std::io::Error },

    /// Too short to hold even the header's length: empty, or cut off at the start.
    #[error("{}: {}", path.display(), too_short(*bytes))]
    TooShort { path: PathBuf, bytes: u64 },

    #[error("{}: not a valid safetensors file (truncated or not safetensors at all?): {cause}", path.display())]
    NotSafetensors { path: PathBuf, cause: safetensors::SafeTensorError },

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

/// Every safetensors file starts with the length of its header, 8 bytes.
pub(crate) const HEADER_LENGTH_BYTES: u64 = 8;

fn too_short(bytes: u64) -> String {
    let what = if bytes == 0 { "the file is empty".to_string() } else { format!("the file has only {bytes} bytes") };
    format!(
        "{what}, not a dataset (a safetensors file starts with its {HEADER_LENGTH_BYTES}-byte header length); \
         `decsweep data synth` or tools/convert_mosi.py writes one"
    )
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
        let w = DataError::Write { path: "o".into(), cause: std::io::Error::other("disk full") };
        assert!(!w.is_bad_input());
    }

    #[test]
    fn a_cause_is_said_once_even_by_a_chain_printer() {
        let e = DataError::NotSafetensors { path: "d".into(), cause: safetensors::SafeTensorError::HeaderTooSmall };
        let text = format!("{:#}", anyhow_like(&e));
        assert_eq!(text.matches("header too small").count(), 1, "{text}");
        for (bytes, says) in
            [(0, "d: the file is empty, not a dataset"), (3, "d: the file has only 3 bytes, not a dataset")]
        {
            let e = DataError::TooShort { path: "d".into(), bytes };
            assert!(e.to_string().starts_with(says), "{e}");
            assert!(e.is_bad_input());
        }
    }

    /// The message and every source below it, as `anyhow`'s `{:#}` prints them.
    fn anyhow_like(e: &DataError) -> String {
        let mut text = e.to_string();
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            text.push_str(&format!(": {c}"));
            cause = c.source();
        }
        text
    }
}
