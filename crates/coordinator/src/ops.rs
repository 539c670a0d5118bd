//! Every state change of the store, as functions over the writer's connection.
//!
//! Each function runs inside a transaction its caller opened (the writer thread wraps each
//! request in a savepoint of a batch transaction, see [`crate::store`]); none commits.
//!
//! # Lease semantics
//!
//! A lease is one attempt at one trial. The trial row names its current lease; the `leases`
//! table remembers every lease ever granted and how it ended (`outcome`: NULL while active,
//! then `expired`, `completed`, `failed`, `released` (failed, trial requeued), `pruned` or
//! `returned` (given back unfinished by a worker that is stopping)). A call naming a lease is
//! judged by its [`Standing`]:
//!
//! - **active**: the trial is running under this lease: the call applies.
//! - **expired, unclaimed**: the lease ran out and nobody has leased the trial since (it is
//!   pending again, or failed because its attempts ran out). A completion, failure or prune is
//!   still accepted — the work was done and nobody else is doing it — and a heartbeat or
//!   progress report revives the lease (the trial is running again, same attempt) when the
//!   trial is pending. This is what lets workers carry on across a coordinator restart longer
//!   than the TTL, or a network hiccup.
//! - **ended**: this lease already completed, failed, pruned or returned the trial. Repeating the same
//!   kind of call answers "not recorded" (200, idempotent); another kind is a conflict.
//! - **stopped by the user**: the user cancelled the study or failed the trial while this lease
//!   held it (`cancelled`, `failed_by_user`; see [`crate::control`]). Heartbeats and progress
//!   answer `stop` (200, nothing recorded) so the worker stops the trial; complete, fail, prune
//!   and return get 409 and change nothing.
//! - **superseded**: the trial has been leased again since. Every call is a conflict (409) and
//!   changes nothing, so a late result is never counted twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use decsweep_api::wire::{CheckpointInfo, DatasetRef, EpochProgress, Lease, ProgressAction, PruneTrial, TrialJob};
use decsweep_search::{LoadOptions, SweepSpec, DEFAULT_CHECKPOINT_EVERY_S};
use rand::Rng;
use rusqlite::{params, Connection, OptionalExtension};

use crate::checkpoints;
use crate::clock::{rfc3339, Clock};
use crate::error::{Error, Result};
use crate::pruner::{PruneContext, Pruner};

/// What the writer keeps between requests: its connection and caches of immutable rows.
pub(crate) struct WriteCtx {
    pub(crate) conn: Connection,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ttl_ms: i64,
    /// The pruner of studies whose spec has no `[pruner]`.
    pub(crate) pruner: Arc<dyn Pruner>,
    /// Use [`WriteCtx::pruner`] for every study, whatever its spec says.
    pub(crate) pruner_override: bool,
    /// Studies never change after creation, so the lease path reads them from here.
    studies: HashMap<i64, Arc<StudyMeta>>,
    /// Adaptive studies whose sampler has proposed its last point.
    pub(crate) exhausted: HashSet<i64>,
}

/// The parts of a study the lease path needs.
#[derive(Debug)]
pub(crate) struct StudyMeta {
    pub(crate) name: String,
    pub(crate) retries: u32,
    pub(crate) dataset: DatasetRef,
    pub(crate) objective_metric: String,
    pub(crate) maximize: bool,
    /// The stored spec, parsed again (dataset not checked); `None` if it no longer parses (a
    /// spec stored by another decsweep version): then the study has no spec pruner and no
    /// sampler to ask.
    pub(crate) spec: Option<Arc<SweepSpec>>,
    /// The pruner of the spec's `[pruner]`.
    pub(crate) pruner: Option<Arc<dyn Pruner>>,
}

// Defined in a leaf module so that `dataset.rs` need not import this one (no import circle).
pub(crate) use crate::rows::DatasetRow;

/// A trial row to insert with a new study.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NewTrial {
    pub(crate) trial_key: String,
    pub(crate) pipeline: String,
    pub(crate) job_json: String,
    pub(crate) params_json: String,
    pub(crate) seed: u64,
    pub(crate) config_id: String,
    pub(crate) label: Option<String>,
}

/// A study ready to insert: the spec is parsed, the dataset stored.
#[derive(Clone, Debug)]
pub(crate) struct NewStudy {
    pub(crate) name: String,
    pub(crate) spec: String,
    pub(crate) spec_path: String,
    pub(crate) dataset: DatasetRow,
    pub(crate) retries: u32,
    pub(crate) objective_metric: String,
    pub(crate) maximize: bool,
    /// Trials are asked of the sampler as work is needed ([`crate::adaptive`]); `trials` is empty.
    pub(crate) adaptive: bool,
    pub(crate) trials: Vec<NewTrial>,
}

/// Whether [`WriteCtx::insert_study`] created the study.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Inserted {
    Created,
    Existing,
}

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

/// Where a lease stands relative to its trial (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Standing {
    Active,
    ExpiredUnclaimed,
    Ended(String),
    Superseded,
}

/// What [`WriteCtx::keep_alive`] does for a lease in good standing.
enum KeepAlive {
    Extend,
    /// Its lease expired but no other worker took the trial: the worker carries on.
    Revive,
    /// The user stopped the trial.
    Stop,
}

/// A lease and the trial it names.
#[derive(Debug)]
struct LeaseRow {
    lease_id: String,
    trial_id: i64,
    attempt: u32,
    outcome: Option<String>,
    trial_status: String,
    trial_lease: Option<String>,
    study_id: i64,
    attempts: u32,
    /// `attempts` when the user last retried the trial.
    attempts_base: u32,
}

/// Lease outcomes set by the user's controls ([`crate::control`]): the worker is told to stop.
pub(crate) const STOPPED_OUTCOMES: [&str; 2] = ["cancelled", "failed_by_user"];

impl LeaseRow {
    fn standing(&self) -> Standing {
        if self.trial_lease.as_deref() != Some(self.lease_id.as_str()) {
            return Standing::Superseded;
        }
        match self.outcome.as_deref() {
            None => Standing::Active,
            Some("expired") => Standing::ExpiredUnclaimed,
            Some(other) => Standing::Ended(other.to_string()),
        }
    }

    fn conflict(&self, reason: impl Into<String>) -> Error {
        Error::LeaseConflict { lease_id: self.lease_id.clone(), trial_id: self.trial_id, reason: reason.into() }
    }

    /// What a sign of life (heartbeat, progress, checkpoint) from this lease does, or why it
    /// is refused.
    fn keep_alive_verdict(&self) -> Result<KeepAlive> {
        match self.standing() {
            Standing::Active => Ok(KeepAlive::Extend),
            Standing::ExpiredUnclaimed if self.trial_status == "pending" => Ok(KeepAlive::Revive),
            Standing::ExpiredUnclaimed => {
                Err(self.conflict(format!("the lease expired and the trial is {}", self.trial_status)))
            }
            Standing::Ended(outcome) if STOPPED_OUTCOMES.contains(&outcome.as_str()) => Ok(KeepAlive::Stop),
            Standing::Ended(outcome) => Err(self.conflict(format!("the lease already ended: {outcome}"))),
            Standing::Superseded => Err(self.superseded()),
        }
    }

    fn superseded(&self) -> Error {
        self.conflict(format!(
            "the trial was leased again (it is on attempt {}); this lease's calls are not counted",
            self.attempts
        ))
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
    match lease.keep_alive_verdict()? {
        KeepAlive::Stop => Err(stopped_state_refused(lease.trial_id)),
        KeepAlive::Extend | KeepAlive::Revive => Ok(()),
    }
}

fn stopped_state_refused(trial_id: i64) -> Error {
    Error::WrongState(format!("trial {trial_id} was cancelled or failed by the user: its state is not kept"))
}

/// A running trial whose lease has run out.
struct Overdue {
    id: i64,
    /// Attempts since the user last retried the trial (all of them if never).
    attempts: u32,
    retries: u32,
    lease_id: Option<String>,
    worker: Option<String>,
}

/// A fresh lease id: 128 random bits in hex.
fn new_lease_id() -> String {
    format!("{:032x}", rand::thread_rng().gen::<u128>())
}

fn u32_col(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl WriteCtx {
    /// Inserts a pending trial unless the study already has its `trial_key`; `point` is the
    /// sampled point's key for adaptive studies. Returns how many rows were inserted (0 or 1).
    pub(crate) fn insert_trial(&self, study_id: i64, t: &NewTrial, now: i64, point: Option<&str>) -> Result<usize> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT OR IGNORE INTO trials (study_id, trial_key, pipeline, job, params, seed, config_id, label,
                                           status, attempts, created_ms, updated_ms, point)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', 0, ?9, ?9, ?10)",
        )?;
        Ok(stmt.execute(params![
            study_id,
            t.trial_key,
            t.pipeline,
            t.job_json,
            t.params_json,
            t.seed as i64,
            t.config_id,
            t.label,
            now,
            point
        ])?)
    }

    pub(crate) fn new(conn: Connection, clock: Arc<dyn Clock>, ttl_ms: i64, pruner: Arc<dyn Pruner>) -> Self {
        WriteCtx {
            conn,
            clock,
            ttl_ms: ttl_ms.max(1),
            pruner,
            pruner_override: false,
            studies: HashMap::new(),
            exhausted: HashSet::new(),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Drops cached study rows (after a rollback, a cached row may not exist).
    pub(crate) fn forget_cached_studies(&mut self) {
        self.studies.clear();
        self.exhausted.clear();
    }

    pub(crate) fn study_meta(&mut self, study_id: i64) -> Result<Arc<StudyMeta>> {
        if let Some(m) = self.studies.get(&study_id) {
            return Ok(m.clone());
        }
        let meta = self
            .conn
            .query_row(
                "SELECT s.name, s.retries, s.objective_metric, s.objective_direction, d.sha256, d.bytes,
                        s.spec, s.spec_path
                   FROM studies s JOIN datasets d ON d.sha256 = s.dataset_sha256 WHERE s.id = ?1",
                [study_id],
                |r| {
                    Ok((
                        StudyMeta {
                            name: r.get(0)?,
                            retries: u32_col(r.get(1)?),
                            objective_metric: r.get(2)?,
                            maximize: r.get::<_, String>(3)? != "minimize",
                            dataset: DatasetRef { sha256: r.get(4)?, bytes: r.get::<_, i64>(5)?.max(0) as u64 },
                            spec: None,
                            pruner: None,
                        },
                        r.get::<_, String>(6)?,
                        r.get::<_, String>(7)?,
                    ))
                },
            )
            .optional()?
            .ok_or_else(|| Error::Corrupt(format!("a trial names study {study_id}, which does not exist")))?;
        let (mut meta, text, path) = meta;
        match SweepSpec::from_source(&text, &path, &LoadOptions { check_dataset: false }) {
            Ok(spec) => {
                meta.pruner = spec.pruner().map(crate::pruner::from_spec);
                meta.spec = Some(Arc::new(spec));
            }
            Err(e) => {
                tracing::warn!(study = %meta.name, error = %e, "the stored spec does not parse; no spec pruner or sampler")
            }
        }
        let meta = Arc::new(meta);
        self.studies.insert(study_id, meta.clone());
        Ok(meta)
    }

    /// Inserts a study with its dataset row and trials, or recognises it as already there.
    pub(crate) fn insert_study(&mut self, study: &NewStudy) -> Result<Inserted> {
        let existing: Option<String> =
            self.conn.query_row("SELECT spec FROM studies WHERE name = ?1", [&study.name], |r| r.get(0)).optional()?;
        if let Some(spec) = existing {
            return if spec == study.spec {
                Ok(Inserted::Existing)
            } else {
                Err(Error::StudyConflict { name: study.name.clone() })
            };
        }
        let now = self.now();
        let created_at = rfc3339(now);
        let d = &study.dataset;
        self.conn.execute(
            "INSERT OR IGNORE INTO datasets (sha256, file, bytes, source, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![d.sha256, d.file, d.bytes as i64, d.source, created_at],
        )?;
        self.conn.execute(
            "INSERT INTO studies (name, spec, spec_path, dataset_sha256, retries, objective_metric,
                                  objective_direction, created_at, created_ms, adaptive)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                study.name,
                study.spec,
                study.spec_path,
                d.sha256,
                study.retries,
                study.objective_metric,
                if study.maximize { "maximize" } else { "minimize" },
                created_at,
                now,
                study.adaptive
            ],
        )?;
        let study_id = self.conn.last_insert_rowid();
        for t in &study.trials {
            self.insert_trial(study_id, t, now, None)?;
        }
        if study.adaptive {
            // The first point, so the study has work at once. Errors here refuse the study.
            self.top_up(study_id)?;
        }
        Ok(Inserted::Created)
    }

    /// Moves every running trial whose lease has run out back to the queue, or to failed when
    /// it has used up its retries.
    pub(crate) fn expire(&mut self) -> Result<Expired> {
        let now = self.now();
        let due: Vec<Overdue> = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT t.id, t.attempts - t.attempts_base, s.retries, t.lease_id, t.worker
                   FROM trials t JOIN studies s ON s.id = t.study_id
                  WHERE t.status = 'running' AND t.lease_expires_ms <= ?1",
            )?;
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
            if attempts > retries {
                let error = format!("lease expired after {attempts} attempts (last worker: {worker})");
                self.conn
                    .prepare_cached(
                        "UPDATE trials SET status = 'failed', error = ?2, lease_expires_ms = NULL,
                                finished_ms = ?3, updated_ms = ?3 WHERE id = ?1",
                    )?
                    .execute(params![id, error, now])?;
                out.failed.push(id);
            } else {
                let error = format!("attempt {attempts}: lease of worker {worker} expired");
                self.conn
                    .prepare_cached(
                        "UPDATE trials SET status = 'pending', error = ?2, lease_expires_ms = NULL, updated_ms = ?3
                          WHERE id = ?1",
                    )?
                    .execute(params![id, error, now])?;
                out.requeued.push(id);
            }
            if let Some(lease_id) = lease_id {
                self.end_lease(&lease_id, "expired", now)?;
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

    /// Grants the oldest pending trial of any study to `worker`, after expiring overdue leases.
    pub(crate) fn lease(&mut self, worker: &str) -> Result<(Option<Lease>, Expired)> {
        let expired = self.expire()?;
        self.top_up_all()?;
        let now = self.now();
        loop {
            let next: Option<(i64, i64, u32, String, i64)> = self
                .conn
                .prepare_cached(
                    "SELECT id, study_id, attempts, job, seed FROM trials
                      WHERE status = 'pending' ORDER BY id LIMIT 1",
                )?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?, u32_col(r.get(2)?), r.get(3)?, r.get(4)?)))
                .optional()?;
            let Some((trial_id, study_id, attempts, job_json, seed)) = next else {
                return Ok((None, expired));
            };
            let job: TrialJob = match serde_json::from_str(&job_json) {
                Ok(job) => job,
                Err(e) => {
                    // A row nobody can run must not block the queue.
                    tracing::error!(trial_id, error = %e, "trial job does not decode; failing the trial");
                    self.conn.execute(
                        "UPDATE trials SET status = 'failed', error = ?2, finished_ms = ?3, updated_ms = ?3
                          WHERE id = ?1",
                        params![trial_id, format!("stored job does not decode: {e}"), now],
                    )?;
                    continue;
                }
            };
            let meta = self.study_meta(study_id)?;
            let attempt = attempts.saturating_add(1);
            let lease_id = new_lease_id();
            let expires = now.saturating_add(self.ttl_ms);
            self.conn
                .prepare_cached(
                    "UPDATE trials SET status = 'running', attempts = ?2, lease_id = ?3, worker = ?4,
                            lease_expires_ms = ?5, started_ms = COALESCE(started_ms, ?6), updated_ms = ?6
                      WHERE id = ?1",
                )?
                .execute(params![trial_id, attempt, lease_id, worker, expires, now])?;
            self.conn
                .prepare_cached(
                    "INSERT INTO leases (lease_id, trial_id, attempt, worker, granted_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![lease_id, trial_id, attempt, worker, now])?;
            let resume = match checkpoints::of_trial(&self.conn, trial_id)? {
                Some((checkpoint, saved_by)) => {
                    checkpoints::resume(&self.conn, trial_id, attempt, &checkpoint, saved_by)?;
                    Some(checkpoint)
                }
                None => None,
            };
            let checkpoint_every_s =
                meta.spec.as_ref().map_or(DEFAULT_CHECKPOINT_EVERY_S, |spec| spec.resources().checkpoint_every_s());
            let lease = Lease {
                lease_id,
                trial_id,
                study: meta.name.clone(),
                job,
                seed: seed as u64,
                attempt,
                dataset: Some(meta.dataset.clone()),
                ttl_ms: self.ttl_ms as u64,
                resume,
                checkpoint_every_s,
            };
            return Ok((Some(lease), expired));
        }
    }

    /// The lease a complete / fail / prune / return call may end the trial with, judged by its
    /// [`Standing`]: `None` when it already ended with one of `repeated` (the same call again,
    /// answered "not recorded"), a conflict when it ended otherwise or was superseded.
    fn lease_to_end(&self, lease_id: &str, repeated: &[&str]) -> Result<Option<LeaseRow>> {
        let lease = self.load_lease(lease_id)?;
        match lease.standing() {
            Standing::Active | Standing::ExpiredUnclaimed => Ok(Some(lease)),
            Standing::Ended(o) if repeated.contains(&o.as_str()) => Ok(None),
            Standing::Ended(o) => Err(lease.conflict(format!("the lease already ended: {o}"))),
            Standing::Superseded => Err(lease.superseded()),
        }
    }

    fn load_lease(&self, lease_id: &str) -> Result<LeaseRow> {
        lease_row(&self.conn, lease_id)
    }

    pub(crate) fn end_lease(&self, lease_id: &str, outcome: &str, now: i64) -> Result<()> {
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
        match lease.keep_alive_verdict()? {
            KeepAlive::Extend => {
                self.conn
                    .prepare_cached("UPDATE trials SET lease_expires_ms = ?2 WHERE id = ?1")?
                    .execute(params![lease.trial_id, expires])?;
            }
            KeepAlive::Revive => {
                self.conn
                    .prepare_cached(
                        "UPDATE trials SET status = 'running', lease_expires_ms = ?2, updated_ms = ?3 WHERE id = ?1",
                    )?
                    .execute(params![lease.trial_id, expires, now])?;
                self.conn
                    .prepare_cached("UPDATE leases SET outcome = NULL, ended_ms = NULL WHERE lease_id = ?1")?
                    .execute([&lease.lease_id])?;
                tracing::info!(trial_id = lease.trial_id, lease_id = %lease.lease_id, "expired lease revived by its worker");
            }
            KeepAlive::Stop => return Ok(ProgressAction::Stop),
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
        let ctx = PruneContext {
            conn: &self.conn,
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
        let Some(lease) = self.lease_to_end(lease_id, &["completed"])? else {
            return Ok(false);
        };
        let now = self.now();
        self.conn
            .prepare_cached(
                "UPDATE trials SET status = 'completed', metrics = ?2, error = NULL, lease_expires_ms = NULL,
                        finished_ms = ?3, updated_ms = ?3 WHERE id = ?1",
            )?
            .execute(params![lease.trial_id, metrics_json(metrics), now])?;
        self.end_lease(lease_id, "completed", now)?;
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
        let Some(lease) = self.lease_to_end(lease_id, &["failed", "released"])? else {
            return Ok(FailOutcome { recorded: false, requeued: false });
        };
        let retries = self.study_meta(lease.study_id)?.retries;
        let now = self.now();
        let requeue = retryable && lease.attempts.saturating_sub(lease.attempts_base) <= retries;
        let error = format!("attempt {}: {reason}", lease.attempts);
        if requeue {
            self.conn
                .prepare_cached(
                    "UPDATE trials SET status = 'pending', error = ?2, lease_expires_ms = NULL, updated_ms = ?3
                      WHERE id = ?1",
                )?
                .execute(params![lease.trial_id, error, now])?;
            self.end_lease(lease_id, "released", now)?;
        } else {
            self.conn
                .prepare_cached(
                    "UPDATE trials SET status = 'failed', error = ?2, lease_expires_ms = NULL, finished_ms = ?3,
                            updated_ms = ?3 WHERE id = ?1",
                )?
                .execute(params![lease.trial_id, error, now])?;
            self.end_lease(lease_id, "failed", now)?;
            self.top_up_quietly(lease.study_id);
        }
        Ok(FailOutcome { recorded: true, requeued: requeue })
    }

    /// Gives a trial back unrun or half-run because its worker is shutting down: the trial goes
    /// back to the queue as if this lease had never been granted. The attempt is not counted
    /// (`attempts` goes back down, so a study with `retries = 0` does not lose the trial to a
    /// routine restart). Without a checkpoint, the curves it recorded are deleted, so the next
    /// attempt, which gets the same number, starts clean; with one, they are kept, and the next
    /// lease drops those past the checkpoint. The lease itself stays in `leases` as `returned`.
    pub(crate) fn give_back(&mut self, lease_id: &str, reason: &str) -> Result<bool> {
        let Some(lease) = self.lease_to_end(lease_id, &["returned"])? else {
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
                "UPDATE trials SET status = 'pending', attempts = MAX(attempts - 1, 0), error = ?2,
                        lease_expires_ms = NULL, updated_ms = ?3 WHERE id = ?1",
            )?
            .execute(params![lease.trial_id, format!("returned unfinished: {reason}"), now])?;
        self.end_lease(lease_id, "returned", now)?;
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
        let Some(lease) = self.lease_to_end(lease_id, &["pruned"])? else {
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
                "UPDATE trials SET status = 'pruned', metrics = ?2, error = ?3, lease_expires_ms = NULL,
                        finished_ms = ?4, updated_ms = ?4 WHERE id = ?1",
            )?
            .execute(params![
                lease.trial_id,
                metrics_json(&metrics),
                format!("pruned after {} epoch {}", p.stage, p.epoch),
                now
            ])?;
        self.end_lease(lease_id, "pruned", now)?;
        self.top_up_quietly(lease.study_id);
        Ok(true)
    }

    /// After a restart: gives every running lease at least one TTL from now, since its worker
    /// could not heartbeat while the coordinator was down. Returns how many were extended.
    pub(crate) fn grace_running(&mut self) -> Result<usize> {
        let floor = self.now().saturating_add(self.ttl_ms);
        let n = self.conn.execute(
            "UPDATE trials SET lease_expires_ms = ?1 WHERE status = 'running' AND lease_expires_ms < ?1",
            [floor],
        )?;
        Ok(n)
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

/// Metrics as a JSON object, dropping non-finite values (JSON has no NaN).
pub(crate) fn metrics_json(metrics: &BTreeMap<String, f64>) -> String {
    let finite: BTreeMap<&String, f64> = metrics.iter().filter(|(_, v)| v.is_finite()).map(|(k, v)| (k, *v)).collect();
    serde_json::to_string(&finite).unwrap_or_else(|_| "{}".into())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use decsweep_api::wire::TrialJob;
    use decsweep_api::Stage;

    use super::*;
    use crate::clock::ManualClock;
    use crate::pruner::NoPruner;
    use crate::schema::{connect, migrate, Role};

    pub(crate) const TTL_MS: i64 = 10_000;

    /// A study of `n` command trials, as the spec path would prepare it.
    pub(crate) fn command_study(name: &str, n: usize, retries: u32) -> NewStudy {
        let trials = (0..n)
            .map(|i| {
                let job = TrialJob::Command {
                    argv: vec!["true".into(), format!("--x={i}")],
                    env: Default::default(),
                    workdir: None,
                    stop_grace_s: 3.0,
                };
                NewTrial {
                    trial_key: format!("key-{i}"),
                    pipeline: "command".into(),
                    job_json: serde_json::to_string(&job).unwrap(),
                    params_json: format!("{{\"x\":{i}}}"),
                    seed: i as u64,
                    config_id: format!("cfg-{i}"),
                    label: None,
                }
            })
            .collect();
        NewStudy {
            name: name.into(),
            spec: format!("spec of {name}"),
            spec_path: format!("{name}.toml"),
            dataset: DatasetRow {
                sha256: "ab".repeat(32),
                file: "x.safetensors".into(),
                bytes: 3,
                source: "test".into(),
            },
            retries,
            objective_metric: "accuracy".into(),
            maximize: true,
            adaptive: false,
            trials,
        }
    }

    pub(crate) struct Fixture {
        pub(crate) ctx: WriteCtx,
        pub(crate) clock: Arc<ManualClock>,
        _dir: tempfile::TempDir,
    }

    impl Fixture {
        pub(crate) fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("c.db");
            let mut conn = connect(&path, Role::Writer).unwrap();
            migrate(&mut conn, &path).unwrap();
            let clock = Arc::new(ManualClock::new(1_700_000_000_000));
            let ctx = WriteCtx::new(conn, clock.clone(), TTL_MS, Arc::new(NoPruner));
            Fixture { ctx, clock, _dir: dir }
        }

        pub(crate) fn status(&self, trial: i64) -> (String, u32, Option<String>) {
            self.ctx
                .conn
                .query_row("SELECT status, attempts, error FROM trials WHERE id = ?1", [trial], |r| {
                    Ok((r.get(0)?, u32_col(r.get(1)?), r.get(2)?))
                })
                .unwrap()
        }

        fn lease(&mut self, worker: &str) -> Lease {
            self.ctx.lease(worker).unwrap().0.expect("a pending trial")
        }
    }

    fn metrics(acc: f64) -> BTreeMap<String, f64> {
        BTreeMap::from([("accuracy".to_string(), acc)])
    }

    #[test]
    fn studies_insert_once_and_conflict_on_a_different_spec() {
        let mut f = Fixture::new();
        let s = command_study("a", 3, 2);
        assert_eq!(f.ctx.insert_study(&s).unwrap(), Inserted::Created);
        assert_eq!(f.ctx.insert_study(&s).unwrap(), Inserted::Existing);
        let other = NewStudy { spec: "another spec".into(), ..s };
        assert!(matches!(f.ctx.insert_study(&other), Err(Error::StudyConflict { .. })));
        let n: i64 = f.ctx.conn.query_row("SELECT COUNT(*) FROM trials", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 3);
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

    #[test]
    fn non_finite_metrics_are_dropped() {
        let m = BTreeMap::from([("a".to_string(), f64::NAN), ("b".to_string(), 1.5)]);
        assert_eq!(metrics_json(&m), r#"{"b":1.5}"#);
    }
}
