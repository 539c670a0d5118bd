//! The user's controls over a study: cancel it, resume it, retry its failed trials, fail one
//! trial, add seeds. Each runs in the writer's transaction like every other state change; which
//! trials and leases each one moves, and to what, is [`crate::lifecycle`]'s trial-event table.
//!
//! # Semantics
//!
//! - **cancel STUDY**: pending trials become `cancelled` at once; running ones become
//!   `cancelled` too, and their lease ends with outcome `cancelled`, so the worker's next
//!   heartbeat or progress report is answered `stop` (nothing more is recorded) and it stops the
//!   trial without reporting it. Any later complete / fail / prune / return of that lease gets
//!   409 and is not counted: the trial stays `cancelled`, whatever the worker had computed. The
//!   study is marked cancelled (`studies.cancelled_ms`), so an adaptive (TPE) study proposes no
//!   more points. Cancelling again is harmless (it answers zeros).
//! - **resume STUDY**: the way back from a cancel. Cancelled trials go back to pending, as a
//!   retry does (attempts count on, the study's retries count again, earlier leases are
//!   forgotten, so a worker still stopping a cancelled attempt gets 409), and the study is no
//!   longer cancelled (`studies.cancelled_ms` cleared): an adaptive study samples again.
//!   Completed, failed and pruned trials are left as they are. Resuming a study that is not
//!   cancelled changes nothing and says so (`was_cancelled: false`).
//! - **retry STUDY [--trial ID]**: failed trials go back to pending (only failed ones; naming a
//!   trial in another state is 409, and a cancelled one's message names `resume`). Their
//!   attempts keep counting (so curves and leases of the earlier attempts stay apart), but the
//!   study's `retries` count again from this point (`trials.attempts_base`): a retried trial
//!   gets its full retries once more. Its earlier leases are forgotten (`trials.lease_id`
//!   cleared), so none of them can report into it later. A cancelled study is refused (409):
//!   cancelled means nothing of the study runs, until `resume`.
//! - **fail TRIAL**: a pending or running trial becomes `failed` with the user's reason. A
//!   running trial's lease ends with outcome `failed_by_user`: its worker is told `stop` as for a
//!   cancel. Failing a failed trial answers `false` (nothing changed); a completed, pruned or
//!   cancelled one is 409.
//! - **add-seeds STUDY SEED...**: every configuration the study has (distinct `config_id`; for
//!   an adaptive study, those proposed so far, each keeping its sampled point) × every new seed
//!   becomes a pending trial with the configuration's pipeline, parameters and label and the
//!   same stable trial key the spec would have planned with that seed. Seeds the study already
//!   has (for any configuration) are skipped and reported. A cancelled study is refused (409),
//!   saying to resume it first.

use std::collections::{BTreeMap, BTreeSet};

use decsweep_api::wire::{CancelOutcome, Resumed, SeedsAdded, TrialJob};
use decsweep_api::{LeaseOutcome, ParamValue, TrialStatus};
use rusqlite::{params, OptionalExtension};

use crate::error::{Error, Result};
use crate::lifecycle::{self, LeaseChange, Move, TrialEvent, ENDABLE_OUTCOME};
use crate::limits;
use crate::ops::NewTrial;
use crate::writer::WriteCtx;

/// The error text of a cancelled trial.
const CANCELLED: &str = "cancelled by user";

/// The reason a trial failed by the user gets when none is given.
pub(crate) const DEFAULT_FAIL_REASON: &str = "failed by user";

/// A configuration of a study, as its first trial stores it.
struct ConfigRow {
    config_id: String,
    pipeline: String,
    job: String,
    params: String,
    label: Option<String>,
    point: Option<String>,
}

impl WriteCtx {
    fn study_id(&self, name: &str) -> Result<i64> {
        self.conn
            .prepare_cached("SELECT id FROM studies WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?
            .ok_or_else(|| Error::StudyNotFound(name.to_string()))
    }

    /// Refuses `verb` on a cancelled study: cancelled means nothing of it runs until `resume`.
    fn refuse_if_cancelled(&self, study_id: i64, name: &str, verb: &str) -> Result<()> {
        let cancelled: bool = self
            .conn
            .prepare_cached("SELECT cancelled_ms IS NOT NULL FROM studies WHERE id = ?1")?
            .query_row([study_id], |r| r.get(0))?;
        if cancelled {
            return Err(Error::WrongState(format!(
                "study `{name}` is cancelled, so it takes no {verb}; resume it first (`decsweep resume {name}`)"
            )));
        }
        Ok(())
    }

    /// Ends, with `outcome`, the current lease of `study`'s trials in `status` (running ones;
    /// or pending ones whose lease expired unclaimed, which could otherwise revive it).
    fn end_current_leases(&self, study_id: i64, status: TrialStatus, outcome: LeaseOutcome, now: i64) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE leases SET outcome = ?3, ended_ms = ?4
                  WHERE lease_id IN (SELECT lease_id FROM trials
                                      WHERE study_id = ?1 AND status = ?2 AND lease_id IS NOT NULL)
                    AND (outcome IS NULL OR outcome = ?5)",
            )?
            .execute(params![study_id, status, outcome, now, ENDABLE_OUTCOME])?;
        Ok(())
    }

    /// Cancels a study (see the module docs).
    pub(crate) fn cancel_study(&mut self, name: &str) -> Result<CancelOutcome> {
        let study_id = self.study_id(name)?;
        let now = self.clock.now_ms();
        self.conn
            .prepare_cached("UPDATE studies SET cancelled_ms = COALESCE(cancelled_ms, ?2) WHERE id = ?1")?
            .execute(params![study_id, now])?;
        self.exhausted.insert(study_id);
        let mut out = CancelOutcome::default();
        for (from, to, lease) in lifecycle::moved_by(TrialEvent::Cancel) {
            if let LeaseChange::End(outcome) = lease {
                self.end_current_leases(study_id, from, outcome, now)?;
            }
            let n = self
                .conn
                .prepare_cached(
                    "UPDATE trials SET status = ?5, error = ?3, lease_expires_ms = NULL,
                            finished_ms = ?4, updated_ms = ?4
                      WHERE study_id = ?1 AND status = ?2",
                )?
                .execute(params![study_id, from, CANCELLED, now, to])? as u64;
            // Running trials are stopping (their workers hear `stop`); pending ones are done.
            if from == TrialStatus::Running {
                out.stopping += n;
            } else {
                out.cancelled += n;
            }
        }
        Ok(out)
    }

    /// Resumes a cancelled study (see the module docs).
    pub(crate) fn resume_study(&mut self, name: &str) -> Result<Resumed> {
        let study_id = self.study_id(name)?;
        let was_cancelled = self
            .conn
            .prepare_cached("UPDATE studies SET cancelled_ms = NULL WHERE id = ?1 AND cancelled_ms IS NOT NULL")?
            .execute([study_id])?
            > 0;
        // Cancelling marked an adaptive study as proposing nothing more; its sampler decides again.
        self.exhausted.remove(&study_id);
        let now = self.clock.now_ms();
        let mut resumed = 0;
        for (from, to, lease) in lifecycle::moved_by(TrialEvent::Resume) {
            debug_assert_eq!(lease, LeaseChange::Forget, "a resumed trial forgets its leases");
            resumed += self
                .conn
                .prepare_cached(
                    "UPDATE trials SET status = ?4, attempts_base = attempts, lease_id = NULL,
                            lease_expires_ms = NULL, finished_ms = NULL, updated_ms = ?2, error = NULL
                      WHERE study_id = ?1 AND status = ?3",
                )?
                .execute(params![study_id, now, from, to])? as u64;
        }
        Ok(Resumed { resumed, was_cancelled })
    }

    /// Sends a study's failed trials (or only `trial_id`) back to the queue; returns how many.
    pub(crate) fn retry_trials(&mut self, name: &str, trial_id: Option<i64>) -> Result<u64> {
        let study_id = self.study_id(name)?;
        if let Some(id) = trial_id {
            let row: Option<(i64, TrialStatus)> = self
                .conn
                .prepare_cached("SELECT study_id, status FROM trials WHERE id = ?1")?
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            match row {
                None => return Err(Error::TrialNotFound(id)),
                Some((other, _)) if other != study_id => {
                    return Err(Error::TrialNotInStudy { study: name.to_string(), trial_id: id })
                }
                Some((_, TrialStatus::Cancelled)) => {
                    return Err(Error::WrongState(format!(
                        "trial {id} is cancelled: use `decsweep resume {name}`, which brings back every cancelled \
                         trial of the study"
                    )))
                }
                Some((_, status)) if !matches!(lifecycle::trial_event(status, TrialEvent::Retry), Move::To { .. }) => {
                    return Err(Error::WrongState(format!("trial {id} is {status}; only failed trials can be retried")))
                }
                Some(_) => {}
            }
        }
        self.refuse_if_cancelled(study_id, name, "retries")?;
        let now = self.clock.now_ms();
        let mut n = 0;
        for (from, to, lease) in lifecycle::moved_by(TrialEvent::Retry) {
            debug_assert_eq!(lease, LeaseChange::Forget, "a retried trial forgets its leases");
            n += self
                .conn
                .prepare_cached(
                    "UPDATE trials SET status = ?5, attempts_base = attempts, lease_id = NULL,
                            lease_expires_ms = NULL, finished_ms = NULL, updated_ms = ?3,
                            error = 'retried by user; last error: ' || COALESCE(error, 'none')
                      WHERE study_id = ?1 AND status = ?4 AND (?2 IS NULL OR id = ?2)",
                )?
                .execute(params![study_id, trial_id, now, from, to])?;
        }
        Ok(n as u64)
    }

    /// Fails a pending or running trial for the user; `Ok(false)`: it had already failed.
    pub(crate) fn fail_trial(&mut self, trial_id: i64, reason: &str) -> Result<bool> {
        let (study_id, status): (i64, TrialStatus) = self
            .conn
            .prepare_cached("SELECT study_id, status FROM trials WHERE id = ?1")?
            .query_row([trial_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .ok_or(Error::TrialNotFound(trial_id))?;
        let (to, lease) = match lifecycle::trial_event(status, TrialEvent::UserFail) {
            Move::To { trial, lease } => (trial, lease),
            Move::Unchanged => return Ok(false),
            Move::Refused | Move::Never => {
                return Err(Error::WrongState(format!(
                    "trial {trial_id} is {status}; only pending or running trials can be failed"
                )))
            }
        };
        let now = self.clock.now_ms();
        if let LeaseChange::End(outcome) = lease {
            self.conn
                .prepare_cached(
                    "UPDATE leases SET outcome = ?3, ended_ms = ?2
                      WHERE lease_id = (SELECT lease_id FROM trials WHERE id = ?1)
                        AND (outcome IS NULL OR outcome = ?4)",
                )?
                .execute(params![trial_id, now, outcome, ENDABLE_OUTCOME])?;
        }
        self.conn
            .prepare_cached(
                "UPDATE trials SET status = ?4, error = ?2, lease_expires_ms = NULL, finished_ms = ?3,
                        updated_ms = ?3 WHERE id = ?1",
            )?
            .execute(params![trial_id, reason, now, to])?;
        // A failed point makes room for the next one in an adaptive study.
        self.top_up_quietly(study_id);
        Ok(true)
    }

    /// Adds every configuration of the study × each new seed as pending trials.
    pub(crate) fn add_seeds(&mut self, name: &str, seeds: &[u64]) -> Result<SeedsAdded> {
        let study_id = self.study_id(name)?;
        // Callers checked it before asking the writer; again here, so no caller can skip it.
        let seeds = limits::distinct_seeds(seeds.to_vec())?;
        self.refuse_if_cancelled(study_id, name, "new seeds")?;
        let present: BTreeSet<u64> = {
            let mut stmt = self.conn.prepare_cached("SELECT DISTINCT seed FROM trials WHERE study_id = ?1")?;
            let rows = stmt.query_map([study_id], |r| r.get::<_, i64>(0))?;
            rows.map(|r| r.map(|s| s as u64)).collect::<rusqlite::Result<_>>()?
        };
        let (skipped, wanted): (Vec<u64>, Vec<u64>) = seeds.iter().partition(|s| present.contains(s));
        let configs: Vec<ConfigRow> = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT config_id, pipeline, job, params, label, point FROM trials
                  WHERE id IN (SELECT MIN(id) FROM trials WHERE study_id = ?1 GROUP BY config_id)
                  ORDER BY id",
            )?;
            let rows = stmt.query_map([study_id], |r| {
                Ok(ConfigRow {
                    config_id: r.get(0)?,
                    pipeline: r.get(1)?,
                    job: r.get(2)?,
                    params: r.get(3)?,
                    label: r.get(4)?,
                    point: r.get(5)?,
                })
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let existing: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM trials WHERE study_id = ?1")?
            .query_row([study_id], |r| r.get(0))?;
        let adding = (configs.len() as u64).saturating_mul(wanted.len() as u64);
        limits::check_study_size(name, existing.max(0) as u64, adding)?;
        let now = self.clock.now_ms();
        let mut added = 0u64;
        for seed in wanted {
            for config in &configs {
                let trial = self.trial_for_seed(study_id, config, seed)?;
                added += self.insert_trial(study_id, &trial, now, config.point.as_deref())? as u64;
            }
        }
        Ok(SeedsAdded { added, skipped })
    }

    /// The trial of `config` with another seed, keyed and invoked as the spec would plan it.
    fn trial_for_seed(&mut self, study_id: i64, config: &ConfigRow, seed: u64) -> Result<NewTrial> {
        let params: BTreeMap<String, ParamValue> = serde_json::from_str(&config.params)
            .map_err(|e| Error::Corrupt(format!("parameters of configuration {}: {e}", config.config_id)))?;
        let trial_key = decsweep_search::trial::trial_key(&config.pipeline, &params, seed);
        let job: TrialJob = serde_json::from_str(&config.job)
            .map_err(|e| Error::Corrupt(format!("job of configuration {}: {e}", config.config_id)))?;
        let job_json = match job {
            // A model job holds no seed (the lease carries it): the same job serves every seed.
            TrialJob::Model { .. } => config.job.clone(),
            // A command's invocation names the seed and trial key: build it again from the spec.
            TrialJob::Command { .. } => {
                let meta = self.study_meta(study_id)?;
                let command = meta.spec.as_ref().and_then(|s| s.command()).ok_or_else(|| {
                    Error::WrongState(format!(
                        "study `{}`: its stored spec no longer parses, so its command cannot be run with new seeds",
                        meta.name
                    ))
                })?;
                let inv = command.invocation(&params, seed, &trial_key, &config.config_id);
                let job = TrialJob::Command {
                    argv: inv.argv,
                    env: inv.env,
                    workdir: inv.workdir,
                    stop_grace_s: inv.stop_grace_s,
                };
                serde_json::to_string(&job).map_err(|e| Error::Internal(format!("cannot encode a job: {e}")))?
            }
        };
        Ok(NewTrial {
            trial_key,
            pipeline: config.pipeline.clone(),
            job_json,
            params_json: config.params.clone(),
            seed,
            config_id: config.config_id.clone(),
            label: config.label.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use decsweep_api::wire::{EpochProgress, ProgressAction, PruneTrial};
    use decsweep_api::Stage;

    use super::*;
    use crate::ops::tests::{command_study, Fixture, TTL_MS};

    fn metrics(acc: f64) -> BTreeMap<String, f64> {
        BTreeMap::from([("accuracy".to_string(), acc)])
    }

    fn epoch(n: u32) -> EpochProgress {
        EpochProgress {
            stage: Stage::Finetune,
            epoch: n,
            epochs: 9,
            train_loss: 0.5,
            val_loss: 0.5,
            val_accuracy: None,
        }
    }

    fn lease(f: &mut Fixture) -> decsweep_api::wire::Lease {
        f.ctx.lease("w").unwrap().0.expect("a pending trial")
    }

    fn count_status(f: &Fixture, status: &str) -> i64 {
        f.ctx.conn.query_row("SELECT COUNT(*) FROM trials WHERE status = ?1", [status], |r| r.get(0)).unwrap()
    }

    #[test]
    fn cancel_ends_pending_at_once_and_tells_running_workers_to_stop() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 4, 2)).unwrap();
        f.ctx.insert_study(&command_study("other", 1, 2)).unwrap();
        let done = lease(&mut f);
        f.ctx.complete(&done.lease_id, &metrics(0.5)).unwrap();
        let running = lease(&mut f);
        let out = f.ctx.cancel_study("a").unwrap();
        assert_eq!(out, CancelOutcome { cancelled: 2, stopping: 1 });
        assert_eq!(f.status(1).0, "completed", "finished trials are left alone");
        for id in 2..=4 {
            let (status, _, error) = f.status(id);
            assert_eq!((status.as_str(), error.as_deref()), ("cancelled", Some(CANCELLED)));
        }
        assert_eq!(f.status(5).0, "pending", "another study is untouched");

        // The running trial's worker hears `stop` at its next heartbeat or epoch; nothing is recorded.
        assert_eq!(f.ctx.heartbeat(&running.lease_id).unwrap().1, ProgressAction::Stop);
        assert_eq!(f.ctx.progress(&running.lease_id, &epoch(1)).unwrap(), ProgressAction::Stop);
        let curves: i64 = f.ctx.conn.query_row("SELECT COUNT(*) FROM curves", [], |r| r.get(0)).unwrap();
        assert_eq!(curves, 0);
        // Whatever it reports afterwards is refused and changes nothing.
        assert!(matches!(f.ctx.complete(&running.lease_id, &metrics(0.9)), Err(Error::LeaseConflict { .. })));
        assert!(matches!(f.ctx.fail(&running.lease_id, "x", true), Err(Error::LeaseConflict { .. })));
        let prune = PruneTrial { stage: Stage::Finetune, epoch: 1, metrics: metrics(0.1) };
        assert!(matches!(f.ctx.prune(&running.lease_id, &prune), Err(Error::LeaseConflict { .. })));
        assert!(matches!(f.ctx.give_back(&running.lease_id, "stopping"), Err(Error::LeaseConflict { .. })));
        assert_eq!(f.status(running.trial_id).0, "cancelled");

        // Idempotent; the next lease comes from the other study only.
        assert_eq!(f.ctx.cancel_study("a").unwrap(), CancelOutcome::default());
        assert_eq!(lease(&mut f).study, "other");
        assert!(f.ctx.lease("w").unwrap().0.is_none());
        assert!(matches!(f.ctx.cancel_study("nope"), Err(Error::StudyNotFound(n)) if n == "nope"));
    }

    #[test]
    fn a_cancelled_trials_expired_lease_cannot_revive_it() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 1, 2)).unwrap();
        let l = lease(&mut f);
        f.clock.advance(Duration::from_millis(TTL_MS as u64));
        assert_eq!(f.ctx.expire().unwrap().requeued, [1], "pending again, its lease unclaimed");
        assert_eq!(f.ctx.cancel_study("a").unwrap(), CancelOutcome { cancelled: 1, stopping: 0 });
        assert_eq!(f.ctx.heartbeat(&l.lease_id).unwrap().1, ProgressAction::Stop);
        assert!(matches!(f.ctx.complete(&l.lease_id, &metrics(0.9)), Err(Error::LeaseConflict { .. })));
        assert_eq!(f.status(1).0, "cancelled");
    }

    #[test]
    fn retry_requeues_failed_trials_with_their_retries_again() {
        let mut f = Fixture::new();
        // One retry: two attempts before a trial fails for good.
        f.ctx.insert_study(&command_study("a", 3, 1)).unwrap();
        let mut first = None;
        for _ in 0..2 {
            let l = lease(&mut f);
            assert_eq!(l.trial_id, 1);
            f.ctx.fail(&l.lease_id, "oom", true).unwrap();
            first = Some(l);
        }
        let first = first.unwrap();
        assert_eq!(f.status(1), ("failed".into(), 2, Some("attempt 2: oom".into())));
        let done = lease(&mut f);
        f.ctx.complete(&done.lease_id, &metrics(0.5)).unwrap();

        // Not failed: refused, named.
        assert!(
            matches!(f.ctx.retry_trials("a", Some(2)), Err(Error::WrongState(m)) if m.contains("trial 2 is completed"))
        );
        assert!(matches!(f.ctx.retry_trials("a", Some(99)), Err(Error::TrialNotFound(99))));
        f.ctx.insert_study(&command_study("b", 1, 1)).unwrap();
        assert!(matches!(f.ctx.retry_trials("b", Some(1)), Err(Error::TrialNotInStudy { trial_id: 1, .. })));
        assert!(matches!(f.ctx.retry_trials("zz", None), Err(Error::StudyNotFound(_))));

        assert_eq!(f.ctx.retry_trials("a", None).unwrap(), 1);
        assert_eq!(f.ctx.retry_trials("a", None).unwrap(), 0, "nothing failed any more");
        let (status, attempts, error) = f.status(1);
        assert_eq!((status.as_str(), attempts), ("pending", 2), "attempts keep counting");
        assert!(error.unwrap().contains("retried by user; last error: attempt 2: oom"));
        // The old lease can no longer touch the trial.
        assert!(matches!(f.ctx.complete(&first.lease_id, &metrics(0.1)), Err(Error::LeaseConflict { .. })));

        // Two more attempts (the study's one retry again), numbered on from 2.
        for attempt in [3, 4] {
            let mut l = lease(&mut f);
            while l.trial_id != 1 {
                f.ctx.complete(&l.lease_id, &metrics(0.5)).unwrap();
                l = lease(&mut f);
            }
            assert_eq!(l.attempt, attempt);
            f.ctx.fail(&l.lease_id, "oom", true).unwrap();
        }
        assert_eq!(f.status(1).0, "failed", "retries used up again");
        // Retry one trial by id.
        assert_eq!(f.ctx.retry_trials("a", Some(1)).unwrap(), 1);
        assert_eq!(f.status(1).0, "pending");
    }

    #[test]
    fn retries_by_expiry_also_count_from_the_users_retry() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 1, 0)).unwrap();
        lease(&mut f);
        f.clock.advance(Duration::from_millis(TTL_MS as u64));
        assert_eq!(f.ctx.expire().unwrap().failed, [1], "no retries: failed at the first expiry");
        assert_eq!(f.ctx.retry_trials("a", None).unwrap(), 1);
        let l = lease(&mut f);
        assert_eq!(l.attempt, 2);
        f.clock.advance(Duration::from_millis(TTL_MS as u64));
        assert_eq!(f.ctx.expire().unwrap().failed, [1], "one attempt again, not zero");
    }

    #[test]
    fn fail_marks_pending_and_running_trials_and_stops_the_worker() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 3, 2)).unwrap();
        let running = lease(&mut f);
        assert!(f.ctx.fail_trial(running.trial_id, "diverges, stop it").unwrap());
        assert_eq!(f.status(1), ("failed".into(), 1, Some("diverges, stop it".into())));
        assert_eq!(f.ctx.progress(&running.lease_id, &epoch(2)).unwrap(), ProgressAction::Stop);
        assert_eq!(f.ctx.heartbeat(&running.lease_id).unwrap().1, ProgressAction::Stop);
        assert!(matches!(f.ctx.complete(&running.lease_id, &metrics(0.9)), Err(Error::LeaseConflict { .. })));
        assert!(!f.ctx.fail_trial(1, DEFAULT_FAIL_REASON).unwrap(), "already failed: nothing changes");
        assert_eq!(f.status(1).2.as_deref(), Some("diverges, stop it"));

        assert!(f.ctx.fail_trial(3, DEFAULT_FAIL_REASON).unwrap(), "a pending trial too");
        assert_eq!(f.status(3), ("failed".into(), 0, Some(DEFAULT_FAIL_REASON.into())));
        let done = lease(&mut f);
        assert_eq!(done.trial_id, 2);
        f.ctx.complete(&done.lease_id, &metrics(0.5)).unwrap();
        assert!(matches!(f.ctx.fail_trial(2, "x"), Err(Error::WrongState(m)) if m.contains("trial 2 is completed")));
        assert!(matches!(f.ctx.fail_trial(42, "x"), Err(Error::TrialNotFound(42))));
        // A failed-by-user trial can be retried like any failed one.
        assert_eq!(f.ctx.retry_trials("a", None).unwrap(), 2);
        assert_eq!(count_status(&f, "pending"), 2);
    }

    /// A command study and a model study, each a grid of two configurations per pipeline.
    const COMMAND_GRID: &str = r#"
[study]
name = "g"
dataset = { synthetic = { seed = 1, n = 8 } }
pipelines = ["command"]
seeds = [0, 1]
[command]
program = ["python3", "f.py"]
[space]
x = { grid = [0.5, 1.0] }
"#;

    const MODEL_GRID: &str = r#"
[study]
name = "m"
dataset = { synthetic = { seed = 1, n = 8 } }
pipelines = ["baseline", "dec"]
seeds = [0, 1]
[space]
label_fraction = { grid = [0.5, 1.0] }
"#;

    type Row = (String, String, String, String, i64, String, Option<String>);

    /// The rows a spec plans.
    fn planned(text: &str) -> crate::ops::NewStudy {
        let req = decsweep_api::wire::CreateStudy::new(text, "g.toml");
        let spec = crate::study::parse(&req, &Default::default()).unwrap();
        let dataset = crate::ops::DatasetRow {
            sha256: "ab".repeat(32),
            file: "x.safetensors".into(),
            bytes: 3,
            source: "test".into(),
        };
        crate::study::new_study(&req, &spec, dataset).unwrap()
    }

    fn stored(f: &Fixture, study: &str) -> Vec<Row> {
        let mut stmt = f
            .ctx
            .conn
            .prepare(
                "SELECT t.trial_key, t.pipeline, t.job, t.params, t.seed, t.config_id, t.label
                   FROM trials t JOIN studies s ON s.id = t.study_id WHERE s.name = ?1 ORDER BY t.trial_key",
            )
            .unwrap();
        let rows = stmt
            .query_map([study], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))
            .unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    #[test]
    fn added_seeds_are_the_trials_the_spec_would_plan_with_those_seeds() {
        let mut f = Fixture::new();
        for (text, name, configs) in [(COMMAND_GRID, "g", 2), (MODEL_GRID, "m", 4)] {
            let study = planned(text);
            assert_eq!(study.trials.len(), configs * 2);
            f.ctx.insert_study(&study).unwrap();
            let out = f.ctx.add_seeds(name, &[1, 7, 8, 7]).unwrap();
            assert_eq!(out, SeedsAdded { added: 2 * configs as u64, skipped: vec![1] });
            // The same spec with seeds 0, 1, 7, 8 plans exactly the rows the study now has.
            let wide = planned(&text.replace("seeds = [0, 1]", "seeds = [0, 1, 7, 8]"));
            let mut expected: Vec<Row> = wide
                .trials
                .iter()
                .map(|t| {
                    let (key, job, params) = (t.trial_key.clone(), t.job_json.clone(), t.params_json.clone());
                    (key, t.pipeline.clone(), job, params, t.seed as i64, t.config_id.clone(), t.label.clone())
                })
                .collect();
            expected.sort();
            assert_eq!(stored(&f, name), expected, "same keys, jobs (a command's --seed and key), params, labels");
            assert_eq!(f.ctx.add_seeds(name, &[0, 8]).unwrap(), SeedsAdded { added: 0, skipped: vec![0, 8] });
        }
        assert!(matches!(f.ctx.add_seeds("g", &[]), Err(Error::BadRequest(_))));
        assert!(matches!(f.ctx.add_seeds("zz", &[3]), Err(Error::StudyNotFound(_))));
    }

    const TPE: &str = r#"
[study]
name = "tpe"
dataset = { synthetic = { seed = 1, n = 8 } }
pipelines = ["command"]
seeds = [0, 1]
[command]
program = ["python3", "f.py"]
[space]
x = { uniform = [0.0, 1.0] }
[sampler]
kind = "tpe"
n_trials = 5
"#;

    fn tpe_study(f: &mut Fixture) {
        crate::adaptive::tests::study_from(f, TPE);
    }

    #[test]
    fn a_cancelled_adaptive_study_proposes_nothing_more_even_after_a_restart() {
        let mut f = Fixture::new();
        tpe_study(&mut f);
        let (a, _b) = (lease(&mut f), lease(&mut f));
        assert_eq!(count_status(&f, "pending") + count_status(&f, "running"), 2);
        assert_eq!(f.ctx.cancel_study("tpe").unwrap(), CancelOutcome { cancelled: 0, stopping: 2 });
        assert!(f.ctx.lease("w").unwrap().0.is_none(), "no new point once cancelled");
        let n: i64 = f.ctx.conn.query_row("SELECT COUNT(*) FROM trials", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 2);
        // The flag is in the database, not only in the writer's memory.
        f.ctx.forget_cached_studies();
        assert!(f.ctx.lease("w").unwrap().0.is_none());
        // A cancelled study takes no new work; the late completion is refused.
        assert!(f.ctx.complete(&a.lease_id, &metrics(0.5)).is_err());
        assert!(matches!(f.ctx.add_seeds("tpe", &[5]), Err(Error::WrongState(m)) if m.contains("decsweep resume tpe")));
        let n: i64 = f.ctx.conn.query_row("SELECT COUNT(*) FROM trials", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 2);
    }

    #[test]
    fn a_resumed_adaptive_study_runs_its_cancelled_points_and_samples_again() {
        let mut f = Fixture::new();
        tpe_study(&mut f);
        let (a, _b) = (lease(&mut f), lease(&mut f));
        f.ctx.cancel_study("tpe").unwrap();
        f.ctx.forget_cached_studies();
        assert_eq!(f.ctx.resume_study("tpe").unwrap(), Resumed { resumed: 2, was_cancelled: true });
        // The cancelled attempt's worker is not heard any more; the trial runs a new attempt.
        assert!(matches!(f.ctx.heartbeat(&a.lease_id), Err(Error::LeaseConflict { .. })));
        let mut seen = Vec::new();
        while let Some(l) = f.ctx.lease("w").unwrap().0 {
            f.ctx.complete(&l.lease_id, &metrics(0.5 + 0.01 * l.trial_id as f64)).unwrap();
            seen.push(l.trial_id);
        }
        assert_eq!(&seen[..2], [a.trial_id, a.trial_id + 1], "the cancelled trials first, oldest first");
        assert_eq!(seen.len(), 10, "then the sampler proposes its other 4 points × 2 seeds: {seen:?}");
        assert_eq!(count_status(&f, "completed"), 10);
    }

    #[test]
    fn resume_brings_back_cancelled_trials_only_and_refusals_name_it() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 4, 0)).unwrap();
        let done = lease(&mut f);
        f.ctx.complete(&done.lease_id, &metrics(0.5)).unwrap();
        let broken = lease(&mut f);
        f.ctx.fail(&broken.lease_id, "oom", false).unwrap();
        let running = lease(&mut f);
        assert_eq!(f.ctx.resume_study("a").unwrap(), Resumed::default(), "not cancelled: nothing changes");
        assert_eq!(f.ctx.cancel_study("a").unwrap(), CancelOutcome { cancelled: 1, stopping: 1 });

        // Cancelled means nothing runs: retry and add-seeds are refused, each naming resume.
        let refused = |r: Result<u64>| match r {
            Err(Error::WrongState(m)) => m,
            other => panic!("not refused: {other:?}"),
        };
        assert!(refused(f.ctx.retry_trials("a", None)).contains("study `a` is cancelled"));
        let m = refused(f.ctx.retry_trials("a", Some(running.trial_id)));
        assert!(m.contains(&format!("trial {} is cancelled: use `decsweep resume a`", running.trial_id)), "{m}");
        assert!(refused(f.ctx.add_seeds("a", &[9]).map(|s| s.added)).contains("resume it first (`decsweep resume a`)"));

        let out = f.ctx.resume_study("a").unwrap();
        assert_eq!(out, Resumed { resumed: 2, was_cancelled: true });
        assert_eq!(f.status(done.trial_id).0, "completed");
        assert_eq!(f.status(broken.trial_id).0, "failed", "a failed trial waits for retry");
        let (status, attempts, error) = f.status(running.trial_id);
        assert_eq!((status.as_str(), attempts, error), ("pending", 1, None), "attempts count on; no error");
        assert_eq!(f.ctx.resume_study("a").unwrap(), Resumed::default(), "resuming again changes nothing");
        assert!(matches!(f.ctx.resume_study("zz"), Err(Error::StudyNotFound(_))));

        // The resumed trials run; the study takes retries and seeds again.
        let again = lease(&mut f);
        assert_eq!((again.trial_id, again.attempt), (running.trial_id, 2));
        assert_eq!(f.ctx.retry_trials("a", None).unwrap(), 1);

        // New seeds likewise: refused while cancelled, added once resumed.
        f.ctx.insert_study(&planned(MODEL_GRID)).unwrap();
        f.ctx.cancel_study("m").unwrap();
        assert!(refused(f.ctx.add_seeds("m", &[9]).map(|s| s.added)).contains("study `m` is cancelled"));
        assert_eq!(f.ctx.resume_study("m").unwrap(), Resumed { resumed: 8, was_cancelled: true });
        assert_eq!(f.ctx.add_seeds("m", &[9]).unwrap().added, 4);
    }

    #[test]
    fn added_seeds_of_an_adaptive_study_join_their_points() {
        let mut f = Fixture::new();
        tpe_study(&mut f);
        let a = lease(&mut f);
        let b = lease(&mut f);
        let _point2 = lease(&mut f);
        f.ctx.complete(&a.lease_id, &metrics(0.5)).unwrap();
        f.ctx.complete(&b.lease_id, &metrics(0.7)).unwrap();
        let out = f.ctx.add_seeds("tpe", &[9]).unwrap();
        assert_eq!(out.added, 2, "two points proposed so far");
        let points: Vec<(Option<String>, i64)> = {
            let mut stmt =
                f.ctx.conn.prepare("SELECT point, COUNT(*) FROM trials GROUP BY point ORDER BY MIN(id)").unwrap();
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
            rows.collect::<rusqlite::Result<_>>().unwrap()
        };
        assert_eq!(points.len(), 2, "no new point: {points:?}");
        assert!(points.iter().all(|(p, n)| p.is_some() && *n == 3), "each point has 3 seeds now: {points:?}");
    }
}
