//! Receiving an uploaded file (a trial checkpoint, a dataset): a stream of byte chunks (the HTTP
//! server hands over a request body's) written to a temporary file beside its destination while
//! counted and hashed, never held in memory.
//!
//! The temporary file is a [`tempfile::TempPath`]: whatever ends the upload early — the size
//! limit, a client that disconnects mid-body (the handler's future is dropped), a full disk, a
//! hash that does not match — deletes it on the way out. Only a crash leaves one behind, and
//! [`sweep_temporaries`] collects those at start-up.

use std::path::Path;

use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};

/// The name every upload's temporary file starts with.
pub(crate) const TEMP_PREFIX: &str = ".upload-";

/// A body written to a temporary file: its size and SHA-256.
pub(crate) struct Received {
    pub(crate) temp: tempfile::TempPath,
    pub(crate) bytes: u64,
    pub(crate) sha256: String,
}

/// Streams `body` into a temporary file in `dir`. Past `limit` bytes it stops reading and
/// answers `too_large()` (413), naming the limit. A chunk that fails to arrive is a bad request.
pub(crate) async fn receive<B, E>(
    body: impl Stream<Item = std::result::Result<B, E>>,
    dir: &Path,
    limit: u64,
    what: &str,
    too_large: impl FnOnce() -> Error,
) -> Result<Received>
where
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    tokio::fs::create_dir_all(dir).await.map_err(|e| Error::io(dir, e))?;
    let temp =
        tempfile::Builder::new().prefix(TEMP_PREFIX).tempfile_in(dir).map_err(|e| Error::io(dir, e))?.into_temp_path();
    let mut out = tokio::fs::File::create(&temp).await.map_err(|e| Error::io(&temp, e))?;
    let mut hasher = Sha256::new();
    let mut bytes: u64 = 0;
    let mut stream = std::pin::pin!(body);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::BadRequest(format!("reading the {what} upload: {e}")))?;
        bytes += chunk.as_ref().len() as u64;
        if bytes > limit {
            return Err(too_large());
        }
        hasher.update(chunk.as_ref());
        out.write_all(chunk.as_ref()).await.map_err(|e| Error::io(&temp, e))?;
    }
    out.sync_all().await.map_err(|e| Error::io(&temp, e))?;
    let sha256 = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Received { temp, bytes, sha256 })
}

/// Deletes the temporary files of uploads a crash interrupted (`.upload-*`, and `.incoming-*`
/// of a dataset being copied) in `dir`. Only at start-up: later, one may be an upload in flight.
pub(crate) fn sweep_temporaries(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let temporary = name.starts_with(TEMP_PREFIX) || name.starts_with(crate::dataset::INCOMING_PREFIX);
        if temporary && entry.file_type().is_ok_and(|t| t.is_file()) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(path = %entry.path().display(), error = %e, "could not delete a temporary file")
                }
            }
        }
    }
    if removed > 0 {
        tracing::info!(dir = %dir.display(), removed, "deleted temporary files of interrupted uploads");
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_upload_over_the_limit_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let chunks = |data: Vec<&'static [u8]>| futures_util::stream::iter(data.into_iter().map(Ok::<_, String>));
        let body = chunks(vec![&[7u8; 60], &[7u8; 40]]);
        let refused = receive(body, dir.path(), 10, "test", || Error::TooLarge("over 10 bytes".into())).await;
        assert!(matches!(refused, Err(Error::TooLarge(_))));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let ok = receive(chunks(vec![b"ab", b"c"]), dir.path(), 10, "test", || unreachable!()).await.unwrap();
        assert_eq!(
            (ok.bytes, ok.sha256.as_str()),
            (3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        drop(ok);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "dropped: deleted");
        let broken = futures_util::stream::iter([Ok(&b"ab"[..]), Err("connection reset")]);
        let refused = receive(broken, dir.path(), 10, "test", || unreachable!()).await;
        assert!(matches!(refused, Err(Error::BadRequest(m)) if m.contains("connection reset")));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "a broken upload leaves no file");
    }

    #[test]
    fn only_temporaries_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        for name in [".upload-abc", ".incoming-0123.safetensors", "keep.ckpt", "keep.safetensors"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        assert_eq!(sweep_temporaries(dir.path()), 2);
        let mut left: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        left.sort();
        assert_eq!(left, ["keep.ckpt", "keep.safetensors"]);
    }
}
