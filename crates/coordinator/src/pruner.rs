//! The hook that decides, after each epoch a worker reports, whether its trial goes on.
//!
//! The coordinator calls [`Pruner::decide`] inside the transaction that records the epoch, so a
//! pruner sees every point recorded before it, including this one. [`NoPruner`] (the default)
//! lets every trial run to the end; median or ASHA pruners implement the trait and read the
//! study's other trials through [`PruneContext::peers`].

use decsweep_api::wire::{EpochProgress, ProgressAction};
use rusqlite::Connection;

use crate::error::Result;

/// Decides whether a trial is stopped early.
pub trait Pruner: Send + Sync + std::fmt::Debug + 'static {
    fn decide(&self, ctx: &PruneContext<'_>) -> Result<ProgressAction>;
}

/// Never prunes.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPruner;

impl Pruner for NoPruner {
    fn decide(&self, _ctx: &PruneContext<'_>) -> Result<ProgressAction> {
        Ok(ProgressAction::Continue)
    }
}

/// What a pruner may look at: the epoch just reported and the study it belongs to.
#[derive(Debug)]
pub struct PruneContext<'a> {
    pub(crate) conn: &'a Connection,
    pub study_id: i64,
    pub trial_id: i64,
    pub attempt: u32,
    pub progress: &'a EpochProgress,
    /// The study's objective metric and whether larger is better.
    pub objective_metric: &'a str,
    pub maximize: bool,
}

/// Another trial's point at the same stage and epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerPoint {
    pub trial_id: i64,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_accuracy: Option<f64>,
}

impl PruneContext<'_> {
    /// The points other trials of this study recorded at this stage and epoch, each from the
    /// trial's latest attempt.
    pub fn peers(&self) -> Result<Vec<PeerPoint>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.trial_id, c.train_loss, c.val_loss, c.val_accuracy
               FROM curves c JOIN trials t ON t.id = c.trial_id
              WHERE t.study_id = ?1 AND c.trial_id <> ?2 AND c.stage = ?3 AND c.epoch = ?4
                AND c.attempt = t.attempts
              ORDER BY c.trial_id",
        )?;
        let rows = stmt.query_map(
            rusqlite::params![self.study_id, self.trial_id, self.progress.stage.name(), self.progress.epoch],
            |r| {
                Ok(PeerPoint {
                    trial_id: r.get(0)?,
                    train_loss: r.get::<_, Option<f64>>(1)?.unwrap_or(f64::NAN),
                    val_loss: r.get::<_, Option<f64>>(2)?.unwrap_or(f64::NAN),
                    val_accuracy: r.get(3)?,
                })
            },
        )?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}
