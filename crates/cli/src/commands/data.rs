//! `decsweep data …`: dataset files.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use decsweep_data::{content_hash, load, save, summarize, synthesize, Summary, SynthConfig};
use serde::Serialize;

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Write a synthetic CMU-MOSI-shaped dataset (text 300, audio 74, vision 47 features, up to
    /// 50 steps, labels in [-3, 3] with zeros, MOSI's train/valid/test split), the same bytes for
    /// the same seed.
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
    /// Print the summary as one JSON object instead of a line of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Dataset file (.safetensors in decsweep's format, e.g. from `data synth` or tools/).
    #[arg(value_name = "FILE")]
    file: PathBuf,
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
    let cfg = SynthConfig { n, seed: args.seed, ..SynthConfig::default() };
    let ds = synthesize(&cfg);
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating directory {}", dir.display()))?;
    }
    save(&ds, &args.out)?;
    tracing::info!(path = %args.out.display(), seed = args.seed, rows = args.n, "wrote synthetic dataset");
    report(&args.out, &summarize(&ds), args.json)
}

fn inspect(args: &InspectArgs) -> anyhow::Result<()> {
    let ds = load(&args.file)?;
    report(&args.file, &summarize(&ds), args.json)
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
