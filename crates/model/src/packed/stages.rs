//! The pipeline of a pack: which members train each stage (a member takes a stage from its cache
//! or skips a stage its resumed state is past, as the solo trainer does), how each builds its
//! solo network for the stage, and what a member that finishes a stage keeps.

use std::time::Instant;

use decsweep_api::{Pipeline, Stage};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::members::Trial;
use super::pack::{stage_epochs, train_stage, Evaluated, Finished, Start};
use super::PackMember;
use crate::autoencoder::Autoencoder;
use crate::checkpoint::Checkpoint;
use crate::classifier::Classifier;
use crate::records::StageReport;
use crate::seeding;
use crate::train::{PipelineOutcome, TrainError, Trainer};

pub(super) fn run_pipeline(
    pipeline: Pipeline,
    device: Device,
    members: Vec<PackMember<'_>>,
) -> Vec<Result<PipelineOutcome, TrainError>> {
    let mut trials: Vec<Trial> = members.into_iter().enumerate().map(|(i, m)| Trial::new(i, m)).collect();
    let stages: &[Stage] = match pipeline {
        Pipeline::Baseline => &[Stage::Finetune],
        Pipeline::Dec => &[Stage::Ae, Stage::Dec, Stage::Finetune],
    };
    for t in &mut trials {
        if let Some(stage) = t.resume_stage().filter(|s| !stages.contains(s)) {
            t.fail(TrainError::Resume(format!("stage {stage} is not a stage of the {pipeline} pipeline")));
        }
    }
    for &stage in stages {
        run_stage(stage, &mut trials, device);
    }
    trials
        .into_iter()
        .map(|t| {
            t.result.unwrap_or_else(|| Err(TrainError::Resume("the member finished no stage (internal error)".into())))
        })
        .collect()
}

/// Trains `stage` for every member still going that needs it.
fn run_stage(stage: Stage, trials: &mut [Trial], device: Device) {
    let started = Instant::now();
    let mut entries = Vec::new();
    let mut trainable = Vec::new();
    for t in trials.iter_mut().filter(|t| !t.is_done()) {
        if stage != Stage::Finetune {
            // A state in a later stage holds everything this stage produced.
            if t.resume_stage().is_some_and(|r| r > stage) {
                continue;
            }
            // A stage in progress goes on from its state rather than from the cache.
            if t.resume_stage() != Some(stage) {
                if let Some(ckpt) = t.member.cache.load(stage) {
                    tracing::info!(%stage, member = t.index, "stage checkpoint reused from cache");
                    let wall_s = started.elapsed().as_secs_f64();
                    t.stages.push(StageReport { stage, epochs_run: 0, wall_s, cached: true });
                    t.upstream = Some(ckpt);
                    continue;
                }
            }
        }
        match start(stage, t, device) {
            Ok((start, names)) => {
                trainable = names;
                entries.push((t, start));
            }
            Err(e) => t.fail(e),
        }
    }
    if entries.is_empty() {
        return;
    }
    tracing::info!(%stage, members = entries.len(), "pack trains a stage");
    train_stage(stage, entries, &trainable, device, |t, finished, wall_s| finish(stage, t, finished, wall_s));
}

/// A member's solo network for `stage`, built after seeding torch as the solo trainer does, and
/// where it starts (fresh or resumed); also the names of the trainable variables.
fn start(stage: Stage, t: &mut Trial, device: Device) -> Result<(Start, Vec<String>), TrainError> {
    let p = t.member.params;
    if let (Stage::Finetune, Some(dec), None) = (stage, &t.upstream, &t.dec_readout) {
        // Before the stage's seed, as the solo trainer reads it out between stages.
        t.dec_readout = Some(solo_trainer(t, device).dec_readout(dec)?);
    }
    tch::manual_seed(seeding::torch_seed(t.member.seed, stage, 0));
    let resume = t.take_resume(stage);
    let vs = VarStore::new(device);
    let upstream = t.upstream.take();
    match stage {
        Stage::Ae => {
            Autoencoder::new(vs.root(), &t.config);
        }
        Stage::Dec => {
            if t.member.data.train.labeled.any().int64_value(&[]) == 0 && p.beta > 0.0 {
                return Err(TrainError::NoLabeledRows { stage, part: "training" });
            }
            let ae = Autoencoder::new(vs.root(), &t.config);
            let dec_root = vs.root() / "dec";
            match (&resume, upstream) {
                // The resumed state holds the centroids and the cluster map.
                (Some(_), _) => {
                    let _ = dec_root.zeros("centroids", &[p.n_clusters, p.latent_dim]);
                    let _ = dec_root.zeros_no_train("cluster_to_class", &[p.n_clusters, 2]);
                }
                (None, Some(ae_checkpoint)) => {
                    ae_checkpoint.load_into(&vs, &["encoders.", "fusion.", "decoders."])?;
                    let (init, map) = solo_trainer(t, device).initial_clusters(&ae);
                    let _ = dec_root.var_copy("centroids", &init);
                    let mut cluster_to_class = dec_root.zeros_no_train("cluster_to_class", &[p.n_clusters, 2]);
                    tch::no_grad(|| cluster_to_class.copy_(&Tensor::from_slice(&map).view([p.n_clusters, 2])));
                }
                (None, None) => {
                    return Err(TrainError::Resume("the DEC stage needs the AE checkpoint or a state to resume".into()))
                }
            }
        }
        _ => {
            Classifier::new(vs.root(), &t.config);
            if let (Some(ckpt), None) = (upstream, &resume) {
                ckpt.load_into(&vs, &["encoders."])?;
            }
            if t.member.data.train.labeled_rows().is_empty() {
                return Err(TrainError::NoLabeledRows { stage, part: "training" });
            }
            if t.member.data.val.labeled_rows().is_empty() {
                return Err(TrainError::NoLabeledRows { stage, part: "validation" });
            }
        }
    }
    let mut trainable: Vec<String> =
        vs.variables().into_iter().filter(|(_, v)| v.requires_grad()).map(|(n, _)| n).collect();
    trainable.sort();
    let epochs = stage_epochs(stage, p);
    let Some(state) = resume else {
        return Ok((
            Start { weights: Checkpoint::of(&vs), done: 0, optimizer: None, best: None, target: None },
            trainable,
        ));
    };
    if state.epoch > epochs {
        return Err(TrainError::Resume(format!(
            "the state is after epoch {} of stage {stage}, which has {epochs}",
            state.epoch
        )));
    }
    state.weights.check_fits(&vs).map_err(TrainError::Resume)?;
    let target = match stage {
        Stage::Dec => {
            let n = t.member.data.train.len();
            match state.target {
                Some(target) if target.size() == [n, p.n_clusters] => Some(target.to_kind(Kind::Float)),
                Some(target) => {
                    return Err(TrainError::Resume(format!(
                        "DEC target distribution has shape {:?}, expected [{n}, {}]",
                        target.size(),
                        p.n_clusters
                    )))
                }
                None => return Err(TrainError::Resume("a DEC state lacks the target distribution".into())),
            }
        }
        _ => None,
    };
    let best = match (stage, state.best) {
        (Stage::Finetune, Some(b)) if b.epoch <= state.epoch => {
            b.weights.check_fits(&vs).map_err(|e| TrainError::Resume(format!("best epoch: {e}")))?;
            Some(b)
        }
        (Stage::Finetune, _) => return Err(TrainError::Resume("a classifier state lacks a valid best epoch".into())),
        _ => None,
    };
    let start = Start { weights: state.weights, done: state.epoch, optimizer: Some(state.optimizer), best, target };
    Ok((start, trainable))
}

/// The solo trainer of a member (for the solo helpers the pack shares).
fn solo_trainer<'t>(t: &'t Trial, device: Device) -> Trainer<'t> {
    Trainer { params: t.member.params, config: t.config.clone(), seed: t.member.seed, device, data: t.member.data }
}

/// What a member keeps of a finished stage: AE and DEC weights go to its cache and on to its
/// next stage; the classifier's best epoch, evaluated with its pack-mates, is its outcome.
fn finish(stage: Stage, t: &mut Trial, finished: Finished, wall_s: f64) {
    let epochs_run = stage_epochs(stage, t.member.params);
    t.stages.push(StageReport { stage, epochs_run, wall_s, cached: false });
    match finished {
        Finished::Weights(ckpt) => {
            t.member.cache.store(stage, &ckpt);
            t.upstream = Some(ckpt);
        }
        Finished::Best(evaluated) => {
            let Evaluated { best, val, test, param_count } = *evaluated;
            let data = t.member.data;
            let outcome = PipelineOutcome {
                val,
                test,
                best_epoch: best.epoch,
                param_count,
                stages: t.stages.clone(),
                classifier: best.weights,
                dec: t.dec_readout.as_ref().map(|r| r.metrics(&data.train)),
            };
            tracing::info!(
                member = t.index,
                seed = t.member.seed,
                accuracy = outcome.val.metrics.accuracy,
                "pack member done"
            );
            t.result = Some(Ok(outcome));
        }
    }
}
