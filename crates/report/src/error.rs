//! The one error type of the crate.

use std::path::PathBuf;

/// Why a report could not be produced or written.
///
/// Rendering happens wholly in memory before anything touches the disk, so an error never leaves
/// a half-written report behind: either every file of a run is replaced or none is.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Two input rows claim the same trial id; every number in a report must trace back to one
    /// row of `trials.csv`, so an ambiguous id is refused rather than guessed at.
    #[error("trial id {id} appears more than once in the input rows (rows {first} and {second})")]
    DuplicateTrialId { id: i64, first: usize, second: usize },

    /// The CSV encoder failed (in practice only when the in-memory buffer cannot grow).
    #[error("could not encode `{file}`: {source}")]
    Csv {
        file: &'static str,
        #[source]
        source: csv::Error,
    },

    /// A file or directory under the results directory could not be created, written or renamed.
    #[error("{action} `{}`: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ReportError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ReportError::Io { action, path: path.into(), source }
    }

    pub(crate) fn csv(file: &'static str, source: impl Into<csv::Error>) -> Self {
        ReportError::Csv { file, source: source.into() }
    }
}
