//! `decsweep reproduce STUDY TRIAL_ID`: rerun a completed trial here from its manifest and say
//! whether the numbers come out the same.
//!
//! The trial's pipeline, parameters and seed come from the store; its dataset is the study's
//! file (from the database's data directory, or downloaded from the coordinator) and must still
//! hash to what the manifest recorded. `decsweep-worker train` runs it with the manifest's thread
//! count on `--device` (default: the manifest's device). Every stored metric but the timings is
//! compared: exactly on CPU, within the manifest's stated tolerance on CUDA. Exit 0 when every
//! metric matches and the dataset is the same, 1 otherwise; the environment's differences from
//! the manifest (build, libtorch, device, threads) are listed either way.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;
use clap::Args;
use decsweep_api::wire::TrialStatus;
use decsweep_coordinator::{Coordinator, CoordinatorOptions};
use serde_json::Value;

use super::connection::Explain;
use super::source::Source;

#[derive(Debug, Args)]
pub struct ReproduceArgs {
    /// The study's name.
    #[arg(value_name = "STUDY")]
    study: String,
    /// The completed trial to rerun (its id in `trials.csv`).
    #[arg(value_name = "TRIAL_ID")]
    trial: i64,
    /// Where the trial and its dataset are read from.
    #[command(flatten)]
    source: super::source::StudySource,
    /// `cpu`, `cuda` or `cuda:K`. Default: the device the trial ran on, as its manifest says.
    #[arg(long)]
    device: Option<String>,
    /// The worker binary. Default: $DECSWEEP_WORKER, else `decsweep-worker` beside this binary,
    /// else on PATH.
    #[arg(long, value_name = "PATH")]
    worker_bin: Option<PathBuf>,
}

/// Metrics that measure time or the stage cache, not the result.
fn is_timing(name: &str) -> bool {
    name.starts_with("time_") || matches!(name, "wall_s" | "cache_reuses" | "resumes")
}

pub fn run(args: ReproduceArgs) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let (trial, dataset) = match args.source.open()? {
        Source::Db(db) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let c = Coordinator::open(db, CoordinatorOptions::default())?;
                let info = c.study(&args.study).await.map_err(super::coordinator_error)?;
                let trial = c.trial(args.trial).await.map_err(super::coordinator_error)?;
                let (path, _) = c.dataset_path(&info.dataset_sha256).await.map_err(super::coordinator_error)?;
                anyhow::Ok((trial, path))
            })?
        }
        Source::Coordinator(client) => {
            let info = client.study(&args.study).explain(&client, || format!("GET studies/{}", args.study))?;
            let trial = client.trial(args.trial).explain(&client, || format!("GET trials/{}", args.trial))?;
            let path = scratch.path().join("dataset.safetensors");
            let dataset = format!("datasets/{}", info.dataset_sha256);
            // A failed download is never bad input (exit 1), as before the client was shared.
            let bytes = client.get_bytes(&dataset).with_context(|| format!("GET {dataset}"))?;
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
            (trial, path)
        }
    };
    let bad = |m: String| -> anyhow::Error { crate::exit::BadInput(m).into() };
    if trial.study != args.study {
        return Err(bad(format!("trial {} belongs to study `{}`, not `{}`", trial.id, trial.study, args.study)));
    }
    if trial.status != TrialStatus::Completed {
        return Err(bad(format!("trial {} is {}: only a completed trial can be reproduced", trial.id, trial.status)));
    }
    if trial.pipeline == "command" {
        return Err(bad("a `command` trial runs the user's program, which decsweep cannot rerun faithfully".into()));
    }
    let manifest = trial.manifest.clone().ok_or_else(|| {
        bad(format!("trial {} has no manifest (completed by a worker older than `decsweep reproduce`)", trial.id))
    })?;
    let stored_device = manifest["device"].as_str().unwrap_or("cpu").to_string();
    let device = args.device.clone().unwrap_or(stored_device);
    let threads = manifest["threads"].as_u64().unwrap_or(1);

    // The dataset the trial read, as the manifest recorded it.
    let recorded = manifest["dataset_sha256"].as_str().unwrap_or("").to_string();
    let now = decsweep_data::content_hash(&dataset).map_err(|e| bad(format!("{}: {e}", dataset.display())))?;
    let dataset_same = now == recorded;

    let out = scratch.path().join("trial");
    let worker = super::run::find_worker(args.worker_bin.as_deref())?;
    let mut cmd = Command::new(&worker);
    // A trial trained in a pack reruns through the packed engine, as a pack of one: its numbers
    // do not depend on its pack-mates (crates/model/src/packed), only on the engine.
    let packed = manifest.get("pack").is_some_and(|p| !p.is_null());
    if packed {
        let mut params = decsweep_api::Params::default();
        for (name, value) in &trial.params {
            params.set(name, value).map_err(|e| bad(format!("trial {}: {e}", trial.id)))?;
        }
        let pack = decsweep_api::pack::PackFile {
            pack_id: None,
            members: vec![decsweep_api::pack::PackFileMember {
                trial_id: trial.id,
                seed: trial.seed,
                params,
                out: out.clone(),
                checkpoint: None,
            }],
        };
        let pack_file = scratch.path().join("pack.json");
        std::fs::write(&pack_file, serde_json::to_vec(&pack)?)
            .with_context(|| format!("writing {}", pack_file.display()))?;
        cmd.arg("train-pack").arg("--pack-file").arg(&pack_file).arg("--out").arg(scratch.path().join("pack"));
    } else {
        cmd.arg("train").arg("--seed").arg(trial.seed.to_string()).arg("--out").arg(&out);
        for (name, value) in &trial.params {
            cmd.arg("--set").arg(format!("{name}={value}"));
        }
    }
    cmd.arg("--data").arg(&dataset).args(["--pipeline", &trial.pipeline]).args([
        "--device",
        &device,
        "--threads",
        &threads.to_string(),
    ]);
    eprintln!(
        "rerunning trial {} ({} seed {}{}) on {device} with {threads} thread(s)…",
        trial.id,
        trial.pipeline,
        trial.seed,
        if packed { ", trained in a pack: as a pack of one" } else { "" }
    );
    let status = cmd.status().with_context(|| format!("starting {}", worker.display()))?;
    if !status.success() {
        anyhow::bail!("the rerun failed ({status}); see its messages above");
    }
    let rerun: Value = serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json"))?)?;
    let fresh = decsweep_api::wire::flatten_metrics(&rerun);
    let cuda = device.starts_with("cuda");
    let tolerance = if cuda { manifest["determinism"]["cuda_tolerance"].as_f64().unwrap_or(1e-3) } else { 0.0 };

    println!("| metric | stored | rerun | |");
    println!("| --- | ---: | ---: | --- |");
    let mut all_match = true;
    for (name, &stored) in trial.metrics.iter().filter(|(k, _)| !is_timing(k)) {
        let (cell, ok) = match fresh.get(name) {
            Some(&x) if x.to_bits() == stored.to_bits() => (format!("{x}"), true),
            Some(&x) if (x - stored).abs() <= tolerance => (format!("{x}"), true),
            Some(&x) => (format!("{x}"), false),
            None => ("—".to_string(), false),
        };
        all_match &= ok;
        println!("| {name} | {stored} | {cell} | {} |", if ok { "same" } else { "DIFFERS" });
    }

    let mut differences = Vec::new();
    if !dataset_same {
        differences.push(format!(
            "dataset differs: the manifest recorded SHA-256 {recorded}, {} is now {now}",
            dataset.display()
        ));
    }
    let here = &rerun["manifest"];
    for key in ["decsweep_version", "git_revision", "trainer_revision", "libtorch", "device", "threads", "cuda"] {
        if manifest[key] != here[key] {
            differences.push(format!("{key}: {} then, {} now", manifest[key], here[key]));
        }
    }
    if differences.is_empty() {
        println!("\nenvironment: as recorded in the manifest");
    } else {
        println!("\nenvironment differences:");
        for d in &differences {
            println!("- {d}");
        }
    }
    let rule = if cuda { format!("within {tolerance} (CUDA)") } else { "exactly (CPU)".to_string() };
    if all_match && dataset_same {
        println!("\nreproduced: every metric matches {rule}");
        Ok(())
    } else {
        let why =
            if dataset_same { format!("some metrics do not match {rule}") } else { "the dataset differs".to_string() };
        anyhow::bail!("not reproduced: {why}")
    }
}
