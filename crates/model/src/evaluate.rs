//! Loss and metrics of a classifier on a whole split, outside training.

use tch::{Device, Kind, Tensor};

use crate::batch::Batch;
use crate::classifier::Classifier;
use crate::losses;
use crate::metrics::BinaryMetrics;

/// Rows evaluated at once outside training (bounds memory, not results).
pub(crate) const EVAL_BATCH: i64 = 512;

/// Loss and metrics of the chosen classifier checkpoint on one split.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub metrics: BinaryMetrics,
}

/// Loss and metrics of `model` on every row of `data`, in evaluation mode.
pub fn evaluate_classifier(model: &Classifier, data: &Batch) -> Evaluation {
    tch::no_grad(|| {
        let logits: Vec<Tensor> =
            data.batch_indices(EVAL_BATCH, false).iter().map(|idx| model.forward(&data.select(idx), false)).collect();
        evaluation_of_logits(&Tensor::cat(&logits, 0), &data.y)
    })
}

/// Loss and metrics of the logits `[N]` of a split whose labels are `y [N]`.
pub(crate) fn evaluation_of_logits(logits: &Tensor, y: &Tensor) -> Evaluation {
    let loss = losses::bce_with_logits(logits, y).double_value(&[]);
    let predicted = Vec::<u8>::try_from(logits.gt(0.0).to_kind(Kind::Uint8).to_device(Device::Cpu)).expect("u8");
    let truth = Vec::<u8>::try_from(y.to_kind(Kind::Uint8).to_device(Device::Cpu)).expect("u8");
    Evaluation { loss, metrics: BinaryMetrics::compute(&predicted, &truth) }
}
