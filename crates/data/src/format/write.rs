//! Writing a dataset file.
//!
//! The bytes are laid out here rather than by `safetensors::serialize`: that function writes the
//! `__metadata__` map in `HashMap` order, so two saves of the same dataset could differ byte for
//! byte, and the file's SHA-256 is the dataset's identity in checkpoint keys. The layout follows
//! the safetensors specification (u64 LE header size, JSON header padded with spaces to a multiple
//! of 8, then the tensors back to back) and every file is read back by the `safetensors` crate in
//! the tests.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::FORMAT;
use crate::dataset::{Dataset, MODALITIES};
use crate::error::DataError;

/// Writes `ds` to `path` atomically: into a temporary file beside it, flushed to disk, then
/// renamed over `path`, so a reader never sees half a file and a failed save leaves any previous
/// file intact. The dataset is validated first so that `save` never writes a file `load` rejects.
pub fn save(ds: &Dataset, path: &Path) -> Result<(), DataError> {
    ds.validate(path)?;
    let write_err = |cause| DataError::Write { path: path.to_path_buf(), cause };
    let tensors = plan(ds);
    let header = header(ds, &tensors).map_err(|e| write_err(std::io::Error::other(e)))?;
    let tmp = temp_path(path).map_err(write_err)?;
    let written = write_file(&tmp, &header, &tensors).and_then(|()| fs::rename(&tmp, path));
    if let Err(source) = written {
        let _ = fs::remove_file(&tmp);
        return Err(write_err(source));
    }
    // Persist the rename itself; failing to open a directory (some platforms) is not an error.
    if let Ok(dir) = File::open(parent(path)) {
        let _ = dir.sync_all();
    }
    tracing::debug!(path = %path.display(), rows = ds.n(), "saved dataset");
    Ok(())
}

/// One tensor's payload, borrowed where the dataset already holds the right type.
enum Payload<'a> {
    F32(&'a [f32]),
    I64(Vec<i64>),
    U8(&'a [u8]),
}

impl Payload<'_> {
    fn dtype(&self) -> &'static str {
        match self {
            Payload::F32(_) => "F32",
            Payload::I64(_) => "I64",
            Payload::U8(_) => "U8",
        }
    }

    fn byte_len(&self) -> usize {
        match self {
            Payload::F32(v) => v.len() * 4,
            Payload::I64(v) => v.len() * 8,
            Payload::U8(v) => v.len(),
        }
    }

    fn write_to(&self, w: &mut impl Write) -> std::io::Result<()> {
        // Converted in chunks so no second copy of a large tensor is ever held in memory.
        let mut buf = Vec::with_capacity(1 << 16);
        match self {
            Payload::F32(v) => {
                for chunk in v.chunks(1 << 14) {
                    buf.clear();
                    chunk.iter().for_each(|x| buf.extend_from_slice(&x.to_le_bytes()));
                    w.write_all(&buf)?;
                }
            }
            Payload::I64(v) => {
                for chunk in v.chunks(1 << 13) {
                    buf.clear();
                    chunk.iter().for_each(|x| buf.extend_from_slice(&x.to_le_bytes()));
                    w.write_all(&buf)?;
                }
            }
            Payload::U8(v) => w.write_all(v)?,
        }
        Ok(())
    }
}

struct Planned<'a> {
    name: String,
    shape: Vec<usize>,
    payload: Payload<'a>,
}

/// The tensors in file order: 8-byte types first, then 4-byte, then bytes, so every tensor
/// starts at an offset aligned to its element size (the header is padded to a multiple of 8).
fn plan(ds: &Dataset) -> Vec<Planned<'_>> {
    let n = ds.n();
    let mut out = Vec::new();
    let as_i64 = |v: &[u32]| v.iter().map(|&x| x as i64).collect::<Vec<_>>();
    if ds.lengths_aligned() {
        out.push(Planned { name: "lengths".into(), shape: vec![n], payload: Payload::I64(as_i64(&ds.lengths[0])) });
    } else {
        for (name, lengths) in MODALITIES.iter().zip(&ds.lengths) {
            out.push(Planned {
                name: format!("{name}_lengths"),
                shape: vec![n],
                payload: Payload::I64(as_i64(lengths)),
            });
        }
    }
    out.push(Planned { name: "label".into(), shape: vec![n], payload: Payload::F32(&ds.labels) });
    for (m, f) in ds.modalities.iter().enumerate() {
        out.push(Planned { name: MODALITIES[m].into(), shape: vec![f.n, f.t, f.d], payload: Payload::F32(&f.data) });
    }
    if let Some(split) = &ds.split {
        out.push(Planned { name: "split".into(), shape: vec![n], payload: Payload::U8(split) });
    }
    out
}

/// The JSON header, padded with spaces to a multiple of 8 bytes.
fn header(ds: &Dataset, tensors: &[Planned<'_>]) -> Result<Vec<u8>, serde_json::Error> {
    let mut map = Map::new();
    let meta = serde_json::to_string(&ds.meta)?;
    map.insert("__metadata__".into(), json!({ "format": FORMAT, "meta": meta }));
    let mut offset = 0usize;
    for t in tensors {
        let end = offset + t.payload.byte_len();
        map.insert(
            t.name.clone(),
            json!({ "dtype": t.payload.dtype(), "shape": t.shape, "data_offsets": [offset, end] }),
        );
        offset = end;
    }
    let mut bytes = serde_json::to_vec(&Value::Object(map))?;
    bytes.resize(bytes.len().next_multiple_of(8), b' ');
    Ok(bytes)
}

fn write_file(tmp: &Path, header: &[u8], tensors: &[Planned<'_>]) -> std::io::Result<()> {
    let file = File::create(tmp)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(&(header.len() as u64).to_le_bytes())?;
    w.write_all(header)?;
    for t in tensors {
        t.payload.write_to(&mut w)?;
    }
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A hidden sibling of `path`, unique to this process.
fn temp_path(path: &Path) -> std::io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "the output path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    Ok(parent(path).join(tmp_name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::tests::tiny;
    use crate::format::{content_hash, load};

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("decsweep-data-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn round_trip_keeps_everything_and_bytes_are_deterministic() {
        let dir = scratch("roundtrip");
        let ds = tiny();
        let a = dir.join("a.safetensors");
        let b = dir.join("b.safetensors");
        save(&ds, &a).unwrap();
        save(&ds, &b).unwrap();
        assert_eq!(load(&a).unwrap(), ds);
        assert_eq!(content_hash(&a).unwrap(), content_hash(&b).unwrap());
        // Only the file itself is left behind.
        let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");

        // The safetensors crate reads what we wrote, with the per-modality lengths.
        let bytes = fs::read(&a).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut names = st.names();
        names.sort_unstable();
        assert_eq!(
            names,
            ["audio", "audio_lengths", "label", "split", "text", "text_lengths", "vision", "vision_lengths"]
        );
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        assert_eq!(header_len % 8, 0);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn aligned_lengths_are_written_once_and_no_split_is_fine() {
        let dir = scratch("aligned");
        let mut ds = tiny();
        for m in 0..3 {
            ds.lengths[m] = vec![1, 1, 2, 1];
        }
        ds.split = None;
        let p = dir.join("x.safetensors");
        save(&ds, &p).unwrap();
        let bytes = fs::read(&p).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert!(st.tensor("lengths").is_ok() && st.tensor("text_lengths").is_err());
        assert_eq!(load(&p).unwrap(), ds);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn invalid_dataset_is_not_written_and_old_file_survives() {
        let dir = scratch("invalid");
        let p = dir.join("x.safetensors");
        save(&tiny(), &p).unwrap();
        let before = fs::read(&p).unwrap();
        let mut bad = tiny();
        bad.labels[0] = f32::NAN;
        assert!(matches!(save(&bad, &p), Err(DataError::BadLabel { row: 0, .. })));
        assert_eq!(fs::read(&p).unwrap(), before);
        let missing_dir = dir.join("no/such/dir/x.safetensors");
        let e = save(&tiny(), &missing_dir).unwrap_err();
        assert!(matches!(e, DataError::Write { .. }) && e.to_string().contains("no/such/dir"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
