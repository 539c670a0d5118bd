//! A machine's worker folder: where `decsweep-worker` keeps what it fetches and makes
//! (`--work-dir`, else `$DECSWEEP_HOME`, else `~/.cache/decsweep`). It lives here, beside the
//! per-user token folder, because three programs must agree on it and only this crate is shared
//! by all of them without torch: the worker, `decsweep run` (which hands it to its workers) and
//! `decsweep cache` (which measures and clears it).

use std::path::PathBuf;

/// The environment variable that moves the folder.
pub const ENV: &str = "DECSWEEP_HOME";

/// What the folder holds: each subfolder's name and what is in it, in the order `decsweep
/// cache du` lists them. The worker creates every one of them at start.
pub const SUBFOLDERS: [(&str, &str); 4] = [
    ("stages", "stage checkpoints shared between trials (AE and DEC pretraining, reused by later runs)"),
    ("datasets", "datasets downloaded from coordinators, one file per content hash"),
    ("trials", "each trial attempt's outputs (metrics.json, curves.csv, classifier weights)"),
    ("checkpoints", "the resumable state of trials in progress (the coordinator keeps its own copy)"),
];

/// The folder when none is given: `$DECSWEEP_HOME`, else `~/.cache/decsweep` (below the system's
/// temporary folder when `HOME` is unset).
pub fn default_work_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(".cache/decsweep")
}
