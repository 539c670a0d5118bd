//! How a coordinator runs: the core's options (the HTTP side's are `decsweep-server`'s
//! `ServeOptions`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::{checkpoints, dataset, Clock, NoPruner, Pruner, SystemClock};

/// How a coordinator runs. `Default` suits a single machine.
#[derive(Clone, Debug)]
pub struct CoordinatorOptions {
    /// A lease expires this long after it was granted or last extended (heartbeat, progress).
    pub lease_ttl: Duration,
    /// Where datasets are stored by hash. Default: `<db file name>.data/` beside the database.
    pub data_dir: Option<PathBuf>,
    /// How often overdue leases are expired in the background (they are also expired before
    /// every lease).
    pub expiry_interval: Duration,
    /// The longest a lease request waits for work (`wait_ms` is capped at this).
    pub max_wait: Duration,
    /// Time for lease deadlines; tests inject a [`crate::ManualClock`].
    pub clock: Arc<dyn Clock>,
    /// Decides after each reported epoch whether a trial goes on, for studies whose spec has
    /// no `[pruner]` (a study's own `[pruner]` wins unless `pruner_override`).
    pub pruner: Arc<dyn Pruner>,
    /// Use `pruner` for every study, ignoring the specs' `[pruner]` sections.
    pub pruner_override: bool,
    /// The largest trial checkpoint an upload may carry (413 past it; the trial goes on).
    pub max_checkpoint_bytes: u64,
    /// The largest dataset `PUT /v1/datasets/{sha256}` accepts (413 past it).
    pub max_dataset_bytes: u64,
    /// The only folder a study created over HTTP may name a dataset file in (`serve
    /// --data-root`); without it such a study must upload its dataset. In-process callers of
    /// [`crate::Coordinator::create_study`] read any path.
    pub data_root: Option<PathBuf>,
    /// What the database's lock file names this coordinator as (`decsweep serve`), so a second
    /// one refused by the lock can say what to stop; pid, host and start time are always named.
    pub lock_command: Option<String>,
}

impl Default for CoordinatorOptions {
    fn default() -> Self {
        CoordinatorOptions {
            lease_ttl: Duration::from_secs(60),
            data_dir: None,
            expiry_interval: Duration::from_secs(1),
            max_wait: Duration::from_secs(60),
            clock: Arc::new(SystemClock::new()),
            pruner: Arc::new(NoPruner),
            pruner_override: false,
            max_checkpoint_bytes: checkpoints::DEFAULT_MAX_CHECKPOINT_BYTES,
            max_dataset_bytes: dataset::DEFAULT_MAX_DATASET_BYTES,
            data_root: None,
            lock_command: None,
        }
    }
}

/// The default data directory of a database: `<file name>.data` beside it.
pub fn default_data_dir(db_path: &Path) -> PathBuf {
    let name = db_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "decsweep.db".into());
    db_path.with_file_name(format!("{name}.data"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_dir_sits_beside_the_database() {
        assert_eq!(default_data_dir(Path::new("/x/sweeps.db")), PathBuf::from("/x/sweeps.db.data"));
        assert_eq!(default_data_dir(Path::new("s.db")), PathBuf::from("s.db.data"));
    }
}
