//! The end of the DEC stage read out for fine-tuning and the trial's metrics: the DEC head's own
//! accuracy and, with `pseudo_threshold` > 0, the training rows' pseudo-labels
//! ([`crate::pseudo`]). Computed from the stage's final checkpoint alone, in evaluation mode, so a
//! checkpoint from the stage cache reads out exactly as one trained on the spot.

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::autoencoder::Autoencoder;
use crate::batch::Batch;
use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::losses;
use crate::pseudo::{fine_tuning_rows, head_accuracy, pseudo_label_loss, pseudo_labels, DecReadout};
use crate::train::{TrainError, Trainer};
use decsweep_api::Stage;

/// The DEC head's variables in a DEC checkpoint.
const CENTROIDS: &str = "dec.centroids";
const CLUSTER_TO_CLASS: &str = "dec.cluster_to_class";

/// What a `dec` trial reports of its DEC stage besides the classifier's metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct DecMetrics {
    /// The DEC head's accuracy on the labeled validation rows.
    pub head_val_accuracy: Option<f64>,
    /// The DEC head's accuracy on the test rows.
    pub head_test_accuracy: Option<f64>,
    /// Training rows that carried a pseudo-label (pseudo-labels on only).
    pub pseudo_rows: Option<i64>,
    /// Share of those whose pseudo-label equals the withheld label (a diagnostic).
    pub pseudo_accuracy: Option<f64>,
}

impl DecReadout {
    /// The numbers a trial reports; `train` holds the withheld labels of the unlabeled rows.
    pub fn metrics(&self, train: &Batch) -> DecMetrics {
        DecMetrics {
            head_val_accuracy: self.head_val_accuracy,
            head_test_accuracy: self.head_test_accuracy,
            pseudo_rows: self.pseudo_count(),
            pseudo_accuracy: self.pseudo_accuracy(train),
        }
    }
}

impl Trainer<'_> {
    /// Reads out the DEC checkpoint `dec` (its encoders, fusion, centroids and cluster map).
    /// Builds a network, so it draws from torch's generator: call it between stages, which
    /// reseed it.
    pub fn dec_readout(&self, dec: &Checkpoint) -> Result<DecReadout, TrainError> {
        let p = self.params;
        let vs = VarStore::new(self.device);
        let ae = Autoencoder::new(vs.root(), &self.config);
        dec.load_into(&vs, &["encoders.", "fusion."])?;
        let variable = |name: &str| {
            dec.get(name).map(|t| t.to_device(self.device)).ok_or_else(|| CheckpointError::Missing {
                name: name.to_string(),
                needed_by: "the DEC head's readout".to_string(),
            })
        };
        let (centroids, cluster_to_class) = (variable(CENTROIDS)?, variable(CLUSTER_TO_CLASS)?);
        let soft_assignment =
            |rows: &Batch| tch::no_grad(|| losses::soft_assignment(&self.latent_codes(&ae, rows), &centroids, p.dof));
        let accuracy_on = |rows: &Batch| match rows.is_empty() {
            true => None,
            false => Some(tch::no_grad(|| head_accuracy(&soft_assignment(rows), &cluster_to_class, rows))),
        };
        let train = &self.data.train;
        let pseudo = (p.pseudo_threshold > 0.0 && !train.is_empty()).then(|| {
            let q = soft_assignment(train);
            log_confidence(&q);
            let labels = Vec::<f32>::try_from(train.y.to_device(Device::Cpu)).expect("float labels");
            let labeled = Vec::<bool>::try_from(train.labeled.to_device(Device::Cpu)).expect("bool mask");
            Tensor::from_slice(&pseudo_labels(&q, &labels, &labeled, p.pseudo_threshold))
        });
        Ok(DecReadout {
            head_val_accuracy: accuracy_on(&self.data.val.labeled_rows()),
            head_test_accuracy: self.data.test.as_ref().and_then(accuracy_on),
            pseudo_labels: pseudo,
        })
    }
}

impl Trainer<'_> {
    /// The classifier's training rows and, with pseudo-labels, the weight of the pseudo-labeled
    /// rows: the labeled training rows alone (the paper's fine-tuning, weight `None`) unless
    /// `pseudo_threshold` > 0, when `readout` must hold the DEC stage's pseudo-labels.
    pub(crate) fn fine_tuning_set(&self, readout: Option<&DecReadout>) -> Result<(Batch, Option<f64>), TrainError> {
        let pseudo = readout.and_then(|r| r.pseudo_labels.as_ref());
        let (rows, weight) = match (self.params.pseudo_threshold > 0.0, pseudo) {
            (false, _) => (self.data.train.labeled_rows(), None),
            (true, Some(pseudo)) => (fine_tuning_rows(&self.data.train, pseudo), Some(self.params.pseudo_weight)),
            (true, None) => return Err(TrainError::NoPseudoLabels),
        };
        if rows.is_empty() || rows.labeled.any().int64_value(&[]) == 0 {
            return Err(TrainError::NoLabeledRows { stage: Stage::Finetune, part: "training" });
        }
        Ok((rows, weight))
    }
}

/// The classifier's batch loss: BCE over the batch, or with a pseudo-label weight, the labeled
/// rows' BCE plus that weight times the pseudo-labeled rows' ([`pseudo_label_loss`]).
pub(crate) fn classifier_loss(logits: &Tensor, batch: &Batch, pseudo_weight: Option<f64>) -> Tensor {
    match pseudo_weight {
        None => losses::bce_with_logits(logits, &batch.y),
        Some(weight) => pseudo_label_loss(logits, &batch.y, &batch.labeled, weight),
    }
}

/// Logs how confident the clustering is (quantiles of each row's largest soft assignment), the
/// number `pseudo_threshold` is compared with.
fn log_confidence(q: &Tensor) {
    let confidence = q.max_dim(1, false).0.to_device(Device::Cpu).to_kind(Kind::Double);
    let quantile = |p: f64| confidence.quantile_scalar(p, None::<i64>, false, "linear").double_value(&[]);
    tracing::info!(
        p10 = quantile(0.1),
        p25 = quantile(0.25),
        median = quantile(0.5),
        p75 = quantile(0.75),
        p90 = quantile(0.9),
        "DEC soft assignments: largest q of each training row"
    );
}
