//! The training stages and the two pipelines.
//!
//! - `baseline`: the classifier trained from scratch on the labeled training rows;
//! - `dec`: autoencoder pretraining (α·recon + γ·disentangle on every training row) →
//!   semi-supervised DEC (equation 8) → the classifier with its encoders taken from DEC.
//!
//! Every stage seeds torch's generator from the trial seed and its own name before building its
//! network, so its result does not depend on what ran before it in the process: a stage loaded
//! from a cache and one trained on the spot are interchangeable. Every epoch is reported to a
//! callback that may stop the stage (pruning).

use std::time::Instant;

use tch::nn::{self, OptimizerConfig, VarStore};
use tch::{Device, Kind, Tensor};

use decsweep_api::{Params, Pipeline, Stage};

use crate::autoencoder::Autoencoder;
use crate::batch::Batch;
use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::classifier::Classifier;
use crate::cluster::{clusters_to_classes, kmeans};
use crate::losses::{self, LossTerms, LossWeights};
use crate::metrics::BinaryMetrics;
use crate::ModelConfig;

/// Rows evaluated at once outside training (bounds memory, not results).
const EVAL_BATCH: i64 = 512;
/// k-means restarts when initialising the DEC centroids.
const KMEANS_RESTARTS: usize = 10;
const KMEANS_MAX_ITER: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("diverged in stage {stage} at epoch {epoch}: the {what} became {value}")]
    Diverged { stage: Stage, epoch: usize, what: &'static str, value: f64 },
    #[error("stopped in stage {stage} at epoch {epoch}")]
    Stopped { stage: Stage, epoch: usize },
    #[error("no labeled rows in the {part} set: the {stage} stage needs some (raise label_fraction)")]
    NoLabeledRows { stage: Stage, part: &'static str },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// What a progress callback wants after an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    Stop,
}

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

/// The prepared rows on the training device.
pub struct TrainSet {
    /// Every training row; `labeled` marks those whose label may be used.
    pub train: Batch,
    /// Every validation row.
    pub val: Batch,
    pub test: Option<Batch>,
}

impl TrainSet {
    pub fn from_prepared(p: &decsweep_data::Prepared, device: Device) -> TrainSet {
        let to = |part| Batch::from_part(part, p.seq_len, p.dims, device);
        TrainSet { train: to(&p.train), val: to(&p.val), test: p.test.as_ref().map(to) }
    }
}

/// Loss and metrics of the chosen classifier checkpoint on one split.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub metrics: BinaryMetrics,
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

type Progress<'p> = &'p mut dyn FnMut(&EpochRecord) -> Control;

impl<'a> Trainer<'a> {
    /// Runs `pipeline`, taking stage checkpoints from `cache` where it has them.
    pub fn run(
        &self,
        pipeline: Pipeline,
        cache: &mut dyn StageCache,
        progress: Progress,
    ) -> Result<PipelineOutcome, TrainError> {
        let mut stages = Vec::new();
        let init = match pipeline {
            Pipeline::Baseline => None,
            Pipeline::Dec => {
                let ae = self.cached_stage(Stage::Ae, cache, &mut stages, |t| t.pretrain_autoencoder(progress))?;
                let dec = self.cached_stage(Stage::Dec, cache, &mut stages, |t| t.cluster(&ae, progress))?;
                Some(dec)
            }
        };
        let started = Instant::now();
        let mut outcome = self.train_classifier(init.as_ref(), progress)?;
        stages.push(StageReport {
            stage: Stage::Finetune,
            epochs_run: self.params.epochs_ft as usize,
            wall_s: started.elapsed().as_secs_f64(),
            cached: false,
        });
        outcome.stages = stages;
        Ok(outcome)
    }

    fn cached_stage(
        &self,
        stage: Stage,
        cache: &mut dyn StageCache,
        reports: &mut Vec<StageReport>,
        train: impl FnOnce(&Self) -> Result<(Checkpoint, usize), TrainError>,
    ) -> Result<Checkpoint, TrainError> {
        let started = Instant::now();
        if let Some(ckpt) = cache.load(stage) {
            tracing::info!(%stage, "stage checkpoint reused from cache");
            reports.push(StageReport { stage, epochs_run: 0, wall_s: started.elapsed().as_secs_f64(), cached: true });
            return Ok(ckpt);
        }
        let (ckpt, epochs_run) = train(self)?;
        cache.store(stage, &ckpt);
        reports.push(StageReport { stage, epochs_run, wall_s: started.elapsed().as_secs_f64(), cached: false });
        Ok(ckpt)
    }

    /// Seeds torch from the trial seed and the stage, so each stage is reproducible on its own.
    fn seed_stage(&self, stage: Stage) {
        let salt = match stage {
            Stage::Data => 0,
            Stage::Ae => 1,
            Stage::Dec => 2,
            Stage::Finetune => 3,
        };
        let mixed = self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(salt);
        tch::manual_seed((mixed >> 1) as i64);
    }

    /// AE pretraining: `alpha_ae · recon + gamma_ae · disentangle` on every training row.
    /// Returns the final weights and the epochs run.
    pub fn pretrain_autoencoder(&self, progress: Progress) -> Result<(Checkpoint, usize), TrainError> {
        let stage = Stage::Ae;
        self.seed_stage(stage);
        let vs = VarStore::new(self.device);
        let ae = Autoencoder::new(vs.root(), &self.config);
        let mut opt = nn::Adam::default().build(&vs, self.params.lr_ae)?;
        let weights = LossWeights { cluster: 0.0, alpha: self.params.alpha_ae, beta: 0.0, gamma: self.params.gamma_ae };
        let terms = |batch: &Batch, train: bool| {
            let z = ae.encode(batch, train);
            let recon = losses::reconstruction(&ae.decode(&z, batch), batch);
            let zero = recon.zeros_like();
            LossTerms { cluster: zero.shallow_clone(), supervised: zero, disentangle: losses::disentangle(&z), recon }
        };
        let epochs = self.params.epochs_ae as usize;
        let started = Instant::now();
        for epoch in 1..=epochs {
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
            self.after_epoch(&record, progress)?;
        }
        Ok((Checkpoint::of(&vs), epochs))
    }

    /// Semi-supervised DEC (equation 8), starting from the AE checkpoint: centroids from k-means
    /// on the latent codes, the target P recomputed over all training rows every `p_update`
    /// epochs. Returns the final weights (encoders, fusion, decoders, centroids) and epochs run.
    pub fn cluster(&self, ae_checkpoint: &Checkpoint, progress: Progress) -> Result<(Checkpoint, usize), TrainError> {
        let stage = Stage::Dec;
        self.seed_stage(stage);
        if self.data.train.labeled.any().int64_value(&[]) == 0 && self.params.beta > 0.0 {
            return Err(TrainError::NoLabeledRows { stage, part: "training" });
        }
        let p = self.params;
        let vs = VarStore::new(self.device);
        let ae = Autoencoder::new(vs.root(), &self.config);
        ae_checkpoint.load_into(&vs, &["encoders.", "fusion.", "decoders."])?;

        // Centroids from k-means on the pretrained latent space; each cluster stands for the
        // class most of its labeled members carry.
        let z_all = self.latent_codes(&ae, &self.data.train);
        let (init, assign) = kmeans(&z_all, p.n_clusters, KMEANS_RESTARTS, KMEANS_MAX_ITER);
        let labels = Vec::<f32>::try_from(self.data.train.y.to_device(Device::Cpu)).expect("float labels");
        let labeled = Vec::<bool>::try_from(self.data.train.labeled.to_device(Device::Cpu)).expect("bool mask");
        let map: Vec<f32> = clusters_to_classes(&assign, &labels, &labeled, p.n_clusters as usize).concat();
        let dec_root = vs.root() / "dec";
        let centroids = dec_root.var_copy("centroids", &init);
        let mut cluster_to_class = dec_root.zeros_no_train("cluster_to_class", &[p.n_clusters, 2]);
        tch::no_grad(|| cluster_to_class.copy_(&Tensor::from_slice(&map).view([p.n_clusters, 2])));

        let mut opt = nn::Adam::default().build(&vs, p.lr_dec)?;
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
        let epochs = p.epochs_dec as usize;
        let started = Instant::now();
        let mut target = Tensor::zeros([0], (Kind::Float, self.device));
        for epoch in 1..=epochs {
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
            self.after_epoch(&record, progress)?;
        }
        Ok((Checkpoint::of(&vs), epochs))
    }

    /// Trains the classifier on the labeled training rows, its encoders taken from `init` when
    /// given; keeps the epoch with the best validation accuracy (ties: lower validation loss).
    pub fn train_classifier(
        &self,
        init: Option<&Checkpoint>,
        progress: Progress,
    ) -> Result<PipelineOutcome, TrainError> {
        let stage = Stage::Finetune;
        self.seed_stage(stage);
        let p = self.params;
        let vs = VarStore::new(self.device);
        let model = Classifier::new(vs.root(), &self.config);
        if let Some(ckpt) = init {
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
        let mut opt = nn::Adam { wd: p.weight_decay, ..Default::default() }.build(&vs, p.lr_ft)?;
        let epochs = p.epochs_ft as usize;
        let started = Instant::now();
        let mut best: Option<(f64, f64, usize, Checkpoint)> = None;
        for epoch in 1..=epochs {
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
            let better = best.as_ref().is_none_or(|(acc, loss, _, _)| {
                eval.metrics.accuracy > *acc || (eval.metrics.accuracy == *acc && eval.loss < *loss)
            });
            if better {
                best = Some((eval.metrics.accuracy, eval.loss, epoch, Checkpoint::of(&vs)));
            }
            self.after_epoch(&record, progress)?;
        }
        let (_, _, best_epoch, checkpoint) = best.expect("at least one epoch");
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
        opt: &mut nn::Optimizer,
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

    /// Checks for divergence, then lets the callback continue or stop the stage.
    fn after_epoch(&self, record: &EpochRecord, progress: Progress) -> Result<(), TrainError> {
        for (what, value) in [("training loss", record.train_loss), ("validation loss", record.val_loss)] {
            // An empty validation set yields NaN by construction; only a real loss can diverge.
            let no_validation = what == "validation loss" && value.is_nan() && self.data.val.is_empty();
            if !value.is_finite() && !no_validation {
                return Err(TrainError::Diverged { stage: record.stage, epoch: record.epoch, what, value });
            }
        }
        match progress(record) {
            Control::Continue => Ok(()),
            Control::Stop => Err(TrainError::Stopped { stage: record.stage, epoch: record.epoch }),
        }
    }
}

/// Loss and metrics of `model` on every row of `data`, in evaluation mode.
pub fn evaluate_classifier(model: &Classifier, data: &Batch) -> Evaluation {
    tch::no_grad(|| {
        let logits: Vec<Tensor> =
            data.batch_indices(EVAL_BATCH, false).iter().map(|idx| model.forward(&data.select(idx), false)).collect();
        let logits = Tensor::cat(&logits, 0);
        let loss = losses::bce_with_logits(&logits, &data.y).double_value(&[]);
        let predicted = Vec::<u8>::try_from(logits.gt(0.0).to_kind(Kind::Uint8).to_device(Device::Cpu)).expect("u8");
        let truth = Vec::<u8>::try_from(data.y.to_kind(Kind::Uint8).to_device(Device::Cpu)).expect("u8");
        Evaluation { loss, metrics: BinaryMetrics::compute(&predicted, &truth) }
    })
}
