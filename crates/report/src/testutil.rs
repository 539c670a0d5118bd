//! Builders for test input.

use std::collections::BTreeMap;

use decsweep_api::ParamValue;

use crate::{CurvePoint, TrialRow, TrialStatus};

/// The few things tests vary about a trial.
pub(crate) struct TrialSpec {
    pub id: i64,
    pub pipeline: &'static str,
    pub config: &'static str,
    pub seed: u64,
    pub lf: f64,
    pub status: TrialStatus,
    pub acc: Option<f64>,
}

impl Default for TrialSpec {
    fn default() -> Self {
        TrialSpec { id: 1, pipeline: "dec", config: "c", seed: 0, lf: 0.4, status: TrialStatus::Completed, acc: None }
    }
}

/// A trial with `label_fraction` and, when given, accuracy plus derived F1 and a parameter count.
pub(crate) fn trial(s: TrialSpec) -> TrialRow {
    let mut metrics = BTreeMap::new();
    if let Some(a) = s.acc {
        metrics.insert("accuracy".to_string(), a);
        metrics.insert("f1_weighted".to_string(), a - 0.01);
        metrics.insert("param_count".to_string(), 851_713.0);
    }
    TrialRow {
        id: s.id,
        pipeline: s.pipeline.to_string(),
        params: BTreeMap::from([("label_fraction".to_string(), ParamValue::Float(s.lf))]),
        seed: s.seed,
        config_id: s.config.to_string(),
        spec_label: None,
        status: s.status,
        attempts: 1,
        resumes: 0,
        resumed_from: None,
        pack: Vec::new(),
        worker: Some("w1".to_string()),
        error: None,
        metrics,
    }
}

/// A decreasing loss curve of `epochs` points.
pub(crate) fn curve(trial_id: i64, stage: &str, epochs: u32) -> Vec<CurvePoint> {
    (0..epochs)
        .map(|e| CurvePoint {
            trial_id,
            stage: stage.to_string(),
            epoch: e,
            train_loss: 1.0 / (1.0 + e as f64),
            val_loss: 1.2 / (1.0 + e as f64) + 0.1,
            val_accuracy: 0.5 + 0.01 * e as f64,
        })
        .collect()
}

/// A small label-fraction study: baseline and dec at label fractions 0.2 and 0.4, four seeds
/// each, with one failed, one pruned and one pending trial, a NaN loss, and curves for some
/// trials. Accuracies follow a fixed pattern so that dec beats baseline by about 3 points.
pub(crate) fn study() -> (Vec<TrialRow>, Vec<CurvePoint>) {
    let mut trials = Vec::new();
    let mut id = 0;
    for pipeline in ["baseline", "dec"] {
        for (lf, config) in [(0.2, "lf20"), (0.4, "lf40")] {
            for seed in 0..4u64 {
                id += 1;
                let wobble = [0.004, -0.007, 0.011, -0.002][seed as usize];
                let acc = 0.68 + 0.1 * lf + if pipeline == "dec" { 0.03 + wobble / 2.0 } else { wobble };
                let mut t = trial(TrialSpec {
                    id,
                    pipeline: if pipeline == "dec" { "dec" } else { "baseline" },
                    config: config_name(pipeline, config),
                    seed,
                    lf,
                    acc: Some(acc),
                    ..Default::default()
                });
                t.metrics.insert("loss".into(), 0.6 - acc / 2.0);
                t.metrics.insert("f1_macro".into(), acc - 0.02);
                t.metrics.insert("time_finetune_s".into(), 10.0 + seed as f64);
                if pipeline == "dec" {
                    t.params.insert("beta".into(), ParamValue::Float(0.5));
                    t.metrics.insert("time_ae_s".into(), 30.0);
                    t.metrics.insert("cache_reuses".into(), if lf == 0.4 { 1.0 } else { 0.0 });
                }
                trials.push(t);
            }
        }
    }
    // Trial 6 (baseline lf40 seed 1) failed; 14 (dec lf40 seed 1) was pruned; 16 has a NaN loss.
    trials[5].status = TrialStatus::Failed;
    trials[5].error = Some("worker lost, \"OOM\"".into());
    trials[5].metrics.clear();
    trials[13].status = TrialStatus::Pruned;
    trials[13].metrics.insert("pruned_epoch".into(), 40.0);
    trials[15].metrics.insert("loss".into(), f64::NAN);
    // One more seed still pending.
    let mut pending = trial(TrialSpec {
        id: 17,
        pipeline: "dec",
        config: "dec-lf40",
        seed: 4,
        lf: 0.4,
        status: TrialStatus::Pending,
        ..Default::default()
    });
    pending.params.insert("beta".into(), ParamValue::Float(0.5));
    pending.worker = None;
    trials.push(pending);

    let mut curves = curve(1, "finetune", 30);
    for t in [9, 10] {
        curves.extend(curve(t, "ae", 20));
        curves.extend(curve(t, "dec", 10));
        curves.extend(curve(t, "finetune", 30));
    }
    (trials, curves)
}

fn config_name(pipeline: &str, config: &str) -> &'static str {
    match (pipeline, config) {
        ("dec", "lf20") => "dec-lf20",
        ("dec", _) => "dec-lf40",
        (_, "lf20") => "base-lf20",
        _ => "base-lf40",
    }
}
