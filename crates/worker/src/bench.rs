//! `decsweep-worker bench-train`: time per training step of our fine-tune and AE steps against
//! the PyTorch reference (`tests/parity/reference.py --mode bench`) on the same batch, from the
//! same weights, with the same thread count and optimiser, measured in the same run.
//!
//! The default configuration (`Params::default()`, dims 300/74/47, 30 steps, batch 128) on one
//! random batch with lengths 1..=30. A step is forward + loss + backward + Adam update, as the
//! training stages run it: the fine-tune step is BCE with logits under Adam(lr_ft, weight_decay);
//! the AE step is α_ae·recon + γ_ae·disentangle under Adam(lr_ae). Dropout is on (training mode)
//! on both sides. On CUDA every timed step ends with a device synchronisation.
//!
//! The reference runs as one python process that times steps on request; the two sides take
//! turns in short rounds (the order alternating), so that background load on a shared machine
//! falls on both alike. Reported: median and minimum milliseconds per step over all timed steps.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use decsweep_api::Params;
use decsweep_model::autoencoder::Autoencoder;
use decsweep_model::classifier::Classifier;
use decsweep_model::losses::{self, LossTerms, LossWeights};
use decsweep_model::reference::{batch_tensors, config_tensors};
use decsweep_model::{Adam, Batch, ModelConfig};
use serde::Deserialize;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::{device, Failure};

const DIMS: [usize; 3] = [300, 74, 47];

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Python with torch==2.11.0 for the PyTorch side (`make venv` makes .venv/bin/python).
    #[arg(long, env = "DECSWEEP_PYTHON")]
    python: Option<PathBuf>,
    /// Timed training steps per round, side and step kind.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Rounds; the side that goes first alternates.
    #[arg(long, default_value_t = 6)]
    rounds: usize,
    /// Untimed steps per side and step kind before the first round.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Also print the time of each phase (forward + loss, backward, optimiser step).
    /// On CUDA this synchronises after every phase, which the totals then include.
    #[arg(long)]
    breakdown: bool,
    /// Intra-op CPU threads, the same on both sides (default: libtorch's default here).
    #[arg(long)]
    threads: Option<i32>,
    /// `cpu`, `cuda` or `cuda:K`.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// The PyTorch reference (default: tests/parity/reference.py of this checkout).
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Seed of the weights and the batch.
    #[arg(long, default_value_t = 0)]
    seed: i64,
}

/// Per-step milliseconds: the whole step and its phases.
#[derive(Clone, Debug, Default, Deserialize)]
struct Samples {
    ms: Vec<f64>,
    forward_ms: Vec<f64>,
    backward_ms: Vec<f64>,
    step_ms: Vec<f64>,
}

impl Samples {
    fn extend(&mut self, other: Samples) {
        self.ms.extend(other.ms);
        self.forward_ms.extend(other.forward_ms);
        self.backward_ms.extend(other.backward_ms);
        self.step_ms.extend(other.step_ms);
    }
}

fn median(ms: &[f64]) -> f64 {
    let mut v = ms.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn min(ms: &[f64]) -> f64 {
    ms.iter().copied().fold(f64::INFINITY, f64::min)
}

#[derive(Clone, Copy, PartialEq)]
enum StepKind {
    Finetune,
    Ae,
}

impl StepKind {
    fn request(self) -> &'static str {
        match self {
            StepKind::Finetune => "finetune",
            StepKind::Ae => "ae",
        }
    }
}

pub fn run(args: BenchArgs) -> Result<(), Failure> {
    if args.steps == 0 || args.rounds == 0 {
        return Err(Failure::BadInput(anyhow!("--steps and --rounds must be at least 1")));
    }
    let device = device::parse(&args.device).map_err(Failure::BadInput)?;
    if let Some(n) = args.threads {
        if n < 1 {
            return Err(Failure::BadInput(anyhow!("--threads {n}: expected at least 1")));
        }
        tch::set_num_threads(n);
    }
    let threads = tch::get_num_threads();
    let python = args.python.clone().unwrap_or_else(|| PathBuf::from(".venv/bin/python"));
    let reference = find_reference(args.reference.as_deref()).map_err(Failure::BadInput)?;
    check_python(&python)?;

    let params = Params::default();
    let cfg = ModelConfig::new(&params, DIMS);
    let seq_len = params.seq_len;
    tch::manual_seed(args.seed);
    let batch = random_batch(params.batch_size, seq_len, device);

    let clf_vs = VarStore::new(device);
    let clf = Classifier::new(clf_vs.root(), &cfg);
    let ae_vs = VarStore::new(device);
    let ae = Autoencoder::new(ae_vs.root(), &cfg);
    let param_count: i64 = clf_vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();

    // The reference starts from these weights, before our steps move them.
    let mut inputs = config_tensors(&cfg, seq_len, &[("alpha_ae", params.alpha_ae), ("gamma_ae", params.gamma_ae)]);
    inputs.extend(batch_tensors(&batch));
    inputs.extend(snapshot("classifier/", &clf_vs));
    inputs.extend(snapshot("ae/", &ae_vs));
    inputs.push(("bench/threads".into(), Tensor::from(threads as i64)));
    inputs.push(("bench/sync_phases".into(), Tensor::from(args.breakdown as i64)));
    for (name, v) in [("lr_ft", params.lr_ft), ("weight_decay", params.weight_decay), ("lr_ae", params.lr_ae)] {
        inputs.push((format!("bench/{name}"), Tensor::from(v)));
    }
    let mut reference = Reference::start(&python, &reference, &device::describe(device), &inputs)?;

    // The optimiser training uses (`decsweep_model::Adam`), so the timings are those of a trial.
    let mut opt = Adam::new(&clf_vs, params.lr_ft, params.weight_decay);
    let mut ae_opt = Adam::new(&ae_vs, params.lr_ae, 0.0);
    let weights = LossWeights { cluster: 0.0, alpha: params.alpha_ae, beta: 0.0, gamma: params.gamma_ae };
    let finetune_loss = || losses::bce_with_logits(&clf.forward(&batch, true), &batch.y);
    // As the AE stage builds its loss.
    let ae_loss = || {
        let z = ae.encode(&batch, true);
        let recon = losses::reconstruction(&ae.decode(&z, &batch), &batch);
        let zero = recon.zeros_like();
        LossTerms { cluster: zero.shallow_clone(), supervised: zero, disentangle: losses::disentangle(&z), recon }
            .total(weights)
    };
    let timer = Timer { device, sync_phases: args.breakdown };

    let mut ours = [Samples::default(), Samples::default()];
    let mut theirs = [Samples::default(), Samples::default()];
    eprintln!(
        "bench-train: {} rounds of {} timed steps per side and step, after {} warm-up steps ...",
        args.rounds, args.steps, args.warmup
    );
    for round in 0..args.rounds {
        let warmup = if round == 0 { args.warmup } else { 0 };
        for (k, kind) in [StepKind::Finetune, StepKind::Ae].into_iter().enumerate() {
            for side in 0..2 {
                let ours_now = (side == 0) == (round % 2 == 0);
                if ours_now {
                    let timed = match kind {
                        StepKind::Finetune => timer.run(&mut opt, &finetune_loss, warmup, args.steps),
                        StepKind::Ae => timer.run(&mut ae_opt, &ae_loss, warmup, args.steps),
                    };
                    ours[k].extend(timed);
                } else {
                    theirs[k].extend(reference.time(kind, warmup, args.steps)?);
                }
            }
        }
    }
    let (their_threads, their_version) = (reference.threads, reference.version.clone());
    reference.finish()?;

    println!(
        "bench-train: device {}, {} intra-op threads (PyTorch: {}), PyTorch {} via {}",
        device::describe(device),
        threads,
        their_threads,
        their_version,
        python.display()
    );
    println!(
        "default config: dims {}/{}/{}, seq_len {seq_len}, batch {}, d_model {}, {} heads, {} layers, FF {}, dropout {}, \
         latent {}; classifier {} parameters; {} rounds × {} timed steps per side and step, after {} warm-up",
        DIMS[0],
        DIMS[1],
        DIMS[2],
        params.batch_size,
        cfg.d_model,
        cfg.n_heads,
        cfg.n_layers,
        cfg.ff_dim,
        cfg.dropout,
        cfg.latent_dim,
        param_count,
        args.rounds,
        args.steps,
        args.warmup
    );
    println!();
    println!("| step | ours ms/step (median / min) | PyTorch ms/step (median / min) | ours / PyTorch (median / min) |");
    println!("| --- | --- | --- | --- |");
    let names = ["fine-tune (BCE, Adam + weight decay)", "AE (α·recon + γ·disentangle, Adam)"];
    for (k, name) in names.iter().enumerate() {
        let (a, b) = (&ours[k].ms, &theirs[k].ms);
        println!(
            "| {name} | {:.2} / {:.2} | {:.2} / {:.2} | {:.3}× / {:.3}× |",
            median(a),
            min(a),
            median(b),
            min(b),
            median(a) / median(b),
            min(a) / min(b)
        );
    }
    if args.breakdown {
        println!();
        println!("| step: phase | ours ms (median) | PyTorch ms (median) | ours / PyTorch |");
        println!("| --- | --- | --- | --- |");
        for (k, short) in ["fine-tune", "AE"].iter().enumerate() {
            let (a, b) = (&ours[k], &theirs[k]);
            for (phase, x, y) in [
                ("forward + loss", &a.forward_ms, &b.forward_ms),
                ("backward (PyTorch: zero_grad + backward)", &a.backward_ms, &b.backward_ms),
                ("Adam step", &a.step_ms, &b.step_ms),
            ] {
                println!("| {short}: {phase} | {:.2} | {:.2} | {:.3}× |", median(x), median(y), median(x) / median(y));
            }
        }
    }
    Ok(())
}

/// Times training steps: forward + loss, backward, optimiser step.
struct Timer {
    device: Device,
    /// Synchronise the device after every phase (CUDA), not only after the step.
    sync_phases: bool,
}

impl Timer {
    fn run(&self, opt: &mut Adam, loss: &impl Fn() -> Tensor, warmup: usize, steps: usize) -> Samples {
        for _ in 0..warmup {
            opt.backward_step(&loss());
        }
        sync(self.device);
        let phase_sync = || {
            if self.sync_phases {
                sync(self.device)
            }
        };
        let mut out = Samples::default();
        for _ in 0..steps {
            let t0 = Instant::now();
            let l = loss();
            phase_sync();
            let t1 = Instant::now();
            opt.backward(&l);
            phase_sync();
            let t2 = Instant::now();
            opt.step();
            sync(self.device);
            let t3 = Instant::now();
            let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
            out.ms.push(ms(t0, t3));
            out.forward_ms.push(ms(t0, t1));
            out.backward_ms.push(ms(t1, t2));
            out.step_ms.push(ms(t2, t3));
        }
        out
    }
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// One random batch: features N(0, 1), lengths uniform in 1..=T with 1 and T both present (the
/// same in every modality, as in a dataset), labels 0/1.
fn random_batch(n: i64, steps: i64, device: Device) -> Batch {
    let lengths = Tensor::randint_low(1, steps + 1, [n], (Kind::Int64, Device::Cpu));
    let _ = lengths.get(0).fill_(1);
    let _ = lengths.get(1).fill_(steps);
    Batch {
        x: std::array::from_fn(|m| Tensor::randn([n, steps, DIMS[m] as i64], (Kind::Float, device))),
        lengths: std::array::from_fn(|_| lengths.to_device(device)),
        y: Tensor::randint(2, [n], (Kind::Float, device)),
        labeled: Tensor::ones([n], (Kind::Bool, device)),
    }
}

fn snapshot(prefix: &str, vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| (format!("{prefix}{n}"), t.detach().to_device(Device::Cpu).copy()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// `--reference`, else tests/parity/reference.py under the current directory, else in the
/// checkout this binary was built from.
fn find_reference(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        anyhow::ensure!(p.is_file(), "--reference {}: no such file", p.display());
        return Ok(p.to_path_buf());
    }
    let here = PathBuf::from("tests/parity/reference.py");
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/parity/reference.py");
    [here, built_from]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("cannot find tests/parity/reference.py: run from the checkout or pass --reference"))
}

fn check_python(python: &Path) -> Result<(), Failure> {
    let hint = "run `make venv` (torch==2.11.0 and numpy into .venv) or pass --python";
    let out = Command::new(python)
        .args(["-c", "import numpy, torch"])
        .output()
        .map_err(|e| Failure::BadInput(anyhow!("--python {}: cannot run it ({e}); {hint}", python.display())))?;
    if !out.status.success() {
        return Err(Failure::BadInput(anyhow!(
            "--python {}: cannot import torch and numpy ({}); {hint}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim().lines().last().unwrap_or("")
        )));
    }
    Ok(())
}

/// The reference's bench mode: a python process that times steps on request (one stdin line
/// each, one JSON line back).
struct Reference {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    dir: PathBuf,
    threads: i64,
    version: String,
}

#[derive(Deserialize)]
struct Ready {
    threads: i64,
    torch: String,
}

impl Reference {
    fn start(python: &Path, script: &Path, device: &str, inputs: &[(String, Tensor)]) -> anyhow::Result<Reference> {
        let dir = std::env::temp_dir().join(format!("decsweep-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let input = dir.join("in.safetensors");
        Tensor::write_safetensors(inputs, &input).with_context(|| format!("writing {}", input.display()))?;
        let mut child = Command::new(python)
            .arg(script)
            .args(["--mode", "bench", "--device", device])
            .arg(&input)
            .arg(dir.join("out.safetensors"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {} {}", python.display(), script.display()))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut reference = Reference { child, stdin, stdout, dir, threads: 0, version: String::new() };
        let ready: Ready = reference.answer()?;
        reference.threads = ready.threads;
        reference.version = ready.torch;
        Ok(reference)
    }

    fn answer<T: serde::de::DeserializeOwned>(&mut self) -> anyhow::Result<T> {
        let mut line = String::new();
        self.stdout.read_line(&mut line).context("reading from the reference")?;
        if line.is_empty() {
            let status = self.child.wait()?;
            bail!("the PyTorch reference exited ({status}) without answering; its error is above");
        }
        serde_json::from_str(&line).with_context(|| format!("the reference answered {:?}", line.trim()))
    }

    fn time(&mut self, kind: StepKind, warmup: usize, steps: usize) -> anyhow::Result<Samples> {
        writeln!(self.stdin, "{} {warmup} {steps}", kind.request()).context("writing to the reference")?;
        self.stdin.flush()?;
        self.answer()
    }

    fn finish(mut self) -> anyhow::Result<()> {
        writeln!(self.stdin, "quit")?;
        drop(self.stdin);
        let status = self.child.wait()?;
        let _ = std::fs::remove_dir_all(&self.dir);
        anyhow::ensure!(status.success(), "the PyTorch reference failed at exit ({status})");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_min_of_step_times() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(min(&[4.0, 1.5, 3.0]), 1.5);
    }
}
