//! The state of the database's disk as the writer last saw it, for `/healthz`, `decsweep
//! status` and `decsweep run`.
//!
//! The writer records every storage error ([`Error::Storage`]: disk full, read-only, I/O
//! error) and clears it at the next commit that wrote something, which is the first proof that
//! the disk takes writes again. Nothing else in the coordinator has to ask the disk.

use std::sync::Mutex;

use serde::Serialize;

use crate::clock::rfc3339;
use crate::error::{Error, StorageProblem};

/// The last storage error the writer saw, while it lasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StorageFault {
    /// `full`, `read-only` or `io-error`.
    pub problem: StorageProblem,
    /// The error as requests get it, e.g. `storage full: database or disk is full`.
    pub error: String,
    /// When the disk first refused a write (RFC 3339, UTC), and how many writes it refused since.
    pub since: String,
    pub refused_writes: u64,
}

impl StorageFault {
    /// The fault as the open `/healthz` shows it: the problem in fixed words and no file name
    /// (the error itself may name the database's path; it goes to the log and, in 503 answers,
    /// to authenticated requests only).
    pub fn public(&self) -> StorageFault {
        let words = match self.problem {
            StorageProblem::Full => "no space left on the database's disk",
            StorageProblem::ReadOnly => "the database's file system refuses writes",
            StorageProblem::IoError => "reading or writing the database failed",
        };
        StorageFault { error: format!("storage {}: {words}", self.problem), ..self.clone() }
    }
}

/// Shared between the writer thread and the readers of the coordinator's health.
#[derive(Debug, Default)]
pub(crate) struct StorageHealth(Mutex<Option<StorageFault>>);

impl StorageHealth {
    /// Notes a failed write; errors other than storage errors say nothing about the disk.
    pub(crate) fn refused(&self, error: &Error) {
        let Some(problem) = error.storage_problem() else { return };
        let mut fault = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match fault.as_mut() {
            Some(f) if f.problem == problem => {
                f.refused_writes += 1;
                f.error = error.to_string();
            }
            _ => {
                tracing::error!(error = %error, "the database's disk refuses writes; write requests get 503 until it is fixed");
                *fault = Some(StorageFault {
                    problem,
                    error: error.to_string(),
                    since: rfc3339(now_ms()),
                    refused_writes: 1,
                });
            }
        }
    }

    /// Notes a commit that wrote something: the disk is fine again.
    pub(crate) fn wrote(&self) {
        let mut fault = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = fault.take() {
            tracing::warn!(problem = %f.problem, refused_writes = f.refused_writes, since = %f.since, "the database's disk takes writes again");
        }
    }

    pub(crate) fn current(&self) -> Option<StorageFault> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_lasts_until_a_write_succeeds_and_counts_refusals() {
        let health = StorageHealth::default();
        health.refused(&Error::BadRequest("not a disk problem".into()));
        assert_eq!(health.current(), None);
        let full = Error::Storage { problem: StorageProblem::Full, message: "database or disk is full".into() };
        health.refused(&full);
        health.refused(&full);
        let fault = health.current().unwrap();
        assert_eq!(fault.problem, StorageProblem::Full);
        assert_eq!(fault.error, "storage full: database or disk is full");
        assert_eq!(fault.refused_writes, 2);
        health.wrote();
        assert_eq!(health.current(), None);
    }

    #[test]
    fn the_public_view_names_no_path() {
        let health = StorageHealth::default();
        let io = std::io::Error::from_raw_os_error(libc::EROFS);
        health.refused(&Error::io("/srv/secret/sweeps.db-wal", io));
        let fault = health.current().unwrap();
        assert!(fault.error.contains("/srv/secret"), "the full error keeps the path: {}", fault.error);
        let public = fault.public();
        assert_eq!(public.error, "storage read-only: the database's file system refuses writes");
        assert_eq!((public.problem, public.refused_writes, &public.since), (fault.problem, 1, &fault.since));
    }
}
