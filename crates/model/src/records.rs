//! What a pipeline reports of its epochs and stages: plain records shared by [`crate::train`],
//! [`crate::observe`] and [`crate::resume`] (a trial's state carries them), kept in a leaf so
//! none of those imports another for them.

use decsweep_api::Stage;

/// One epoch of one stage, as streamed to the sweep layer and written to `curves.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochRecord {
    pub stage: Stage,
    /// 1-based.
    pub epoch: usize,
    pub epochs: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    /// Classifier: accuracy of the logits; DEC: accuracy of the clusters' classes;
    /// AE: none.
    pub val_accuracy: Option<f64>,
    pub elapsed_s: f64,
}

/// How a stage went.
#[derive(Clone, Debug, PartialEq)]
pub struct StageReport {
    pub stage: Stage,
    pub epochs_run: usize,
    pub wall_s: f64,
    /// Whether the checkpoint came from the cache instead of training.
    pub cached: bool,
}
