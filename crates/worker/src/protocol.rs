//! The protocol between the agent and its model child (`decsweep-worker train --supervised`),
//! written once for both sides: the child's [`ChildEvent`]s and the agent's [`Reply`].
//!
//! - After every epoch the child prints [`ChildEvent::Epoch`] as one JSON line on stdout and
//!   waits for one [`Reply`] line on stdin. A closed stdin, or a line that is no reply, means
//!   [`Reply::Stop`]: a child whose agent is gone does not train on unowned.
//! - After saving its state (`--checkpoint`) it prints [`ChildEvent::Checkpoint`], which gets no
//!   reply.
//! - When it fails it leaves [`ChildEvent::Failed`] in `error.json` of its output directory (also
//!   unsupervised, for whoever runs `train`), whose [`FailureKind`] says whether trying again
//!   could help.
//!
//! - A pack child (`decsweep-worker train-pack --supervised`) trains several trials in one
//!   process: it says [`ChildEvent::MemberEpoch`] and [`ChildEvent::MemberCheckpoint`] instead,
//!   naming the member (its index in the pack file), and after each member's epoch waits for one
//!   [`Reply`], which applies to that member alone. Each member leaves its own `metrics.json` or
//!   `error.json` in its own output directory; a failure of the whole pack leaves `error.json`
//!   in the pack's directory, [`FailureKind::OutOfMemory`] when fewer members might fit.
//!
//! Both sides are this binary, so the bytes may change freely; the replies stay one bare word a
//! line (`continue`) so that a person, or a test, can drive a child by hand.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use decsweep_api::wire::EpochProgress;
use decsweep_api::Stage;
use serde::{Deserialize, Serialize};

/// What the child tells the agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum ChildEvent {
    /// One epoch of one stage; the child waits for a [`Reply`].
    Epoch(EpochProgress),
    /// The trial's state was saved to a file, to be uploaded; no reply.
    Checkpoint(SavedCheckpoint),
    /// The trial failed (the content of `error.json`).
    Failed { kind: FailureKind, message: String },
    /// One epoch of pack member `member`; the child waits for a [`Reply`] for that member.
    #[serde(rename = "member_epoch")]
    MemberEpoch {
        member: usize,
        #[serde(flatten)]
        progress: EpochProgress,
    },
    /// Pack member `member`'s state was saved to a file, to be uploaded with its lease; no reply.
    #[serde(rename = "member_checkpoint")]
    MemberCheckpoint {
        member: usize,
        #[serde(flatten)]
        saved: SavedCheckpoint,
    },
}

impl ChildEvent {
    /// The event as one line of JSON, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a child event serialises")
    }

    /// Reads a line of the child's stdout (or its `error.json`); `None` for anything else (a
    /// stray print).
    pub fn from_line(line: &str) -> Option<ChildEvent> {
        serde_json::from_str(line).ok()
    }
}

/// A trial state saved to a file: a model child's `--checkpoint`, or a program's checkpoint
/// directory packed by the agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedCheckpoint {
    pub path: PathBuf,
    pub stage: Stage,
    /// Epochs of `stage` done when the state was saved.
    pub epoch: u32,
}

/// Why a trial failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The parameters or the dataset are unusable.
    BadInput,
    /// The training diverged.
    Diverged,
    /// Anything else (out of memory, a crash, a full disk, ...).
    Error,
    /// SIGTERM stopped it with its state saved (exit status 75).
    Interrupted,
    /// A pack ran out of device memory: its members may fit in smaller packs.
    OutOfMemory,
}

impl FailureKind {
    /// Whether running the same trial again could succeed: bad input and divergence are
    /// deterministic and would fail the same way. (An interrupted trial exits 75 and is returned
    /// to the queue rather than failed.)
    pub fn retryable(self) -> bool {
        matches!(self, FailureKind::Error | FailureKind::OutOfMemory)
    }
}

/// The agent's answer to an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reply {
    /// Train the next epoch.
    Continue,
    /// The pruner stopped the trial: stop for good and report it pruned.
    Prune,
    /// The agent is shutting down (preempted): save the state (with `--checkpoint`) and exit 75.
    Suspend,
    /// Stop now: the user cancelled or failed the trial, the lease is lost, or the agent is gone.
    Stop,
}

impl Reply {
    /// Writes the reply as one word on a line and flushes it.
    pub fn send(self, to: &mut impl Write) -> std::io::Result<()> {
        let word = serde_json::to_value(self).expect("a reply serialises");
        writeln!(to, "{}", word.as_str().expect("a reply is a word"))?;
        to.flush()
    }

    /// Reads one reply; end of input, a read error or an unknown word read as [`Reply::Stop`].
    pub fn receive(from: &mut impl BufRead) -> Reply {
        let mut line = String::new();
        match from.read_line(&mut line) {
            Ok(n) if n > 0 => {
                serde_json::from_value(serde_json::Value::String(line.trim().to_string())).unwrap_or(Reply::Stop)
            }
            _ => Reply::Stop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_back_as_written() {
        let events = [
            ChildEvent::Epoch(EpochProgress {
                stage: Stage::Dec,
                epoch: 3,
                epochs: 10,
                train_loss: 0.5,
                val_loss: 0.25,
                val_accuracy: Some(0.75),
            }),
            ChildEvent::Checkpoint(SavedCheckpoint { path: "/tmp/t.ckpt".into(), stage: Stage::Ae, epoch: 2 }),
            ChildEvent::Failed { kind: FailureKind::BadInput, message: "no labels".into() },
            ChildEvent::MemberEpoch {
                member: 2,
                progress: EpochProgress {
                    stage: Stage::Ae,
                    epoch: 1,
                    epochs: 4,
                    train_loss: 0.5,
                    val_loss: f64::NAN,
                    val_accuracy: None,
                },
            },
            ChildEvent::MemberCheckpoint {
                member: 1,
                saved: SavedCheckpoint { path: "/tmp/m1.ckpt".into(), stage: Stage::Dec, epoch: 3 },
            },
            ChildEvent::Failed { kind: FailureKind::OutOfMemory, message: "CUDA out of memory".into() },
        ];
        for event in events {
            let back = ChildEvent::from_line(&event.to_line());
            // NaN is not equal to itself: compare the lines.
            assert_eq!(back.map(|e| e.to_line()), Some(event.to_line()));
        }
        let member: serde_json::Value = serde_json::from_str(
            &ChildEvent::MemberCheckpoint {
                member: 1,
                saved: SavedCheckpoint { path: "p".into(), stage: Stage::Dec, epoch: 3 },
            }
            .to_line(),
        )
        .unwrap();
        assert_eq!(
            member,
            serde_json::json!({"event": "member_checkpoint", "member": 1, "path": "p", "stage": "dec", "epoch": 3})
        );
        assert_eq!(ChildEvent::from_line("resuming after epoch 2"), None);
    }

    #[test]
    fn a_diverged_epoch_travels_with_null_losses() {
        let line = ChildEvent::Epoch(EpochProgress {
            stage: Stage::Finetune,
            epoch: 1,
            epochs: 2,
            train_loss: f64::NAN,
            val_loss: f64::NAN,
            val_accuracy: None,
        })
        .to_line();
        let Some(ChildEvent::Epoch(back)) = ChildEvent::from_line(&line) else { panic!("{line}") };
        assert!(back.train_loss.is_nan() && back.val_loss.is_nan(), "{line}");
    }

    /// What people and the resume tests read: `event`, `stage`, `epoch` at the top level, and
    /// the error kinds by their names.
    #[test]
    fn the_lines_keep_their_field_names() {
        let saved = ChildEvent::Checkpoint(SavedCheckpoint { path: "p".into(), stage: Stage::Finetune, epoch: 4 });
        let value: serde_json::Value = serde_json::from_str(&saved.to_line()).unwrap();
        assert_eq!(value, serde_json::json!({"event": "checkpoint", "path": "p", "stage": "finetune", "epoch": 4}));
        let failed = ChildEvent::Failed { kind: FailureKind::Interrupted, message: "m".into() };
        let value: serde_json::Value = serde_json::from_str(&failed.to_line()).unwrap();
        assert_eq!(value["kind"], "interrupted");
        assert!(!FailureKind::BadInput.retryable() && !FailureKind::Diverged.retryable());
        assert!(FailureKind::Error.retryable());
    }

    #[test]
    fn replies_are_one_word_a_line_and_anything_else_stops() {
        for reply in [Reply::Continue, Reply::Prune, Reply::Suspend, Reply::Stop] {
            let mut bytes = Vec::new();
            reply.send(&mut bytes).unwrap();
            assert!(bytes.ends_with(b"\n") && !bytes.contains(&b'"'), "{bytes:?}");
            assert_eq!(Reply::receive(&mut bytes.as_slice()), reply);
        }
        assert_eq!(Reply::receive(&mut &b"continue\n"[..]), Reply::Continue);
        assert_eq!(Reply::receive(&mut &b"maybe\n"[..]), Reply::Stop);
        assert_eq!(Reply::receive(&mut &b""[..]), Reply::Stop);
    }
}
