//! The names of a trial's states ([`TrialStatus`]) and of how a lease ended ([`LeaseOutcome`]):
//! the same words in JSON, in the store and in reports. Which moves between them are allowed is
//! the coordinator's (`crates/coordinator/src/lifecycle.rs`); this module only names them.

use serde::{Deserialize, Serialize};

/// Lifecycle of a trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Pruned,
    /// Stopped by the user (`cancel`) before it finished: terminal, like pruned, and left out of
    /// summaries.
    Cancelled,
}

impl TrialStatus {
    pub const ALL: [TrialStatus; 6] = [
        TrialStatus::Pending,
        TrialStatus::Running,
        TrialStatus::Completed,
        TrialStatus::Failed,
        TrialStatus::Pruned,
        TrialStatus::Cancelled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TrialStatus::Pending => "pending",
            TrialStatus::Running => "running",
            TrialStatus::Completed => "completed",
            TrialStatus::Failed => "failed",
            TrialStatus::Pruned => "pruned",
            TrialStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the trial will not run again.
    pub fn is_terminal(self) -> bool {
        matches!(self, TrialStatus::Completed | TrialStatus::Failed | TrialStatus::Pruned | TrialStatus::Cancelled)
    }
}

impl std::fmt::Display for TrialStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TrialStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TrialStatus::ALL.into_iter().find(|t| t.name() == s).ok_or_else(|| {
            let names: Vec<&str> = TrialStatus::ALL.iter().map(|t| t.name()).collect();
            format!("unknown trial status `{s}`; expected one of: {}", names.join(", "))
        })
    }
}

/// How a lease ended (`None` while it is active). The lifecycle that sets each one is told in
/// `decsweep_coordinator::lifecycle`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseOutcome {
    /// Its deadline passed; it may still report while nobody has leased the trial since.
    Expired,
    Completed,
    /// Failed for good: no retries left, or the failure was not retryable.
    Failed,
    /// Failed, and the trial went back to the queue.
    Released,
    Pruned,
    /// Given back unfinished by a worker that is stopping.
    Returned,
    /// The user cancelled the study while this lease held the trial.
    Cancelled,
    /// The user failed the trial while this lease held it.
    FailedByUser,
}

impl LeaseOutcome {
    pub const ALL: [LeaseOutcome; 8] = [
        LeaseOutcome::Expired,
        LeaseOutcome::Completed,
        LeaseOutcome::Failed,
        LeaseOutcome::Released,
        LeaseOutcome::Pruned,
        LeaseOutcome::Returned,
        LeaseOutcome::Cancelled,
        LeaseOutcome::FailedByUser,
    ];

    /// The name stored in `leases.outcome` and sent in JSON.
    pub fn name(self) -> &'static str {
        match self {
            LeaseOutcome::Expired => "expired",
            LeaseOutcome::Completed => "completed",
            LeaseOutcome::Failed => "failed",
            LeaseOutcome::Released => "released",
            LeaseOutcome::Pruned => "pruned",
            LeaseOutcome::Returned => "returned",
            LeaseOutcome::Cancelled => "cancelled",
            LeaseOutcome::FailedByUser => "failed_by_user",
        }
    }
}

impl std::fmt::Display for LeaseOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for LeaseOutcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LeaseOutcome::ALL.into_iter().find(|o| o.name() == s).ok_or_else(|| {
            let names: Vec<&str> = LeaseOutcome::ALL.iter().map(|o| o.name()).collect();
            format!("unknown lease outcome `{s}`; expected one of: {}", names.join(", "))
        })
    }
}

/// Both enums are stored by name; a name this build does not know reads as an error.
#[cfg(feature = "rusqlite")]
mod sql {
    use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

    use super::{LeaseOutcome, TrialStatus};

    fn by_name<T: std::str::FromStr<Err = String>>(v: ValueRef<'_>) -> FromSqlResult<T> {
        v.as_str()?.parse().map_err(|e: String| FromSqlError::Other(e.into()))
    }

    impl ToSql for TrialStatus {
        fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
            Ok(ToSqlOutput::from(self.name()))
        }
    }

    impl FromSql for TrialStatus {
        fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
            by_name(v)
        }
    }

    impl ToSql for LeaseOutcome {
        fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
            Ok(ToSqlOutput::from(self.name()))
        }
    }

    impl FromSql for LeaseOutcome {
        fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
            by_name(v)
        }
    }
}
