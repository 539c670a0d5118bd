//! `decsweep`: the command people type. One module per command group under `commands/`; `run`,
//! `serve`, `status` and `report` join `data` there.

// The doc comments of the argument structs are `--help` text, where `<study>` is a placeholder,
// not an HTML tag.
#![allow(rustdoc::invalid_html_tags)]

mod commands;
mod exit;
mod logging;

use std::process::ExitCode;

use clap::Parser;

/// Hyperparameter sweeps of the multimodal DEC sentiment pipeline, and the tools around them.
///
/// Logs go to stderr (filter with RUST_LOG, e.g. RUST_LOG=decsweep_data=debug, or -v); results
/// go to stdout. Exit status: 0 ok, 1 failure, 2 bad input (usage, or a missing or invalid file).
#[derive(Debug, Parser)]
#[command(name = "decsweep", version, propagate_version = true)]
struct Cli {
    /// Format of the log lines on stderr.
    #[arg(long, value_enum, global = true, default_value = "text", value_name = "FORMAT")]
    log_format: logging::LogFormat,

    /// More log lines on stderr: -v info (the default except under `run`, which shows warnings
    /// only so its progress bar stays readable), -vv debug. RUST_LOG, when set, wins.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> ExitCode {
    // clap exits 2 on usage errors by itself.
    let cli = Cli::parse();
    let quiet = matches!(cli.command, commands::Command::Run(_));
    logging::init(cli.log_format, logging::default_level(quiet, cli.verbose));
    match commands::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(exit::code(&error))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
