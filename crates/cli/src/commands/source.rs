//! Where `report` and `reproduce` read a study from: its database file, or a running
//! coordinator. One set of options, so the two commands cannot drift apart.

use std::path::{Path, PathBuf};

use clap::Args;

use super::connection::{connect, Client};

#[derive(Debug, Args)]
pub struct StudySource {
    /// The study database (as written by `decsweep run` or `decsweep serve`), read without
    /// changing it: safe while a coordinator serves it.
    #[arg(long, value_name = "FILE", conflicts_with = "coordinator")]
    db: Option<PathBuf>,
    /// A running coordinator to read from.
    #[arg(long, env = "DECSWEEP_COORDINATOR", value_name = "URL")]
    coordinator: Option<String>,
    /// --token / --token-file and --ca-cert for --coordinator (crates/connect).
    #[command(flatten)]
    access: decsweep_connect::ClientArgs,
}

pub enum Source<'a> {
    /// An existing database file, to open in this process.
    Db(&'a Path),
    /// A client of the coordinator, connected with the given token and CA.
    Coordinator(Client),
}

impl StudySource {
    /// The database (which must exist) or a client of the coordinator; anything else is bad
    /// input (exit 2).
    pub fn open(&self) -> anyhow::Result<Source<'_>> {
        match (&self.db, &self.coordinator) {
            (Some(db), _) if !db.exists() => {
                Err(crate::exit::BadInput(format!("{}: no such database", db.display())).into())
            }
            (Some(db), _) => Ok(Source::Db(db)),
            (None, Some(url)) => Ok(Source::Coordinator(connect(url, &self.access)?)),
            (None, None) => Err(crate::exit::BadInput("give --db FILE or --coordinator URL".into()).into()),
        }
    }
}
