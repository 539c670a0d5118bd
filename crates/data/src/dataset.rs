//! The in-memory dataset and the invariants every dataset satisfies, whether it was loaded,
//! synthesised or is about to be saved.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::DataError;

/// The modalities, in the order used by every `[_; 3]` in this crate.
pub const MODALITIES: [&str; 3] = ["text", "audio", "vision"];

/// Row-major `[n, t, d]` f32 features of one modality.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    pub data: Vec<f32>,
    pub n: usize,
    pub t: usize,
    pub d: usize,
}

impl Features {
    pub fn zeros(n: usize, t: usize, d: usize) -> Self {
        Features { data: vec![0.0; n * t * d], n, t, d }
    }

    /// The `[t, d]` block of one row.
    pub fn row(&self, i: usize) -> &[f32] {
        let stride = self.t * self.d;
        &self.data[i * stride..(i + 1) * stride]
    }

    /// The `[d]` feature vector at one row and step.
    pub fn step(&self, i: usize, s: usize) -> &[f32] {
        let start = (i * self.t + s) * self.d;
        &self.data[start..start + self.d]
    }
}

/// What the file header says about the rows: ids, where they came from, feature names.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// One id per row (e.g. MOSI's `video_segment`).
    #[serde(default)]
    pub ids: Vec<String>,
    /// Where the data came from (a converter and its input file, or the generator).
    #[serde(default)]
    pub source: String,
    /// Optional names of each modality's features, as the source provides them.
    #[serde(default)]
    pub feature_names: Option<serde_json::Value>,
    /// How many NaN / ±inf values a converter replaced by 0.
    #[serde(default)]
    pub nonfinite_replaced: u64,
    /// Anything else the producer wants to record (converter options, generator config).
    #[serde(default)]
    pub extra: serde_json::Value,
}

/// One multimodal sentiment dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// text, audio, vision; each modality may have its own number of steps and features.
    pub modalities: [Features; 3],
    /// Valid steps per row per modality; the valid steps occupy `[0, len)`.
    pub lengths: [Vec<u32>; 3],
    /// Sentiment score in [-3, 3].
    pub labels: Vec<f32>,
    /// 0 train, 1 valid, 2 test, as the source defines it.
    pub split: Option<Vec<u8>>,
    pub meta: Metadata,
}

impl Dataset {
    /// Number of rows (utterances).
    pub fn n(&self) -> usize {
        self.labels.len()
    }

    /// Whether all three modalities share one length per row (aligned data).
    pub fn lengths_aligned(&self) -> bool {
        self.lengths[0] == self.lengths[1] && self.lengths[0] == self.lengths[2]
    }

    /// The name of the tensor that holds modality `m`'s lengths in a saved file.
    pub(crate) fn length_tensor_name(&self, m: usize) -> String {
        if self.lengths_aligned() {
            "lengths".to_string()
        } else {
            format!("{}_lengths", MODALITIES[m])
        }
    }

    /// Checks every invariant the file format promises. `path` is the file the dataset came from
    /// or is going to, so that errors point there.
    pub fn validate(&self, path: &Path) -> Result<(), DataError> {
        self.check(path, true)
    }

    /// [`Dataset::validate`] without the scan for non-finite features: the O(rows) checks that
    /// keep indexing in bounds, for code handed a dataset it did not load.
    pub(crate) fn validate_structure(&self, path: &Path) -> Result<(), DataError> {
        self.check(path, false)
    }

    fn check(&self, path: &Path, finite: bool) -> Result<(), DataError> {
        let n = self.n();
        let path_buf = || path.to_path_buf();
        for (m, f) in self.modalities.iter().enumerate() {
            let name = MODALITIES[m];
            if f.n != n {
                return Err(DataError::RowCountMismatch {
                    path: path_buf(),
                    tensor: name.into(),
                    got: f.n,
                    reference: "label".into(),
                    expected: n,
                });
            }
            let size = f.n.checked_mul(f.t).and_then(|x| x.checked_mul(f.d));
            if f.t == 0 || f.d == 0 || size != Some(f.data.len()) {
                return Err(DataError::WrongShape {
                    path: path_buf(),
                    tensor: name.into(),
                    expected: format!("[N, T ≥ 1, D ≥ 1] with N·T·D = {} values", f.data.len()),
                    got: vec![f.n, f.t, f.d],
                });
            }
            if finite {
                check_finite(path, name, f)?;
            }
            let tensor = self.length_tensor_name(m);
            if self.lengths[m].len() != n {
                return Err(DataError::RowCountMismatch {
                    path: path_buf(),
                    tensor,
                    got: self.lengths[m].len(),
                    reference: "label".into(),
                    expected: n,
                });
            }
            for (row, &len) in self.lengths[m].iter().enumerate() {
                check_length(path, &tensor, m, f.t, row, len as i64)?;
            }
        }
        for (row, &y) in self.labels.iter().enumerate() {
            check_label(path, row, y)?;
        }
        if let Some(split) = &self.split {
            if split.len() != n {
                return Err(DataError::RowCountMismatch {
                    path: path_buf(),
                    tensor: "split".into(),
                    got: split.len(),
                    reference: "label".into(),
                    expected: n,
                });
            }
            for (row, &s) in split.iter().enumerate() {
                check_split(path, row, s as i64)?;
            }
        }
        if self.meta.ids.len() != n {
            return Err(DataError::IdCount { path: path_buf(), ids: self.meta.ids.len(), n });
        }
        Ok(())
    }
}

/// The first non-finite value of a feature tensor, if any, as an error naming its position.
pub(crate) fn check_finite(path: &Path, tensor: &str, f: &Features) -> Result<(), DataError> {
    match f.data.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(flat) => Err(DataError::NonFinite {
            path: path.to_path_buf(),
            tensor: tensor.into(),
            row: flat / (f.t * f.d),
            step: flat / f.d % f.t,
            feature: flat % f.d,
            value: f.data[flat],
        }),
    }
}

pub(crate) fn check_length(
    path: &Path,
    tensor: &str,
    m: usize,
    max: usize,
    row: usize,
    value: i64,
) -> Result<(), DataError> {
    if value < 1 || value as u64 > max as u64 {
        return Err(DataError::BadLength {
            path: path.to_path_buf(),
            tensor: tensor.into(),
            modality: MODALITIES[m].into(),
            row,
            value,
            max,
        });
    }
    Ok(())
}

pub(crate) fn check_label(path: &Path, row: usize, value: f32) -> Result<(), DataError> {
    if !(value.is_finite() && (-3.0..=3.0).contains(&value)) {
        return Err(DataError::BadLabel { path: path.to_path_buf(), row, value });
    }
    Ok(())
}

pub(crate) fn check_split(path: &Path, row: usize, value: i64) -> Result<(), DataError> {
    if !(0..=2).contains(&value) {
        return Err(DataError::BadSplit { path: path.to_path_buf(), row, value });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small valid dataset: 4 rows, unaligned lengths, a split.
    pub(crate) fn tiny() -> Dataset {
        let mut modalities = [Features::zeros(4, 3, 2), Features::zeros(4, 5, 1), Features::zeros(4, 2, 3)];
        for (m, f) in modalities.iter_mut().enumerate() {
            for (k, v) in f.data.iter_mut().enumerate() {
                *v = (k as f32 * 0.5 + m as f32) - 2.0;
            }
        }
        Dataset {
            modalities,
            lengths: [vec![3, 1, 2, 3], vec![5, 1, 4, 2], vec![2, 2, 1, 1]],
            labels: vec![-3.0, 0.0, 1.4, 3.0],
            split: Some(vec![0, 1, 2, 0]),
            meta: Metadata {
                ids: (0..4).map(|i| format!("u{i}")).collect(),
                source: "test".into(),
                ..Metadata::default()
            },
        }
    }

    #[test]
    fn tiny_is_valid_and_indexing_is_row_major() {
        let ds = tiny();
        ds.validate(Path::new("t")).unwrap();
        let f = &ds.modalities[2];
        assert_eq!(f.step(1, 1), &f.data[9..12]);
        assert_eq!(f.row(3), &f.data[18..24]);
        assert!(!ds.lengths_aligned());
        assert_eq!(ds.length_tensor_name(1), "audio_lengths");
    }

    #[test]
    fn validation_names_the_bad_value() {
        let p = Path::new("x.safetensors");
        let mut ds = tiny();
        ds.modalities[1].data[2 * 5 + 3] = f32::NAN;
        let e = ds.validate(p).unwrap_err().to_string();
        assert!(e.contains("`audio`") && e.contains("[row 2, step 3, feature 0]"), "{e}");

        let mut ds = tiny();
        ds.lengths[2][1] = 3;
        let e = ds.validate(p).unwrap_err().to_string();
        assert!(e.contains("`vision_lengths` row 1 is 3") && e.contains("1..=2"), "{e}");

        let mut ds = tiny();
        ds.labels[3] = 3.5;
        assert!(matches!(ds.validate(p), Err(DataError::BadLabel { row: 3, .. })));

        let mut ds = tiny();
        ds.split = Some(vec![0, 1, 3, 0]);
        assert!(matches!(ds.validate(p), Err(DataError::BadSplit { row: 2, value: 3, .. })));

        let mut ds = tiny();
        ds.meta.ids.pop();
        assert!(matches!(ds.validate(p), Err(DataError::IdCount { ids: 3, n: 4, .. })));
    }
}
