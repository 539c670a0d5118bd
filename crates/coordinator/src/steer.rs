//! The user's verbs: cancel and resume a study, retry its failed trials, fail a trial, add seeds
//! (semantics in `src/control.rs`). A running trial the user cancels or fails is ended at once;
//! its worker hears `stop` at its next heartbeat or epoch.

pub use decsweep_api::wire::{CancelOutcome, Resumed, SeedsAdded};

use crate::metrics::bump;
use crate::{control, limits, Coordinator, Result};

impl Coordinator {
    /// Cancels a study: pending trials become `cancelled` at once; running ones become
    /// `cancelled` and their workers are told to stop at their next heartbeat or epoch; an
    /// adaptive study proposes nothing more. Semantics in `src/control.rs`.
    pub async fn cancel_study(&self, name: &str) -> Result<CancelOutcome> {
        let owned = name.to_string();
        let out = self.write_collecting(move |ctx| ctx.cancel_study(&owned)).await?;
        bump(&self.inner.metrics.cancellations, out.cancelled + out.stopping);
        tracing::info!(study = %name, pending = out.cancelled, running = out.stopping, "study cancelled");
        Ok(out)
    }

    /// Resumes a cancelled study: its cancelled trials are pending again and it is no longer
    /// cancelled (an adaptive study samples again). Semantics in `src/control.rs`.
    pub async fn resume_study(&self, name: &str) -> Result<Resumed> {
        let owned = name.to_string();
        let out = self.inner.store.write(move |ctx| ctx.resume_study(&owned)).await?;
        if out.resumed > 0 || out.was_cancelled {
            tracing::info!(study = %name, trials = out.resumed, "study resumed");
            self.inner.work.notify_waiters();
        }
        Ok(out)
    }

    /// Puts a study's failed trials (or only `trial_id`, which must be a failed trial of that
    /// study) back in the queue, each with the study's retries again; returns how many.
    pub async fn retry_trials(&self, name: &str, trial_id: Option<i64>) -> Result<u64> {
        let owned = name.to_string();
        let n = self.inner.store.write(move |ctx| ctx.retry_trials(&owned, trial_id)).await?;
        if n > 0 {
            bump(&self.inner.metrics.retried, n);
            tracing::info!(study = %name, trials = n, "failed trials retried");
            self.inner.work.notify_waiters();
        }
        Ok(n)
    }

    /// Marks a pending or running trial failed with `reason` (default "failed by user"); a
    /// running trial's worker is told to stop. `false`: it had already failed.
    pub async fn fail_trial(&self, trial_id: i64, reason: Option<String>) -> Result<bool> {
        let reason = reason.filter(|r| !r.trim().is_empty()).unwrap_or_else(|| control::DEFAULT_FAIL_REASON.into());
        let failed = self.write_collecting(move |ctx| ctx.fail_trial(trial_id, &reason)).await?;
        if failed {
            bump(&self.inner.metrics.user_failures, 1);
            tracing::info!(trial_id, "trial failed by the user");
            // An adaptive study may have sampled its next point.
            self.inner.work.notify_waiters();
        }
        Ok(failed)
    }

    /// Adds every configuration of the study × each new seed as pending trials; returns how
    /// many. [`Coordinator::add_seeds_detailed`] also says which seeds were already there.
    pub async fn add_seeds(&self, name: &str, seeds: Vec<u64>) -> Result<u64> {
        Ok(self.add_seeds_detailed(name, seeds).await?.added)
    }

    /// [`Coordinator::add_seeds`], with the seeds the study already had (skipped).
    /// At most [`MAX_SEEDS_PER_REQUEST`](crate::MAX_SEEDS_PER_REQUEST) seeds (413), checked before the writer is asked, and
    /// the study may not grow past [`MAX_STUDY_TRIALS`](crate::MAX_STUDY_TRIALS) (422).
    pub async fn add_seeds_detailed(&self, name: &str, seeds: Vec<u64>) -> Result<SeedsAdded> {
        let seeds = limits::distinct_seeds(seeds)?;
        let owned = name.to_string();
        let out = self.inner.store.write(move |ctx| ctx.add_seeds(&owned, &seeds)).await?;
        if out.added > 0 {
            bump(&self.inner.metrics.seeded_trials, out.added);
            tracing::info!(study = %name, trials = out.added, skipped = ?out.skipped, "seeds added");
            self.inner.work.notify_waiters();
        }
        Ok(out)
    }
}
