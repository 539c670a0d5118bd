//! The seam between the lease loop and what runs a trial: a [`Runner`] is given one leased
//! [`Trial`] (the lease, a [`Reporter`] for its progress and checkpoints, the transfer of its
//! data, the worker's stop flag) and returns one [`Outcome`].
//!
//! The contract, for every runner:
//! - stop the trial soon after [`Reporter::is_over`] turns true (the lease was lost or the user
//!   stopped the trial) or the worker's stop flag is raised, and return [`Outcome::Stopped`] in
//!   the latter case, after saving what can resume the trial;
//! - report progress only through the [`Reporter`], which keeps the lease's state;
//! - never report the outcome itself: the lease loop does, once, and only if the lease stands.
//!
//! A runner knows nothing of heartbeats, lease requests or retries of outcomes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use decsweep_api::wire::{EpochProgress, Lease, ProgressAction, ProgressReply};
use decsweep_api::Stage;

use super::lease_state::{LeaseEvent, LeaseWatch};
use super::transfer::Transfer;
use crate::protocol::SavedCheckpoint;
use decsweep_connect::{ApiCallError, Client};

/// Runs leased trials of one kind (built-in model trials, command programs, ...).
pub(crate) trait Runner {
    /// Runs `trial` to its end, or until it is to stop (see the module's doc).
    fn run(&self, trial: &Trial<'_>) -> Outcome;
}

/// One leased trial, as a runner sees it.
pub(crate) struct Trial<'a> {
    pub lease: &'a Lease,
    pub report: Reporter<'a>,
    pub transfer: &'a Transfer,
    /// Raised by SIGTERM or SIGINT: the worker is shutting down.
    pub stopping: &'a AtomicBool,
}

impl Trial<'_> {
    pub(crate) fn worker_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }
}

/// How a runner tells the coordinator how its trial goes: per-epoch progress (answered with the
/// pruner's decision) and saved checkpoints.
pub(crate) struct Reporter<'a> {
    pub client: &'a Client,
    pub lease: &'a Lease,
    pub watch: &'a LeaseWatch,
    pub transfer: &'a Transfer,
}

impl Reporter<'_> {
    /// Sends one epoch and says what to do next: `Stop` when the lease is over (the user stopped
    /// the trial, or it is someone else's now: both recorded in the lease's state), `Prune`,
    /// or `Continue`, also when the coordinator is unreachable for now (heartbeats then decide
    /// whether the lease survives).
    pub(crate) fn epoch(&self, epoch: &EpochProgress) -> ProgressAction {
        match self.client.progress(&self.lease.lease_id, epoch) {
            Ok(ProgressReply { action: ProgressAction::Stop }) => {
                self.watch.record(LeaseEvent::Halted);
                ProgressAction::Stop
            }
            Ok(ProgressReply { action }) => action,
            Err(ApiCallError::Conflict(_)) => {
                self.watch.record(LeaseEvent::Lost);
                ProgressAction::Stop
            }
            Err(e) => {
                tracing::warn!(error = %e, "progress not delivered");
                ProgressAction::Continue
            }
        }
    }

    /// Uploads a state the trial saved; whether it was (a failure is logged, and the trial goes
    /// on).
    pub(crate) fn checkpoint(&self, saved: &SavedCheckpoint) -> bool {
        self.transfer.upload_checkpoint(self.lease, saved)
    }

    /// Whether the lease ended under the trial (lost, or stopped by the user).
    pub(crate) fn is_over(&self) -> bool {
        self.watch.is_over()
    }
}

/// How a trial ended, as the lease loop reports it.
pub(crate) enum Outcome {
    Completed {
        metrics: BTreeMap<String, f64>,
        /// `metrics.json`'s manifest, for `decsweep reproduce`.
        manifest: Option<serde_json::Value>,
    },
    Pruned {
        stage: Stage,
        epoch: u32,
        metrics: BTreeMap<String, f64>,
    },
    Failed {
        reason: String,
        retryable: bool,
    },
    /// The agent is stopping and stopped the trial: it goes back to the queue.
    Stopped,
}

impl Outcome {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Outcome::Completed { .. } => "completed",
            Outcome::Pruned { .. } => "pruned",
            Outcome::Failed { .. } => "failed",
            Outcome::Stopped => "stopped",
        }
    }
}

/// Copies a child's stderr to ours (prefixed with the trial) and keeps its last lines for
/// failure messages.
pub(crate) fn tail_of(stderr: impl Read + Send + 'static, trial: i64) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut tail: Vec<String> = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            tracing::debug!(trial, "{line}");
            if tail.len() == 8 {
                tail.remove(0);
            }
            tail.push(line);
        }
        tail.join("\n")
    })
}
