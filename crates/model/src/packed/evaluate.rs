//! The final evaluation of the members that finish fine-tuning together: each member's best
//! epoch on its labeled validation rows and its test rows, as one pack in evaluation mode.
//!
//! One packed pass instead of a solo network per member: at the sizes packing is for, K solo
//! evaluations one after the other cost more than the pack's last epochs (16 tiny members: 0.65 s
//! of a 3.5 s run on 2 CPU cores). The numbers are the packed network's in evaluation mode, the
//! function the solo classifier computes up to float rounding (`tests/packed.rs` compares them).

use tch::Tensor;

use super::batches::PackedRows;
use super::layers::Stack;
use super::nets::Nets;
use super::pack::{per_member_rows, Evaluated, TestRows};
use crate::evaluate::evaluation_of_logits;
use crate::resume::BestSoFar;
use crate::ModelConfig;

/// `bests[i]` is the best epoch of the stage's member `members[i]` (its index in `val` and
/// `test`); `trainable` names the variables counted as parameters.
pub(super) fn best_epochs(
    bests: Vec<BestSoFar>,
    members: &[usize],
    val: &PackedRows,
    test: &TestRows,
    trainable: &[String],
    config: &ModelConfig,
) -> Vec<Evaluated> {
    let weights: Vec<_> = bests.iter().map(|b| b.weights.shallow_clone()).collect();
    let stack = Stack::new(&weights, &[], val.device());
    drop(weights);
    let nets = Nets { stack: &stack, config, dropout: None };
    let logits = |rows: &PackedRows| -> Vec<Tensor> {
        tch::no_grad(|| per_member_rows(members, rows, |chunk| nets.classifier(chunk, false)))
    };
    let (val_logits, test_logits) = (logits(val), logits(&test.rows));
    bests
        .into_iter()
        .zip(members)
        .zip(val_logits.iter().zip(&test_logits))
        .map(|((best, &s), (val_logits, test_logits))| {
            let param_count =
                trainable.iter().filter_map(|name| best.weights.get(name)).map(|t| t.numel() as i64).sum();
            Evaluated {
                val: evaluation_of_logits(val_logits, &val.labels(s)),
                test: test.present[s].then(|| evaluation_of_logits(test_logits, &test.rows.labels(s))),
                best,
                param_count,
            }
        })
        .collect()
}
