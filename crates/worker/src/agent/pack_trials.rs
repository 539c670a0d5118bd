//! The runner of a pack: the model trials of one lease answer (`--pack`) trained together by one
//! `decsweep-worker train-pack --supervised` child (crate::pack_trial), each member keeping its
//! own lease.
//!
//! Each member's epochs go to its own [`Reporter`] and the answer goes back to that member
//! alone: a member that is pruned, cancelled or whose lease is lost stops, the child drops it at
//! that epoch boundary and the others go on (the log says the pack shrank). On the worker's stop
//! every member saves its state (uploaded with its own lease) and returns one [`Outcome`] each.
//! A pack whose child ran out of device memory is [`PackOutcome::OutOfMemory`]: the lease loop
//! gives every lease back and asks for fewer trials next time.
//!
//! It never reports outcomes itself: the lease loop does, one per lease.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};

use decsweep_api::pack::PackKey;
use decsweep_api::wire::{Lease, TrialJob};

use super::model_trials::{read_model_outcome, reply_to_epoch, ModelTrials};
use super::runner::{tail_of, Outcome, Reporter};
use super::transfer::{DatasetFailure, Transfer};
use crate::protocol::{ChildEvent, FailureKind, Reply};
use decsweep_api::pack::{PackFile, PackFileMember};

/// The leases of one pack, as the pack runner sees them: the `i`th report is the `i`th lease's.
pub(crate) struct PackRun<'a> {
    pub leases: &'a [Lease],
    pub reports: Vec<Reporter<'a>>,
    pub transfer: &'a Transfer,
    /// Raised by SIGTERM or SIGINT: the worker is shutting down.
    pub stopping: &'a std::sync::atomic::AtomicBool,
}

/// How a pack ended.
pub(crate) enum PackOutcome {
    /// One outcome per lease, in the leases' order.
    Members(Vec<Outcome>),
    /// The pack did not fit the device: nothing was recorded; fewer members might fit.
    OutOfMemory(String),
}

/// Refuses a lease answer whose trials could not be trained together: a trial that is not a
/// model trial, or trials that disagree on the pack key or on where they resume. The message
/// names the trials.
pub(crate) fn check_pack(leases: &[Lease]) -> Result<(), String> {
    let key_of = |l: &Lease| -> Result<PackKey, String> {
        let dataset = l.dataset.as_ref().map_or("", |d| d.sha256.as_str());
        PackKey::of_job(&l.job, dataset)
            .ok_or_else(|| format!("trial {} is a command trial, which is never packed", l.trial_id))
    };
    let Some(first) = leases.first() else { return Ok(()) };
    let key = key_of(first)?;
    let resume_of = |l: &Lease| l.resume.as_ref().map(|r| (r.stage, r.epoch));
    for other in &leases[1..] {
        if let Some(why) = key.difference(&key_of(other)?) {
            return Err(format!(
                "trials {} and {} disagree on the pack key ({why}): they cannot be trained together",
                first.trial_id, other.trial_id
            ));
        }
        if resume_of(first) != resume_of(other) {
            return Err(format!(
                "trials {} and {} resume from different points ({:?} vs {:?}): they cannot be trained together",
                first.trial_id,
                other.trial_id,
                resume_of(first),
                resume_of(other)
            ));
        }
    }
    Ok(())
}

impl ModelTrials {
    /// Trains the pack in one child; see the module's doc.
    pub(crate) fn run_pack(&self, pack: &PackRun<'_>) -> PackOutcome {
        let all_failed = |reason: String, retryable: bool| {
            PackOutcome::Members(
                pack.leases.iter().map(|_| Outcome::Failed { reason: reason.clone(), retryable }).collect(),
            )
        };
        let first = &pack.leases[0];
        let TrialJob::Model { pipeline, .. } = &first.job else { unreachable!("check_pack admits model trials only") };
        let data = match &first.dataset {
            Some(d) => match pack.transfer.fetch_dataset(&first.study, d) {
                Ok(path) => path,
                Err(e) => {
                    let retryable = matches!(e, DatasetFailure::Transfer(_));
                    return all_failed(e.to_string(), retryable);
                }
            },
            None => return all_failed("the lease names no dataset".into(), false),
        };
        let trials = self.home.join("trials");
        let pack_dir = trials.join(format!("pack-{}-{}", first.trial_id, first.attempt));
        let _ = fs::remove_dir_all(&pack_dir);
        let members: Vec<PackFileMember> = pack
            .leases
            .iter()
            .map(|lease| {
                let TrialJob::Model { params, .. } = &lease.job else { unreachable!("model trials") };
                let out = trials.join(format!("{}-{}", lease.trial_id, lease.attempt));
                let _ = fs::remove_dir_all(&out);
                PackFileMember {
                    trial_id: lease.trial_id,
                    seed: lease.seed,
                    params: params.clone(),
                    out,
                    checkpoint: self.resume.then(|| pack.transfer.prepare_checkpoint(lease)),
                }
            })
            .collect();
        let outs: Vec<PathBuf> = members.iter().map(|m| m.out.clone()).collect();
        let file = PackFile { pack_id: first.pack_id.clone(), members };
        let pack_file = pack_dir.join("pack.json");
        let written = fs::create_dir_all(&pack_dir)
            .and_then(|_| fs::write(&pack_file, serde_json::to_vec(&file).expect("a pack file serialises")));
        if let Err(e) = written {
            return all_failed(format!("writing {}: {e}", pack_file.display()), true);
        }
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => return all_failed(format!("locating decsweep-worker: {e}"), true),
        };
        let mut cmd = Command::new(exe);
        self.program_env.apply(&mut cmd);
        cmd.args(["train-pack", "--supervised", "--pipeline", pipeline.name()])
            .arg("--pack-file")
            .arg(&pack_file)
            .arg("--data")
            .arg(&data)
            .args(["--device", &self.device, "--threads", &self.threads.to_string()])
            .arg("--cache")
            .arg(self.home.join("stages"))
            .arg("--out")
            .arg(&pack_dir)
            .args(["--checkpoint-every", &first.checkpoint_every_s.to_string()]);
        let mut child = match cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
            Ok(c) => c,
            Err(e) => return all_failed(format!("starting the pack: {e}"), true),
        };
        let stderr_tail = tail_of(child.stderr.take().expect("piped"), first.trial_id);
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let stopping = || pack.stopping.load(std::sync::atomic::Ordering::Relaxed);
        self.relay_members(pack, stdout, stdin, stopping);
        let status = child.wait();
        let stderr_tail = stderr_tail.join().unwrap_or_default();
        if stopping() {
            return PackOutcome::Members(pack.leases.iter().map(|_| Outcome::Stopped).collect());
        }
        match status {
            Ok(s) if s.success() => PackOutcome::Members(outs.iter().map(|out| member_outcome(out)).collect()),
            Ok(s) if s.code() == Some(i32::from(crate::EXIT_INTERRUPTED)) => {
                PackOutcome::Members(pack.leases.iter().map(|_| Outcome::Stopped).collect())
            }
            Ok(s) => match read_failure(&pack_dir) {
                Some((FailureKind::OutOfMemory, message)) => PackOutcome::OutOfMemory(message),
                Some((kind, message)) => all_failed(message, kind.retryable()),
                None => all_failed(format!("{s}: {stderr_tail}"), true),
            },
            Err(e) => all_failed(format!("waiting for the pack: {e}"), true),
        }
    }

    /// Forwards each member's epochs to its own lease and answers that member; uploads each
    /// member's saved states with its own lease.
    fn relay_members(
        &self,
        pack: &PackRun<'_>,
        stdout: impl BufRead,
        mut stdin: ChildStdin,
        stopping: impl Fn() -> bool,
    ) {
        let mut running = pack.leases.len();
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            let reply = match ChildEvent::from_line(&line) {
                Some(ChildEvent::MemberEpoch { member, progress }) if member < pack.reports.len() => {
                    let reply = reply_to_epoch(&pack.reports[member], &progress, stopping(), self.resume);
                    if matches!(reply, Reply::Stop | Reply::Prune) {
                        running -= 1;
                        tracing::info!(
                            trial = pack.leases[member].trial_id,
                            reply = ?reply,
                            members_left = running,
                            "a member leaves the pack; the pack shrinks and the others go on"
                        );
                    }
                    reply
                }
                Some(ChildEvent::MemberCheckpoint { member, saved }) if member < pack.reports.len() => {
                    pack.reports[member].checkpoint(&saved);
                    continue;
                }
                _ => {
                    tracing::debug!(%line, "ignoring a line from the pack that names no member of it");
                    continue;
                }
            };
            if reply.send(&mut stdin).is_err() {
                break;
            }
        }
    }
}

/// A member's `error.json`: why it (or, in the pack's directory, the whole pack) failed.
fn read_failure(dir: &std::path::Path) -> Option<(FailureKind, String)> {
    match fs::read_to_string(dir.join("error.json")).ok().and_then(|t| ChildEvent::from_line(&t)) {
        Some(ChildEvent::Failed { kind, message }) => Some((kind, message)),
        _ => None,
    }
}

/// How one member ended, from its directory after the pack exited normally.
fn member_outcome(out: &std::path::Path) -> Outcome {
    match read_failure(out) {
        // Its state is saved (uploaded as it was reported): back to the queue to resume.
        Some((FailureKind::Interrupted, _)) => Outcome::Stopped,
        Some((kind, message)) => Outcome::Failed { reason: message, retryable: kind.retryable() },
        None => read_model_outcome(out),
    }
}

#[cfg(test)]
mod tests {
    use decsweep_api::wire::{CheckpointInfo, DatasetRef};
    use decsweep_api::{Params, Pipeline, Stage};

    use super::*;

    fn lease(trial_id: i64, params: Params) -> Lease {
        Lease {
            lease_id: format!("l{trial_id}"),
            trial_id,
            study: "s".into(),
            job: TrialJob::Model { pipeline: Pipeline::Dec, params },
            seed: trial_id as u64,
            attempt: 1,
            dataset: Some(DatasetRef { sha256: "ab".repeat(32), bytes: 1, source: None }),
            ttl_ms: 1000,
            resume: None,
            checkpoint_every_s: 300.0,
            pack_id: Some("p".into()),
        }
    }

    #[test]
    fn a_pack_of_one_key_is_accepted_and_a_mixed_one_refused_naming_the_trials() {
        let p = Params::default();
        let other_rate = Params { lr_dec: 1e-3, label_fraction: 0.2, ..p.clone() };
        assert_eq!(check_pack(&[lease(1, p.clone()), lease(2, other_rate)]), Ok(()));
        let wider = Params { d_model: 64, n_heads: 4, ..p.clone() };
        let why = check_pack(&[lease(1, p.clone()), lease(2, p.clone()), lease(7, wider)]).unwrap_err();
        assert_eq!(why, "trials 1 and 7 disagree on the pack key (d_model: 128 ≠ 64): they cannot be trained together");
        let mut resumed = lease(3, p.clone());
        resumed.resume = Some(CheckpointInfo { sha256: "c".into(), bytes: 1, stage: Stage::Dec, epoch: 2 });
        let why = check_pack(&[lease(1, p.clone()), resumed]).unwrap_err();
        assert!(why.starts_with("trials 1 and 3 resume from different points"), "{why}");
        let mut command = lease(4, p.clone());
        command.job =
            TrialJob::Command { argv: vec!["x".into()], env: Default::default(), workdir: None, stop_grace_s: 1.0 };
        assert_eq!(
            check_pack(&[lease(1, p), command]).unwrap_err(),
            "trial 4 is a command trial, which is never packed"
        );
    }
}
