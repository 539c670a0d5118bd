//! The canonical dataset file: one `.safetensors` file (DESIGN.md "Data").
//!
//! Tensors: F32 `text [N,T,Dt]`, `audio [N,Ta,Da]`, `vision [N,Tv,Dv]`; `lengths [N]` (any
//! integer dtype) for all modalities, or per-modality `text_lengths` / `audio_lengths` /
//! `vision_lengths [N]` that override it; F32 `label [N]` in [-3, 3]; optional `split [N]` (any
//! integer dtype, 0 train / 1 valid / 2 test). The header's `__metadata__` holds
//! `"format": "decsweep-mosi/1"` and `"meta"`: the JSON of [`crate::Metadata`].

mod header;
mod read;
mod write;

use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::DataError;

pub use read::load;
pub use write::save;

/// The value of `__metadata__.format` this crate writes and reads.
pub const FORMAT: &str = "decsweep-mosi/1";

/// SHA-256 of the file's bytes, lowercase hex: the dataset's identity in stage checkpoint keys.
pub fn content_hash(path: &Path) -> Result<String, DataError> {
    let mut file = open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let k = file.read(&mut buf).map_err(|source| read_error(path, source))?;
        if k == 0 {
            break;
        }
        hasher.update(&buf[..k]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

pub(crate) fn open(path: &Path) -> Result<File, DataError> {
    File::open(path).map_err(|source| read_error(path, source))
}

pub(crate) fn read_error(path: &Path, source: std::io::Error) -> DataError {
    if source.kind() == std::io::ErrorKind::NotFound {
        DataError::NotFound { path: path.to_path_buf() }
    } else {
        DataError::Read { path: path.to_path_buf(), cause: source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_sha256_hex() {
        let dir = std::env::temp_dir().join(format!("decsweep-data-hash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("abc");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(content_hash(&p).unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(matches!(content_hash(&dir.join("nope")), Err(DataError::NotFound { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
