//! The caller's side of a pipeline run: the [`Observer`] that sees every epoch and may stop the
//! trial or ask for its state, and the [`StageCache`] consulted before a stage trains.

use decsweep_api::Stage;

use crate::checkpoint::Checkpoint;
use crate::records::EpochRecord;
use crate::resume::TrialState;

/// What the observer wants after an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    /// End the trial now (pruning).
    Stop,
    /// Hand the trial's state to [`Observer::checkpoint`], then go on.
    Checkpoint,
    /// Hand the trial's state to [`Observer::checkpoint`], then end with
    /// [`crate::train::TrainError::Suspended`].
    Suspend,
}

/// Receives every epoch and, when it asks for them, the trial's resumable states.
pub trait Observer {
    fn epoch(&mut self, record: &EpochRecord) -> Control;
    /// The state after the epoch just reported, when that epoch's answer asked for it.
    fn checkpoint(&mut self, _state: &TrialState) {}
}

/// A closure observes epochs and never asks for a state.
impl<F: FnMut(&EpochRecord) -> Control> Observer for F {
    fn epoch(&mut self, record: &EpochRecord) -> Control {
        self(record)
    }
}

/// A store of stage checkpoints that the pipeline consults before training a stage. The
/// implementation decides the key (dataset, seed, split and the parameters the stage reads).
pub trait StageCache {
    fn load(&mut self, stage: Stage) -> Option<Checkpoint>;
    fn store(&mut self, stage: Stage, checkpoint: &Checkpoint);
}

/// Trains every stage.
pub struct NoCache;

impl StageCache for NoCache {
    fn load(&mut self, _: Stage) -> Option<Checkpoint> {
        None
    }
    fn store(&mut self, _: Stage, _: &Checkpoint) {}
}
