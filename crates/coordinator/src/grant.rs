//! The queue granting leases: the head of the queue to a worker, with its pack-mates when the
//! worker packs ([`crate::packs`] picks them). Each trial granted gets its own lease; what later
//! calls on a lease do is `src/leases.rs`'s.

use decsweep_api::wire::{Lease, PackAsk, TrialJob};
use decsweep_api::TrialStatus;
use decsweep_search::DEFAULT_CHECKPOINT_EVERY_S;
use rusqlite::{params, OptionalExtension};

use crate::checkpoints;
use crate::error::Result;
use crate::leases::{moved_to, new_lease_id, Expired, NEXT_PENDING};
use crate::lifecycle::TrialEvent;
use crate::writer::{u32_col, StudyMeta, WriteCtx};

/// A pending trial about to be granted, as the queue read it.
pub(crate) struct Pending {
    pub(crate) trial_id: i64,
    pub(crate) attempts: u32,
    pub(crate) job: TrialJob,
    /// The seed as stored (a `u64` kept bit-for-bit in an `i64` column).
    pub(crate) seed: i64,
}

impl WriteCtx {
    /// Grants the oldest pending trial of any study to `worker`, after expiring overdue leases
    /// (the tests' shorthand for a worker that does not pack).
    #[cfg(test)]
    pub(crate) fn lease(&mut self, worker: &str) -> Result<(Option<Lease>, Expired)> {
        let (leases, expired) = self.lease_pack(worker, None)?;
        Ok((leases.into_iter().next(), expired))
    }

    /// [`WriteCtx::lease`]; with `ask` (a packing worker), also up to the pack's size of pending trials of the same
    /// study that share its pack key ([`crate::packs`]), each on its own lease, all under one
    /// pack id. Empty: nothing is pending.
    pub(crate) fn lease_pack(&mut self, worker: &str, ask: Option<PackAsk>) -> Result<(Vec<Lease>, Expired)> {
        let expired = self.expire()?;
        self.top_up_all()?;
        let now = self.now();
        loop {
            let next: Option<(i64, i64, u32, String, i64)> = self
                .conn
                .prepare_cached(NEXT_PENDING)?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?, u32_col(r.get(2)?), r.get(3)?, r.get(4)?)))
                .optional()?;
            let Some((trial_id, study_id, attempts, job_json, seed)) = next else {
                return Ok((Vec::new(), expired));
            };
            let job: TrialJob = match serde_json::from_str(&job_json) {
                Ok(job) => job,
                Err(e) => {
                    // A row nobody can run must not block the queue.
                    tracing::error!(trial_id, error = %e, "trial job does not decode; failing the trial");
                    let to = moved_to(TrialStatus::Pending, TrialEvent::Unrunnable);
                    self.conn.execute(
                        "UPDATE trials SET status = ?4, error = ?2, finished_ms = ?3, updated_ms = ?3
                          WHERE id = ?1",
                        params![trial_id, format!("stored job does not decode: {e}"), now, to],
                    )?;
                    continue;
                }
            };
            let meta = self.study_meta(study_id)?;
            let head = Pending { trial_id, attempts, job, seed };
            let mates = match ask {
                Some(ask) => self.pack_mates(&head, study_id, &meta, ask)?,
                None => Vec::new(),
            };
            let pack_id = (!mates.is_empty()).then(new_lease_id);
            let mut leases = Vec::with_capacity(1 + mates.len());
            for trial in std::iter::once(head).chain(mates) {
                leases.push(self.grant(trial, &meta, worker, pack_id.as_deref(), now)?);
            }
            if let Some(pack_id) = &pack_id {
                let trials: Vec<i64> = leases.iter().map(|l| l.trial_id).collect();
                tracing::info!(pack_id, ?trials, worker, "leased a pack");
            }
            return Ok((leases, expired));
        }
    }

    /// Leases one pending trial: `running`, an attempt counted, a deadline of now + TTL, and
    /// the checkpoint an earlier lease saved to resume from.
    fn grant(
        &mut self,
        trial: Pending,
        meta: &StudyMeta,
        worker: &str,
        pack_id: Option<&str>,
        now: i64,
    ) -> Result<Lease> {
        let Pending { trial_id, attempts, job, seed } = trial;
        let attempt = attempts.saturating_add(1);
        let lease_id = new_lease_id();
        let expires = now.saturating_add(self.ttl_ms);
        let to = moved_to(TrialStatus::Pending, TrialEvent::Grant);
        self.conn
            .prepare_cached(
                "UPDATE trials SET status = ?7, attempts = ?2, lease_id = ?3, worker = ?4,
                        lease_expires_ms = ?5, started_ms = COALESCE(started_ms, ?6), updated_ms = ?6
                  WHERE id = ?1",
            )?
            .execute(params![trial_id, attempt, lease_id, worker, expires, now, to])?;
        self.conn
            .prepare_cached(
                "INSERT INTO leases (lease_id, trial_id, attempt, worker, granted_ms, pack_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![lease_id, trial_id, attempt, worker, now, pack_id])?;
        let resume = match checkpoints::of_trial(&self.conn, trial_id)? {
            Some((checkpoint, saved_by)) => {
                checkpoints::resume(&self.conn, trial_id, attempt, &checkpoint, saved_by)?;
                Some(checkpoint)
            }
            None => None,
        };
        let checkpoint_every_s =
            meta.spec.as_ref().map_or(DEFAULT_CHECKPOINT_EVERY_S, |spec| spec.resources().checkpoint_every_s());
        Ok(Lease {
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
            pack_id: pack_id.map(str::to_string),
        })
    }
}
