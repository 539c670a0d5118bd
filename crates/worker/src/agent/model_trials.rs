//! The runner of built-in model trials: `decsweep-worker train --supervised` in a child process
//! (AE → DEC → fine-tune, or the baseline), spoken to through crate::protocol.
//!
//! A trial runs in its own process so that concurrent slots keep their own torch generator state
//! (every stage seeds it), a crash of libtorch costs one trial rather than the agent, and a
//! pruned or abandoned trial is stopped by closing a pipe.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;

use decsweep_api::wire::{EpochProgress, ProgressAction, TrialJob};
use decsweep_api::Stage;

use super::runner::{tail_of, Outcome, Reporter, Runner, Trial};
use super::transfer::DatasetFailure;
use crate::program_env::ProgramEnv;
use crate::protocol::{ChildEvent, FailureKind, Reply};

/// Runs model trials on one slot's device.
pub(crate) struct ModelTrials {
    /// `cpu`, `cuda` or `cuda:K`.
    pub device: String,
    /// CPU threads of the child.
    pub threads: usize,
    /// Where `stages/` (shared stage checkpoints) and `trials/` (outputs) are.
    pub home: PathBuf,
    /// Save trial checkpoints, upload them, and resume from the coordinator's.
    pub resume: bool,
    /// The worker's variables no child inherits.
    pub program_env: Arc<ProgramEnv>,
}

impl Runner for ModelTrials {
    fn run(&self, trial: &Trial<'_>) -> Outcome {
        let lease = trial.lease;
        let TrialJob::Model { pipeline, params } = &lease.job else { unreachable!("model job") };
        let data = match &lease.dataset {
            Some(d) => match trial.transfer.fetch_dataset(&lease.study, d) {
                Ok(path) => path,
                Err(e) => {
                    let retryable = matches!(e, DatasetFailure::Transfer(_));
                    return Outcome::Failed { reason: e.to_string(), retryable };
                }
            },
            None => return Outcome::Failed { reason: "the lease names no dataset".into(), retryable: false },
        };
        let out = self.home.join("trials").join(format!("{}-{}", lease.trial_id, lease.attempt));
        let _ = fs::remove_dir_all(&out);
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => return Outcome::Failed { reason: format!("locating decsweep-worker: {e}"), retryable: true },
        };
        let checkpoint = self.resume.then(|| trial.transfer.prepare_checkpoint(lease));
        let mut cmd = Command::new(exe);
        self.program_env.apply(&mut cmd);
        cmd.arg("train")
            .arg("--supervised")
            .arg("--data")
            .arg(&data)
            .args(["--pipeline", pipeline.name(), "--seed", &lease.seed.to_string()])
            .args(["--device", &self.device, "--threads", &self.threads.to_string()])
            .arg("--cache")
            .arg(self.home.join("stages"))
            .arg("--out")
            .arg(&out);
        for (name, value) in params.to_map() {
            cmd.arg("--set").arg(format!("{name}={value}"));
        }
        if let Some(path) = &checkpoint {
            cmd.arg("--checkpoint").arg(path).args(["--checkpoint-every", &lease.checkpoint_every_s.to_string()]);
        }
        let mut child = match cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
            Ok(c) => c,
            Err(e) => return Outcome::Failed { reason: format!("starting the trial: {e}"), retryable: true },
        };
        let stderr_tail = tail_of(child.stderr.take().expect("piped"), lease.trial_id);
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        self.relay_progress(trial, stdout, stdin, &mut child);
        let status = child.wait();
        let stderr_tail = stderr_tail.join().unwrap_or_default();
        if trial.worker_stopping() {
            return Outcome::Stopped;
        }
        match status {
            Ok(s) if s.success() => read_model_outcome(&out),
            // SIGTERM reached the trial itself (a preempting scheduler signals every process):
            // its state is saved and uploaded, so it goes back to the queue to resume.
            Ok(s) if s.code() == Some(i32::from(crate::EXIT_INTERRUPTED)) => Outcome::Stopped,
            Ok(s) => {
                let failed = fs::read_to_string(out.join("error.json")).ok().and_then(|t| ChildEvent::from_line(&t));
                let (kind, message) = match failed {
                    Some(ChildEvent::Failed { kind, message }) => (kind, message),
                    _ => (FailureKind::Error, format!("{s}: {stderr_tail}")),
                };
                Outcome::Failed { reason: message, retryable: kind.retryable() }
            }
            Err(e) => Outcome::Failed { reason: format!("waiting for the trial: {e}"), retryable: true },
        }
    }
}

impl ModelTrials {
    /// Forwards every epoch the child prints to the coordinator and answers the child with the
    /// coordinator's decision; uploads the checkpoints it saves. Stops the child when the lease
    /// is lost or the worker shuts down.
    fn relay_progress(&self, trial: &Trial<'_>, stdout: impl BufRead, mut stdin: ChildStdin, child: &mut Child) {
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            let epoch = match ChildEvent::from_line(&line) {
                Some(ChildEvent::Epoch(epoch)) => epoch,
                Some(ChildEvent::Checkpoint(saved)) => {
                    trial.report.checkpoint(&saved);
                    continue;
                }
                _ => {
                    tracing::debug!(%line, "ignoring a non-progress line from the trial");
                    continue;
                }
            };
            let reply = reply_to_epoch(&trial.report, &epoch, trial.worker_stopping(), self.resume);
            if reply.send(&mut stdin).is_err() {
                break;
            }
        }
        drop(stdin);
        if trial.worker_stopping() || trial.report.is_over() {
            let _ = child.kill();
        }
    }
}

/// What a trial is told after an epoch: the coordinator's answer to it, `Stop` once the lease is
/// over, `Suspend` when the worker is shutting down and the trial's state can be kept.
pub(super) fn reply_to_epoch(report: &Reporter<'_>, epoch: &EpochProgress, stopping: bool, resume: bool) -> Reply {
    if report.is_over() || (stopping && !resume) {
        return Reply::Stop;
    }
    // Shutting down with resume on (preempted), the epoch is still recorded: the state the
    // trial saves next includes it, and the next lease goes on after it.
    match report.epoch(epoch) {
        ProgressAction::Stop => Reply::Stop,
        // The trial saves its state (uploaded as it reports it) and exits 75; the lease is
        // then returned.
        _ if stopping => Reply::Suspend,
        ProgressAction::Prune => Reply::Prune,
        ProgressAction::Continue => Reply::Continue,
    }
}

/// Reads `metrics.json` of a finished `train --supervised` run.
pub(super) fn read_model_outcome(out: &Path) -> Outcome {
    let text = match fs::read_to_string(out.join("metrics.json")) {
        Ok(t) => t,
        Err(e) => return Outcome::Failed { reason: format!("the trial wrote no metrics.json: {e}"), retryable: true },
    };
    let m: serde_json::Value = match serde_json::from_str(&text) {
        Ok(m) => m,
        Err(e) => return Outcome::Failed { reason: format!("unreadable metrics.json: {e}"), retryable: true },
    };
    let metrics = decsweep_api::wire::flatten_metrics(&m);
    if m["status"] == "pruned" {
        let stage = serde_json::from_value(m["pruned_stage"].clone()).unwrap_or(Stage::Finetune);
        let epoch = m["pruned_epoch"].as_u64().unwrap_or(0) as u32;
        Outcome::Pruned { stage, epoch, metrics }
    } else {
        Outcome::Completed { metrics, manifest: Some(m["manifest"].clone()).filter(|v| v.is_object()) }
    }
}
