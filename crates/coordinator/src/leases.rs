//! A worker's calls on its lease (the queue granting them is `src/grant.rs`): signs of life (heartbeat, progress,
//! checkpoint), the calls that end a lease (complete, fail, prune, return), and expiry. What each
//! call may do is decided by [`crate::lifecycle`] (where the lease semantics are told); this
//! module reads the lease, asks, and writes the answer.

use std::collections::BTreeMap;

use decsweep_api::wire::{CheckpointInfo, EpochProgress, ProgressAction, PruneTrial};
use decsweep_api::{LeaseOutcome, TrialStatus};
use rand::Rng;
use rusqlite::{params, Connection, OptionalExtension};

use crate::checkpoints;
use crate::curves::SqlCurves;
use crate::error::{Error, Result};
use crate::lifecycle::{self, Call, Conflict, LeaseChange, Move, Standing, TrialEvent, Verdict};
use crate::ops::metrics_json;
use crate::pruner::PruneContext;
use crate::writer::{u32_col, WriteCtx};

/// Trials whose lease ran out in one [`WriteCtx::expire`] pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Expired {
    /// Back in the queue.
    pub(crate) requeued: Vec<i64>,
    /// Out of attempts.
    pub(crate) failed: Vec<i64>,
}

impl Expired {
    pub(crate) fn is_empty(&self) -> bool {
        self.requeued.is_empty() && self.failed.is_empty()
    }
}

/// How a `fail` call changed its trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FailOutcome {
    pub(crate) recorded: bool,
    /// The trial went back to the queue.
    pub(crate) requeued: bool,
}

/// A lease and the trial it names.
#[derive(Debug)]
struct LeaseRow {
    lease_id: String,
    trial_id: i64,
    attempt: u32,
    outcome: Option<LeaseOutcome>,
    trial_status: TrialStatus,
    trial_lease: Option<String>,
    study_id: i64,
    attempts: u32,
    /// `attempts` when the user last retried the trial.
    attempts_base: u32,
}

impl LeaseRow {
    fn standing(&self) -> Standing {
        Standing::of(self.trial_lease.as_deref() == Some(self.lease_id.as_str()), self.outcome)
    }

    /// What `call` does, by [`lifecycle::worker_call`]; a refusal as the error it answers.
    fn judge(&self, call: Call) -> Result<Verdict> {
        match lifecycle::worker_call(self.standing(), self.trial_status, call) {
            Verdict::Conflict(why) => Err(self.conflict(why)),
            verdict => Ok(verdict),
        }
    }

    fn conflict(&self, why: Conflict) -> Error {
        let reason = match why {
            Conflict::Superseded => format!(
                "the trial was leased again (it is on attempt {}); this lease's calls are not counted",
                self.attempts
            ),
            other => other.to_string(),
        };
        Error::LeaseConflict { lease_id: self.lease_id.clone(), trial_id: self.trial_id, reason }
    }
}

/// A lease and its trial, read by the writer or by a reader.
fn lease_row(conn: &Connection, lease_id: &str) -> Result<LeaseRow> {
    conn.prepare_cached(
        "SELECT l.trial_id, l.attempt, l.outcome, t.status, t.lease_id, t.study_id, t.attempts,
                    t.attempts_base
               FROM leases l JOIN trials t ON t.id = l.trial_id WHERE l.lease_id = ?1",
    )?
    .query_row([lease_id], |r| {
        Ok(LeaseRow {
            lease_id: lease_id.to_string(),
            trial_id: r.get(0)?,
            attempt: u32_col(r.get(1)?),
            outcome: r.get(2)?,
            trial_status: r.get(3)?,
            trial_lease: r.get(4)?,
            study_id: r.get(5)?,
            attempts: u32_col(r.get(6)?),
            attempts_base: u32_col(r.get(7)?),
        })
    })
    .optional()?
    .ok_or_else(|| Error::LeaseNotFound(lease_id.to_string()))
}

/// Whether `lease_id` may store a checkpoint now, decided without changing anything: asked
/// before an upload's body is read, so a lease that would be refused costs no disk. The
/// writer decides again when the file is stored ([`WriteCtx::save_checkpoint`]).
pub(crate) fn check_checkpoint_lease(conn: &Connection, lease_id: &str) -> Result<()> {
    let lease = lease_row(conn, lease_id)?;
    match lease.judge(Call::KeepAlive)? {
        Verdict::Stop => Err(stopped_state_refused(lease.trial_id)),
        _ => Ok(()),
    }
}

fn stopped_state_refused(trial_id: i64) -> Error {
    Error::WrongState(format!("trial {trial_id} was cancelled or failed by the user: its state is not kept"))
}

// The two queries below spell their status out rather than bind it: SQLite uses a partial index
// only for a query whose condition names the index's literal, and these two are the queue
// (`trials_pending`) and the expiry scan (`trials_running_expiry`). A test ties each literal to
// its `TrialStatus` and checks the plan.

/// The oldest pending trial: the head of the queue.
pub(crate) const NEXT_PENDING: &str = "SELECT id, study_id, attempts, job, seed FROM trials
                             WHERE status = 'pending' ORDER BY id LIMIT 1";

/// Running trials whose deadline (`?1`) has passed, with what expiry needs to decide.
const OVERDUE: &str = "SELECT t.id, t.attempts - t.attempts_base, s.retries, t.lease_id, t.worker
                         FROM trials t JOIN studies s ON s.id = t.study_id
                        WHERE t.status = 'running' AND t.lease_expires_ms <= ?1";

/// A running trial whose lease has run out.
struct Overdue {
    id: i64,
    /// Attempts since the user last retried the trial (all of them if never).
    attempts: u32,
    retries: u32,
    lease_id: Option<String>,
    worker: Option<String>,
}

/// A fresh lease (or pack) id: 128 random bits in hex.
pub(crate) fn new_lease_id() -> String {
    format!("{:032x}", rand::thread_rng().gen::<u128>())
}

impl WriteCtx {
    /// Moves every running trial whose lease has run out back to the queue, or to failed when
    /// it has used up its retries.
    pub(crate) fn expire(&mut self) -> Result<Expired> {
        let now = self.now();
        let due: Vec<Overdue> = {
            let mut stmt = self.conn.prepare_cached(OVERDUE)?;
            let rows = stmt.query_map([now], |r| {
                Ok(Overdue {
                    id: r.get(0)?,
                    attempts: u32_col(r.get(1)?),
                    retries: u32_col(r.get(2)?),
                    lease_id: r.get(3)?,
                    worker: r.get(4)?,
                })
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut out = Expired::default();
        for Overdue { id, attempts, retries, lease_id, worker } in due {
            let worker = worker.unwrap_or_else(|| "?".into());
            let Move::To { trial: to, lease: LeaseChange::End(outcome) } =
                lifecycle::trial_event(TrialStatus::Running, TrialEvent::Expire { retries_left: attempts <= retries })
            else {
                unreachable!("expiry moves a running trial and ends its lease")
            };
            if to == TrialStatus::Failed {
                let error = format!("lease expired after {attempts} attempts (last worker: {worker})");
                self.conn
                    .prepare_cached(
                        "UPDATE trials SET status = ?4, error = ?2, lease_expires_ms = NULL,
                                finished_ms = ?3, updated_ms = ?3 WHERE id = ?1",
                    )?
                    .execute(params![id, error, now, to])?;
                out.failed.push(id);
            } else {
                let error = format!("attempt {attempts}: lease of worker {worker} expired");
                self.conn
                    .prepare_cached(
                        "UPDATE trials SET status = ?4, error = ?2, lease_expires_ms = NULL, updated_ms = ?3
                          WHERE id = ?1",
                    )?
                    .execute(params![id, error, now, to])?;
                out.requeued.push(id);
            }
            if let Some(lease_id) = lease_id {
                self.end_lease(&lease_id, outcome, now)?;
            }
        }
        if !out.is_empty() {
            tracing::info!(requeued = ?out.requeued, failed = ?out.failed, "leases expired");
        }
        if !out.failed.is_empty() {
            self.top_up_all()?;
        }
        Ok(out)
    }

    /// The lease a complete / fail / prune / return call ends, with where its trial goes:
    /// `None` when the same call already ended it (answered "not recorded"), an error when
    /// [`lifecycle::worker_call`] refuses.
    fn lease_to_end(&self, lease: LeaseRow, call: Call) -> Result<Option<(LeaseRow, TrialStatus, LeaseOutcome)>> {
        match lease.judge(call)? {
            Verdict::End { trial, lease: outcome } => Ok(Some((lease, trial, outcome))),
            Verdict::Repeat => Ok(None),
            other => Err(Error::Internal(format!("{call:?} judged {other:?}: not a call that ends a lease"))),
        }
    }

    fn load_lease(&self, lease_id: &str) -> Result<LeaseRow> {
        lease_row(&self.conn, lease_id)
    }

    pub(crate) fn end_lease(&self, lease_id: &str, outcome: LeaseOutcome, now: i64) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE leases SET outcome = ?2, ended_ms = ?3 WHERE lease_id = ?1")?
            .execute(params![lease_id, outcome, now])?;
        Ok(())
    }

    /// Makes sure the lease may keep running its trial and pushes its deadline out by the TTL.
    /// Revives an expired lease whose trial nobody has claimed since. `Stop`: the user
    /// cancelled or failed the trial; nothing was changed and the worker should stop it.
    fn keep_alive(&mut self, lease: &LeaseRow) -> Result<ProgressAction> {
        let now = self.now();
        let expires = now.saturating_add(self.ttl_ms);
        match lease.judge(Call::KeepAlive)? {
            Verdict::Extend => {
                self.conn
                    .prepare_cached("UPDATE trials SET lease_expires_ms = ?2 WHERE id = ?1")?
                    .execute(params![lease.trial_id, expires])?;
            }
            Verdict::Revive => {
                self.conn
                    .prepare_cached(
                        "UPDATE trials SET status = ?4, lease_expires_ms = ?2, updated_ms = ?3 WHERE id = ?1",
                    )?
                    .execute(params![lease.trial_id, expires, now, TrialStatus::Running])?;
                self.conn
                    .prepare_cached("UPDATE leases SET outcome = NULL, ended_ms = NULL WHERE lease_id = ?1")?
                    .execute([&lease.lease_id])?;
                tracing::info!(trial_id = lease.trial_id, lease_id = %lease.lease_id, "expired lease revived by its worker");
            }
            Verdict::Stop => return Ok(ProgressAction::Stop),
            other => return Err(Error::Internal(format!("a keep-alive judged {other:?}"))),
        }
        Ok(ProgressAction::Continue)
    }

    /// Extends a lease; answers the TTL and whether the worker should stop the trial.
    pub(crate) fn heartbeat(&mut self, lease_id: &str) -> Result<(u64, ProgressAction)> {
        let lease = self.load_lease(lease_id)?;
        let action = self.keep_alive(&lease)?;
        Ok((self.ttl_ms as u64, action))
    }

    /// Records one epoch (extending the lease like a heartbeat) and asks the pruner. A trial the
    /// user stopped records nothing and answers `Stop`.
    pub(crate) fn progress(&mut self, lease_id: &str, p: &EpochProgress) -> Result<ProgressAction> {
        let lease = self.load_lease(lease_id)?;
        if self.keep_alive(&lease)? == ProgressAction::Stop {
            return Ok(ProgressAction::Stop);
        }
        let now = self.now();
        self.conn
            .prepare_cached(
                "INSERT INTO curves (trial_id, attempt, stage, epoch, epochs, train_loss, val_loss, val_accuracy,
                                     recorded_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (trial_id, attempt, stage, epoch) DO UPDATE SET
                     epochs = excluded.epochs, train_loss = excluded.train_loss, val_loss = excluded.val_loss,
                     val_accuracy = excluded.val_accuracy, recorded_ms = excluded.recorded_ms",
            )?
            .execute(params![
                lease.trial_id,
                lease.attempt,
                p.stage.name(),
                p.epoch,
                p.epochs,
                finite(p.train_loss),
                finite(p.val_loss),
                p.val_accuracy.and_then(finite),
                now
            ])?;
        let meta = self.study_meta(lease.study_id)?;
        let pruner = match &meta.pruner {
            Some(p) if !self.pruner_override => p.clone(),
            _ => self.pruner.clone(),
        };
        let curves = SqlCurves::new(&self.conn);
        let ctx = PruneContext {
            curves: &curves,
            study_id: lease.study_id,
            trial_id: lease.trial_id,
            attempt: lease.attempt,
            progress: p,
            objective_metric: &meta.objective_metric,
            maximize: meta.maximize,
        };
        pruner.decide(&ctx)
    }

    /// Records the result of a trial. `Ok(false)`: this lease had already completed it.
    pub(crate) fn complete(&mut self, lease_id: &str, metrics: &BTreeMap<String, f64>) -> Result<bool> {
        let lease = self.load_lease(lease_id)?;
        let Some((lease, to, outcome)) = self.lease_to_end(lease, Call::Complete)? else {
            return Ok(false);
        };
        let now = self.now();
        self.conn
            .prepare_cached(
                "UPDATE trials SET status = ?4, metrics = ?2, error = NULL, lease_expires_ms = NULL,
                        finished_ms = ?3, updated_ms = ?3 WHERE id = ?1",
            )?
            .execute(params![lease.trial_id, metrics_json(metrics), now, to])?;
        self.end_lease(lease_id, outcome, now)?;
        self.top_up_quietly(lease.study_id);
        Ok(true)
    }

    /// Stores a completed trial's manifest, with the SHA-256 of its study's spec added.
    pub(crate) fn record_manifest(&mut self, lease_id: &str, manifest: &serde_json::Value) -> Result<()> {
        let lease = self.load_lease(lease_id)?;
        let spec: String = self
            .conn
            .prepare_cached("SELECT spec FROM studies WHERE id = ?1")?
            .query_row([lease.study_id], |r| r.get(0))?;
        let mut manifest = manifest.clone();
        if let Some(m) = manifest.as_object_mut() {
            let digest = <sha2::Sha256 as sha2::Digest>::digest(spec.as_bytes());
            m.insert("spec_sha256".into(), digest.iter().map(|b| format!("{b:02x}")).collect::<String>().into());
        }
        self.conn
            .prepare_cached("UPDATE trials SET manifest = ?2 WHERE id = ?1")?
            .execute(params![lease.trial_id, manifest.to_string()])?;
        Ok(())
    }

    /// Records a failed attempt: back to the queue when `retryable` and retries are left, else
    /// failed for good.
    pub(crate) fn fail(&mut self, lease_id: &str, reason: &str, retryable: bool) -> Result<FailOutcome> {
        let lease = self.load_lease(lease_id)?;
        let retries = self.study_meta(lease.study_id)?.retries;
        let requeue = retryable && lease.attempts.saturating_sub(lease.attempts_base) <= retries;
        let Some((lease, to, outcome)) = self.lease_to_end(lease, Call::Fail { requeue })? else {
            return Ok(FailOutcome { recorded: false, requeued: false });
        };
        let now = self.now();
        let error = format!("attempt {}: {reason}", lease.attempts);
        if to.is_terminal() {
            self.conn
                .prepare_cached(
                    "UPDATE trials SET status = ?4, error = ?2, lease_expires_ms = NULL, finished_ms = ?3,
                            updated_ms = ?3 WHERE id = ?1",
                )?
                .execute(params![lease.trial_id, error, now, to])?;
            self.end_lease(lease_id, outcome, now)?;
            self.top_up_quietly(lease.study_id);
        } else {
            self.conn
                .prepare_cached(
                    "UPDATE trials SET status = ?4, error = ?2, lease_expires_ms = NULL, updated_ms = ?3
                      WHERE id = ?1",
                )?
                .execute(params![lease.trial_id, error, now, to])?;
            self.end_lease(lease_id, outcome, now)?;
        }
        Ok(FailOutcome { recorded: true, requeued: !to.is_terminal() })
    }

    /// Gives a trial back unrun or half-run because its worker is shutting down: the trial goes
    /// back to the queue as if this lease had never been granted. The attempt is not counted
    /// (`attempts` goes back down, so a study with `retries = 0` does not lose the trial to a
    /// routine restart). Without a checkpoint, the curves it recorded are deleted, so the next
    /// attempt, which gets the same number, starts clean; with one, they are kept, and the next
    /// lease drops those past the checkpoint. The lease itself stays in `leases` as `returned`.
    pub(crate) fn give_back(&mut self, lease_id: &str, reason: &str) -> Result<bool> {
        let lease = self.load_lease(lease_id)?;
        let Some((lease, to, outcome)) = self.lease_to_end(lease, Call::Return)? else {
            return Ok(false);
        };
        let now = self.now();
        if !checkpoints::exists(&self.conn, lease.trial_id)? {
            self.conn
                .prepare_cached("DELETE FROM curves WHERE trial_id = ?1 AND attempt = ?2")?
                .execute(params![lease.trial_id, lease.attempt])?;
        }
        self.conn
            .prepare_cached(
                "UPDATE trials SET status = ?4, attempts = MAX(attempts - 1, 0), error = ?2,
                        lease_expires_ms = NULL, updated_ms = ?3 WHERE id = ?1",
            )?
            .execute(params![lease.trial_id, format!("returned unfinished: {reason}"), now, to])?;
        self.end_lease(lease_id, outcome, now)?;
        Ok(true)
    }

    /// Records `checkpoint` as the latest state of the lease's trial (extending the lease like
    /// a heartbeat). The lease must still own the trial; a trial the user stopped keeps none.
    pub(crate) fn save_checkpoint(&mut self, lease_id: &str, checkpoint: &CheckpointInfo) -> Result<()> {
        let lease = self.load_lease(lease_id)?;
        if self.keep_alive(&lease)? == ProgressAction::Stop {
            return Err(stopped_state_refused(lease.trial_id));
        }
        checkpoints::record(&self.conn, lease.trial_id, lease.attempt, checkpoint, self.now())
    }

    /// Records that the worker stopped the trial early. Its metrics get `pruned_epoch`,
    /// `pruned_stage` (the stage's ordinal: data 0, ae 1, dec 2, finetune 3) and, when the worker
    /// sent none, `accuracy` and `loss` from the last point recorded in that stage by this
    /// attempt (its validation accuracy and loss), so `trials.csv` shows where it stood.
    pub(crate) fn prune(&mut self, lease_id: &str, p: &PruneTrial) -> Result<bool> {
        let lease = self.load_lease(lease_id)?;
        let Some((lease, to, outcome)) = self.lease_to_end(lease, Call::Prune)? else {
            return Ok(false);
        };
        let now = self.now();
        let mut metrics = p.metrics.clone();
        let last: Option<(Option<f64>, Option<f64>)> = self
            .conn
            .prepare_cached(
                "SELECT val_accuracy, val_loss FROM curves
                  WHERE trial_id = ?1 AND attempt = ?2 AND stage = ?3 AND epoch <= ?4
                  ORDER BY epoch DESC LIMIT 1",
            )?
            .query_row(params![lease.trial_id, lease.attempt, p.stage.name(), p.epoch], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((acc, loss)) = last {
            if let Some(acc) = acc.filter(|_| !metrics.contains_key("accuracy")) {
                metrics.insert("accuracy".into(), acc);
            }
            if let Some(loss) = loss.filter(|_| !metrics.contains_key("loss")) {
                metrics.insert("loss".into(), loss);
            }
        }
        metrics.insert("pruned_epoch".into(), f64::from(p.epoch));
        metrics.insert("pruned_stage".into(), stage_ordinal(p.stage));
        self.conn
            .prepare_cached(
                "UPDATE trials SET status = ?5, metrics = ?2, error = ?3, lease_expires_ms = NULL,
                        finished_ms = ?4, updated_ms = ?4 WHERE id = ?1",
            )?
            .execute(params![
                lease.trial_id,
                metrics_json(&metrics),
                format!("pruned after {} epoch {}", p.stage, p.epoch),
                now,
                to
            ])?;
        self.end_lease(lease_id, outcome, now)?;
        self.top_up_quietly(lease.study_id);
        Ok(true)
    }

    /// After a restart: gives every running lease at least one TTL from now, since its worker
    /// could not heartbeat while the coordinator was down. Returns how many were extended.
    pub(crate) fn grace_running(&mut self) -> Result<usize> {
        let floor = self.now().saturating_add(self.ttl_ms);
        let n = self.conn.execute(
            "UPDATE trials SET lease_expires_ms = ?1 WHERE status = ?2 AND lease_expires_ms < ?1",
            params![floor, TrialStatus::Running],
        )?;
        Ok(n)
    }
}

/// Where `event` takes a trial in `from`, for the events that always move it.
pub(crate) fn moved_to(from: TrialStatus, event: TrialEvent) -> TrialStatus {
    match lifecycle::trial_event(from, event) {
        Move::To { trial, .. } => trial,
        other => unreachable!("{event:?} of a {from} trial is {other}"),
    }
}

/// `pruned_stage` in a pruned trial's metrics.
fn stage_ordinal(stage: decsweep_api::Stage) -> f64 {
    match stage {
        decsweep_api::Stage::Data => 0.0,
        decsweep_api::Stage::Ae => 1.0,
        decsweep_api::Stage::Dec => 2.0,
        decsweep_api::Stage::Finetune => 3.0,
    }
}

/// SQLite has no NaN; a missing value is NULL.
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use decsweep_api::wire::TrialJob;
    use decsweep_api::Stage;

    use super::*;
    use crate::ops::tests::{command_study, Fixture, TTL_MS};
    use crate::pruner::{PruneContext, Pruner};

    fn metrics(acc: f64) -> BTreeMap<String, f64> {
        BTreeMap::from([("accuracy".to_string(), acc)])
    }

    #[test]
    fn the_queue_and_expiry_use_their_partial_indexes_with_the_enums_names() {
        let f = Fixture::new();
        let plan = |sql: &str| -> String {
            let mut stmt = f.ctx.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
            rows.collect::<rusqlite::Result<Vec<_>>>().unwrap().join("; ")
        };
        for (sql, status, index) in [
            (NEXT_PENDING, TrialStatus::Pending, "trials_pending"),
            (OVERDUE, TrialStatus::Running, "trials_running_expiry"),
        ] {
            assert!(sql.contains(&format!("status = '{status}'")), "{sql}");
            assert!(plan(&sql.replace("?1", "1")).contains(index), "{sql}: {}", plan(&sql.replace("?1", "1")));
        }
    }

    #[test]
    fn leases_are_fifo_across_studies() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 2, 2)).unwrap();
        f.ctx.insert_study(&command_study("b", 1, 2)).unwrap();
        let ids: Vec<(i64, String)> = (0..3).map(|_| f.lease("w")).map(|l| (l.trial_id, l.study)).collect();
        assert_eq!(ids, [(1, "a".into()), (2, "a".into()), (3, "b".into())]);
        assert!(f.ctx.lease("w").unwrap().0.is_none());
    }

    #[test]
    fn a_lease_carries_the_job_the_dataset_and_the_attempt() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 1, 2)).unwrap();
        let l = f.lease("w1");
        assert_eq!((l.attempt, l.ttl_ms, l.seed), (1, TTL_MS as u64, 0));
        assert!(matches!(&l.job, TrialJob::Command { argv, .. } if argv[1] == "--x=0"));
        assert_eq!(l.dataset.as_ref().unwrap().bytes, 3);
        assert_eq!(l.lease_id.len(), 32);
        assert_eq!(f.status(l.trial_id).0, "running");
    }

    #[test]
    fn completion_is_idempotent_for_the_same_lease() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 1, 2)).unwrap();
        let l = f.lease("w");
        assert!(f.ctx.complete(&l.lease_id, &metrics(0.8)).unwrap());
        assert!(!f.ctx.complete(&l.lease_id, &metrics(0.9)).unwrap(), "repeat is not recorded");
        let stored: String = f.ctx.conn.query_row("SELECT metrics FROM trials WHERE id = 1", [], |r| r.get(0)).unwrap();
        assert_eq!(stored, r#"{"accuracy":0.8}"#, "the first result stands");
        assert!(matches!(f.ctx.fail(&l.lease_id, "x", true), Err(Error::LeaseConflict { .. })));
        assert!(matches!(f.ctx.heartbeat(&l.lease_id), Err(Error::LeaseConflict { .. })));
        assert!(matches!(f.ctx.complete("nope", &metrics(0.1)), Err(Error::LeaseNotFound(_))));
    }

    #[test]
    fn heartbeats_keep_a_lease_alive_past_its_first_deadline() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 1, 2)).unwrap();
        let l = f.lease("w");
        for _ in 0..5 {
            f.clock.advance(Duration::from_millis(TTL_MS as u64 - 1));
            assert_eq!(f.ctx.heartbeat(&l.lease_id).unwrap(), (TTL_MS as u64, ProgressAction::Continue));
            assert!(f.ctx.expire().unwrap().is_empty());
        }
        f.clock.advance(Duration::from_millis(TTL_MS as u64));
        assert_eq!(f.ctx.expire().unwrap().requeued, [1]);
        assert_eq!(f.status(1).0, "pending");
    }

    #[test]
    fn a_stale_lease_is_refused_after_expiry_and_re_lease() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 1, 2)).unwrap();
        let old = f.lease("w1");
        f.clock.advance(Duration::from_millis(TTL_MS as u64));
        let new = f.lease("w2");
        assert_eq!((new.trial_id, new.attempt), (old.trial_id, 2));
        for r in [
            f.ctx.complete(&old.lease_id, &metrics(0.5)).map(|_| ()),
            f.ctx.fail(&old.lease_id, "x", false).map(|_| ()),
            f.ctx.heartbeat(&old.lease_id).map(|_| ()),
        ] {
            assert!(matches!(r, Err(Error::LeaseConflict { .. })), "{r:?}");
        }
        assert_eq!(f.status(1).0, "running", "nothing changed");
        assert!(f.ctx.complete(&new.lease_id, &metrics(0.7)).unwrap());
        assert!(matches!(f.ctx.complete(&old.lease_id, &metrics(0.5)), Err(Error::LeaseConflict { .. })));
        let stored: String = f.ctx.conn.query_row("SELECT metrics FROM trials WHERE id = 1", [], |r| r.get(0)).unwrap();
        assert_eq!(stored, r#"{"accuracy":0.7}"#);
    }

    #[test]
    fn a_late_completion_before_anyone_re_leases_is_accepted() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 1, 2)).unwrap();
        let l = f.lease("w1");
        f.clock.advance(Duration::from_millis(TTL_MS as u64 + 5));
        assert_eq!(f.ctx.expire().unwrap().requeued, [1]);
        assert!(f.ctx.complete(&l.lease_id, &metrics(0.6)).unwrap());
        assert_eq!(f.status(1), ("completed".into(), 1, None));
        assert!(f.ctx.lease("w2").unwrap().0.is_none(), "a completed trial is not handed out");
    }

    #[test]
    fn a_heartbeat_revives_an_unclaimed_expired_lease() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 1, 2)).unwrap();
        let l = f.lease("w1");
        f.clock.advance(Duration::from_millis(TTL_MS as u64));
        f.ctx.expire().unwrap();
        assert_eq!(f.status(1).0, "pending");
        f.ctx.heartbeat(&l.lease_id).unwrap();
        assert_eq!(f.status(1).0, "running");
        assert!(f.ctx.lease("w2").unwrap().0.is_none());
        assert!(f.ctx.complete(&l.lease_id, &metrics(0.6)).unwrap());
    }

    #[test]
    fn retries_run_out_by_expiry() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 1, 1)).unwrap();
        for attempt in 1..=2 {
            let l = f.lease("w");
            assert_eq!(l.attempt, attempt);
            f.clock.advance(Duration::from_millis(TTL_MS as u64));
        }
        let e = f.ctx.expire().unwrap();
        assert_eq!(e.failed, [1]);
        let (status, attempts, error) = f.status(1);
        assert_eq!((status.as_str(), attempts), ("failed", 2));
        assert!(error.unwrap().contains("lease expired after 2 attempts"));
        assert!(f.ctx.lease("w").unwrap().0.is_none());
    }

    #[test]
    fn failures_retry_then_fail_for_good() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 2, 1)).unwrap();
        let a = f.lease("w");
        assert_eq!(f.ctx.fail(&a.lease_id, "oom", true).unwrap(), FailOutcome { recorded: true, requeued: true });
        assert_eq!(f.ctx.fail(&a.lease_id, "oom", true).unwrap(), FailOutcome { recorded: false, requeued: false });
        let b = f.lease("w");
        assert_eq!((b.trial_id, b.attempt), (1, 2));
        assert_eq!(
            f.ctx.fail(&b.lease_id, "oom again", true).unwrap(),
            FailOutcome { recorded: true, requeued: false }
        );
        assert_eq!(f.status(1), ("failed".into(), 2, Some("attempt 2: oom again".into())));
        let c = f.lease("w");
        assert_eq!(c.trial_id, 2);
        f.ctx.fail(&c.lease_id, "bad parameters", false).unwrap();
        assert_eq!(f.status(2).0, "failed", "not retryable: failed at once");
    }

    /// Epoch `epoch` of 10 of the classifier stage, validation accuracy 0.7.
    fn finetune_epoch(epoch: u32, val_loss: f64) -> EpochProgress {
        EpochProgress { stage: Stage::Finetune, epoch, epochs: 10, train_loss: 0.5, val_loss, val_accuracy: Some(0.7) }
    }

    #[test]
    fn a_returned_trial_is_pending_again_without_using_a_retry() {
        let mut f = Fixture::new();
        // No retries: a failure would end the trial, a return must not.
        f.ctx.insert_study(&command_study("a", 1, 0)).unwrap();
        let a = f.lease("w");
        f.ctx.progress(&a.lease_id, &finetune_epoch(1, 0.6)).unwrap();
        assert!(f.ctx.give_back(&a.lease_id, "worker stopping").unwrap());
        assert!(!f.ctx.give_back(&a.lease_id, "worker stopping").unwrap(), "idempotent");
        assert!(f.ctx.complete(&a.lease_id, &metrics(0.9)).is_err(), "a returned lease cannot complete");
        let (status, attempts, error) = f.status(1);
        assert_eq!((status.as_str(), attempts), ("pending", 0));
        assert_eq!(error.as_deref(), Some("returned unfinished: worker stopping"));
        let curves: i64 = f.ctx.conn.query_row("SELECT COUNT(*) FROM curves", [], |r| r.get(0)).unwrap();
        assert_eq!(curves, 0, "the returned attempt's curves are gone");
        let outcome: String = f
            .ctx
            .conn
            .query_row("SELECT outcome FROM leases WHERE lease_id = ?1", [&a.lease_id], |r| r.get(0))
            .unwrap();
        assert_eq!(outcome, "returned");
        // The next lease is attempt 1 again, and the one retry-less attempt is still there.
        let b = f.lease("w2");
        assert_eq!((b.trial_id, b.attempt), (1, 1));
        assert!(f.ctx.complete(&b.lease_id, &metrics(0.8)).unwrap());
        assert_eq!(f.status(1).0, "completed");
    }

    #[test]
    fn progress_records_curves_extends_and_prunes_are_stored() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 1, 2)).unwrap();
        let l = f.lease("w");
        let p = finetune_epoch(3, 0.6);
        f.clock.advance(Duration::from_millis(TTL_MS as u64 - 1));
        assert_eq!(f.ctx.progress(&l.lease_id, &p).unwrap(), ProgressAction::Continue);
        // Reported again (a retried request): one row.
        f.ctx.progress(&l.lease_id, &EpochProgress { val_loss: 0.55, ..p.clone() }).unwrap();
        f.clock.advance(Duration::from_millis(TTL_MS as u64 - 1));
        assert!(f.ctx.expire().unwrap().is_empty(), "progress extends the lease");
        let (n, v): (i64, f64) = f
            .ctx
            .conn
            .query_row("SELECT COUNT(*), MAX(val_loss) FROM curves", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((n, v), (1, 0.55));
        let prune = PruneTrial { stage: Stage::Finetune, epoch: 3, metrics: metrics(0.4) };
        assert!(f.ctx.prune(&l.lease_id, &prune).unwrap());
        assert!(!f.ctx.prune(&l.lease_id, &prune).unwrap());
        let stored: String = f.ctx.conn.query_row("SELECT metrics FROM trials WHERE id = 1", [], |r| r.get(0)).unwrap();
        assert_eq!(stored, r#"{"accuracy":0.4,"loss":0.55,"pruned_epoch":3.0,"pruned_stage":3.0}"#);
        assert_eq!(f.status(1).0, "pruned");
    }

    /// Prunes from epoch 2 on when another trial already did better at that epoch.
    #[derive(Debug)]
    struct BeatenPruner;

    impl Pruner for BeatenPruner {
        fn decide(&self, ctx: &PruneContext<'_>) -> Result<ProgressAction> {
            let mine = ctx.progress.val_loss;
            let beaten = ctx.peers()?.iter().any(|p| p.val_loss < mine);
            Ok(if ctx.progress.epoch >= 2 && beaten { ProgressAction::Prune } else { ProgressAction::Continue })
        }
    }

    #[test]
    fn a_pruner_sees_the_other_trials_and_can_stop_one() {
        let mut f = Fixture::new();
        f.ctx.pruner = Arc::new(BeatenPruner);
        f.ctx.insert_study(&command_study("a", 2, 2)).unwrap();
        let (a, b) = (f.lease("w1"), f.lease("w2"));
        let p = finetune_epoch;
        assert_eq!(f.ctx.progress(&a.lease_id, &p(2, 0.3)).unwrap(), ProgressAction::Continue);
        assert_eq!(
            f.ctx.progress(&b.lease_id, &p(1, 0.9)).unwrap(),
            ProgressAction::Continue,
            "epoch 1 always goes on"
        );
        assert_eq!(f.ctx.progress(&b.lease_id, &p(2, 0.9)).unwrap(), ProgressAction::Prune);
    }

    #[test]
    fn restart_grace_gives_running_leases_a_full_ttl() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 1, 2)).unwrap();
        f.lease("w");
        f.clock.advance(Duration::from_millis(TTL_MS as u64 * 3));
        assert_eq!(f.ctx.grace_running().unwrap(), 1);
        assert!(f.ctx.expire().unwrap().is_empty());
        f.clock.advance(Duration::from_millis(TTL_MS as u64));
        assert_eq!(f.ctx.expire().unwrap().requeued, [1]);
    }
}
