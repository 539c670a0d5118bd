//! A program's checkpoint directory as one file, to upload as its trial's checkpoint and unpack
//! before the next attempt.
//!
//! Format: `DSWDIR1\n`, then per regular file (sorted by path, so the same tree packs to the same
//! bytes and an unchanged directory is not uploaded twice): the relative path's length (u32 LE),
//! the path (UTF-8, `/`-separated), the content's length (u64 LE) and the content. Symbolic links
//! and other special files are skipped. Unpacking refuses absolute paths, `..`, empty components
//! and a truncated or trailing-garbage archive, so an archive cannot write outside its directory.

use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, ensure, Context};

const MAGIC: &[u8] = b"DSWDIR1\n";

fn files(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            files(root, &path, out)?;
        } else if kind.is_file() {
            let rel = path.strip_prefix(root).expect("under the root");
            let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
            match parts {
                Some(parts) => out.push((parts.join("/"), path.clone())),
                None => tracing::warn!(path = %path.display(), "skipping a checkpoint file whose name is not UTF-8"),
            }
        }
    }
    Ok(())
}

/// Packs every regular file under `dir`; `None` when there is none.
pub fn pack(dir: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    let mut list = Vec::new();
    if dir.is_dir() {
        files(dir, dir, &mut list)?;
    }
    if list.is_empty() {
        return Ok(None);
    }
    list.sort();
    let mut out = MAGIC.to_vec();
    for (name, path) in list {
        let content = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        out.extend_from_slice(&u32::try_from(name.len())?.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(content.len() as u64).to_le_bytes());
        out.extend_from_slice(&content);
    }
    Ok(Some(out))
}

fn safe_relative(name: &str) -> anyhow::Result<PathBuf> {
    let path = Path::new(name);
    ensure!(!name.is_empty() && !name.contains('\0'), "an empty or NUL-bearing path");
    for part in name.split('/') {
        ensure!(!part.is_empty() && part != "." && part != "..", "path `{name}` has an empty, `.` or `..` part");
    }
    ensure!(path.components().all(|c| matches!(c, Component::Normal(_))), "path `{name}` is not relative");
    Ok(path.to_path_buf())
}

/// Unpacks an archive made by [`pack`] into `dir` (which should be empty).
pub fn unpack(archive: &[u8], dir: &Path) -> anyhow::Result<usize> {
    let mut rest = archive.strip_prefix(MAGIC).context("not a decsweep checkpoint directory archive")?;
    let mut take = |n: usize| -> anyhow::Result<&[u8]> {
        ensure!(rest.len() >= n, "the archive is truncated");
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let mut written = 0;
    loop {
        let Ok(len) = take(4) else { break };
        let name_len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        let name = std::str::from_utf8(take(name_len)?).context("a path that is not UTF-8")?.to_string();
        let rel = safe_relative(&name)?;
        let size = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes"));
        let content = take(usize::try_from(size)?)?;
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let mut file = fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        file.write_all(content)?;
        written += 1;
    }
    if !rest.is_empty() {
        bail!("{} bytes after the last file", rest.len());
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_round_trips_and_packs_the_same_every_time() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("sub/deeper")).unwrap();
        fs::write(src.path().join("state.json"), b"{\"step\": 7}").unwrap();
        fs::write(src.path().join("sub/deeper/weights.bin"), vec![0u8, 1, 2, 255]).unwrap();
        fs::write(src.path().join("empty"), b"").unwrap();
        let packed = pack(src.path()).unwrap().unwrap();
        assert_eq!(pack(src.path()).unwrap().unwrap(), packed, "deterministic");
        let dst = tempfile::tempdir().unwrap();
        assert_eq!(unpack(&packed, dst.path()).unwrap(), 3);
        assert_eq!(fs::read(dst.path().join("state.json")).unwrap(), b"{\"step\": 7}");
        assert_eq!(fs::read(dst.path().join("sub/deeper/weights.bin")).unwrap(), vec![0u8, 1, 2, 255]);
        assert_eq!(fs::read(dst.path().join("empty")).unwrap(), b"");
    }

    #[test]
    fn an_empty_or_missing_directory_packs_to_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(pack(dir.path()).unwrap(), None);
        assert_eq!(pack(&dir.path().join("absent")).unwrap(), None);
    }

    #[test]
    fn archives_that_escape_or_are_cut_short_are_refused() {
        let entry = |name: &str, content: &[u8]| {
            let mut v = MAGIC.to_vec();
            v.extend_from_slice(&(name.len() as u32).to_le_bytes());
            v.extend_from_slice(name.as_bytes());
            v.extend_from_slice(&(content.len() as u64).to_le_bytes());
            v.extend_from_slice(content);
            v
        };
        let dir = tempfile::tempdir().unwrap();
        for name in ["../evil", "/etc/evil", "a//b", "a/./b", ""] {
            assert!(unpack(&entry(name, b"x"), dir.path()).is_err(), "{name:?}");
        }
        assert!(!dir.path().parent().unwrap().join("evil").exists());
        let good = entry("ok", b"hello");
        assert!(unpack(&good[..good.len() - 2], dir.path()).unwrap_err().to_string().contains("truncated"));
        assert!(unpack(b"PK\x03\x04", dir.path()).is_err());
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"zz");
        assert!(unpack(&trailing, dir.path()).is_err());
    }
}
