//! The command groups. Each module owns its clap arguments and its implementation.

mod cache;
mod client;
mod connection;
mod control;
mod data;
mod placement;
mod report;
mod reproduce;
mod run;
mod serve;
mod source;
mod trial_table;
mod upload;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a sweep on this machine: coordinator on loopback, local workers, progress, reports.
    /// Interrupt it and run it again to resume.
    Run(run::RunArgs),
    /// Run the coordinator alone, for workers on other machines
    /// (`decsweep-worker --coordinator URL`).
    Serve(serve::ServeArgs),
    /// Send a sweep spec to a running coordinator.
    Submit(client::SubmitArgs),
    /// Show studies and trials of a running coordinator.
    Status(client::StatusArgs),
    /// Cancel a study: pending trials become `cancelled` at once; running ones are stopped by
    /// their workers within a heartbeat or an epoch and end `cancelled`. A TPE study samples no
    /// more points. Finished trials keep their results. `resume` undoes it.
    Cancel(control::CancelArgs),
    /// Resume a cancelled study: its cancelled trials go back in the queue (their attempt count
    /// goes on, the study's `retries` count again) and a TPE study samples again. Completed,
    /// failed and pruned trials stay as they are.
    Resume(control::ResumeArgs),
    /// Put a study's failed trials back in the queue (or only --trial ID). Each gets the study's
    /// `retries` again; its attempt count goes on from where it was. A cancelled study must be
    /// resumed first.
    Retry(control::RetryArgs),
    /// Mark a pending or running trial failed (its worker stops it). Finished trials cannot be
    /// failed; `retry` brings a failed trial back.
    Fail(control::FailArgs),
    /// Add seeds to a study: every configuration it has (for TPE: proposed so far) × each new
    /// seed, as pending trials. Seeds it already has are skipped and listed. A cancelled study
    /// must be resumed first.
    AddSeeds(control::AddSeedsArgs),
    /// Write results/<study>/ (trials.csv, summary.csv, table.md/.tex, plots) from a study's
    /// store, at any time.
    Report(report::ReportArgs),
    /// Rerun a completed trial here from its manifest (pipeline, parameters, seed, dataset,
    /// threads, device) and compare every metric with the stored one: exit 0 when they match
    /// (exactly on CPU, or within --tolerance), 1 when they do not or the dataset changed,
    /// listing what differs in the environment (build, libtorch, device, threads, CPU). A CPU
    /// rerun is bit-identical only for the same build, libtorch, thread count and CPU
    /// instruction set (MKL, oneDNN and ATen pick kernels by AVX2/AVX-512/AMX); on another CPU
    /// the message names both, and --tolerance checks across machines.
    Reproduce(reproduce::ReproduceArgs),
    /// Create and check dataset files (synthetic CMU-MOSI, validation, summaries).
    #[command(subcommand)]
    Data(data::DataCommand),
    /// See and clear this machine's worker folder ($DECSWEEP_HOME, else ~/.cache/decsweep):
    /// stage checkpoints kept for later runs, downloaded datasets, trial outputs.
    #[command(subcommand)]
    Cache(cache::CacheCommand),
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(a) => run::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Submit(a) => client::submit(a),
        Command::Status(a) => client::status(a),
        Command::Cancel(a) => control::cancel(a),
        Command::Resume(a) => control::resume(a),
        Command::Retry(a) => control::retry(a),
        Command::Fail(a) => control::fail(a),
        Command::AddSeeds(a) => control::add_seeds(a),
        Command::Report(a) => report::run(a),
        Command::Reproduce(a) => reproduce::run(a),
        Command::Data(c) => data::run(c),
        Command::Cache(c) => cache::run(c),
    }
}

/// Reads a sweep spec file for `run` and `submit`: its canonical path and text. A file that is
/// missing, unreadable or not UTF-8 is bad input (exit 2) naming the file.
pub fn read_spec(path: &std::path::Path) -> Result<(std::path::PathBuf, String), crate::exit::BadInput> {
    let bad = |e: std::io::Error| crate::exit::BadInput(format!("{}: cannot read the sweep spec: {e}", path.display()));
    let canonical = std::fs::canonicalize(path).map_err(bad)?;
    let text = std::fs::read_to_string(&canonical).map_err(bad)?;
    Ok((canonical, text))
}

/// Checks the spec's dataset file here, where the user is, before anything is created: header,
/// tensors, shapes and values, by `decsweep_data`'s reader. The error names the path as the spec
/// wrote it, the spec, and the file (exit 2). Synthetic datasets and studies of programs have
/// no file; `submit` calls this only for a file on this machine.
pub fn check_dataset(spec: &decsweep_search::SweepSpec) -> Result<(), crate::exit::BadInput> {
    let decsweep_search::Dataset::File { written, path } = spec.dataset() else { return Ok(()) };
    decsweep_data::load(path).map(drop).map_err(|e| {
        crate::exit::BadInput(format!(
            "dataset `{written}` of {} is not a decsweep dataset file: {e}",
            spec.path().display()
        ))
    })
}

/// A coordinator error as the CLI reports it: the user's fault (a 4xx: bad spec, unknown
/// study, name conflict) exits 2.
pub fn coordinator_error(e: decsweep_coordinator::Error) -> anyhow::Error {
    if decsweep_server::status_of(&e).is_client_error() {
        crate::exit::BadInput(e.to_string()).into()
    } else {
        e.into()
    }
}
