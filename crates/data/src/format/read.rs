//! Reading and validating a dataset file.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensorError, SafeTensors};

use super::{read_error, FORMAT};
use crate::dataset::{check_length, check_split, Dataset, Features, Metadata, MODALITIES};
use crate::error::DataError;

/// Tensors this format defines; anything else in a file is ignored with a warning.
const KNOWN_TENSORS: [&str; 9] =
    ["text", "audio", "vision", "lengths", "text_lengths", "audio_lengths", "vision_lengths", "label", "split"];

/// Reads a dataset file and checks every invariant of the format.
pub fn load(path: &Path) -> Result<Dataset, DataError> {
    let bytes = std::fs::read(path).map_err(|source| read_error(path, source))?;
    let not_safetensors = |cause| DataError::NotSafetensors { path: path.to_path_buf(), cause };
    // Before anything trusts the header: every tensor's claim checked against the file's size.
    super::header::check_tensors(path, &bytes)?;
    // `SafeTensors` does not expose the header's `__metadata__`, so the header is read twice;
    // it is small next to the tensors.
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(not_safetensors)?;
    let file = SafeTensors::deserialize(&bytes).map_err(not_safetensors)?;
    let reader = Reader { path, file: &file };

    let mut unknown: Vec<&str> = file.names().into_iter().filter(|n| !KNOWN_TENSORS.contains(n)).collect();
    unknown.sort_unstable();
    for name in unknown {
        tracing::warn!(path = %path.display(), tensor = name, "ignoring unknown tensor");
    }

    let text = reader.features("text")?;
    let n = text.n;
    let audio = reader.features("audio")?;
    let vision = reader.features("vision")?;
    for (name, f) in [("audio", &audio), ("vision", &vision)] {
        reader.same_rows(name, f.n, n)?;
    }
    let modalities = [text, audio, vision];

    let label_view = reader.require("label", "F32 [N] sentiment scores in [-3, 3]")?;
    reader.vector_shape("label", &label_view, n)?;
    let labels = reader.f32s("label", &label_view)?;

    let shared = match reader.optional("lengths")? {
        Some(view) => {
            reader.vector_shape("lengths", &view, n)?;
            Some(reader.ints("lengths", &view)?)
        }
        None => None,
    };
    let mut lengths: [Vec<u32>; 3] = Default::default();
    for m in 0..3 {
        let own_name = format!("{}_lengths", MODALITIES[m]);
        let (name, raw) = match reader.optional(&own_name)? {
            Some(view) => {
                reader.vector_shape(&own_name, &view, n)?;
                (own_name.clone(), reader.ints(&own_name, &view)?)
            }
            None => match &shared {
                Some(raw) => ("lengths".to_string(), raw.clone()),
                None => {
                    return Err(DataError::MissingTensor {
                        path: path.to_path_buf(),
                        tensor: "lengths".into(),
                        expected: format!("integer [N] valid steps per row, or `{own_name}` for this modality"),
                    })
                }
            },
        };
        let max = modalities[m].t;
        for (row, &value) in raw.iter().enumerate() {
            check_length(path, &name, m, max, row, value)?;
        }
        // In range 1..=T, so the conversion cannot lose anything.
        lengths[m] = raw.iter().map(|&v| v as u32).collect();
    }

    let split = match reader.optional("split")? {
        Some(view) => {
            reader.vector_shape("split", &view, n)?;
            let raw = reader.ints("split", &view)?;
            for (row, &value) in raw.iter().enumerate() {
                check_split(path, row, value)?;
            }
            Some(raw.iter().map(|&v| v as u8).collect())
        }
        None => None,
    };

    let meta = read_meta(path, header.metadata().as_ref(), n)?;
    let ds = Dataset { modalities, lengths, labels, split, meta };
    ds.validate(path)?;
    tracing::debug!(path = %path.display(), rows = n, "loaded dataset");
    Ok(ds)
}

/// Reads `format` and `meta` from the header. A file without them (written by another
/// safetensors tool) is accepted with a warning and row numbers as ids.
fn read_meta(path: &Path, header: Option<&HashMap<String, String>>, n: usize) -> Result<Metadata, DataError> {
    let bad = |key: &str, reason: String| DataError::BadMetadata { path: path.to_path_buf(), key: key.into(), reason };
    match header.and_then(|h| h.get("format")) {
        Some(f) if f == FORMAT => {}
        Some(f) => return Err(bad("format", format!("is `{f}`, expected `{FORMAT}`"))),
        None => {
            tracing::warn!(path = %path.display(), "header has no `format`; reading it as {FORMAT}")
        }
    }
    match header.and_then(|h| h.get("meta")) {
        Some(text) => serde_json::from_str(text).map_err(|e| bad("meta", format!("not the JSON of a Metadata: {e}"))),
        None => {
            tracing::warn!(path = %path.display(), "header has no `meta`; using row numbers as ids");
            Ok(Metadata { ids: (0..n).map(|i| i.to_string()).collect(), ..Metadata::default() })
        }
    }
}

struct Reader<'a> {
    path: &'a Path,
    file: &'a SafeTensors<'a>,
}

impl<'a> Reader<'a> {
    fn optional(&self, name: &str) -> Result<Option<TensorView<'a>>, DataError> {
        match self.file.tensor(name) {
            Ok(view) => Ok(Some(view)),
            Err(SafeTensorError::TensorNotFound(_)) => Ok(None),
            Err(cause) => Err(DataError::NotSafetensors { path: self.path.to_path_buf(), cause }),
        }
    }

    fn require(&self, name: &str, expected: &str) -> Result<TensorView<'a>, DataError> {
        self.optional(name)?.ok_or_else(|| DataError::MissingTensor {
            path: self.path.to_path_buf(),
            tensor: name.into(),
            expected: expected.into(),
        })
    }

    fn features(&self, name: &str) -> Result<Features, DataError> {
        let view = self.require(name, "F32 [N, T, D] features")?;
        match view.shape() {
            &[n, t, d] if t > 0 && d > 0 => {
                let data = self.f32s(name, &view)?;
                Ok(Features { data, n, t, d })
            }
            shape => Err(DataError::WrongShape {
                path: self.path.to_path_buf(),
                tensor: name.into(),
                expected: "[N, T, D] with T ≥ 1 and D ≥ 1".into(),
                got: shape.to_vec(),
            }),
        }
    }

    fn same_rows(&self, name: &str, got: usize, expected: usize) -> Result<(), DataError> {
        if got != expected {
            return Err(DataError::RowCountMismatch {
                path: self.path.to_path_buf(),
                tensor: name.into(),
                got,
                reference: "text".into(),
                expected,
            });
        }
        Ok(())
    }

    /// A per-row tensor must have shape `[N]`.
    fn vector_shape(&self, name: &str, view: &TensorView<'_>, n: usize) -> Result<(), DataError> {
        match view.shape() {
            &[len] if len == n => Ok(()),
            &[len] => self.same_rows(name, len, n),
            shape => Err(DataError::WrongShape {
                path: self.path.to_path_buf(),
                tensor: name.into(),
                expected: format!("[N] = [{n}]"),
                got: shape.to_vec(),
            }),
        }
    }

    fn f32s(&self, name: &str, view: &TensorView<'_>) -> Result<Vec<f32>, DataError> {
        if view.dtype() != Dtype::F32 {
            return Err(self.wrong_dtype(name, "F32", view.dtype()));
        }
        Ok(view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    /// Any integer dtype, widened to i64 (u64 values beyond i64 saturate, which every range
    /// check then rejects).
    fn ints(&self, name: &str, view: &TensorView<'_>) -> Result<Vec<i64>, DataError> {
        let b = view.data();
        let out: Vec<i64> = match view.dtype() {
            Dtype::I8 => b.iter().map(|&x| x as i8 as i64).collect(),
            Dtype::U8 => b.iter().map(|&x| x as i64).collect(),
            Dtype::I16 => b.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]]) as i64).collect(),
            Dtype::U16 => b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as i64).collect(),
            Dtype::I32 => b.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64).collect(),
            Dtype::U32 => b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64).collect(),
            Dtype::I64 => b.chunks_exact(8).map(|c| i64::from_le_bytes(eight(c))).collect(),
            Dtype::U64 => {
                b.chunks_exact(8).map(|c| i64::try_from(u64::from_le_bytes(eight(c))).unwrap_or(i64::MAX)).collect()
            }
            other => return Err(self.wrong_dtype(name, "an integer dtype (I8..I64, U8..U64)", other)),
        };
        Ok(out)
    }

    fn wrong_dtype(&self, name: &str, expected: &str, got: Dtype) -> DataError {
        DataError::WrongDtype {
            path: self.path.to_path_buf(),
            tensor: name.into(),
            expected: expected.into(),
            got: got.to_string(),
        }
    }
}

fn eight(c: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(c);
    a
}

#[cfg(test)]
mod tests;
