//! Putting report files on disk atomically.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use tracing::{debug, info};

use crate::importance::FILE as IMPORTANCE_FILE;
use crate::plots::LABEL_FRACTION_FILE;
use crate::search::FILE as SEARCH_FILE;
use crate::{ReportError, ReportFile};

/// Writes `contents` to `dir/name` through a temporary file in the same directory and a rename,
/// so a reader (or a crash) never sees a half-written report file.
pub(crate) fn write_atomic(dir: &Path, name: &str, contents: &[u8]) -> Result<PathBuf, ReportError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp).map_err(|e| ReportError::io("cannot create", &tmp, e))?;
        f.write_all(contents).map_err(|e| ReportError::io("cannot write", &tmp, e))?;
        // Flush to disk before the rename, or a crash could leave the new name on empty data.
        f.sync_all().map_err(|e| ReportError::io("cannot sync", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| ReportError::io("cannot rename into place", &path, e))
    })();
    if result.is_err() {
        // Best effort: the error being returned is the one that matters.
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| path)
}

/// Writes every file, then removes plot files an earlier report run left behind that this run
/// did not produce (a representative trial that changed, a label fraction that no longer
/// varies), so the directory always describes the current store.
pub(crate) fn write_files(dir: &Path, files: &[ReportFile]) -> Result<Vec<PathBuf>, ReportError> {
    fs::create_dir_all(dir).map_err(|e| ReportError::io("cannot create directory", dir, e))?;
    let mut written = Vec::with_capacity(files.len());
    for f in files {
        written.push(write_atomic(dir, &f.name, f.contents.as_bytes())?);
        debug!(file = %f.name, bytes = f.contents.len(), "wrote report file");
    }
    // Make the renames durable too; not every platform can open a directory, hence best effort.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    let current: HashSet<&str> = files.iter().map(|f| f.name.as_str()).collect();
    let entries = fs::read_dir(dir).map_err(|e| ReportError::io("cannot list", dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_generated_plot(name) && !current.contains(name) {
            let path = entry.path();
            fs::remove_file(&path).map_err(|e| ReportError::io("cannot remove stale", &path, e))?;
            info!(file = name, "removed a plot from an earlier report");
        }
    }
    Ok(written)
}

/// Names only this crate writes that a later run may not produce: `curves_<integer>.svg`, the
/// label-fraction plot, and the search plot with its importance file.
fn is_generated_plot(name: &str) -> bool {
    if [LABEL_FRACTION_FILE, SEARCH_FILE, IMPORTANCE_FILE].contains(&name) {
        return true;
    }
    name.strip_prefix("curves_").and_then(|rest| rest.strip_suffix(".svg")).is_some_and(|id| id.parse::<i64>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "a.csv", b"one").unwrap();
        let p = write_atomic(dir.path(), "a.csv", b"two").unwrap();
        assert_eq!(fs::read_to_string(p).unwrap(), "two");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["a.csv"]);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("no/such/dir");
        let err = write_atomic(&gone, "a.csv", b"x").unwrap_err();
        assert!(err.to_string().contains("no/such/dir"), "{err}");
    }

    #[test]
    fn stale_plots_are_removed_and_other_files_kept() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["curves_3.svg", "curves_x.svg", "notes.txt", LABEL_FRACTION_FILE, SEARCH_FILE, IMPORTANCE_FILE] {
            fs::write(dir.path().join(name), "old").unwrap();
        }
        let files = [ReportFile { name: "curves_4.svg".into(), contents: "<svg/>".into() }];
        write_files(dir.path(), &files).unwrap();
        let mut names: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["curves_4.svg", "curves_x.svg", "notes.txt"]);
    }
}
