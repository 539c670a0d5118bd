//! The command groups. Each module owns its clap arguments and its implementation.

mod data;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and check dataset files (synthetic CMU-MOSI, validation, summaries).
    #[command(subcommand)]
    Data(data::DataCommand),
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Data(c) => data::run(c),
    }
}
