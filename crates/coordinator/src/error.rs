//! The one error type of the coordinator core. It says what went wrong in the core's terms; the
//! HTTP server maps each variant to a status (`decsweep_server::status_of`).

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

    /// The trial has no stored checkpoint (none was saved, or it ended).
    #[error("trial {0} has no checkpoint")]
    CheckpointNotFound(i64),

    /// A well-formed request a rule refuses: a file that is not a dataset, a dataset path the
    /// coordinator may not read, a study that would grow past its trial limit.
    #[error("{0}")]
    Unprocessable(String),

    /// An upload over a limit (a checkpoint past `--max-checkpoint-mb`).
    #[error("too large: {0}")]
    TooLarge(String),

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
    Sqlite(rusqlite::Error),

    /// The database's disk refused a write: full, read-only or failing. Nothing was changed;
    /// the same request succeeds once the disk is fixed (the server answers 503). Built from
    /// SQLite's `SQLITE_FULL`, `SQLITE_READONLY` and `SQLITE_IOERR` (WAL and shared-memory ones
    /// included) and from `ENOSPC` / `EROFS`; see [`StorageProblem`].
    #[error("storage {problem}: {message}")]
    Storage { problem: StorageProblem, message: String },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Another coordinator holds the database's lock (`<db>.lock`, see `src/lock.rs`): every
    /// exactly-once guarantee assumes one writer, so a second one does not start.
    #[error("{}", crate::lock::refusal(db, lock, holder.as_deref()))]
    Locked { db: PathBuf, lock: PathBuf, holder: Option<Box<crate::lock::LockHolder>> },

    /// The store's writer thread is gone (the coordinator is shutting down).
    #[error("the store is shut down")]
    Closed,

    /// A blocking task panicked or was cancelled.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The individual problems behind the error (every spec error), for `ApiError::details`.
    pub fn details(&self) -> Vec<String> {
        match self {
            Error::Spec { details } => details.clone(),
            _ => Vec::new(),
        }
    }

    /// An I/O error on `path`; a full or read-only file system is a [`Error::Storage`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        let path = path.into();
        match StorageProblem::of_os_error(source.raw_os_error()) {
            Some(problem) => Error::Storage { problem, message: format!("{}: {source}", path.display()) },
            None => Error::Io { path, source },
        }
    }

    /// The disk problem behind this error, if it is one.
    pub fn storage_problem(&self) -> Option<StorageProblem> {
        match self {
            Error::Storage { problem, .. } => Some(*problem),
            _ => None,
        }
    }

    /// A copy for delivering one failure (a failed commit) to every request of a batch.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Sqlite(e) => Error::Internal(format!("sqlite: {e}")),
            Error::Storage { problem, message } => Error::Storage { problem: *problem, message: message.clone() },
            Error::Io { path, source } => {
                Error::Io { path: path.clone(), source: std::io::Error::new(source.kind(), source.to_string()) }
            }
            other => Error::Internal(other.to_string()),
        }
    }
}

/// What is wrong with the database's disk, as far as SQLite or the OS tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StorageProblem {
    /// No space left (`SQLITE_FULL`, `ENOSPC`).
    Full,
    /// The file or its file system may not be written (`SQLITE_READONLY`, `EROFS`).
    ReadOnly,
    /// A read or write failed (`SQLITE_IOERR` and its extended codes, the WAL's included).
    IoError,
}

impl std::fmt::Display for StorageProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StorageProblem::Full => "full",
            StorageProblem::ReadOnly => "read-only",
            StorageProblem::IoError => "I/O error",
        })
    }
}

impl StorageProblem {
    /// SQLite's primary result code → the disk problem it reports, if any. Extended codes
    /// (`SQLITE_IOERR_WRITE`, `SQLITE_IOERR_SHMSIZE`, `SQLITE_READONLY_DBMOVED`, …) share their
    /// primary code, which is what rusqlite's `ErrorCode` holds.
    fn of_sqlite(code: rusqlite::ErrorCode) -> Option<StorageProblem> {
        match code {
            rusqlite::ErrorCode::DiskFull => Some(StorageProblem::Full),
            rusqlite::ErrorCode::ReadOnly => Some(StorageProblem::ReadOnly),
            rusqlite::ErrorCode::SystemIoFailure => Some(StorageProblem::IoError),
            _ => None,
        }
    }

    fn of_os_error(errno: Option<i32>) -> Option<StorageProblem> {
        match errno? {
            libc::ENOSPC | libc::EDQUOT => Some(StorageProblem::Full),
            libc::EROFS => Some(StorageProblem::ReadOnly),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        let problem = match &e {
            rusqlite::Error::SqliteFailure(code, _) => StorageProblem::of_sqlite(code.code),
            _ => None,
        };
        match problem {
            Some(problem) => Error::Storage { problem, message: e.to_string() },
            None => Error::Sqlite(e),
        }
    }
}

impl Error {
    /// A storage error as the OS saw it: SQLite reports every failed write as `SQLITE_IOERR`,
    /// also when the kernel refused it because the file system went read-only (an ext4 error
    /// with `errors=remount-ro`) or filled up. The errno of the connection's last system call
    /// tells which, and is added to the message. Call it on the connection that failed, before
    /// it runs anything else.
    pub(crate) fn with_os_cause(self, conn: &rusqlite::Connection) -> Error {
        let Error::Storage { problem: StorageProblem::IoError, message } = self else { return self };
        // SAFETY: reads the errno SQLite saved for this open connection; no other state.
        let errno = unsafe { rusqlite::ffi::sqlite3_system_errno(conn.handle()) };
        if errno == 0 {
            return Error::Storage { problem: StorageProblem::IoError, message };
        }
        let os = std::io::Error::from_raw_os_error(errno);
        let problem = StorageProblem::of_os_error(Some(errno)).unwrap_or(StorageProblem::IoError);
        Error::Storage { problem, message: format!("{message} ({os})") }
    }
}

/// Result with the coordinator's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn sqlite_disk_errors_become_storage_errors_that_say_what_is_wrong() {
        let cases = [
            (rusqlite::ffi::SQLITE_FULL, StorageProblem::Full, "storage full: "),
            (rusqlite::ffi::SQLITE_READONLY, StorageProblem::ReadOnly, "storage read-only: "),
            (rusqlite::ffi::SQLITE_READONLY_DBMOVED, StorageProblem::ReadOnly, "storage read-only: "),
            (rusqlite::ffi::SQLITE_IOERR_WRITE, StorageProblem::IoError, "storage I/O error: "),
            (rusqlite::ffi::SQLITE_IOERR_SHMSIZE, StorageProblem::IoError, "storage I/O error: "),
            (rusqlite::ffi::SQLITE_IOERR_FSYNC, StorageProblem::IoError, "storage I/O error: "),
        ];
        for (code, problem, prefix) in cases {
            let e = Error::from(sqlite_failure(code));
            assert_eq!(e.storage_problem(), Some(problem), "code {code}: {e:?}");
            assert!(e.to_string().starts_with(prefix), "code {code}: {e}");
            assert!(matches!(e, Error::Storage { .. }), "the server answers these 503");
            assert_eq!(e.duplicate().to_string(), e.to_string(), "every request of a batch hears the same");
        }
        let constraint = Error::from(sqlite_failure(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE));
        assert!(matches!(constraint, Error::Sqlite(_)), "other SQLite errors stay internal: {constraint:?}");
    }

    #[test]
    fn full_and_read_only_file_systems_are_storage_errors() {
        let full = Error::io("/db/x.data", std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(full.storage_problem(), Some(StorageProblem::Full));
        assert!(full.to_string().starts_with("storage full: /db/x.data: "), "{full}");
        let ro = Error::io("/db/x.data", std::io::Error::from_raw_os_error(libc::EROFS));
        assert!(ro.to_string().starts_with("storage read-only: "), "{ro}");
        let other = Error::io("/db/x.data", std::io::Error::from_raw_os_error(libc::ENOENT));
        assert!(matches!(other, Error::Io { .. }));
    }

    #[test]
    fn spec_errors_keep_every_line() {
        let e = Error::Spec { details: vec!["s.toml:1:1: a".into(), "s.toml:2:3: b".into()] };
        assert_eq!(e.details().len(), 2);
        assert!(e.to_string().contains("s.toml:2:3: b"));
    }
}
