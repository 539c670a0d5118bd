//! Trial checkpoints: the latest state each unfinished trial saved, so that the next lease of a
//! preempted trial resumes where it stopped instead of starting again.
//!
//! A worker uploads the state file with `PUT /v1/leases/{lease_id}/checkpoint` (the body is the
//! file; the query names the stage, the epoch and the SHA-256). The coordinator streams it to a
//! temporary file in `<data dir>/checkpoints/`, refuses it with 413 past
//! [`crate::CoordinatorOptions::max_checkpoint_bytes`] and with 400 when the hash does not match
//! (a truncated upload), renames it to `<sha256>.ckpt` and records it in `checkpoints`, one row
//! per trial. The next lease of the trial names it (`Lease::resume`); its worker downloads it with
//! `GET /v1/leases/{lease_id}/checkpoint`.
//!
//! Only the latest state of a trial is kept. Triggers (schema 5) put the hash of a replaced or
//! deleted row in `checkpoint_garbage`, and a trial that ends (completed, failed, pruned,
//! cancelled) loses its row; the write that ended it (`Coordinator::write_collecting`) then deletes
//! the files no row references. A trial sent back to pending (returned by a stopping worker, its lease
//! expired, a retryable failure) keeps its state, and so does a coordinator restart.
//!
//! Curves: the state holds the curves up to where it was saved, and the coordinator keeps its
//! own copy of them. When a lease resumes from a state saved by another attempt, that attempt's
//! points up to the state's position are copied to the new attempt; points past it (epochs the
//! resumed run will train again) are dropped, so the curve of the attempt that finishes is
//! whole and has no epoch twice.

use std::path::{Path, PathBuf};

use decsweep_api::wire::{CheckpointInfo, CheckpointUpload};
use decsweep_api::Stage;
use futures_util::Stream;
use rusqlite::{params, Connection, OptionalExtension};

use crate::dataset::is_sha256;
use crate::error::{Error, Result};
use crate::upload;

/// The default of [`crate::CoordinatorOptions::max_checkpoint_bytes`]: 1 GiB. The paper's model
/// with its Adam moments is a few megabytes; the limit is there to protect the disk from a
/// program that leaves gigabytes in its checkpoint directory.
pub const DEFAULT_MAX_CHECKPOINT_BYTES: u64 = 1 << 30;

pub(crate) fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("checkpoints")
}

pub(crate) fn file(data_dir: &Path, sha256: &str) -> PathBuf {
    dir(data_dir).join(format!("{sha256}.ckpt"))
}

/// The stage's place in the pipeline, as SQL: positions `(stage, epoch)` compare as
/// `rank * 1_000_000 + epoch` (no stage runs a million epochs).
const POSITION_SQL: &str =
    "(CASE stage WHEN 'data' THEN 0 WHEN 'ae' THEN 1 WHEN 'dec' THEN 2 ELSE 3 END) * 1000000 + epoch";

fn position(stage: Stage, epoch: u32) -> i64 {
    let rank = match stage {
        Stage::Data => 0,
        Stage::Ae => 1,
        Stage::Dec => 2,
        Stage::Finetune => 3,
    };
    rank * 1_000_000 + i64::from(epoch)
}

/// Streams `body` to a temporary file in the checkpoint directory, counting and hashing.
/// 413 past `limit` bytes, 400 when its SHA-256 is not the one announced. The temporary file is
/// gone on every error (see [`crate::upload`]).
pub(crate) async fn receive<B: AsRef<[u8]>, E: std::fmt::Display>(
    body: impl Stream<Item = std::result::Result<B, E>>,
    data_dir: &Path,
    upload: &CheckpointUpload,
    limit: u64,
) -> Result<upload::Received> {
    if !is_sha256(&upload.sha256) {
        return Err(Error::BadRequest(format!("`{}` is not a sha256 in lowercase hex", upload.sha256)));
    }
    let too_large = || {
        Error::TooLarge(format!(
            "the checkpoint is over this coordinator's limit of {limit} bytes (serve --max-checkpoint-mb)"
        ))
    };
    let received = upload::receive(body, &dir(data_dir), limit, "checkpoint", too_large).await?;
    if received.sha256 != upload.sha256 {
        return Err(Error::BadRequest(format!(
            "the checkpoint's SHA-256 is {}, the upload announced {} ({} bytes arrived): truncated or corrupted",
            received.sha256, upload.sha256, received.bytes
        )));
    }
    Ok(received)
}

/// Records `info` as the trial's checkpoint, saved by `attempt` (the writer, in the caller's
/// transaction).
pub(crate) fn record(conn: &Connection, trial_id: i64, attempt: u32, info: &CheckpointInfo, now: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO checkpoints (trial_id, sha256, bytes, stage, epoch, attempt, saved_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (trial_id) DO UPDATE SET sha256 = excluded.sha256, bytes = excluded.bytes,
             stage = excluded.stage, epoch = excluded.epoch, attempt = excluded.attempt, saved_ms = excluded.saved_ms",
    )?
    .execute(params![trial_id, info.sha256, info.bytes as i64, info.stage.name(), info.epoch, attempt, now])?;
    Ok(())
}

/// The trial's checkpoint and the attempt that saved it.
pub(crate) fn of_trial(conn: &Connection, trial_id: i64) -> Result<Option<(CheckpointInfo, u32)>> {
    let row = conn
        .prepare_cached("SELECT sha256, bytes, stage, epoch, attempt FROM checkpoints WHERE trial_id = ?1")?
        .query_row([trial_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .optional()?;
    let Some((sha256, bytes, stage, epoch, attempt)) = row else { return Ok(None) };
    let stage: Stage = serde_json::from_value(serde_json::Value::String(stage.clone()))
        .map_err(|_| Error::Corrupt(format!("checkpoint of trial {trial_id} names an unknown stage `{stage}`")))?;
    let info = CheckpointInfo {
        sha256,
        bytes: u64::try_from(bytes).unwrap_or(0),
        stage,
        epoch: u32::try_from(epoch).unwrap_or(0),
    };
    Ok(Some((info, u32::try_from(attempt).unwrap_or(0))))
}

/// A new lease (`attempt`) of the trial resumes from `checkpoint`, saved by `saved_by`: counts
/// the resume and makes the new attempt's curve end where the state does.
pub(crate) fn resume(
    conn: &Connection,
    trial_id: i64,
    attempt: u32,
    checkpoint: &CheckpointInfo,
    saved_by: u32,
) -> Result<()> {
    let at = position(checkpoint.stage, checkpoint.epoch);
    conn.prepare_cached("UPDATE trials SET resumes = resumes + 1, resumed_from = ?2 WHERE id = ?1")?
        .execute(params![trial_id, format!("{}:{}", checkpoint.stage, checkpoint.epoch)])?;
    if saved_by != attempt {
        conn.prepare_cached(&format!(
            "INSERT OR IGNORE INTO curves (trial_id, attempt, stage, epoch, epochs, train_loss, val_loss, val_accuracy,
                                           recorded_ms)
             SELECT trial_id, ?2, stage, epoch, epochs, train_loss, val_loss, val_accuracy, recorded_ms FROM curves
              WHERE trial_id = ?1 AND attempt = ?3 AND {POSITION_SQL} <= ?4 ORDER BY id"
        ))?
        .execute(params![trial_id, attempt, saved_by, at])?;
    }
    conn.prepare_cached(&format!("DELETE FROM curves WHERE trial_id = ?1 AND attempt = ?2 AND {POSITION_SQL} > ?3"))?
        .execute(params![trial_id, attempt, at])?;
    Ok(())
}

/// The checkpoint of the trial a lease ran (a reader: any lease of the trial may fetch it).
pub(crate) fn of_lease(conn: &Connection, lease_id: &str) -> Result<CheckpointInfo> {
    let trial_id: i64 = conn
        .prepare_cached("SELECT trial_id FROM leases WHERE lease_id = ?1")?
        .query_row([lease_id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::LeaseNotFound(lease_id.to_string()))?;
    of_trial(conn, trial_id)?.map(|(checkpoint, _)| checkpoint).ok_or(Error::CheckpointNotFound(trial_id))
}

/// Whether the trial has a checkpoint (a returned attempt then keeps its curves).
pub(crate) fn exists(conn: &Connection, trial_id: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM checkpoints WHERE trial_id = ?1")?
        .query_row([trial_id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Empties `checkpoint_garbage` and returns the hashes no row references any more: their files
/// may be deleted.
pub(crate) fn take_garbage(conn: &Connection) -> Result<Vec<String>> {
    let unreferenced: Vec<String> = conn
        .prepare_cached(
            "SELECT sha256 FROM checkpoint_garbage g
              WHERE NOT EXISTS (SELECT 1 FROM checkpoints c WHERE c.sha256 = g.sha256)",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    conn.execute("DELETE FROM checkpoint_garbage", [])?;
    Ok(unreferenced)
}

/// Deletes the files of `hashes` (a missing one is fine: a restart may have deleted it already).
pub(crate) fn delete_files(data_dir: &Path, hashes: &[String]) {
    for sha in hashes {
        let path = file(data_dir, sha);
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::debug!(path = %path.display(), "deleted a checkpoint no trial needs"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "could not delete a checkpoint file"),
        }
    }
}

/// The `<sha>.ckpt` files no trial's checkpoint row references: left by a crash between the
/// rename and the commit, or by an older coordinator. Run in the writer (or before it starts),
/// so no upload can be stored between the listing and the query.
pub(crate) fn orphaned_files(conn: &Connection, data_dir: &Path) -> Result<Vec<String>> {
    let Ok(entries) = std::fs::read_dir(dir(data_dir)) else { return Ok(Vec::new()) };
    let mut referenced = conn.prepare_cached("SELECT 1 FROM checkpoints WHERE sha256 = ?1")?;
    let mut orphans = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(sha) = name.to_str().and_then(|n| n.strip_suffix(".ckpt")).filter(|s| is_sha256(s)) else {
            continue;
        };
        if !referenced.exists([sha])? {
            orphans.push(sha.to_string());
        }
    }
    Ok(orphans)
}

/// Start-up: deletes what a crash left in the checkpoint directory (temporary uploads and
/// files no trial references).
pub(crate) fn collect_at_start(conn: &Connection, data_dir: &Path) -> Result<()> {
    upload::sweep_temporaries(&dir(data_dir));
    let orphans = orphaned_files(conn, data_dir)?;
    if !orphans.is_empty() {
        tracing::info!(files = orphans.len(), "deleting checkpoint files no trial references");
        delete_files(data_dir, &orphans);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use decsweep_api::wire::EpochProgress;

    use super::*;
    use crate::ops::tests::{command_study, Fixture, TTL_MS};

    #[test]
    fn positions_order_stages_before_epochs() {
        assert!(position(Stage::Ae, 300) < position(Stage::Dec, 1));
        assert!(position(Stage::Dec, 20) < position(Stage::Finetune, 1));
        assert!(position(Stage::Finetune, 2) < position(Stage::Finetune, 3));
    }

    fn epoch(stage: Stage, epoch: u32) -> EpochProgress {
        EpochProgress { stage, epoch, epochs: 10, train_loss: 1.0, val_loss: f64::from(epoch), val_accuracy: None }
    }

    fn saved(sha: char, stage: Stage, epoch: u32) -> CheckpointInfo {
        CheckpointInfo { sha256: sha.to_string().repeat(64), bytes: 5, stage, epoch }
    }

    /// The (attempt, stage, epoch) points of trial 1, in order.
    fn curve(f: &Fixture) -> Vec<(u32, String, u32)> {
        let mut stmt = f
            .ctx
            .conn
            .prepare("SELECT attempt, stage, epoch FROM curves WHERE trial_id = 1 ORDER BY attempt, id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
    }

    fn resumes(f: &Fixture) -> (u32, Option<String>) {
        f.ctx
            .conn
            .query_row("SELECT resumes, resumed_from FROM trials WHERE id = 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
    }

    #[test]
    fn a_returned_trial_keeps_its_checkpoint_and_resumes_with_its_curve_cut_at_it() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 1, 0)).unwrap();
        let a = f.ctx.lease("w").unwrap().0.unwrap();
        assert_eq!(a.resume, None);
        for e in 1..=3 {
            f.ctx.progress(&a.lease_id, &epoch(Stage::Ae, e)).unwrap();
        }
        f.ctx.save_checkpoint(&a.lease_id, &saved('a', Stage::Ae, 2)).unwrap();
        // The worker is preempted after epoch 3 but its last state is from epoch 2.
        assert!(f.ctx.give_back(&a.lease_id, "preempted").unwrap());
        assert_eq!(curve(&f).len(), 3, "a returned attempt with a checkpoint keeps its curve");

        let b = f.ctx.lease("w2").unwrap().0.unwrap();
        assert_eq!(b.attempt, 1, "a return does not count an attempt");
        assert_eq!(b.resume, Some(saved('a', Stage::Ae, 2)));
        assert_eq!(curve(&f), vec![(1, "ae".into(), 1), (1, "ae".into(), 2)], "epoch 3 is trained again");
        assert_eq!(resumes(&f), (1, Some("ae:2".into())));
        f.ctx.progress(&b.lease_id, &epoch(Stage::Ae, 3)).unwrap();
        assert!(f.ctx.complete(&b.lease_id, &BTreeMap::from([("accuracy".into(), 0.5)])).unwrap());
        assert_eq!(of_trial(&f.ctx.conn, 1).unwrap(), None, "a finished trial needs no state");
        assert_eq!(take_garbage(&f.ctx.conn).unwrap(), vec!["a".repeat(64)], "its file may go");
        assert_eq!(take_garbage(&f.ctx.conn).unwrap(), Vec::<String>::new(), "once");
    }

    #[test]
    fn an_expired_attempt_hands_its_curve_up_to_the_checkpoint_to_the_next() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 1, 2)).unwrap();
        let a = f.ctx.lease("w").unwrap().0.unwrap();
        f.ctx.progress(&a.lease_id, &epoch(Stage::Ae, 1)).unwrap();
        f.ctx.progress(&a.lease_id, &epoch(Stage::Dec, 1)).unwrap();
        f.ctx.save_checkpoint(&a.lease_id, &saved('a', Stage::Dec, 1)).unwrap();
        f.ctx.progress(&a.lease_id, &epoch(Stage::Dec, 2)).unwrap();
        // SIGKILL: nothing more is heard; the lease runs out.
        f.clock.advance(std::time::Duration::from_millis(TTL_MS as u64 + 1));
        let b = f.ctx.lease("w2").unwrap().0.unwrap();
        assert_eq!((b.attempt, b.resume.clone()), (2, Some(saved('a', Stage::Dec, 1))));
        let new: Vec<_> = curve(&f).into_iter().filter(|p| p.0 == 2).collect();
        assert_eq!(new, vec![(2, "ae".into(), 1), (2, "dec".into(), 1)], "copied up to the state, not past it");
        assert_eq!(curve(&f).iter().filter(|p| p.0 == 1).count(), 3, "the old attempt's curve is left as it was");
    }

    #[test]
    fn a_newer_checkpoint_replaces_the_older_and_an_ended_trial_drops_it() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 1, 0)).unwrap();
        let a = f.ctx.lease("w").unwrap().0.unwrap();
        f.ctx.save_checkpoint(&a.lease_id, &saved('a', Stage::Ae, 1)).unwrap();
        f.ctx.save_checkpoint(&a.lease_id, &saved('b', Stage::Ae, 2)).unwrap();
        assert_eq!(of_trial(&f.ctx.conn, 1).unwrap(), Some((saved('b', Stage::Ae, 2), 1)));
        assert_eq!(take_garbage(&f.ctx.conn).unwrap(), vec!["a".repeat(64)]);
        assert_eq!(of_lease(&f.ctx.conn, &a.lease_id).unwrap(), saved('b', Stage::Ae, 2));
        // A failure with no retries left ends the trial: its state goes too.
        f.ctx.fail(&a.lease_id, "diverged", false).unwrap();
        assert!(matches!(of_lease(&f.ctx.conn, &a.lease_id), Err(Error::CheckpointNotFound(1))));
        assert_eq!(take_garbage(&f.ctx.conn).unwrap(), vec!["b".repeat(64)]);
        assert!(matches!(of_lease(&f.ctx.conn, "nope"), Err(Error::LeaseNotFound(_))));
    }

    #[test]
    fn a_lease_that_lost_its_trial_cannot_store_a_state() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 1, 2)).unwrap();
        let a = f.ctx.lease("w").unwrap().0.unwrap();
        f.clock.advance(std::time::Duration::from_millis(TTL_MS as u64 + 1));
        let _b = f.ctx.lease("w2").unwrap().0.unwrap();
        assert!(matches!(
            f.ctx.save_checkpoint(&a.lease_id, &saved('a', Stage::Ae, 1)),
            Err(Error::LeaseConflict { .. })
        ));
        assert_eq!(of_trial(&f.ctx.conn, 1).unwrap(), None);
    }
}
