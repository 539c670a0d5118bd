//! The runner of command programs: a trial that is the spec's command, run in its own process
//! group with the worker's environment stripped (crate::program_env), only if
//! `--allow-program` lets it (crate::allow). Its stdout speaks `decsweep_search::command`'s
//! protocol: report lines become progress (pruning, curves), `checkpoint` lines upload its
//! checkpoint directory, its last own line is its metrics.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use decsweep_api::wire::{EpochProgress, ProgressAction, TrialJob};
use decsweep_api::Stage;
use decsweep_search::command::ProgramLine;

use super::runner::{tail_of, Outcome, Runner, Trial};
use crate::allow::AllowedPrograms;
use crate::program_env::ProgramEnv;

/// Runs command trials.
pub(crate) struct ProgramTrials {
    /// This slot's worker name, for refusals.
    pub worker: String,
    /// Where `trials/` (the programs' checkpoint directories) is.
    pub home: PathBuf,
    /// Restore and upload the programs' checkpoint directories.
    pub resume: bool,
    /// The worker's variables no program inherits.
    pub program_env: Arc<ProgramEnv>,
    /// `--allow-program`: `None` runs every program.
    pub allowed: Option<Arc<AllowedPrograms>>,
}

impl Runner for ProgramTrials {
    /// Runs a program trial (see `decsweep_search::command` for the protocol): its report
    /// lines become progress reports (pruning, curves), its checkpoint directory is restored
    /// before it starts and uploaded when it changed: on each `checkpoint` line, or every
    /// `checkpoint_every_s` for a program that prints none, and after the program is stopped
    /// for the worker's shutdown; its last own line is its metrics.
    fn run(&self, trial: &Trial<'_>) -> Outcome {
        let lease = trial.lease;
        let TrialJob::Command { argv, env, workdir, stop_grace_s } = &lease.job else { unreachable!("command job") };
        // A job written by hand could hold anything; the spec allows (0, 600].
        let grace = Duration::from_secs_f64(stop_grace_s.clamp(0.0, decsweep_search::command::MAX_STOP_GRACE_S));
        let Some((program, args)) = argv.split_first() else {
            return Outcome::Failed { reason: "the command is empty".into(), retryable: false };
        };
        let allowed = self.allowed.as_deref();
        let executable = match crate::allow::executable(allowed, &self.program_env, program, env, workdir.as_deref()) {
            Ok(path) => path,
            // Permanent: this worker would refuse it every time.
            Err(refusal) => {
                return Outcome::Failed { reason: format!("{refusal} (worker {})", self.worker), retryable: false }
            }
        };
        let state_dir = self.home.join("trials").join(format!("{}-state", lease.trial_id));
        if let Err(e) = trial.transfer.prepare_state_dir(lease, &state_dir, self.resume) {
            return Outcome::Failed { reason: format!("preparing {}: {e:#}", state_dir.display()), retryable: true };
        }
        let mut cmd = Command::new(&executable);
        // Checked by its resolved path, run by it; the program still sees the name it was given.
        std::os::unix::process::CommandExt::arg0(&mut cmd, program);
        self.program_env.apply(&mut cmd);
        cmd.args(args).envs(env).env("DECSWEEP_CHECKPOINT_DIR", &state_dir);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // Its own process group, so stopping it reaches what it started too (a shell's
        // children would otherwise live on, holding its stdout open).
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        if let Some(dir) = workdir {
            cmd.current_dir(dir);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Outcome::Failed { reason: format!("starting `{program}`: {e}"), retryable: false },
        };
        let stderr_tail = tail_of(child.stderr.take().expect("piped"), 0);
        let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
        let out = child.stdout.take().expect("piped");
        let reader = thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut own = String::new();
        let mut last_step: Option<u32> = None;
        let mut pruned_at: Option<u32> = None;
        let mut last_upload = std::time::Instant::now();
        let mut uploaded: Option<Vec<u8>> = None;
        // Set by the program's first `checkpoint` line: from then on it says when to upload.
        let mut announces = false;
        let every = Duration::from_secs_f64(lease.checkpoint_every_s.max(0.001));
        let status = loop {
            // Everything the program printed so far, reports first answered.
            while let Ok(line) = lines.try_recv() {
                let Some(addressed) = addressed_line(&line, &mut own, lease.trial_id) else { continue };
                if pruned_at.is_some() || trial.report.is_over() {
                    continue;
                }
                let ProgramLine::Report(r) = addressed else {
                    // A `checkpoint` line: the directory holds a complete state now.
                    announces = true;
                    if self.resume {
                        trial.transfer.upload_state_dir(lease, &state_dir, last_step, &mut uploaded);
                    }
                    continue;
                };
                last_step = Some(r.step);
                let epoch = EpochProgress {
                    stage: Stage::Finetune,
                    epoch: r.step,
                    epochs: r.steps.unwrap_or(0),
                    train_loss: r.train_loss.unwrap_or(f64::NAN),
                    val_loss: r.val_loss.unwrap_or(f64::NAN),
                    val_accuracy: r.val_accuracy,
                };
                if trial.report.epoch(&epoch) == ProgressAction::Prune {
                    pruned_at = Some(r.step);
                }
            }
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if trial.worker_stopping() || trial.report.is_over() || pruned_at.is_some() => {
                    break stop_group(&mut child, grace)
                }
                Ok(None) => {
                    if self.resume && !announces && last_upload.elapsed() >= every {
                        last_upload = std::time::Instant::now();
                        trial.transfer.upload_state_dir(lease, &state_dir, last_step, &mut uploaded);
                    }
                    thread::sleep(Duration::from_millis(50))
                }
                Err(e) => break Err(e),
            }
        };
        let _ = reader.join();
        // Lines printed just before the exit.
        for line in lines.try_iter() {
            if let Some(ProgramLine::Report(r)) = addressed_line(&line, &mut own, lease.trial_id) {
                last_step = Some(r.step).max(last_step);
            }
        }
        let stderr_tail = stderr_tail.join().unwrap_or_default();
        if let Some(step) = pruned_at {
            return Outcome::Pruned { stage: Stage::Finetune, epoch: step, metrics: BTreeMap::new() };
        }
        if trial.worker_stopping() {
            // Whatever the program saved when it was told to stop goes with the trial.
            if self.resume {
                trial.transfer.upload_state_dir(lease, &state_dir, last_step, &mut uploaded);
            }
            return Outcome::Stopped;
        }
        match status {
            Ok(s) if s.success() => match decsweep_search::command::parse_metrics(&own) {
                Ok(metrics) => Outcome::Completed { metrics, manifest: None },
                Err(e) => Outcome::Failed { reason: e.to_string(), retryable: false },
            },
            Ok(s) => Outcome::Failed { reason: format!("`{program}` exited with {s}: {stderr_tail}"), retryable: true },
            Err(e) => Outcome::Failed { reason: format!("waiting for `{program}`: {e}"), retryable: true },
        }
    }
}

/// Stops a command started in its own process group: SIGTERM to the group, SIGKILL to it after
/// `grace` if the leader is still running. Returns the leader's exit status.
fn stop_group(child: &mut Child, grace: Duration) -> std::io::Result<std::process::ExitStatus> {
    let group = child.id() as libc::pid_t;
    // SAFETY: kill(2) on the process group we created for our own child; the leader is not yet
    // reaped (try_wait said it runs), so the group id cannot have been reused.
    unsafe { libc::kill(-group, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            // Members that ignored SIGTERM must not outlive the trial either.
            // SAFETY: as above; at worst the group is empty and kill fails with ESRCH.
            unsafe { libc::kill(-group, libc::SIGKILL) };
            return Ok(status);
        }
        thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: as above; the leader is still unreaped.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    child.wait()
}

/// What a line of a program's stdout asks of the agent: `Report` or `Checkpoint`; its own
/// lines are collected in `own` (the last holds its metrics) and malformed ones warned about.
fn addressed_line(line: &str, own: &mut String, trial: i64) -> Option<ProgramLine> {
    match decsweep_search::command::read_line(line) {
        ProgramLine::Own => {
            own.push_str(line);
            own.push('\n');
            None
        }
        ProgramLine::Malformed(why) => {
            tracing::warn!(trial, %line, %why, "ignoring a malformed report line");
            None
        }
        addressed => Some(addressed),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_stopped_command_gets_its_grace_before_sigkill() {
        use std::os::unix::process::ExitStatusExt;
        // Saving takes the program a second after SIGTERM.
        let stop_after = |grace: Duration| {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", "trap 'sleep 1; exit 7' TERM; echo ready; while :; do sleep 0.05; done"]);
            cmd.stdout(Stdio::piped());
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            let mut child = cmd.spawn().unwrap();
            let mut ready = String::new();
            BufReader::new(child.stdout.take().unwrap()).read_line(&mut ready).unwrap();
            stop_group(&mut child, grace).unwrap()
        };
        assert_eq!(stop_after(Duration::from_secs(10)).code(), Some(7), "a long enough grace lets it finish");
        assert_eq!(stop_after(Duration::from_millis(200)).signal(), Some(libc::SIGKILL), "a short one does not");
    }
}
