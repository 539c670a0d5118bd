//! `decsweep-worker bench-pack`: trial-steps per second of K trials trained as one packed model
//! (`decsweep_model::packed`) against the same K trials as K `decsweep-worker train` processes
//! running at once, for each K given, and the memory each member costs.
//!
//! The trials are one configuration (a model preset) with seeds 0..K on a synthetic CMU-MOSI
//! shaped dataset. A trial-step is one optimiser step of one trial; a trial's steps are counted
//! from its prepared rows (every stage's epochs × its batches), the same for both sides. The
//! time counted is training only, on both sides: the packed run times `PackTrainer::run` inside
//! a child process of its own; each `train` process reports its training time in
//! `metrics.json` (`wall_s`, after data preparation), and the K processes' time is the longest
//! of theirs. Memory is each process's peak resident set (`wait4`'s `ru_maxrss`): the packed
//! process's divided by K, and the mean of the `train` processes'.
//!
//! Threads: the packed process uses `--threads` T (default: the machine's cores); each of the K
//! `train` processes gets `max(1, T / K)`, so both sides have the same thread budget and
//! neither oversubscribes the machine by itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use decsweep_api::{Params, Pipeline};
use decsweep_data::{prepare, synthesize, PrepConfig, SynthConfig};
use decsweep_model::packed::{PackMember, PackTrainer};
use decsweep_model::{Control, EpochRecord, NoCache, TrainSet};
use serde::{Deserialize, Serialize};

use crate::{device, Failure};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// d_model 16, batch 16, seq_len 10, other parameters at their defaults: per-operator
    /// overhead dominates, as it does on a GPU at the paper's size.
    Tiny,
    /// The fixed parameters of sweeps/demo.toml (d_model 32, ff_dim 64, latent_dim 16).
    Demo,
    /// The paper's default model (`Params::default()`).
    Paper,
}

impl Preset {
    fn assignments(self) -> &'static [&'static str] {
        match self {
            Preset::Tiny => &["d_model=16", "batch_size=16", "seq_len=10"],
            Preset::Demo => &["d_model=32", "ff_dim=64", "latent_dim=16", "lr_ft=5e-4"],
            Preset::Paper => &[],
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct BenchPackArgs {
    /// Model configuration of every trial.
    #[arg(long, value_enum, default_value_t = Preset::Tiny)]
    model: Preset,
    /// Pack sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    ks: Vec<usize>,
    /// Parameter assignments on top of the preset, as in a spec (e.g. `--set ff_dim=64`); both
    /// sides train with them. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Epochs of every stage the pipeline runs.
    #[arg(long, default_value_t = 2)]
    epochs: i64,
    /// `baseline` (the classifier stage only) or `dec` (AE, DEC, classifier).
    #[arg(long, default_value = "baseline", value_parser = |s: &str| s.parse::<Pipeline>())]
    pipeline: Pipeline,
    /// Rows of the synthetic dataset.
    #[arg(long, default_value_t = 2199)]
    rows: usize,
    /// `cpu`, `cuda` or `cuda:K` (both sides).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Intra-op threads of the packed process (default: libtorch's choice, the machine's cores).
    #[arg(long)]
    threads: Option<i32>,
    /// Measurements of each side at each K; the table reports their median (this VM's single
    /// runs moved by up to 50 %).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Skip the K separate processes (e.g. K = 32 on a GPU, where 32 processes would not fit).
    #[arg(long)]
    packed_only: bool,
    /// Directory for the dataset and the `train` processes' outputs (default: a temporary one).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Internal: run one packed measurement of this many members and print it as JSON.
    #[arg(long, hide = true)]
    packed_child: Option<usize>,
}

/// One packed measurement, as the child prints it.
#[derive(Serialize, Deserialize)]
struct PackedRun {
    train_s: f64,
    completed: usize,
}

/// A measurement of one side at one K.
struct Side {
    steps_per_s: f64,
    rss_mib_per_member: f64,
}

pub fn run(args: BenchPackArgs) -> Result<(), Failure> {
    if args.ks.is_empty() || args.ks.contains(&0) {
        return Err(Failure::BadInput(anyhow!("--ks: every pack size must be at least 1")));
    }
    if args.rounds < 1 {
        return Err(Failure::BadInput(anyhow!("--rounds {}: expected at least 1", args.rounds)));
    }
    if args.epochs < 1 {
        return Err(Failure::BadInput(anyhow!("--epochs {}: expected at least 1", args.epochs)));
    }
    let device = device::parse(&args.device).map_err(Failure::BadInput)?;
    match args.threads {
        Some(n) if n < 1 => return Err(Failure::BadInput(anyhow!("--threads {n}: expected at least 1"))),
        Some(n) => tch::set_num_threads(n),
        None => {}
    }
    let params = preset_params(&args)?;
    let dataset = synthesize(&SynthConfig { n: args.rows, seed: 0, ..Default::default() });
    if let Some(k) = args.packed_child {
        return packed_child(&args, &params, &dataset, k, device).map_err(Failure::Failed);
    }
    let work = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("decsweep-bench-pack-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let data_path = work.join("synthetic.safetensors");
    decsweep_data::save(&dataset, &data_path).with_context(|| format!("writing {}", data_path.display()))?;
    let exe = std::env::current_exe().context("locating decsweep-worker")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "bench-pack: {:?} model{}, {} pipeline, {} epoch(s) per stage, device {}, {} cores, packed process {} threads, median of {} round(s)",
        args.model,
        args.set.iter().map(|a| format!(" {a}")).collect::<String>(),
        args.pipeline,
        args.epochs,
        device::describe(device),
        cores,
        tch::get_num_threads(),
        args.rounds
    );
    println!("| K | packed trial-steps/s | K processes trial-steps/s | packed / processes | RSS MiB per member, packed | RSS MiB per member, processes |");
    println!("|---|---|---|---|---|---|");
    for &k in &args.ks {
        let steps: u64 = (0..k as u64)
            .map(|seed| trial_steps(&params, &dataset, seed, args.pipeline))
            .sum::<anyhow::Result<u64>>()?;
        let packed = median((0..args.rounds).map(|_| measure_packed(&exe, &args, k, steps)).collect::<Result<_, _>>()?);
        let solo = match args.packed_only {
            true => None,
            false => Some(median(
                (0..args.rounds)
                    .map(|_| measure_processes(&exe, &args, &params, &data_path, &work, k, cores, steps))
                    .collect::<Result<_, _>>()?,
            )),
        };
        let cell =
            |s: &Option<Side>, f: fn(&Side) -> f64| s.as_ref().map_or("—".to_string(), |s| format!("{:.1}", f(s)));
        let ratio = solo.as_ref().map_or("—".to_string(), |s| format!("{:.2}×", packed.steps_per_s / s.steps_per_s));
        println!(
            "| {k} | {:.1} | {} | {ratio} | {:.0} | {} |",
            packed.steps_per_s,
            cell(&solo, |s| s.steps_per_s),
            packed.rss_mib_per_member,
            cell(&solo, |s| s.rss_mib_per_member),
        );
    }
    if args.work_dir.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(())
}

/// The round with the median throughput (the upper one of an even count), with its memory.
fn median(mut rounds: Vec<Side>) -> Side {
    rounds.sort_by(|a, b| a.steps_per_s.total_cmp(&b.steps_per_s));
    let at = rounds.len() / 2;
    rounds.swap_remove(at)
}

fn preset_params(args: &BenchPackArgs) -> Result<Params, Failure> {
    let mut p = Params::default();
    let epochs = format!("{}", args.epochs);
    for a in args.model.assignments() {
        p.apply_assignment(a).map_err(|e| Failure::BadInput(anyhow!("preset {:?}: {e}", args.model)))?;
    }
    for key in ["epochs_ae", "epochs_dec", "epochs_ft"] {
        p.apply_assignment(&format!("{key}={epochs}")).map_err(|e| Failure::BadInput(anyhow!("--epochs: {e}")))?;
    }
    for a in &args.set {
        p.apply_assignment(a).map_err(|e| Failure::BadInput(anyhow!("--set {a}: {e}")))?;
    }
    p.validate().map_err(|e| Failure::BadInput(e.into()))?;
    Ok(p)
}

/// The optimiser steps of one trial: per stage, its epochs times its batches (a trailing batch
/// of one row is dropped, as training drops it).
fn trial_steps(
    params: &Params,
    dataset: &decsweep_data::Dataset,
    seed: u64,
    pipeline: Pipeline,
) -> anyhow::Result<u64> {
    let prepared = prepare(dataset, &PrepConfig::from_params(params, seed))?;
    let batches = |n: u64| {
        let b = params.batch_size as u64;
        n / b + u64::from(n % b > 1)
    };
    let all = prepared.train.len() as u64;
    let labeled = prepared.train.labeled.iter().filter(|&&l| l).count() as u64;
    let mut steps = params.epochs_ft as u64 * batches(labeled);
    if pipeline == Pipeline::Dec {
        steps += (params.epochs_ae + params.epochs_dec) as u64 * batches(all);
    }
    Ok(steps)
}

/// The packed side, in a child process of its own so its peak memory is its own.
fn measure_packed(exe: &Path, args: &BenchPackArgs, k: usize, steps: u64) -> anyhow::Result<Side> {
    let mut cmd = Command::new(exe);
    cmd.args(["bench-pack", "--packed-child", &k.to_string(), "--model"])
        .arg(format!("{:?}", args.model).to_lowercase())
        .args(["--epochs", &args.epochs.to_string(), "--pipeline", args.pipeline.name()])
        .args(["--rows", &args.rows.to_string(), "--device", &args.device]);
    for a in &args.set {
        cmd.args(["--set", a]);
    }
    if let Some(n) = args.threads {
        cmd.args(["--threads", &n.to_string()]);
    }
    cmd.env("RUST_LOG", "warn").stdout(Stdio::piped());
    let child = cmd.spawn().context("starting the packed child")?;
    let (output, rss_kib) = wait_with_rss(child)?;
    let run: PackedRun = serde_json::from_slice(&output)
        .with_context(|| format!("the packed child printed `{}`", String::from_utf8_lossy(&output).trim()))?;
    if run.completed != k {
        bail!("only {} of {k} packed trials completed", run.completed);
    }
    Ok(Side { steps_per_s: steps as f64 / run.train_s, rss_mib_per_member: rss_kib as f64 / 1024.0 / k as f64 })
}

fn packed_child(
    args: &BenchPackArgs,
    params: &Params,
    dataset: &decsweep_data::Dataset,
    k: usize,
    device: tch::Device,
) -> anyhow::Result<()> {
    let data: Vec<TrainSet> = (0..k as u64)
        .map(|seed| Ok(TrainSet::from_prepared(&prepare(dataset, &PrepConfig::from_params(params, seed))?, device)))
        .collect::<anyhow::Result<_>>()?;
    let mut caches: Vec<NoCache> = (0..k).map(|_| NoCache).collect();
    let mut observers: Vec<fn(&EpochRecord) -> Control> = vec![|_| Control::Continue; k];
    let members = data
        .iter()
        .zip(caches.iter_mut())
        .zip(observers.iter_mut())
        .enumerate()
        .map(|(seed, ((data, cache), observer))| PackMember {
            params,
            seed: seed as u64,
            data,
            cache,
            observer,
            resume: None,
        })
        .collect();
    let started = Instant::now();
    let results = PackTrainer { pipeline: args.pipeline, device }.run(members)?;
    let train_s = started.elapsed().as_secs_f64();
    let completed = results.iter().filter(|r| r.is_ok()).count();
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        eprintln!("a packed trial failed: {e}");
    }
    println!("{}", serde_json::to_string(&PackedRun { train_s, completed })?);
    Ok(())
}

/// The K `train` processes, started together.
#[allow(clippy::too_many_arguments)]
fn measure_processes(
    exe: &Path,
    args: &BenchPackArgs,
    params: &Params,
    data: &Path,
    work: &Path,
    k: usize,
    cores: usize,
    steps: u64,
) -> anyhow::Result<Side> {
    // The same thread budget as the packed process, shared among the K processes.
    let budget = args.threads.map_or(cores, |n| n as usize);
    let threads = (budget / k).max(1);
    let mut children = Vec::with_capacity(k);
    for seed in 0..k {
        let out = work.join(format!("k{k}-seed{seed}"));
        let mut cmd = Command::new(exe);
        cmd.arg("train").arg("--data").arg(data).args(["--pipeline", args.pipeline.name()]);
        cmd.args(["--seed", &seed.to_string(), "--device", &args.device, "--threads", &threads.to_string()]);
        for spec in decsweep_api::params::SPECS {
            let value = params.get(spec.name).expect("registered");
            if value != Params::default().get(spec.name).expect("registered") {
                cmd.arg("--set").arg(format!("{}={value}", spec.name));
            }
        }
        cmd.arg("--out").arg(&out).env("RUST_LOG", "warn").stdout(Stdio::null()).stderr(Stdio::null());
        children.push((cmd.spawn().context("starting a train process")?, out));
    }
    let (mut longest, mut rss) = (0.0f64, 0u64);
    for (child, out) in children {
        let (_, kib) = wait_with_rss(child)?;
        rss += kib;
        let metrics_path = out.join("metrics.json");
        let metrics: serde_json::Value = serde_json::from_slice(
            &std::fs::read(&metrics_path).with_context(|| format!("reading {}", metrics_path.display()))?,
        )?;
        let wall = metrics["wall_s"].as_f64().ok_or_else(|| anyhow!("{}: no wall_s", metrics_path.display()))?;
        longest = longest.max(wall);
    }
    Ok(Side { steps_per_s: steps as f64 / longest, rss_mib_per_member: rss as f64 / 1024.0 / k as f64 })
}

/// Waits for `child`, failing unless it exits 0; returns its stdout and its peak resident set
/// in KiB.
fn wait_with_rss(mut child: std::process::Child) -> anyhow::Result<(Vec<u8>, u64)> {
    use std::io::Read;
    let mut output = Vec::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_end(&mut output)?;
    }
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 writes it for our own child's pid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: `pid` is our child, not yet reaped (`Child::wait` was never called).
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if reaped != pid {
        bail!("waiting for process {pid}: {}", std::io::Error::last_os_error());
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("process {pid} ({:?}) failed with wait status {status}", child);
    }
    Ok((output, usage.ru_maxrss as u64))
}
