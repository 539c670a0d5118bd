//! Datasets stored by content: every study's data is copied (or generated) into the
//! coordinator's data directory as `<sha256>.safetensors`, and workers download it by hash.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use decsweep_api::SynthKind;
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::rows::DatasetRow;

/// The largest synthetic dataset the coordinator generates for a spec; beyond it the file is
/// gigabytes and is better made once with `decsweep data synth` and named as a file.
pub const MAX_SYNTHETIC_N: u64 = 50_000;

/// The default of [`crate::CoordinatorOptions::max_dataset_bytes`]: 4 GiB. CMU-MOSI with every
/// modality is a few hundred megabytes; the limit protects the disk, and validation reads the
/// whole file into memory.
pub const DEFAULT_MAX_DATASET_BYTES: u64 = 4 << 30;

/// The name of a dataset file being copied in starts with this (a crash's are swept at start-up).
pub(crate) const INCOMING_PREFIX: &str = ".incoming-";

/// The `source` recorded for a synthetic dataset; two specs with the same one share the file.
/// It names the generator and every knob (defaults included), so datasets that differ in any
/// setting never share an identity. The linear generator keeps its original form.
pub(crate) fn synthetic_source(seed: u64, n: u64, generator: &SynthKind) -> String {
    match generator {
        SynthKind::Linear => format!("synthetic:seed={seed},n={n}"),
        SynthKind::Clustered(knobs) => format!("synthetic:kind=clustered,seed={seed},n={n},{knobs}"),
    }
}

/// The file name a dataset is stored under.
pub(crate) fn file_name(sha256: &str) -> String {
    format!("{sha256}.safetensors")
}

/// Whether `s` looks like a SHA-256 in lowercase hex.
pub(crate) fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn temp_path(data_dir: &Path) -> PathBuf {
    data_dir.join(format!("{INCOMING_PREFIX}{:016x}.safetensors", rand::thread_rng().gen::<u64>()))
}

fn dataset_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Dataset { path: path.to_path_buf(), message: message.into() }
}

/// Moves a fully written temporary file to its content address (keeping an identical file
/// already there) and makes the rename durable.
pub(crate) fn settle(tmp: &Path, data_dir: &Path, sha256: &str) -> Result<PathBuf> {
    let dest = data_dir.join(file_name(sha256));
    if dest.is_file() {
        let _ = fs::remove_file(tmp);
    } else {
        fs::rename(tmp, &dest).map_err(|e| {
            let _ = fs::remove_file(tmp);
            Error::io(&dest, e)
        })?;
        if let Ok(dir) = File::open(data_dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(dest)
}

/// Checks that `path` is a decsweep dataset (header, tensors, shapes, values: the reader of
/// `decsweep_data`), naming it `shown` in the answer (an upload's temporary name means nothing
/// to its sender). 422 naming the first problem.
pub(crate) fn validate(path: &Path, shown: &str) -> Result<()> {
    decsweep_data::load(path).map(drop).map_err(|e| {
        let reason = e.to_string().replace(&path.display().to_string(), shown);
        Error::Unprocessable(format!("not a decsweep dataset file: {reason}"))
    })
}

/// `written` (a spec's dataset path, resolved against its spec's folder as `resolved`) when it
/// names a file below `root` (canonical), its symlinks resolved; a relative path is read from
/// the root. `None` both when the file is missing and when it lies outside, so an answer never
/// tells which paths exist outside the root.
pub(crate) fn below_root(root: &Path, resolved: &Path) -> Option<PathBuf> {
    let candidate = if resolved.is_absolute() { resolved.to_path_buf() } else { root.join(resolved) };
    let real = fs::canonicalize(candidate).ok()?;
    (real.starts_with(root) && real.is_file()).then_some(real)
}

/// Copies a dataset file into the data directory, hashing it on the way, and validates the
/// copy (what is checked is what is stored) before it takes its content address.
pub(crate) fn store_file(src: &Path, data_dir: &Path) -> Result<DatasetRow> {
    fs::create_dir_all(data_dir).map_err(|e| Error::io(data_dir, e))?;
    let mut input = File::open(src).map_err(|e| dataset_error(src, format!("cannot read: {e}")))?;
    let tmp = temp_path(data_dir);
    let copied = (|| -> std::io::Result<(String, u64)> {
        let mut out = File::create(&tmp)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut bytes = 0u64;
        loop {
            let k = input.read(&mut buf)?;
            if k == 0 {
                break;
            }
            hasher.update(&buf[..k]);
            out.write_all(&buf[..k])?;
            bytes += k as u64;
        }
        out.sync_all()?;
        Ok((hex(&hasher.finalize()), bytes))
    })();
    let (sha256, bytes) = copied.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        dataset_error(src, format!("cannot copy into {}: {e}", data_dir.display()))
    })?;
    if let Err(e) = validate(&tmp, &src.display().to_string()) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    settle(&tmp, data_dir, &sha256)?;
    let shown = fs::canonicalize(src).unwrap_or_else(|_| src.to_path_buf());
    tracing::info!(src = %src.display(), sha256, bytes, "stored dataset");
    Ok(DatasetRow { file: file_name(&sha256), sha256, bytes, source: format!("file:{}", shown.display()) })
}

/// Generates a synthetic CMU-MOSI-shaped dataset and stores it by hash.
pub(crate) fn store_synthetic(seed: u64, n: u64, generator: &SynthKind, data_dir: &Path) -> Result<DatasetRow> {
    let source = synthetic_source(seed, n, generator);
    if n > MAX_SYNTHETIC_N {
        return Err(Error::BadRequest(format!(
            "synthetic dataset of {n} utterances is larger than the coordinator generates ({MAX_SYNTHETIC_N}); \
             write it with `decsweep data synth` and name the file in the spec"
        )));
    }
    fs::create_dir_all(data_dir).map_err(|e| Error::io(data_dir, e))?;
    let cfg = decsweep_data::SynthConfig { n: n as usize, seed, ..Default::default() };
    let ds = decsweep_data::synthesize_kind(&cfg, generator);
    let tmp = temp_path(data_dir);
    decsweep_data::save(&ds, &tmp).map_err(|e| dataset_error(&tmp, e.to_string()))?;
    let hashed = decsweep_data::content_hash(&tmp).map_err(|e| dataset_error(&tmp, e.to_string()));
    let sha256 = match hashed {
        Ok(h) => h,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let bytes = fs::metadata(&tmp).map_err(|e| Error::io(&tmp, e))?.len();
    settle(&tmp, data_dir, &sha256)?;
    tracing::info!(source, sha256, bytes, "generated synthetic dataset");
    Ok(DatasetRow { file: file_name(&sha256), sha256, bytes, source })
}

/// The `source` of the empty dataset of a study of programs that names none.
pub(crate) const NO_DATASET_SOURCE: &str = "none";

/// The dataset of a study of programs that names none: the empty file (its hash is SHA-256 of
/// no bytes), so every study still has a dataset row and a hash to show.
pub(crate) fn store_empty(data_dir: &Path) -> Result<DatasetRow> {
    fs::create_dir_all(data_dir).map_err(|e| Error::io(data_dir, e))?;
    let sha256 = hex(&Sha256::digest(b""));
    let dest = data_dir.join(file_name(&sha256));
    if !dest.is_file() {
        let tmp = temp_path(data_dir);
        File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        settle(&tmp, data_dir, &sha256)?;
    }
    Ok(DatasetRow { file: file_name(&sha256), sha256, bytes: 0, source: NO_DATASET_SOURCE.into() })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_dataset(path: &Path) {
        let cfg = decsweep_data::SynthConfig { n: 6, seed: 1, ..Default::default() };
        decsweep_data::save(&decsweep_data::synthesize(&cfg), path).unwrap();
    }

    #[test]
    fn files_are_stored_by_their_hash() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("in.safetensors");
        small_dataset(&src);
        let data = dir.path().join("data");
        let row = store_file(&src, &data).unwrap();
        assert_eq!(row.sha256, decsweep_data::content_hash(&src).unwrap());
        assert_eq!(row.bytes, fs::metadata(&src).unwrap().len());
        assert_eq!(fs::read(data.join(&row.file)).unwrap(), fs::read(&src).unwrap());
        // Storing it again keeps one file and no temporaries.
        store_file(&src, &data).unwrap();
        assert_eq!(fs::read_dir(&data).unwrap().count(), 1);
        assert!(matches!(store_file(&dir.path().join("missing"), &data), Err(Error::Dataset { .. })));
    }

    #[test]
    fn a_file_that_is_not_a_dataset_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("secret.txt");
        fs::write(&src, b"root:x:0:0").unwrap();
        let data = dir.path().join("data");
        let Err(Error::Unprocessable(message)) = store_file(&src, &data) else { panic!("stored a text file") };
        assert!(message.starts_with("not a decsweep dataset file: ") && message.contains("secret.txt"), "{message}");
        assert_eq!(fs::read_dir(&data).unwrap().count(), 0, "no copy and no temporary is left");
    }

    #[test]
    fn only_files_below_the_root_resolve_and_missing_looks_like_outside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("sub/a.safetensors"), b"x").unwrap();
        fs::write(dir.path().join("outside.safetensors"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside.safetensors"), root.join("link.safetensors")).unwrap();
        let root = fs::canonicalize(&root).unwrap();
        assert_eq!(below_root(&root, Path::new("sub/a.safetensors")), Some(root.join("sub/a.safetensors")));
        assert_eq!(below_root(&root, &root.join("sub/a.safetensors")), Some(root.join("sub/a.safetensors")));
        assert_eq!(below_root(&root, Path::new("../outside.safetensors")), None, "a way out by ..");
        assert_eq!(below_root(&root, Path::new("link.safetensors")), None, "a way out by a symlink");
        assert_eq!(below_root(&root, &dir.path().join("outside.safetensors")), None);
        assert_eq!(below_root(&root, Path::new("sub/missing.safetensors")), None);
        assert_eq!(below_root(&root, Path::new("sub")), None, "a folder is not a file");
    }

    #[test]
    fn synthetic_data_is_generated_and_hash_verified() {
        let dir = tempfile::tempdir().unwrap();
        let row = store_synthetic(3, 12, &SynthKind::Linear, dir.path()).unwrap();
        assert_eq!(row.source, "synthetic:seed=3,n=12");
        let path = dir.path().join(&row.file);
        assert_eq!(decsweep_data::content_hash(&path).unwrap(), row.sha256);
        assert_eq!(decsweep_data::load(&path).unwrap().n(), 12);
        let too_many = store_synthetic(0, MAX_SYNTHETIC_N + 1, &SynthKind::Linear, dir.path());
        assert!(matches!(too_many, Err(Error::BadRequest(_))));
    }

    #[test]
    fn clustered_datasets_have_their_knobs_in_their_identity() {
        let dir = tempfile::tempdir().unwrap();
        let knobs = decsweep_api::ClusteredKnobs::default();
        let clustered = store_synthetic(3, 12, &SynthKind::Clustered(knobs.clone()), dir.path()).unwrap();
        assert_eq!(clustered.source, format!("synthetic:kind=clustered,seed=3,n=12,{knobs}"));
        assert!(clustered.source.contains("separation=") && clustered.source.contains("share_vision="));
        let linear = store_synthetic(3, 12, &SynthKind::Linear, dir.path()).unwrap();
        assert_ne!(clustered.sha256, linear.sha256);
        let sharper = decsweep_api::ClusteredKnobs { separation: knobs.separation * 2.0, ..knobs };
        let other = store_synthetic(3, 12, &SynthKind::Clustered(sharper), dir.path()).unwrap();
        assert_ne!(other.source, clustered.source, "one knob apart, two identities");
        assert_ne!(other.sha256, clustered.sha256);
    }

    #[test]
    fn sha_syntax() {
        assert!(is_sha256(&"a1".repeat(32)));
        assert!(!is_sha256(&"A1".repeat(32)));
        assert!(!is_sha256("../etc/passwd"));
    }
}
