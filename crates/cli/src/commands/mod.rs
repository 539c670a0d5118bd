//! The command groups. Each module owns its clap arguments and its implementation.

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
    /// more points. Finished trials keep their results.
    Cancel(control::CancelArgs),
    /// Put a study's failed trials back in the queue (or only --trial ID). Each gets the study's
    /// `retries` again; its attempt count goes on from where it was.
    Retry(control::RetryArgs),
    /// Mark a pending or running trial failed (its worker stops it). Finished trials cannot be
    /// failed; `retry` brings a failed trial back.
    Fail(control::FailArgs),
    /// Add seeds to a study: every configuration it has (for TPE: proposed so far) × each new
    /// seed, as pending trials. Seeds it already has are skipped and listed.
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
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(a) => run::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Submit(a) => client::submit(a),
        Command::Status(a) => client::status(a),
        Command::Cancel(a) => control::cancel(a),
        Command::Retry(a) => control::retry(a),
        Command::Fail(a) => control::fail(a),
        Command::AddSeeds(a) => control::add_seeds(a),
        Command::Report(a) => report::run(a),
        Command::Reproduce(a) => reproduce::run(a),
        Command::Data(c) => data::run(c),
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

/// A coordinator error as the CLI reports it: the user's fault (a 4xx: bad spec, unknown
/// study, name conflict) exits 2.
pub fn coordinator_error(e: decsweep_coordinator::Error) -> anyhow::Error {
    if decsweep_server::status_of(&e).is_client_error() {
        crate::exit::BadInput(e.to_string()).into()
    } else {
        e.into()
    }
}
