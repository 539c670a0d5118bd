//! `decsweep cache du|clean`: the worker folder of this machine (stage checkpoints, downloaded
//! datasets, trial outputs; [`decsweep_connect::work_dir`]), measured and cleared. It grows with
//! every study, since stage checkpoints are kept for later runs to reuse.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use decsweep_connect::work_dir::{self, SUBFOLDERS};

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Show what the worker folder holds: files and bytes per subfolder, and the total.
    Du(DuArgs),
    /// Delete what the worker folder holds (every subfolder, or those given with --only). Stop
    /// the workers that use the folder first: a running trial's files would go with it. Nothing
    /// is lost that a coordinator needs: trials fetch datasets again and recompute stages.
    Clean(CleanArgs),
}

#[derive(Debug, Args)]
pub struct FolderArg {
    /// The worker folder (`decsweep-worker --work-dir`, `decsweep run --work-dir`).
    #[arg(long, env = work_dir::ENV, value_name = "DIR", default_value_os_t = work_dir::default_work_dir())]
    work_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct DuArgs {
    #[command(flatten)]
    folder: FolderArg,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct CleanArgs {
    #[command(flatten)]
    folder: FolderArg,
    /// Only these subfolders (repeat the flag for several).
    #[arg(long, value_enum, value_name = "PART")]
    only: Vec<Part>,
}

/// A subfolder of the worker folder, as `--only` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Part {
    /// Shared stage checkpoints.
    Stages,
    /// Downloaded datasets.
    Datasets,
    /// Trial outputs.
    Trials,
    /// States of trials in progress.
    Checkpoints,
}

impl Part {
    fn folder(self) -> &'static str {
        match self {
            Part::Stages => "stages",
            Part::Datasets => "datasets",
            Part::Trials => "trials",
            Part::Checkpoints => "checkpoints",
        }
    }
}

/// Files and bytes below a folder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    pub files: u64,
    pub bytes: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        self.files += other.files;
        self.bytes += other.bytes;
    }
}

pub fn run(command: CacheCommand) -> anyhow::Result<()> {
    match command {
        CacheCommand::Du(args) => du(&args),
        CacheCommand::Clean(args) => clean(&args),
    }
}

fn du(args: &DuArgs) -> anyhow::Result<()> {
    let dir = &args.folder.work_dir;
    let mut total = Usage::default();
    let mut rows = Vec::new();
    for (name, what) in SUBFOLDERS {
        let usage = usage(&dir.join(name))?;
        total += usage;
        rows.push((name, what, usage));
    }
    if args.json {
        let parts: serde_json::Map<String, serde_json::Value> =
            rows.iter().map(|(name, _, usage)| (name.to_string(), serde_json::json!(usage))).collect();
        println!("{}", serde_json::json!({ "work_dir": dir, "parts": parts, "total": total }));
        return Ok(());
    }
    println!("{}", dir.display());
    for (name, what, usage) in rows {
        println!("  {name:<12} {:>10} {:>7} files  {what}", human_bytes(usage.bytes), usage.files);
    }
    println!("  {:<12} {:>10} {:>7} files", "total", human_bytes(total.bytes), total.files);
    Ok(())
}

fn clean(args: &CleanArgs) -> anyhow::Result<()> {
    let dir = &args.folder.work_dir;
    let parts: Vec<&str> = if args.only.is_empty() {
        SUBFOLDERS.iter().map(|(name, _)| *name).collect()
    } else {
        args.only.iter().map(|p| p.folder()).collect()
    };
    let mut freed = Usage::default();
    for name in parts {
        let sub = dir.join(name);
        let usage = usage(&sub)?;
        empty_folder(&sub)?;
        freed += usage;
    }
    println!("{}: freed {} in {} files", dir.display(), human_bytes(freed.bytes), freed.files);
    Ok(())
}

/// Files and bytes below `dir` (nothing when it does not exist). Symbolic links are counted as
/// themselves, never followed: a link to a large dataset elsewhere is not this folder's.
pub fn usage(dir: &Path) -> anyhow::Result<Usage> {
    let mut total = Usage::default();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", folder.display())),
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", folder.display()))?;
            let meta = entry.metadata().with_context(|| format!("reading {}", entry.path().display()))?;
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                total += Usage { files: 1, bytes: meta.len() };
            }
        }
    }
    Ok(total)
}

/// Deletes everything in `dir` and leaves it, empty, in place (a worker using the folder still
/// finds its subfolders).
fn empty_folder(dir: &Path) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let path = entry.with_context(|| format!("reading {}", dir.display()))?.path();
        let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        let removed = if is_dir { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        removed.with_context(|| format!("deleting {}", path.display()))?;
    }
    Ok(())
}

/// Bytes in binary units, one decimal: `282.4 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_nested_files_and_not_what_links_point_at() {
        let tmp = tempfile::tempdir().unwrap();
        let stages = tmp.path().join("stages/ae");
        std::fs::create_dir_all(&stages).unwrap();
        std::fs::write(stages.join("a.ckpt"), vec![0u8; 1000]).unwrap();
        std::fs::write(tmp.path().join("stages/b.ckpt"), vec![0u8; 24]).unwrap();
        let outside = tmp.path().join("big");
        std::fs::write(&outside, vec![0u8; 5000]).unwrap();
        std::os::unix::fs::symlink(&outside, tmp.path().join("stages/link")).unwrap();
        let got = usage(&tmp.path().join("stages")).unwrap();
        assert_eq!(got.files, 3);
        assert!(got.bytes < 2000, "{got:?}");
        assert_eq!(usage(&tmp.path().join("none")).unwrap(), Usage::default());
    }

    #[test]
    fn emptying_keeps_the_folder_and_what_links_point_at() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("datasets");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/x"), b"x").unwrap();
        let outside = tmp.path().join("keep");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("y"), b"y").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();
        empty_folder(&dir).unwrap();
        assert!(dir.is_dir());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        assert!(outside.join("y").is_file(), "a link's target is not the cache's");
    }

    #[test]
    fn bytes_read_in_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(282 << 20), "282.0 MiB");
    }

    #[test]
    fn every_part_is_a_subfolder_the_worker_makes() {
        for part in Part::value_variants() {
            assert!(SUBFOLDERS.iter().any(|(name, _)| *name == part.folder()), "{part:?}");
        }
        assert_eq!(Part::value_variants().len(), SUBFOLDERS.len());
    }
}
