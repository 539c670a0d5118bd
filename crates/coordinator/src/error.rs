//! The one error type of the coordinator. Each variant knows the HTTP status it answers with
//! (see [`Error::status`]), so the store, the study engine and the HTTP layer share it.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can go wrong in the coordinator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The sweep spec does not validate; one `path:line:col: message` per problem.
    #[error("the sweep spec has {} problem(s):\n{}", details.len(), details.join("\n"))]
    Spec { details: Vec<String> },

    /// A request body, path or query parameter is malformed.
    #[error("{0}")]
    BadRequest(String),

    /// A study of this name exists with a different spec.
    #[error("study `{name}` already exists with a different spec; choose another name or submit the same spec text")]
    StudyConflict { name: String },

    #[error("no study named `{0}`")]
    StudyNotFound(String),

    #[error("no trial with id {0}")]
    TrialNotFound(i64),

    #[error("no lease `{0}`")]
    LeaseNotFound(String),

    /// `retry --trial ID` named a trial of another study.
    #[error("study `{study}` has no trial with id {trial_id}")]
    TrialNotInStudy { study: String, trial_id: i64 },

    /// A user's control does not apply to the trial's state (failing a completed trial,
    /// retrying one that has not failed).
    #[error("{0}")]
    WrongState(String),

    /// The lease exists but may no longer change its trial.
    #[error("lease `{lease_id}` may not change trial {trial_id}: {reason}")]
    LeaseConflict { lease_id: String, trial_id: i64, reason: String },

    #[error("no dataset with sha256 `{0}`")]
    DatasetNotFound(String),

    /// The dataset of a new study could not be stored.
    #[error("dataset `{}`: {message}", path.display())]
    Dataset { path: PathBuf, message: String },

    /// The database was written by a newer decsweep.
    #[error(
        "database {} has schema version {found}, but this decsweep supports at most {supported}; \
         upgrade decsweep (never downgrade a database)",
        path.display()
    )]
    SchemaTooNew { path: PathBuf, found: i64, supported: i64 },

    /// A row in the database does not decode; the database was edited by hand or is corrupt.
    #[error("corrupt row in the database: {0}")]
    Corrupt(String),

    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// `serve` was asked to listen beyond loopback without a bearer token.
    #[error(
        "refusing to serve on {addr} without a bearer token: anything but a loopback address needs \
         one (set a token, or bind 127.0.0.1)"
    )]
    InsecureBind { addr: SocketAddr },

    #[error("missing or wrong bearer token")]
    Unauthorized,

    /// The store's writer thread is gone (the coordinator is shutting down).
    #[error("the store is shut down")]
    Closed,

    /// A blocking task panicked or was cancelled.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The HTTP status code this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            Error::Spec { .. } | Error::BadRequest(_) => 400,
            Error::Unauthorized => 401,
            Error::StudyNotFound(_)
            | Error::TrialNotFound(_)
            | Error::TrialNotInStudy { .. }
            | Error::LeaseNotFound(_)
            | Error::DatasetNotFound(_) => 404,
            Error::StudyConflict { .. } | Error::LeaseConflict { .. } | Error::WrongState(_) => 409,
            Error::Closed => 503,
            Error::Dataset { .. }
            | Error::SchemaTooNew { .. }
            | Error::Corrupt(_)
            | Error::Sqlite(_)
            | Error::Io { .. }
            | Error::InsecureBind { .. }
            | Error::Internal(_) => 500,
        }
    }

    /// The individual problems behind the error (every spec error), for `ApiError::details`.
    pub fn details(&self) -> Vec<String> {
        match self {
            Error::Spec { details } => details.clone(),
            _ => Vec::new(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }

    /// A copy for delivering one failure (a failed commit) to every request of a batch.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Sqlite(e) => Error::Internal(format!("sqlite: {e}")),
            Error::Io { path, source } => {
                Error::Io { path: path.clone(), source: std::io::Error::new(source.kind(), source.to_string()) }
            }
            other => Error::Internal(other.to_string()),
        }
    }
}

/// Result with the coordinator's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_api_contract() {
        assert_eq!(Error::Spec { details: vec!["a:1:1: x".into()] }.status(), 400);
        assert_eq!(Error::StudyConflict { name: "s".into() }.status(), 409);
        let conflict = Error::LeaseConflict { lease_id: "l".into(), trial_id: 1, reason: "re-leased".into() };
        assert_eq!(conflict.status(), 409);
        assert_eq!(Error::LeaseNotFound("l".into()).status(), 404);
        assert_eq!(Error::TrialNotInStudy { study: "s".into(), trial_id: 3 }.status(), 404);
        assert_eq!(Error::WrongState("trial 3 is completed".into()).status(), 409);
        assert_eq!(Error::Unauthorized.status(), 401);
        assert_eq!(Error::Closed.status(), 503);
    }

    #[test]
    fn spec_errors_keep_every_line() {
        let e = Error::Spec { details: vec!["s.toml:1:1: a".into(), "s.toml:2:3: b".into()] };
        assert_eq!(e.details().len(), 2);
        assert!(e.to_string().contains("s.toml:2:3: b"));
    }
}
