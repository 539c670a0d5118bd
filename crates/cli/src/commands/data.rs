//! `decsweep data …`: dataset files.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use decsweep_api::{ParamValue, SynthKind};
use decsweep_data::{
    content_hash, load, long_sequence_warning, save, summarize, synthesize_kind, Summary, SynthConfig,
};
use serde::Serialize;

use crate::exit::BadInput;

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Write a synthetic CMU-MOSI-shaped dataset (text 300, audio 74, vision 47 features, up to
    /// 50 steps, labels in [-3, 3] with zeros, MOSI's train/valid/test split), the same bytes for
    /// the same seed and settings. `--kind linear` (default): a sentiment score projected into
    /// every modality, an easy signal. `--kind clustered`: classes as sub-clusters on a curved
    /// manifold, spread over modalities and time, where unlabeled rows reveal the structure
    /// (knobs below; README "Synthetic data").
    Synth(SynthArgs),
    /// Load a dataset file, check every tensor, and print its summary.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output file (.safetensors); parent directories are created. Written atomically.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Seed of the generator.
    #[arg(long, value_name = "S")]
    seed: u64,
    /// Number of utterances.
    #[arg(long, value_name = "N", default_value_t = 2199, value_parser = clap::value_parser!(u64).range(1..))]
    n: u64,
    /// Which generator: `linear` or `clustered`.
    #[arg(long, value_name = "KIND", default_value = "linear", value_parser = clap::builder::PossibleValuesParser::new(SynthKind::WORDS))]
    kind: String,
    /// Clustered: half the angle between neighbouring sub-clusters, in sub-cluster standard
    /// deviations (default 2.5; higher is cleaner).
    #[arg(long, value_name = "X")]
    separation: Option<f64>,
    /// Clustered: sub-clusters per class (default 4).
    #[arg(long, value_name = "K")]
    subclusters: Option<i64>,
    /// Clustered: per-step noise of text, in signal standard deviations (default 7).
    #[arg(long, value_name = "X")]
    noise_text: Option<f64>,
    /// Clustered: per-step noise of audio (default 3.5).
    #[arg(long, value_name = "X")]
    noise_audio: Option<f64>,
    /// Clustered: per-step noise of vision (default 2.8).
    #[arg(long, value_name = "X")]
    noise_vision: Option<f64>,
    /// Clustered: share of text steps that carry the cluster signal, in [0, 1] (default 0.5).
    #[arg(long, value_name = "X")]
    share_text: Option<f64>,
    /// Clustered: share of audio steps that carry the cluster signal (default 0.5).
    #[arg(long, value_name = "X")]
    share_audio: Option<f64>,
    /// Clustered: share of vision steps that carry the cluster signal (default 0.5).
    #[arg(long, value_name = "X")]
    share_vision: Option<f64>,
    /// Print the summary as one JSON object instead of a line of text.
    #[arg(long)]
    json: bool,
}

impl SynthArgs {
    /// The generator the flags describe; a knob without `--kind clustered`, or out of range, is
    /// an error naming the flag.
    fn generator(&self) -> anyhow::Result<SynthKind> {
        let given: Vec<(&str, ParamValue)> = [
            ("separation", self.separation.map(ParamValue::Float)),
            ("subclusters", self.subclusters.map(ParamValue::Int)),
            ("noise_text", self.noise_text.map(ParamValue::Float)),
            ("noise_audio", self.noise_audio.map(ParamValue::Float)),
            ("noise_vision", self.noise_vision.map(ParamValue::Float)),
            ("share_text", self.share_text.map(ParamValue::Float)),
            ("share_audio", self.share_audio.map(ParamValue::Float)),
            ("share_vision", self.share_vision.map(ParamValue::Float)),
        ]
        .into_iter()
        .filter_map(|(name, v)| v.map(|v| (name, v)))
        .collect();
        let mut generator = SynthKind::from_word(&self.kind).context("--kind is checked by clap")?;
        match &mut generator {
            SynthKind::Linear => {
                if let Some((name, _)) = given.first() {
                    anyhow::bail!(BadInput(format!(
                        "--{} is a knob of the clustered generator; add --kind clustered",
                        name.replace('_', "-")
                    )));
                }
            }
            SynthKind::Clustered(knobs) => {
                for (name, value) in &given {
                    knobs.set(name, value).map_err(|e| BadInput(format!("--{}: {e}", name.replace('_', "-"))))?;
                }
            }
        }
        Ok(generator)
    }
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Dataset file (.safetensors in decsweep's format, e.g. from `data synth` or tools/).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The `seq_len` the data will be used with: rows longer than twice it are warned about,
    /// with what each `time_pool` value does to them.
    #[arg(long, value_name = "STEPS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    seq_len: u64,
    /// Print the summary as one JSON object instead of a line of text.
    #[arg(long)]
    json: bool,
}

pub fn run(command: DataCommand) -> anyhow::Result<()> {
    match command {
        DataCommand::Synth(args) => synth(&args),
        DataCommand::Inspect(args) => inspect(&args),
    }
}

fn synth(args: &SynthArgs) -> anyhow::Result<()> {
    let n = usize::try_from(args.n).context("--n does not fit this machine's memory")?;
    let generator = args.generator()?;
    let cfg = SynthConfig { n, seed: args.seed, ..SynthConfig::default() };
    let ds = synthesize_kind(&cfg, &generator);
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating directory {}", dir.display()))?;
    }
    save(&ds, &args.out)?;
    tracing::info!(path = %args.out.display(), kind = generator.name(), seed = args.seed, rows = args.n, "wrote synthetic dataset");
    report(&args.out, &summarize(&ds), args.json)
}

fn inspect(args: &InspectArgs) -> anyhow::Result<()> {
    let ds = load(&args.file)?;
    let summary = summarize(&ds);
    let seq_len = usize::try_from(args.seq_len).context("--seq-len does not fit this machine")?;
    if let Some(warning) = long_sequence_warning(&summary, seq_len) {
        tracing::warn!(path = %args.file.display(), "{warning}");
    }
    report(&args.file, &summary, args.json)
}

#[derive(Serialize)]
struct Report<'a> {
    path: &'a Path,
    sha256: String,
    #[serde(flatten)]
    summary: &'a Summary,
}

fn report(path: &Path, summary: &Summary, json: bool) -> anyhow::Result<()> {
    let sha256 = content_hash(path)?;
    let mut out = std::io::stdout().lock();
    if json {
        let report = Report { path, sha256, summary };
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        writeln!(out, "{}: {summary}; sha256 {sha256}", path.display())?;
    }
    Ok(())
}
