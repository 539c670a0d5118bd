//! The training stages and the two pipelines.
//!
//! - `baseline`: the classifier trained from scratch on the labeled training rows;
//! - `dec`: autoencoder pretraining (α·recon + γ·disentangle on every training row) →
//!   semi-supervised DEC (equation 8) → the classifier with its encoders taken from DEC.
//!
//! Every stage seeds torch's generator from the trial seed and its own name before building its
//! network, so its result does not depend on what ran before it in the process: a stage loaded
//! from a cache and one trained on the spot are interchangeable. Every epoch then reseeds it from
//! (seed, stage, epoch), so the generator's state at an epoch boundary is a function of where
//! the trial is, and a trial resumed from a [`TrialState`] draws the same shuffles and dropout
//! masks as one that never stopped. Every epoch is reported to an [`Observer`] that may stop the
//! trial (pruning) or ask for its state (checkpoints).

use std::time::Instant;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use decsweep_api::{Params, Pipeline, Stage};

use crate::autoencoder::Autoencoder;
use crate::batch::Batch;
pub use crate::batch::TrainSet;
use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::classifier::Classifier;
use crate::cluster::{clusters_to_classes, kmeans};
use crate::evaluate::EVAL_BATCH;
pub use crate::evaluate::{evaluate_classifier, Evaluation};
use crate::losses::{self, LossTerms, LossWeights};
pub use crate::observe::{Control, NoCache, Observer, StageCache};
use crate::optim::Adam;
pub use crate::records::{EpochRecord, StageReport};
use crate::resume::{BestSoFar, TrialState};
use crate::seeding;
use crate::ModelConfig;

/// k-means restarts when initialising the DEC centroids.
const KMEANS_RESTARTS: usize = 10;
const KMEANS_MAX_ITER: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("diverged in stage {stage} at epoch {epoch}: the {what} became {value}")]
    Diverged { stage: Stage, epoch: usize, what: &'static str, value: f64 },
    #[error("stopped in stage {stage} at epoch {epoch}")]
    Stopped { stage: Stage, epoch: usize },
    /// The observer asked to suspend: the state after this epoch was handed to it.
    #[error("suspended in stage {stage} after epoch {epoch}")]
    Suspended { stage: Stage, epoch: usize },
    /// A [`TrialState`] that does not fit this trial's networks (nothing was trained).
    #[error("the trial state does not fit this trial: {0}")]
    Resume(String),
    #[error("no labeled rows in the {part} set: the {stage} stage needs some (raise label_fraction)")]
    NoLabeledRows { stage: Stage, part: &'static str },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// The outcome of a trial.
#[derive(Debug)]
pub struct PipelineOutcome {
    pub val: Evaluation,
    pub test: Option<Evaluation>,
    /// Epoch (1-based) of the chosen classifier checkpoint.
    pub best_epoch: usize,
    /// Trainable parameters of the classifier.
    pub param_count: i64,
    pub stages: Vec<StageReport>,
    pub classifier: Checkpoint,
}

pub struct Trainer<'a> {
    pub params: &'a Params,
    pub config: ModelConfig,
    pub seed: u64,
    pub device: Device,
    pub data: &'a TrainSet,
}

/// One run of a pipeline: the observer, and what a [`TrialState`] carries across stages.
pub struct Session<'o> {
    observer: &'o mut dyn Observer,
    /// Every epoch reported so far, those of a resumed state included.
    curves: Vec<EpochRecord>,
    /// Reports of the finished stages.
    stages: Vec<StageReport>,
    /// The state to resume from, until its stage takes it.
    resume: Option<TrialState>,
    /// How many times the trial has been resumed, this run included.
    resumes: u32,
}

impl<'o> Session<'o> {
    pub fn new(observer: &'o mut dyn Observer) -> Self {
        Session { observer, curves: Vec::new(), stages: Vec::new(), resume: None, resumes: 0 }
    }

    /// A session that goes on from `state`.
    pub fn resuming(observer: &'o mut dyn Observer, state: TrialState) -> Self {
        Session {
            observer,
            curves: state.curves.clone(),
            stages: state.finished_stages.clone(),
            resumes: state.resumes + 1,
            resume: Some(state),
        }
    }

    /// The stage the resumed state is in, if any is still to be taken.
    fn resume_stage(&self) -> Option<Stage> {
        self.resume.as_ref().map(|r| r.stage)
    }

    /// The resumed state, if it is `stage`'s.
    fn take_resume(&mut self, stage: Stage) -> Option<TrialState> {
        self.resume.take_if(|r| r.stage == stage)
    }
}

/// The parts of a [`TrialState`] that belong to the stage in progress.
struct StageSnapshot {
    weights: Checkpoint,
    optimizer: Vec<(String, Tensor)>,
    best: Option<BestSoFar>,
    target: Option<Tensor>,
}

impl<'a> Trainer<'a> {
    /// Runs `pipeline`, taking stage checkpoints from `cache` where it has them. `session` says
    /// where epochs go and, when made with [`Session::resuming`], where the trial goes on from.
    pub fn run(
        &self,
        pipeline: Pipeline,
        cache: &mut dyn StageCache,
        session: &mut Session,
    ) -> Result<PipelineOutcome, TrainError> {
        if let Some(stage) = session.resume_stage() {
            let stages: &[Stage] = match pipeline {
                Pipeline::Baseline => &[Stage::Finetune],
                Pipeline::Dec => &[Stage::Ae, Stage::Dec, Stage::Finetune],
            };
            if !stages.contains(&stage) {
                return Err(TrainError::Resume(format!("stage {stage} is not a stage of the {pipeline} pipeline")));
            }
        }
        let init = match pipeline {
            Pipeline::Baseline => None,
            Pipeline::Dec => {
                // A state in a later stage holds everything the earlier stages produced.
                let after = |stage: Stage, s: &Session| s.resume_stage().is_some_and(|r| r > stage);
                let ae = match after(Stage::Ae, session) {
                    true => None,
                    false => Some(self.cached_stage(Stage::Ae, cache, session, |t, s| t.pretrain_autoencoder(s))?),
                };
                match after(Stage::Dec, session) {
                    true => None,
                    false => Some(self.cached_stage(Stage::Dec, cache, session, |t, s| t.cluster(ae.as_ref(), s))?),
                }
            }
        };
        let started = Instant::now();
        let mut outcome = self.train_classifier(init.as_ref(), session)?;
        session.stages.push(StageReport {
            stage: Stage::Finetune,
            epochs_run: self.params.epochs_ft as usize,
            wall_s: started.elapsed().as_secs_f64(),
            cached: false,
        });
        outcome.stages = session.stages.clone();
        Ok(outcome)
    }

    fn cached_stage(
        &self,
        stage: Stage,
        cache: &mut dyn StageCache,
        session: &mut Session,
        train: impl FnOnce(&Self, &mut Session) -> Result<(Checkpoint, usize), TrainError>,
    ) -> Result<Checkpoint, TrainError> {
        let started = Instant::now();
        // A stage in progress goes on from its state rather than from the cache.
        if session.resume_stage() != Some(stage) {
            if let Some(ckpt) = cache.load(stage) {
                tracing::info!(%stage, "stage checkpoint reused from cache");
                session.stages.push(StageReport {
                    stage,
                    epochs_run: 0,
                    wall_s: started.elapsed().as_secs_f64(),
                    cached: true,
                });
                return Ok(ckpt);
            }
        }
        let (ckpt, epochs_run) = train(self, session)?;
        cache.store(stage, &ckpt);
        session.stages.push(StageReport { stage, epochs_run, wall_s: started.elapsed().as_secs_f64(), cached: false });
        Ok(ckpt)
    }

    /// Seeds torch from the trial seed and the stage, so each stage is reproducible on its own.
    fn seed_stage(&self, stage: Stage) {
        tch::manual_seed(seeding::torch_seed(self.seed, stage, 0));
    }

    /// Seeds torch from the trial seed, the stage and the epoch (1-based) about to run: the
    /// generator's state at an epoch boundary is then the same whether the process ran the
    /// epochs before or resumed after them.
    fn seed_epoch(&self, stage: Stage, epoch: usize) {
        tch::manual_seed(seeding::torch_seed(self.seed, stage, epoch as u64));
    }

    /// AE pretraining: `alpha_ae · recon + gamma_ae · disentangle` on every training row.
    /// Returns the final weights and the epochs run.
    pub fn pretrain_autoencoder(&self, session: &mut Session) -> Result<(Checkpoint, usize), TrainError> {
        let stage = Stage::Ae;
        self.seed_stage(stage);
        let resume = session.take_resume(stage);
        let vs = VarStore::new(self.device);
        let ae = Autoencoder::new(vs.root(), &self.config);
        let mut opt = Adam::new(&vs, self.params.lr_ae, 0.0);
        let epochs = self.params.epochs_ae as usize;
        let done = match &resume {
            Some(state) => restore(state, &vs, &mut opt, epochs)?,
            None => 0,
        };
        let weights = LossWeights { cluster: 0.0, alpha: self.params.alpha_ae, beta: 0.0, gamma: self.params.gamma_ae };
        let terms = |batch: &Batch, train: bool| {
            let z = ae.encode(batch, train);
            let recon = losses::reconstruction(&ae.decode(&z, batch), batch);
            let zero = recon.zeros_like();
            LossTerms { cluster: zero.shallow_clone(), supervised: zero, disentangle: losses::disentangle(&z), recon }
        };
        let started = Instant::now();
        for epoch in done + 1..=epochs {
            self.seed_epoch(stage, epoch);
            let train_loss = self.train_epoch(&self.data.train, &mut opt, |b, _| terms(b, true).total(weights))?;
            let val_loss = self.evaluate_loss(&self.data.val, |b| terms(b, false).total(weights));
            let record = EpochRecord {
                stage,
                epoch,
                epochs,
                train_loss,
                val_loss,
                val_accuracy: None,
                elapsed_s: started.elapsed().as_secs_f64(),
            };
            self.after_epoch(session, record, || StageSnapshot {
                weights: Checkpoint::of(&vs),
                optimizer: opt.state(),
                best: None,
                target: None,
            })?;
        }
        Ok((Checkpoint::of(&vs), epochs))
    }

    /// Semi-supervised DEC (equation 8), starting from the AE checkpoint: centroids from k-means
    /// on the latent codes, the target P recomputed over all training rows every `p_update`
    /// epochs. Returns the final weights (encoders, fusion, decoders, centroids) and epochs run.
    /// `ae_checkpoint` may be `None` only when the session resumes in this stage.
    pub fn cluster(
        &self,
        ae_checkpoint: Option<&Checkpoint>,
        session: &mut Session,
    ) -> Result<(Checkpoint, usize), TrainError> {
        let stage = Stage::Dec;
        self.seed_stage(stage);
        if self.data.train.labeled.any().int64_value(&[]) == 0 && self.params.beta > 0.0 {
            return Err(TrainError::NoLabeledRows { stage, part: "training" });
        }
        let p = self.params;
        let resume = session.take_resume(stage);
        let vs = VarStore::new(self.device);
        let ae = Autoencoder::new(vs.root(), &self.config);
        let dec_root = vs.root() / "dec";
        let (centroids, cluster_to_class) = match (&resume, ae_checkpoint) {
            // The resumed state holds the centroids and the cluster map.
            (Some(_), _) => (
                dec_root.zeros("centroids", &[p.n_clusters, p.latent_dim]),
                dec_root.zeros_no_train("cluster_to_class", &[p.n_clusters, 2]),
            ),
            (None, Some(ae_checkpoint)) => {
                ae_checkpoint.load_into(&vs, &["encoders.", "fusion.", "decoders."])?;
                // Centroids from k-means on the pretrained latent space; each cluster stands for
                // the class most of its labeled members carry.
                let (init, map) = self.initial_clusters(&ae);
                let centroids = dec_root.var_copy("centroids", &init);
                let mut cluster_to_class = dec_root.zeros_no_train("cluster_to_class", &[p.n_clusters, 2]);
                tch::no_grad(|| cluster_to_class.copy_(&Tensor::from_slice(&map).view([p.n_clusters, 2])));
                (centroids, cluster_to_class)
            }
            (None, None) => {
                return Err(TrainError::Resume("the DEC stage needs the AE checkpoint or a state to resume".into()))
            }
        };

        let mut opt = Adam::new(&vs, p.lr_dec, 0.0);
        let epochs = p.epochs_dec as usize;
        let mut target = Tensor::zeros([0], (Kind::Float, self.device));
        let done = match resume {
            Some(state) => {
                let done = restore(&state, &vs, &mut opt, epochs)?;
                let n = self.data.train.len();
                match state.target {
                    Some(t) if t.size() == [n, p.n_clusters] => target = t.to_device(self.device),
                    Some(t) => {
                        return Err(TrainError::Resume(format!(
                            "DEC target distribution has shape {:?}, expected [{n}, {}]",
                            t.size(),
                            p.n_clusters
                        )))
                    }
                    None => return Err(TrainError::Resume("a DEC state lacks the target distribution".into())),
                }
                done
            }
            None => 0,
        };
        let weights = LossWeights { cluster: p.cluster_weight, alpha: p.alpha, beta: p.beta, gamma: p.gamma };
        let terms = |batch: &Batch, target: &Tensor, train: bool| {
            let z = ae.encode(batch, train);
            let q = losses::soft_assignment(&z, &centroids, p.dof);
            LossTerms {
                cluster: losses::cluster_kl(target, &q),
                recon: if weights.alpha != 0.0 {
                    losses::reconstruction(&ae.decode(&z, batch), batch)
                } else {
                    q.zeros_like().sum(Kind::Float)
                },
                supervised: losses::supervised(&q, &cluster_to_class, &batch.y, &batch.labeled),
                disentangle: losses::disentangle(&z),
            }
        };
        let val_labeled = self.data.val.labeled_rows();
        let started = Instant::now();
        for epoch in done + 1..=epochs {
            self.seed_epoch(stage, epoch);
            if (epoch - 1) % p.p_update as usize == 0 {
                target = self.target_distribution(&ae, &centroids, &self.data.train);
            }
            let train_loss = self.train_epoch(&self.data.train, &mut opt, |b, idx| {
                terms(b, &target.index_select(0, idx), true).total(weights)
            })?;
            let val_target = self.target_distribution(&ae, &centroids, &self.data.val);
            let val_loss = self.evaluate_indexed_loss(&self.data.val, |b, idx| {
                terms(b, &val_target.index_select(0, idx), false).total(weights)
            });
            let val_accuracy = (!val_labeled.is_empty()).then(|| {
                tch::no_grad(|| {
                    let q = losses::soft_assignment(&self.latent_codes(&ae, &val_labeled), &centroids, p.dof);
                    let predicted = losses::class_probabilities(&q, &cluster_to_class).argmax(1, false);
                    predicted
                        .to_kind(Kind::Float)
                        .eq_tensor(&val_labeled.y)
                        .to_kind(Kind::Double)
                        .mean(Kind::Double)
                        .double_value(&[])
                })
            });
            let record = EpochRecord {
                stage,
                epoch,
                epochs,
                train_loss,
                val_loss,
                val_accuracy,
                elapsed_s: started.elapsed().as_secs_f64(),
            };
            self.after_epoch(session, record, || StageSnapshot {
                weights: Checkpoint::of(&vs),
                optimizer: opt.state(),
                best: None,
                target: Some(target.to_device(Device::Cpu).copy()),
            })?;
        }
        Ok((Checkpoint::of(&vs), epochs))
    }

    /// Trains the classifier on the labeled training rows, its encoders taken from `init` when
    /// given; keeps the epoch with the best validation accuracy (ties: lower validation loss).
    pub fn train_classifier(
        &self,
        init: Option<&Checkpoint>,
        session: &mut Session,
    ) -> Result<PipelineOutcome, TrainError> {
        let stage = Stage::Finetune;
        self.seed_stage(stage);
        let p = self.params;
        let resume = session.take_resume(stage);
        let vs = VarStore::new(self.device);
        let model = Classifier::new(vs.root(), &self.config);
        if let (Some(ckpt), None) = (init, &resume) {
            ckpt.load_into(&vs, &["encoders."])?;
        }
        let train = self.data.train.labeled_rows();
        let val = self.data.val.labeled_rows();
        if train.is_empty() {
            return Err(TrainError::NoLabeledRows { stage, part: "training" });
        }
        if val.is_empty() {
            return Err(TrainError::NoLabeledRows { stage, part: "validation" });
        }
        let mut opt = Adam::new(&vs, p.lr_ft, p.weight_decay);
        let epochs = p.epochs_ft as usize;
        let mut best: Option<BestSoFar> = None;
        let done = match resume {
            Some(state) => {
                let done = restore(&state, &vs, &mut opt, epochs)?;
                match state.best {
                    Some(b) if b.epoch <= done => {
                        b.weights.check_fits(&vs).map_err(|e| TrainError::Resume(format!("best epoch: {e}")))?;
                        best = Some(b);
                    }
                    _ => return Err(TrainError::Resume("a classifier state lacks a valid best epoch".into())),
                }
                done
            }
            None => 0,
        };
        let started = Instant::now();
        for epoch in done + 1..=epochs {
            self.seed_epoch(stage, epoch);
            let train_loss =
                self.train_epoch(&train, &mut opt, |b, _| losses::bce_with_logits(&model.forward(b, true), &b.y))?;
            let eval = evaluate_classifier(&model, &val);
            let record = EpochRecord {
                stage,
                epoch,
                epochs,
                train_loss,
                val_loss: eval.loss,
                val_accuracy: Some(eval.metrics.accuracy),
                elapsed_s: started.elapsed().as_secs_f64(),
            };
            let better = best.as_ref().is_none_or(|b| {
                eval.metrics.accuracy > b.accuracy || (eval.metrics.accuracy == b.accuracy && eval.loss < b.loss)
            });
            if better {
                best = Some(BestSoFar {
                    accuracy: eval.metrics.accuracy,
                    loss: eval.loss,
                    epoch,
                    weights: Checkpoint::of(&vs),
                });
            }
            self.after_epoch(session, record, || StageSnapshot {
                weights: Checkpoint::of(&vs),
                optimizer: opt.state(),
                best: best.as_ref().map(|b| BestSoFar {
                    accuracy: b.accuracy,
                    loss: b.loss,
                    epoch: b.epoch,
                    weights: b.weights.shallow_clone(),
                }),
                target: None,
            })?;
        }
        let BestSoFar { epoch: best_epoch, weights: checkpoint, .. } = best.expect("at least one epoch");
        checkpoint.load_into(&vs, &[""])?;
        let param_count = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        Ok(PipelineOutcome {
            val: evaluate_classifier(&model, &val),
            test: self.data.test.as_ref().filter(|t| !t.is_empty()).map(|t| evaluate_classifier(&model, t)),
            best_epoch,
            param_count,
            stages: Vec::new(),
            classifier: checkpoint,
        })
    }

    /// One pass over `data` in shuffled mini-batches. `loss(batch, row_indices)` builds the
    /// batch loss. Returns the mean loss per row; the loss is read back once per epoch only,
    /// so a GPU is never synchronised per step.
    fn train_epoch(
        &self,
        data: &Batch,
        opt: &mut Adam,
        loss: impl Fn(&Batch, &Tensor) -> Tensor,
    ) -> Result<f64, TrainError> {
        let mut sum = Tensor::zeros([], (Kind::Double, self.device));
        let mut rows = 0i64;
        for idx in data.batch_indices(self.params.batch_size, true) {
            let batch = data.select(&idx);
            let l = loss(&batch, &idx);
            opt.backward_step(&l);
            sum += l.detach().to_kind(Kind::Double) * batch.len() as f64;
            rows += batch.len();
        }
        Ok(sum.double_value(&[]) / rows.max(1) as f64)
    }

    fn evaluate_loss(&self, data: &Batch, loss: impl Fn(&Batch) -> Tensor) -> f64 {
        self.evaluate_indexed_loss(data, |b, _| loss(b))
    }

    /// Mean per-row loss over `data` in evaluation mode.
    fn evaluate_indexed_loss(&self, data: &Batch, loss: impl Fn(&Batch, &Tensor) -> Tensor) -> f64 {
        if data.is_empty() {
            return f64::NAN;
        }
        tch::no_grad(|| {
            let mut sum = 0.0;
            for idx in data.batch_indices(EVAL_BATCH, false) {
                let batch = data.select(&idx);
                sum += loss(&batch, &idx).double_value(&[]) * batch.len() as f64;
            }
            sum / data.len() as f64
        })
    }

    /// DEC's starting point from the pretrained autoencoder `ae`: k-means centroids `[K, L]` of
    /// the training rows' latent codes, and the cluster → class map (`[K, 2]` one-hot, row-major)
    /// from their labeled members. Draws from torch's generator (the stage's seed).
    pub(crate) fn initial_clusters(&self, ae: &Autoencoder) -> (Tensor, Vec<f32>) {
        let p = self.params;
        let z_all = self.latent_codes(ae, &self.data.train);
        let (init, assign) = kmeans(&z_all, p.n_clusters, KMEANS_RESTARTS, KMEANS_MAX_ITER);
        let labels = Vec::<f32>::try_from(self.data.train.y.to_device(Device::Cpu)).expect("float labels");
        let labeled = Vec::<bool>::try_from(self.data.train.labeled.to_device(Device::Cpu)).expect("bool mask");
        (init, clusters_to_classes(&assign, &labels, &labeled, p.n_clusters as usize).concat())
    }

    fn latent_codes(&self, ae: &Autoencoder, data: &Batch) -> Tensor {
        tch::no_grad(|| {
            let parts: Vec<Tensor> =
                data.batch_indices(EVAL_BATCH, false).iter().map(|idx| ae.encode(&data.select(idx), false)).collect();
            Tensor::cat(&parts, 0)
        })
    }

    /// Equation 3 over every row of `data` with the current network.
    fn target_distribution(&self, ae: &Autoencoder, centroids: &Tensor, data: &Batch) -> Tensor {
        tch::no_grad(|| {
            let q = losses::soft_assignment(&self.latent_codes(ae, data), centroids, self.params.dof);
            losses::target_distribution(&q)
        })
    }

    /// Checks for divergence, records the epoch and lets the observer decide: go on, stop, or
    /// take the trial's state (built by `snapshot` only then) and go on or suspend.
    fn after_epoch(
        &self,
        session: &mut Session,
        record: EpochRecord,
        snapshot: impl FnOnce() -> StageSnapshot,
    ) -> Result<(), TrainError> {
        check_divergence(&record, self.data.val.is_empty())?;
        let control = session.observer.epoch(&record);
        let (stage, epoch) = (record.stage, record.epoch);
        session.curves.push(record);
        match control {
            Control::Continue => Ok(()),
            Control::Stop => Err(TrainError::Stopped { stage, epoch }),
            Control::Checkpoint | Control::Suspend => {
                let StageSnapshot { weights, optimizer, best, target } = snapshot();
                let state = TrialState {
                    stage,
                    epoch,
                    weights,
                    optimizer,
                    best,
                    target,
                    curves: session.curves.clone(),
                    finished_stages: session.stages.clone(),
                    resumes: session.resumes,
                };
                session.observer.checkpoint(&state);
                match control {
                    Control::Suspend => Err(TrainError::Suspended { stage, epoch }),
                    _ => Ok(()),
                }
            }
        }
    }
}

/// A [`TrainError::Diverged`] when the epoch's training or validation loss is not finite (a NaN
/// validation loss of an empty validation set is not a divergence).
pub(crate) fn check_divergence(record: &EpochRecord, no_validation_rows: bool) -> Result<(), TrainError> {
    for (what, value) in [("training loss", record.train_loss), ("validation loss", record.val_loss)] {
        // An empty validation set yields NaN by construction; only a real loss can diverge.
        let no_validation = what == "validation loss" && value.is_nan() && no_validation_rows;
        if !value.is_finite() && !no_validation {
            return Err(TrainError::Diverged { stage: record.stage, epoch: record.epoch, what, value });
        }
    }
    Ok(())
}

/// Puts a resumed state's weights and optimiser state into a freshly built stage; returns the
/// epochs already done.
fn restore(state: &TrialState, vs: &VarStore, opt: &mut Adam, epochs: usize) -> Result<usize, TrainError> {
    if state.epoch > epochs {
        return Err(TrainError::Resume(format!(
            "the state is after epoch {} of stage {}, which has {epochs}",
            state.epoch, state.stage
        )));
    }
    state.weights.check_fits(vs).map_err(TrainError::Resume)?;
    state.weights.load_into(vs, &[""])?;
    opt.load_state(&state.optimizer).map_err(|e| TrainError::Resume(e.to_string()))?;
    Ok(state.epoch)
}
