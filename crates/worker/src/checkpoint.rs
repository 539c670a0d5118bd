//! `train --checkpoint FILE`: which trial a state file belongs to, when to save one, SIGTERM,
//! and the line that tells a supervisor a state was saved.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use decsweep_api::{Params, Pipeline, Stage};
use decsweep_model::resume::FORMAT_VERSION;
use decsweep_model::{ResumeError, TrialState};
use sha2::{Digest, Sha256};

use crate::protocol::{ChildEvent, SavedCheckpoint};

/// The identity of a trial, stored in its state file: SHA-256 of the state format, the
/// training revision ([`decsweep_model::TRAINER_REVISION`]), the dataset's hash, the pipeline, every parameter and the seed. A state resumes only the trial
/// with the same identity.
pub fn trial_identity(dataset_hash: &str, pipeline: Pipeline, params: &Params, seed: u64) -> String {
    let inputs = serde_json::json!({
        "format": FORMAT_VERSION,
        "trainer": decsweep_model::TRAINER_REVISION,
        "dataset": dataset_hash,
        "pipeline": pipeline,
        "params": params,
        "seed": seed,
    });
    Sha256::digest(inputs.to_string().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A flag raised by SIGTERM. The handler thread also says so on stderr, after raising it (a
/// test waits for that line to know the next epoch boundary will save and stop).
pub fn watch_sigterm() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM])
        .context("installing the SIGTERM handler")?;
    let raised = Arc::clone(&flag);
    std::thread::spawn(move || {
        for _ in signals.forever() {
            if !raised.swap(true, Ordering::SeqCst) {
                eprintln!("SIGTERM: the trial will save its state at the end of this epoch and stop");
            }
        }
    });
    Ok(flag)
}

/// Saves the trial's state to one file: when asked at SIGTERM, and at the first epoch boundary
/// after `every` of training since the last save.
pub struct Saver {
    path: PathBuf,
    identity: String,
    every: Duration,
    last: Instant,
    sigterm: Arc<AtomicBool>,
    supervised: bool,
    /// Stage and epoch of the last state saved by this process.
    saved: Option<(Stage, usize)>,
    /// The pack member whose state this is (`train-pack`); `None` for a lone trial.
    member: Option<usize>,
}

impl Saver {
    pub fn new(path: &Path, identity: String, every: Duration, sigterm: Arc<AtomicBool>, supervised: bool) -> Self {
        Saver {
            path: path.to_path_buf(),
            identity,
            every,
            last: Instant::now(),
            sigterm,
            supervised,
            saved: None,
            member: None,
        }
    }

    /// The saver of pack member `member`: its saves are announced as that member's.
    pub fn for_member(self, member: usize) -> Self {
        Saver { member: Some(member), ..self }
    }

    pub fn sigterm(&self) -> bool {
        self.sigterm.load(Ordering::SeqCst)
    }

    /// Whether the checkpoint interval has passed since the last save (or the start).
    pub fn due(&self) -> bool {
        self.last.elapsed() >= self.every
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn saved_at(&self) -> Option<(Stage, usize)> {
        self.saved
    }

    /// The state in the file, if there is a valid one for this trial. An invalid one is logged
    /// and deleted, so the trial starts from scratch instead of failing on it again.
    pub fn load(&self) -> Option<TrialState> {
        if !self.path.exists() {
            return None;
        }
        match TrialState::load(&self.path, &self.identity) {
            Ok(state) => Some(state),
            Err(e @ ResumeError::Invalid { .. }) => {
                tracing::warn!(error = %e, "discarding the trial checkpoint; starting from scratch");
                self.discard();
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the trial checkpoint; starting from scratch");
                None
            }
        }
    }

    pub fn discard(&self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), error = %e, "could not delete the trial checkpoint");
            }
        }
    }

    /// Writes `state`; a failure is logged and training goes on (the previous file, if any,
    /// stays intact).
    pub fn save(&mut self, state: &TrialState) {
        let started = Instant::now();
        match state.save(&self.path, &self.identity) {
            Ok(()) => {
                self.last = Instant::now();
                self.saved = Some((state.stage, state.epoch));
                tracing::info!(
                    path = %self.path.display(),
                    stage = %state.stage,
                    epoch = state.epoch,
                    seconds = started.elapsed().as_secs_f64(),
                    "trial checkpoint saved"
                );
                if self.supervised {
                    // Not answered, unlike an epoch line.
                    let saved =
                        SavedCheckpoint { path: self.path.clone(), stage: state.stage, epoch: state.epoch as u32 };
                    let line = match self.member {
                        Some(member) => ChildEvent::MemberCheckpoint { member, saved },
                        None => ChildEvent::Checkpoint(saved),
                    }
                    .to_line();
                    use std::io::Write;
                    let mut stdout = std::io::stdout().lock();
                    // A supervisor that is gone notices at the next epoch line.
                    let _ = writeln!(stdout, "{line}").and_then(|_| stdout.flush());
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not save the trial checkpoint; training goes on"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_depends_on_every_input() {
        let p = Params::default();
        let base = trial_identity("abc", Pipeline::Dec, &p, 1);
        assert_eq!(base, trial_identity("abc", Pipeline::Dec, &p, 1));
        assert_ne!(base, trial_identity("abd", Pipeline::Dec, &p, 1));
        assert_ne!(base, trial_identity("abc", Pipeline::Baseline, &p, 1));
        assert_ne!(base, trial_identity("abc", Pipeline::Dec, &p, 2));
        let mut q = p.clone();
        q.lr_ft *= 2.0;
        assert_ne!(base, trial_identity("abc", Pipeline::Dec, &q, 1));
    }

    #[test]
    fn the_checkpoint_event_is_not_an_epoch_line() {
        let saved = SavedCheckpoint { path: "/x".into(), stage: Stage::Dec, epoch: 3 };
        let line = ChildEvent::Checkpoint(saved.clone()).to_line();
        assert_eq!(ChildEvent::from_line(&line), Some(ChildEvent::Checkpoint(saved)), "{line}");
        assert!(serde_json::from_str::<decsweep_api::wire::EpochProgress>(&line).is_err(), "{line}");
    }
}
