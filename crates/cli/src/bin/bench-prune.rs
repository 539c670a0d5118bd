//! `decsweep-bench-prune [--trials 30] [--workers 2] [--sampler-seed 1] [--epochs-ft 60] [--out DIR]`
//!
//! The same `dec` sweep on synthetic CMU-MOSI run by `decsweep run` once without a pruner and
//! once per pruner setting, then compared: fine-tuning epochs actually run, trials pruned, wall
//! time, and the best validation accuracy found. The sweep searches `lr_ft` log-uniformly over
//! [1e-5, 1e-2] with the random sampler, so every run trains the very same configurations (the
//! sampler's seed fixes them) and only the pruner differs. Small encoders and few AE/DEC epochs
//! keep it to minutes on a laptop; the AE and DEC stages do not depend on `lr_ft`, so the stage
//! cache trains them once per run and the fine-tuning epochs are the cost the pruner can cut.
//!
//! A pruned trial ran `pruned_epoch` fine-tuning epochs (epochs count from 1); a completed one
//! ran `epochs_ft`. The best accuracy is the objective (`accuracy`, validation) over completed
//! trials, which is what a sweep reports as its best configuration.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use decsweep_api::wire::{TrialInfo, TrialStatus};
use decsweep_coordinator::{Coordinator, CoordinatorOptions};

/// The pruner settings compared with no pruner: a `[pruner]` table each.
const VARIANTS: &[(&str, &str)] = &[
    ("none", ""),
    ("median, warm-up 10", "[pruner]\nkind = \"median\"\nn_startup_trials = 5\nn_warmup_steps = 10\n"),
    ("median, warm-up 30", "[pruner]\nkind = \"median\"\nn_startup_trials = 5\nn_warmup_steps = 30\n"),
    ("asha, min 10, η 3", "[pruner]\nkind = \"asha\"\nmin_resource = 10\nreduction_factor = 3\n"),
];

struct Args {
    trials: u64,
    workers: usize,
    sampler_seed: u64,
    epochs_ft: u64,
    out: PathBuf,
}

fn parse_args() -> Result<Args> {
    let mut a =
        Args { trials: 30, workers: 2, sampler_seed: 1, epochs_ft: 60, out: PathBuf::from("target/bench-prune") };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--trials" => a.trials = val()?.parse().context("--trials")?,
            "--workers" => a.workers = val()?.parse().context("--workers")?,
            "--sampler-seed" => a.sampler_seed = val()?.parse().context("--sampler-seed")?,
            "--epochs-ft" => a.epochs_ft = val()?.parse().context("--epochs-ft")?,
            "--out" => a.out = PathBuf::from(val()?),
            "-h" | "--help" => {
                println!(
                    "usage: decsweep-bench-prune [--trials 30] [--workers 2] [--sampler-seed 1] [--epochs-ft 60] [--out target/bench-prune]\n\n\
                     Runs one `dec` sweep over lr_ft without a pruner and with each pruner setting, and prints\n\
                     the fine-tuning epochs run and the best validation accuracy of each. Every run's spec,\n\
                     database and reports are kept under --out."
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}` (see --help)"),
        }
    }
    Ok(a)
}

fn spec(study: &str, a: &Args, pruner: &str) -> String {
    format!(
        r#"[study]
name = "{study}"
dataset = {{ synthetic = {{ seed = 0, n = 2199 }} }}
pipelines = ["dec"]
seeds = [0]
retries = 1

[fixed]
d_model = 32
ff_dim = 64
latent_dim = 16
n_layers = 1
epochs_ae = 10
epochs_dec = 5
epochs_ft = {epochs_ft}
label_fraction = 0.4

[space]
lr_ft = {{ loguniform = [1e-5, 1e-2] }}

[sampler]
kind = "random"
seed = {seed}
n_trials = {trials}

{pruner}"#,
        epochs_ft = a.epochs_ft,
        seed = a.sampler_seed,
        trials = a.trials,
    )
}

/// `decsweep` beside this binary.
fn decsweep_bin() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name("decsweep");
    if !bin.exists() {
        bail!("{} not found: build the workspace's binaries first (`make build`)", bin.display());
    }
    Ok(bin)
}

fn stored_trials(db: &Path, study: &str) -> Result<Vec<TrialInfo>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let coordinator = Coordinator::open(db, CoordinatorOptions::default())
            .with_context(|| format!("cannot open {}", db.display()))?;
        Ok(coordinator.trials(study, None).await?)
    })
}

struct Outcome {
    name: &'static str,
    epochs: u64,
    pruned: usize,
    trials: usize,
    best: f64,
    best_lr: f64,
    wall_s: f64,
}

fn measure(name: &'static str, trials: &[TrialInfo], epochs_ft: u64, wall_s: f64) -> Result<Outcome> {
    let mut out =
        Outcome { name, epochs: 0, pruned: 0, trials: trials.len(), best: f64::NAN, best_lr: f64::NAN, wall_s };
    for t in trials {
        let lr = t.params.get("lr_ft").and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
        match t.status {
            TrialStatus::Completed => {
                out.epochs += epochs_ft;
                let acc = t.metrics.get("accuracy").copied().unwrap_or(f64::NAN);
                if out.best.is_nan() || acc > out.best {
                    out.best = acc;
                    out.best_lr = lr;
                }
            }
            TrialStatus::Pruned => {
                out.pruned += 1;
                out.epochs += t.metrics.get("pruned_epoch").copied().unwrap_or(0.0) as u64;
            }
            other => bail!("trial {} of `{name}` ended {other}: {}", t.id, t.error.as_deref().unwrap_or("")),
        }
    }
    Ok(out)
}

fn main() -> Result<()> {
    let a = parse_args()?;
    let decsweep = decsweep_bin()?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    println!(
        "bench-prune: `dec` on synthetic CMU-MOSI, {} configurations of lr_ft (random sampler, seed {}), {} fine-tuning epochs, {} workers",
        a.trials, a.sampler_seed, a.epochs_ft, a.workers
    );
    let mut outcomes = Vec::new();
    for (i, (name, pruner)) in VARIANTS.iter().enumerate() {
        let study = format!("bench-prune-{i}");
        let dir = a.out.join(&study);
        // A fresh database each time: a leftover one would resume instead of measuring.
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)?;
        let spec_path = dir.join("spec.toml");
        std::fs::write(&spec_path, spec(&study, &a, pruner))?;
        let db = dir.join("decsweep.db");
        let started = Instant::now();
        let status = Command::new(&decsweep)
            .arg("run")
            .arg(&spec_path)
            .args(["--workers", &a.workers.to_string()])
            .arg("--db")
            .arg(&db)
            .arg("--out")
            .arg(dir.join("results"))
            .stdout(std::fs::File::create(dir.join("run.log"))?)
            .stderr(std::fs::File::create(dir.join("run.err"))?)
            .status()
            .with_context(|| format!("cannot run {}", decsweep.display()))?;
        let wall_s = started.elapsed().as_secs_f64();
        if !status.success() {
            bail!("`decsweep run` for `{name}` failed ({status}); see {}", dir.join("run.err").display());
        }
        let o = measure(name, &stored_trials(&db, &study)?, a.epochs_ft, wall_s)?;
        println!("  {name}: {} epochs, {} pruned, best {:.4} in {:.0} s", o.epochs, o.pruned, o.best, o.wall_s);
        outcomes.push(o);
    }

    let base = &outcomes[0];
    println!(
        "\n{:<20} {:>9} {:>8} {:>8} | {:>8} {:>10} | {:>7} {:>6}",
        "pruner", "ft epochs", "vs none", "pruned", "best acc", "best lr_ft", "wall s", "vs none"
    );
    for o in &outcomes {
        println!(
            "{:<20} {:>9} {:>7.0}% {:>5}/{:<2} | {:>8.4} {:>10.3e} | {:>7.0} {:>6.2}×",
            o.name,
            o.epochs,
            100.0 * (o.epochs as f64 / base.epochs as f64 - 1.0),
            o.pruned,
            o.trials,
            o.best,
            o.best_lr,
            o.wall_s,
            o.wall_s / base.wall_s,
        );
    }
    let same: Vec<String> = outcomes[1..]
        .iter()
        .map(|o| format!("{}: {}", o.name, if o.best >= base.best { "yes" } else { "no" }))
        .collect();
    println!("\nsame best accuracy as without a pruner: {}", same.join("; "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use decsweep_api::ParamValue;

    fn trial(id: i64, lr: f64, status: TrialStatus, metrics: &[(&str, f64)]) -> TrialInfo {
        TrialInfo {
            id,
            study: "s".into(),
            pipeline: "dec".into(),
            params: [("lr_ft".to_string(), ParamValue::Float(lr))].into(),
            seed: 0,
            config_id: format!("c{id}"),
            label: None,
            status,
            attempts: 1,
            worker: None,
            error: None,
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            resumes: 0,
            resumed_from: None,
            pack: Vec::new(),
            manifest: None,
        }
    }

    #[test]
    fn epochs_count_pruned_trials_up_to_their_epoch_and_best_is_over_completed_ones() {
        let trials = [
            trial(1, 1e-3, TrialStatus::Completed, &[("accuracy", 0.80)]),
            trial(2, 1e-4, TrialStatus::Pruned, &[("accuracy", 0.95), ("pruned_epoch", 11.0)]),
            trial(3, 3e-4, TrialStatus::Completed, &[("accuracy", 0.85)]),
        ];
        let o = measure("median", &trials, 60, 1.0).unwrap();
        assert_eq!((o.epochs, o.pruned, o.trials), (60 + 11 + 60, 1, 3));
        assert_eq!((o.best, o.best_lr), (0.85, 3e-4), "a pruned trial's last accuracy is not a result");
        let failed = [trial(4, 1e-3, TrialStatus::Failed, &[])];
        assert!(measure("none", &failed, 60, 1.0).is_err(), "a failed trial spoils the comparison");
    }
}
