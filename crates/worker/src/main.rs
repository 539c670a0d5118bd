//! `decsweep-worker`: trains trials of the paper's pipeline with libtorch, either pulled from a
//! coordinator (`decsweep-worker --coordinator URL`) or one at a time (`decsweep-worker train`).
//!
//! Exit status: 0 success, 1 failure (e.g. divergence), 2 bad input (unknown parameter,
//! invalid dataset, empty labeled set, ...; as an agent also a coordinator it cannot work with:
//! see `agent`), 75 (`EX_TEMPFAIL`) `train` interrupted by SIGTERM with its state saved to
//! `--checkpoint` (run the same command again to resume).

mod agent;
mod allow;
mod bench;
mod bench_pack;
mod cache;
mod checkpoint;
mod cpu;
mod device;
mod dirpack;
mod libtorch_build;
mod manifest;
mod pack_trial;
mod program_env;
mod protocol;
mod trial;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use decsweep_api::Pipeline;

/// Trains trials of decsweep's pipeline (Transformer encoders, semi-supervised DEC
/// pretraining, fine-tuning) on CPU or CUDA.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None, args_conflicts_with_subcommands = true)]
#[command(after_help = "Without a subcommand the worker is an agent: it leases trials from --coordinator, \
runs them (one child process per trial), heartbeats, streams per-epoch progress and reports the \
outcome. SIGTERM or Ctrl-C stops the running trials within an epoch and returns them to the queue \
(the attempt is not counted against the study's retries), then exits 0.

Errors that waiting cannot cure end the agent at once with exit status 2 and the reason: a token \
the coordinator refuses (401) or that may not lease (403), a --coordinator URL without http:// or \
https:// or with a wrong path (404), and a coordinator of an incompatible version (it refuses the \
request's form, or answers in a form this worker cannot read). Errors that may pass keep a bounded \
backoff (0.2 s doubling to 10 s) and never end the agent: connection refused, timeouts, 5xx and 503 \
\"storage full\". Supervisors should restart on other failures but not on 2 (systemd \
RestartPreventExitStatus=2, compose restart: on-failure with a bounded count, see deploy/).

A trial's program (and the worker's own `train` child) inherits the worker's environment except \
every DECSWEEP_* variable (the token, token file, read token, ...: those four are never passed on) \
and every variable whose name looks like a credential: ending in TOKEN, SECRET, PASSWORD, PASSWD, \
API_KEY, APIKEY, ACCESS_KEY, SECRET_KEY, PRIVATE_KEY or CREDENTIAL(S), each also with _FILE, and \
SSH_AUTH_SOCK, CREDENTIALS_DIRECTORY, KRB5CCNAME (e.g. AWS_SECRET_ACCESS_KEY, GITHUB_TOKEN, HF_TOKEN, \
WANDB_API_KEY). --program-env-keep NAME passes one on, --program-env-drop NAME withholds more; the \
spec's [command] env always applies. The start-up log names what is withheld. This is not a \
sandbox: programs run as the worker's user; on a shared machine run workers as an unprivileged user \
of their own and use --allow-program.")]
struct Cli {
    /// Log format on stderr; verbosity comes from RUST_LOG (default: info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    agent: agent::AgentArgs,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one trial on this machine and write metrics.json, curves.csv and the chosen
    /// classifier checkpoint into --out.
    Train(TrainArgs),
    /// Train several trials of one pack key (same shapes and schedule) as one stacked model in
    /// this process, each member writing what `train` would write for it alone into its own
    /// directory. The agent runs it for a `--pack` lease answer; `decsweep reproduce` reruns a
    /// packed trial through it as a pack of one.
    TrainPack(pack_trial::TrainPackArgs),
    /// Print, as one JSON line: the libtorch build (version, MKL, oneDNN, the CPU kernels ATen
    /// picked here, OpenMP, the CUDA runtime and cuDNN it was built with), this machine's CPU
    /// (vendor, model, the instruction-set flags that choose kernels), the thread counts, and
    /// whether CUDA is usable and how many GPUs libtorch sees.
    Info,
    /// List every parameter `--set` and sweep specs accept: default, valid range, the stages
    /// that read it, and what it does.
    Params,
    /// Time our fine-tune and AE training steps against the PyTorch reference
    /// (tests/parity/reference.py) on the same batch and weights, and print the ratios.
    BenchTrain(bench::BenchArgs),
    /// Trial-steps per second of K trials trained as one packed model against the same trials
    /// as K `train` processes at once, for each K of --ks, and the memory per trial.
    BenchPack(bench_pack::BenchPackArgs),
}

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    run: RunnerArgs,
    /// Seed of the split, the initialisation and the batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Override a parameter, e.g. `--set lr_ft=1e-4`; repeatable. Unknown names are an error
    /// that lists the valid ones.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Directory for metrics.json, curves.csv and classifier.safetensors (created).
    #[arg(long)]
    out: PathBuf,
    /// Trial checkpoint file: the trial's resumable state (weights, optimiser, curves, ...) is
    /// saved there at epoch boundaries, and a run that finds a valid one for the same trial
    /// (dataset, pipeline, parameters, seed) resumes from it with the same results as a run that
    /// never stopped. An invalid one (corrupt, truncated, another trial's) is logged and
    /// discarded. With it, SIGTERM saves the state at the end of the epoch in progress and exits
    /// with status 75.
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
}

/// What `train` and `train-pack` share: the data, the pipeline, where and how they compute, the
/// stage cache, supervision by the agent, and how often a trial's state is saved.
#[derive(clap::Args, Debug)]
pub struct RunnerArgs {
    /// Dataset in decsweep's safetensors format (see `decsweep data synth` and tools/); a pack's
    /// members all read it.
    #[arg(long)]
    data: PathBuf,
    /// `baseline`: classifier from scratch; `dec`: AE → DEC → fine-tune.
    #[arg(long, value_parser = parse_pipeline)]
    pipeline: Pipeline,
    /// `cpu`, `cuda`, `cuda:K`, or `auto` (CUDA when available).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Intra-op CPU threads for libtorch (default: libtorch's choice).
    #[arg(long)]
    threads: Option<i32>,
    /// Directory of stage checkpoints shared between trials, solo and packed: a stage whose
    /// inputs (dataset, seed, split, every parameter it and its upstream stages read) match a
    /// stored checkpoint is loaded instead of trained.
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Supervised mode, used by the worker agent: after every epoch print the epoch as one JSON
    /// line on stdout (naming the member, in a pack) and read `continue` or `prune` from stdin
    /// before going on. `prune` (or stdin closing) stops the trial; metrics.json then says
    /// `"status": "pruned"`.
    #[arg(long)]
    supervised: bool,
    /// Where a trial's state is saved (`train --checkpoint`, a pack member's checkpoint file):
    /// also save at the first epoch boundary after this many seconds of training since the last
    /// save (never more than once an epoch; 0: every epoch).
    #[arg(long, value_name = "SECONDS", default_value_t = 300.0, value_parser = parse_seconds)]
    checkpoint_every: f64,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("`{s}` is not a number of seconds ≥ 0")),
    }
}

/// Exit status of `train` when SIGTERM interrupted it and its state is saved (`EX_TEMPFAIL`).
pub const EXIT_INTERRUPTED: u8 = 75;

fn parse_pipeline(s: &str) -> Result<Pipeline, String> {
    s.parse()
}

/// A failure and whether the user's input caused it.
pub enum Failure {
    BadInput(anyhow::Error),
    Failed(anyhow::Error),
    /// Stopped by SIGTERM after saving a checkpoint to resume from.
    Interrupted(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Failed(e.into())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Some(Command::Train(args)) => trial::train(args),
        Some(Command::TrainPack(args)) => pack_trial::train_pack(args),
        Some(Command::Info) => {
            device::print_info();
            Ok(())
        }
        Some(Command::BenchTrain(args)) => bench::run(args),
        Some(Command::BenchPack(args)) => bench_pack::run(args),
        Some(Command::Params) => {
            print_params();
            Ok(())
        }
        None if cli.agent.wants_agent() => agent::run(cli.agent),
        None => Err(Failure::BadInput(anyhow::anyhow!(
            "nothing to do: give --coordinator URL to pull trials, or a subcommand (see --help)"
        ))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::BadInput(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
        Err(Failure::Interrupted(e)) => {
            eprintln!("interrupted: {e:#}");
            ExitCode::from(EXIT_INTERRUPTED)
        }
    }
}

fn print_params() {
    use std::io::Write;
    let defaults = decsweep_api::Params::default();
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) just ends the listing.
    let _ = writeln!(out, "{:<15} {:<10} {:<28} {:<22} description", "name", "default", "valid values", "read by");
    for spec in decsweep_api::SPECS {
        let default = defaults.get(spec.name).map(|v| v.to_string()).unwrap_or_default();
        let line = format!(
            "{:<15} {:<10} {:<28} {:<22} {}",
            spec.name,
            default,
            spec.domain.describe(),
            spec.read_by(),
            spec.doc.trim()
        );
        if writeln!(out, "{line}").is_err() {
            break;
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal, never into a log file or a collector.
    let ansi = matches!(format, LogFormat::Text) && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
