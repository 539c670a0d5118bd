//! `[pruner]`: early stopping of trials from their per-epoch validation metric.
//!
//! This module holds the spec's *data*; the coordinator makes the decisions (it answers a
//! worker's progress call with `prune`). The rules it implements, exactly:
//!
//! # Steps and values
//!
//! A trial's **step** is the 1-based epoch of the stage named by `stage` (default `finetune`, the
//! classifier; `dec` and `ae` name the pretraining stages; a `command` pipeline's steps are
//! the epochs it reports). Its **intermediate value** at a step is the objective metric
//! (`[objective] metric`) measured on validation after that epoch, compared in the objective's
//! direction. Pruning only compares trials of the same study and the same configuration label /
//! pipeline.
//!
//! # Median (`kind = "median"`, Optuna's `MedianPruner`)
//!
//! At step `s` a trial is pruned when all of these hold:
//! - at least `n_startup_trials` (default 5) other trials of the study have *finished the
//!   stage* (reported its last epoch);
//! - `s > n_warmup_steps` (default 0);
//! - `(s − n_warmup_steps − 1) % interval_steps == 0` (default 1: every step is checked);
//! - the trial's **best** intermediate value over steps `1..=s` is *worse* than the median, over
//!   those finished trials that reported step `s`, of their value *at* step `s` (as in Optuna,
//!   only trials that ran to the end make the median; pruned and running ones do not).
//!   If none reported step `s`, the trial is not pruned. Ties (equal to the median) are not
//!   pruned.
//!
//! # ASHA (`kind = "asha"`, Optuna's `SuccessiveHalvingPruner`, asynchronous)
//!
//! With `r = min_resource` (default 1), `η = reduction_factor` (default 4 as in Optuna, ≥ 2) and
//! `s₀ = min_early_stopping_rate` (default 0), rung `k` (k = 0, 1, …) sits at step
//! `r · η^(s₀ + k)`. When a trial reaches a rung's step, its value at that step is recorded in the
//! rung; it is **promoted** (continues) when, with the `n` values recorded in that rung so far
//! (its own included) sorted best first, `i = max(⌊n / η⌋ − 1, 0)`, its value is at least as good
//! as the `i`-th (0-based): it is in the top `⌊n / η⌋`, and while fewer than η trials reached the
//! rung it must be the best of them. Otherwise it is pruned. Between rungs a trial is never
//! pruned; a NaN value is pruned. No waiting for a full rung: decisions use the values present
//! (asynchronous successive halving).
//!
//! # Seeds
//!
//! Each seed's trial is judged on its own values. A configuration whose seeds were all pruned is
//! a *pruned* observation for the sampler (TPE ranks it below every completed configuration);
//! with some seeds completed, the sampler sees the mean over the completed ones.

use serde::{Deserialize, Serialize};

/// Which stage's epochs are a trial's steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PruneStage {
    /// Autoencoder pretraining (`dec` pipeline).
    Ae,
    /// DEC clustering (`dec` pipeline).
    Dec,
    /// The classifier (both pipelines); also a `command` pipeline's reported epochs.
    Finetune,
}

impl PruneStage {
    pub const WORDS: &'static [&'static str] = &["ae", "dec", "finetune"];

    pub fn name(self) -> &'static str {
        match self {
            PruneStage::Ae => "ae",
            PruneStage::Dec => "dec",
            PruneStage::Finetune => "finetune",
        }
    }
}

/// The decision rule and its parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum PrunerKind {
    Median { n_startup_trials: u64, n_warmup_steps: u64, interval_steps: u64 },
    Asha { min_resource: u64, reduction_factor: u64, min_early_stopping_rate: u64 },
}

impl PrunerKind {
    pub const WORDS: &'static [&'static str] = &["median", "asha"];

    /// Median with Optuna's defaults (5 startup trials, no warmup, every step).
    pub fn median() -> PrunerKind {
        PrunerKind::Median { n_startup_trials: 5, n_warmup_steps: 0, interval_steps: 1 }
    }

    /// ASHA with Optuna's defaults (min resource 1, η = 3, min early-stopping rate 0).
    pub fn asha() -> PrunerKind {
        PrunerKind::Asha { min_resource: 1, reduction_factor: 4, min_early_stopping_rate: 0 }
    }

    /// ASHA's rung steps up to `max_step`: `min_resource · η^(s₀ + k)`.
    pub fn rungs(&self, max_step: u64) -> Vec<u64> {
        let PrunerKind::Asha { min_resource, reduction_factor, min_early_stopping_rate } = *self else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut step = u32::try_from(min_early_stopping_rate)
            .ok()
            .and_then(|e| reduction_factor.checked_pow(e))
            .and_then(|p| p.checked_mul(min_resource));
        while let Some(s) = step.filter(|s| *s <= max_step) {
            out.push(s);
            step = s.checked_mul(reduction_factor);
        }
        out
    }
}

/// `[pruner]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrunerSpec {
    pub kind: PrunerKind,
    pub stage: PruneStage,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asha_rungs_are_geometric() {
        assert_eq!(PrunerKind::asha().rungs(100), [1, 4, 16, 64]);
        let k = PrunerKind::Asha { min_resource: 2, reduction_factor: 4, min_early_stopping_rate: 1 };
        assert_eq!(k.rungs(200), [8, 32, 128]);
        assert!(PrunerKind::median().rungs(100).is_empty());
    }
}
