//! The worker's verbs: a lease, its heartbeats and epochs, how it ends, and the checkpoints it
//! saves. What a call naming a lease does is decided in `src/lifecycle.rs`; the writes are
//! `WriteCtx`'s, in `src/leases.rs`.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use decsweep_api::wire::{
    CheckpointInfo, CheckpointUpload, CompleteTrial, EpochProgress, FailTrial, HeartbeatReply, Lease, LeaseRequest,
    PackAsk, ProgressAction, ProgressReply, PruneTrial, Recorded, ReturnTrial, WorkerGoodbye,
};
use futures_util::Stream;

use crate::metrics::bump;
use crate::{checkpoints, leases, workers, Coordinator, Error, Result};

impl Coordinator {
    /// Leases the oldest pending trial to `req.worker`, waiting up to `req.wait_ms` (capped
    /// at [`CoordinatorOptions::max_wait`](crate::CoordinatorOptions::max_wait)) for one. `None`: nothing became available.
    /// `req.pack` is not looked at: a packing worker calls [`Coordinator::lease_pack`].
    pub async fn lease(&self, req: &LeaseRequest) -> Result<Option<Lease>> {
        Ok(self.lease_up_to(req, None).await?.into_iter().next())
    }

    /// Leases the oldest pending trial and, per `ask`, pending trials of its study that can be
    /// trained together with it (same pack key and resume point; see `src/packs.rs`), each on
    /// its own lease under one pack id. Waits like [`Coordinator::lease`]; empty: nothing
    /// became available.
    pub async fn lease_pack(&self, req: &LeaseRequest, ask: PackAsk) -> Result<Vec<Lease>> {
        self.lease_up_to(req, Some(ask)).await
    }

    async fn lease_up_to(&self, req: &LeaseRequest, ask: Option<PackAsk>) -> Result<Vec<Lease>> {
        let wait = Duration::from_millis(req.wait_ms).min(self.inner.max_wait);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before looking, so a notification between the look and the wait is kept.
            let notified = self.inner.work.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.inner.closing.load(Ordering::Acquire) {
                return Ok(Vec::new());
            }
            let (worker, agent) = (req.worker.clone(), req.agent.clone());
            let (leases, expired) = self
                .inner
                .store
                .write(move |ctx| {
                    workers::seen(&ctx.conn, &worker, agent.as_ref(), ctx.clock.now_ms())?;
                    ctx.lease_pack(&worker, ask)
                })
                .await?;
            self.note_expired(&expired);
            if !leases.is_empty() {
                bump(&self.inner.metrics.leases_granted, leases.len() as u64);
                for lease in &leases {
                    tracing::debug!(trial_id = lease.trial_id, worker = %req.worker, attempt = lease.attempt, pack_id = ?lease.pack_id, "leased");
                }
                return Ok(leases);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Vec::new());
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Records that a worker process exited cleanly ([`WorkerGoodbye`]): the dashboard lists it
    /// as stopped. `recorded: false`: no worker of that name was seen.
    pub async fn goodbye(&self, body: WorkerGoodbye) -> Result<Recorded> {
        let recorded =
            self.inner.store.write(move |ctx| workers::said_goodbye(&ctx.conn, &body.name, ctx.clock.now_ms())).await?;
        Ok(Recorded { recorded })
    }

    /// Extends a lease by the TTL. The answer's action is `stop` once the user cancelled or
    /// failed the trial.
    pub async fn heartbeat(&self, lease_id: &str) -> Result<HeartbeatReply> {
        let id = lease_id.to_string();
        let (ttl_ms, action) = self
            .inner
            .store
            .write(move |ctx| {
                let answer = ctx.heartbeat(&id)?;
                workers::seen_lease(&ctx.conn, &id, ctx.clock.now_ms())?;
                Ok(answer)
            })
            .await?;
        Ok(HeartbeatReply { ttl_ms, action })
    }

    /// Records one epoch, extends the lease, and says whether to go on.
    pub async fn progress(&self, lease_id: &str, progress: EpochProgress) -> Result<ProgressReply> {
        let id = lease_id.to_string();
        let action: ProgressAction = self
            .inner
            .store
            .write(move |ctx| {
                let action = ctx.progress(&id, &progress)?;
                workers::seen_lease(&ctx.conn, &id, ctx.clock.now_ms())?;
                Ok(action)
            })
            .await?;
        Ok(ProgressReply { action })
    }

    /// Records a trial's result. `recorded: false`: this lease had already completed it. A lease
    /// replaced by a newer one is [`Error::LeaseConflict`] and changes nothing.
    pub async fn complete(&self, lease_id: &str, body: CompleteTrial) -> Result<Recorded> {
        let id = lease_id.to_string();
        let recorded = self
            .write_collecting(move |ctx| {
                let recorded = ctx.complete(&id, &body.metrics)?;
                if let (true, Some(manifest)) = (recorded, &body.manifest) {
                    ctx.record_manifest(&id, manifest)?;
                }
                Ok(recorded)
            })
            .await?;
        if recorded {
            bump(&self.inner.metrics.completions, 1);
            // An adaptive study may have sampled its next point.
            self.inner.work.notify_waiters();
        }
        Ok(Recorded { recorded })
    }

    /// Records a failed attempt; the trial is retried while `retryable` and retries are left.
    pub async fn fail(&self, lease_id: &str, body: FailTrial) -> Result<Recorded> {
        let id = lease_id.to_string();
        let outcome = self.write_collecting(move |ctx| ctx.fail(&id, &body.reason, body.retryable)).await?;
        if outcome.recorded {
            bump(&self.inner.metrics.failures, 1);
        }
        if outcome.requeued || outcome.recorded {
            self.inner.work.notify_waiters();
        }
        Ok(Recorded { recorded: outcome.recorded })
    }

    /// Takes a trial back from a stopping worker: pending again, the attempt not counted.
    pub async fn give_back(&self, lease_id: &str, body: ReturnTrial) -> Result<Recorded> {
        let id = lease_id.to_string();
        let recorded = self.inner.store.write(move |ctx| ctx.give_back(&id, &body.reason)).await?;
        if recorded {
            bump(&self.inner.metrics.returns, 1);
            self.inner.work.notify_waiters();
        }
        Ok(Recorded { recorded })
    }

    /// Records that a trial was stopped early at the coordinator's request.
    pub async fn prune(&self, lease_id: &str, body: PruneTrial) -> Result<Recorded> {
        let id = lease_id.to_string();
        let recorded = self.write_collecting(move |ctx| ctx.prune(&id, &body)).await?;
        if recorded {
            bump(&self.inner.metrics.prunes, 1);
            self.inner.work.notify_waiters();
        }
        Ok(Recorded { recorded })
    }

    /// Stores an uploaded trial state (`PUT /v1/leases/{id}/checkpoint`) as the latest of the
    /// lease's trial; see `src/checkpoints.rs`.
    /// `body` is the file's bytes as they arrive (a request body's chunks).
    pub async fn save_checkpoint<B, E>(
        &self,
        lease_id: &str,
        upload: CheckpointUpload,
        body: impl Stream<Item = std::result::Result<B, E>> + Send,
    ) -> Result<CheckpointInfo>
    where
        B: AsRef<[u8]> + Send,
        E: std::fmt::Display + Send,
    {
        // Before a byte of the body is read: an unknown, ended or replaced lease costs no disk.
        let id = lease_id.to_string();
        self.inner.store.read(move |c| leases::check_checkpoint_lease(c, &id)).await?;
        let received =
            checkpoints::receive(body, &self.inner.data_dir, &upload, self.inner.max_checkpoint_bytes).await?;
        let info =
            CheckpointInfo { sha256: upload.sha256, bytes: received.bytes, stage: upload.stage, epoch: upload.epoch };
        let (id, stored, data_dir) = (lease_id.to_string(), info.clone(), self.inner.data_dir.clone());
        self.write_collecting(move |ctx| {
            // The row first: a lease refused meanwhile leaves the temporary file to be dropped.
            // Renamed in the writer thread, so no garbage collection between the rename and the
            // commit can take the file for an identical one that was just dropped; a failed
            // rename rolls the row back.
            ctx.save_checkpoint(&id, &stored)?;
            let path = checkpoints::file(&data_dir, &stored.sha256);
            received.temp.persist(&path).map_err(|e| Error::io(&path, e.error))
        })
        .await?;
        bump(&self.inner.metrics.checkpoints, 1);
        tracing::debug!(lease_id, stage = %info.stage, epoch = info.epoch, bytes = info.bytes, "checkpoint stored");
        Ok(info)
    }

    /// The stored checkpoint of the trial a lease ran, and its file.
    pub async fn checkpoint(&self, lease_id: &str) -> Result<(CheckpointInfo, PathBuf)> {
        let id = lease_id.to_string();
        let info = self.inner.store.read(move |c| checkpoints::of_lease(c, &id)).await?;
        let path = checkpoints::file(&self.inner.data_dir, &info.sha256);
        Ok((info, path))
    }
}
