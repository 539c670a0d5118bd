//! One stage of a pack: the members' epochs run together, round after round, each member on its
//! own epoch count (a resumed member may be ahead), until each has finished the stage or ended.
//!
//! A round: every member draws its epoch's shuffle (torch seeded from its (seed, stage, epoch),
//! as solo), then the pack takes as many steps as its longest member has batches, a member
//! without a batch at a step being masked out of the optimiser. Then each member is evaluated
//! and reported to its own observer, and members that ended or finished leave the stacked
//! tensors before the next round.

use std::time::Instant;

use tch::{Device, Kind, Tensor};

use decsweep_api::Stage;

use super::adam::PackedAdam;
use super::batches::{epoch_batches, PackedRows, Stacked};
use super::layers::Stack;
use super::loss;
use super::members::Trial;
use super::nets::{Dropout, Nets};
use super::rng;
use crate::batch::Batch;
use crate::checkpoint::Checkpoint;
use crate::evaluate::{evaluation_of_logits, Evaluation, EVAL_BATCH};
use crate::observe::Control;
use crate::pseudo::DecReadout;
use crate::records::EpochRecord;
use crate::resume::{BestSoFar, TrialState};
use crate::seeding;
use crate::train::{check_divergence, TrainError};
use crate::ModelConfig;

/// Where a member starts the stage: its weights (solo names) and, when resumed, the rest of its
/// state.
pub(super) struct Start {
    pub weights: Checkpoint,
    pub done: usize,
    pub optimizer: Option<Vec<(String, Tensor)>>,
    pub best: Option<BestSoFar>,
    /// DEC: the target distribution over the member's training rows, when resumed.
    pub target: Option<Tensor>,
}

/// How a member left the stage after its last epoch.
pub(super) enum Finished {
    /// AE, DEC: the final weights.
    Weights(Checkpoint),
    /// Fine-tuning: the best epoch, evaluated ([`super::evaluate::best_epochs`]).
    Best(Box<Evaluated>),
}

/// A member's best classifier epoch and how it does on its labeled validation rows and its test
/// rows (`None` without a test split).
pub(super) struct Evaluated {
    pub best: BestSoFar,
    pub val: Evaluation,
    pub test: Option<Evaluation>,
    /// Trainable parameters of one member.
    pub param_count: i64,
}

/// One member in the stage: its trial, its rows, its progress.
struct Seat<'t, 'a> {
    trial: &'t mut Trial<'a>,
    done: usize,
    best: Option<BestSoFar>,
    /// DEC: P over its training rows.
    target: Option<Tensor>,
}

/// Trains `stage` for `members` (each with its start) and calls `finish` for each member that
/// completes it; a member that ends early gets its result set on its trial.
pub(super) fn train_stage<'t, 'a>(
    stage: Stage,
    members: Vec<(&'t mut Trial<'a>, Start)>,
    trainable: &[String],
    device: Device,
    mut finish: impl FnMut(&mut Trial<'a>, Finished, f64),
) {
    let started = Instant::now();
    let config = members[0].0.config.clone();
    let batch_size = members[0].0.member.params.batch_size;
    let epochs = stage_epochs(stage, members[0].0.member.params);
    // The rows each member trains on and is validated on in this stage.
    let train_parts: Vec<Batch> = members.iter().map(|(t, _)| training_rows(stage, t)).collect();
    let val_parts: Vec<Batch> = members.iter().map(|(t, _)| validation_rows(stage, t)).collect();
    let train = PackedRows::new(&train_parts.iter().collect::<Vec<_>>());
    let val = PackedRows::new(&val_parts.iter().collect::<Vec<_>>());
    let val_labeled = (stage == Stage::Dec).then(|| {
        let parts: Vec<Batch> = val_parts.iter().map(Batch::labeled_rows).collect();
        PackedRows::new(&parts.iter().collect::<Vec<_>>())
    });

    let weights: Vec<Checkpoint> = members.iter().map(|(_, s)| s.weights.shallow_clone()).collect();
    let mut stack = Stack::new(&weights, trainable, device);
    drop(weights);
    let params =
        |f: fn(&decsweep_api::Params) -> f64| -> Vec<f64> { members.iter().map(|(t, _)| f(t.member.params)).collect() };
    let (lr, decay) = match stage {
        Stage::Ae => (params(|p| p.lr_ae), vec![0.0; members.len()]),
        Stage::Dec => (params(|p| p.lr_dec), vec![0.0; members.len()]),
        _ => (params(|p| p.lr_ft), params(|p| p.weight_decay)),
    };
    let mut adam = PackedAdam::new(&stack, lr, decay);
    let mut seats = Vec::with_capacity(members.len());
    for (k, (trial, start)) in members.into_iter().enumerate() {
        if let Some(state) = &start.optimizer {
            if let Err(e) = adam.load_member_state(k, state) {
                trial.fail(TrainError::Resume(e.to_string()));
            }
        }
        seats.push(Seat { trial, done: start.done, best: start.best, target: start.target });
    }
    // Positions in the stack → seats; members leave it when they end or finish.
    let mut slots: Vec<usize> = (0..seats.len()).collect();
    // Fine-tuning: every member's test rows, packed when the first member finishes.
    let mut test: Option<TestRows> = None;
    loop {
        let mut ending: Vec<usize> = Vec::new();
        let mut finishing: Vec<usize> = Vec::new();
        for (p, &s) in slots.iter().enumerate() {
            let seat = &mut seats[s];
            if seat.trial.is_done() {
                ending.push(p);
            } else if seat.done >= epochs {
                if stage == Stage::Finetune && seat.best.is_none() {
                    seat.trial.fail(TrainError::Resume("a classifier state lacks a valid best epoch".into()));
                } else {
                    finishing.push(p);
                }
                ending.push(p);
            }
        }
        if !finishing.is_empty() {
            let outs: Vec<Finished> = match stage {
                // Every member finishing now is evaluated at once, as one pack.
                Stage::Finetune => {
                    let members: Vec<usize> = finishing.iter().map(|&p| slots[p]).collect();
                    let bests: Vec<BestSoFar> =
                        members.iter().map(|&s| seats[s].best.take().expect("checked above")).collect();
                    let test = test.get_or_insert_with(|| test_rows(&seats));
                    super::evaluate::best_epochs(bests, &members, &val, test, trainable, &config)
                        .into_iter()
                        .map(|e| Finished::Best(Box::new(e)))
                        .collect()
                }
                _ => finishing.iter().map(|&p| Finished::Weights(stack.member(p as i64))).collect(),
            };
            for (&p, out) in finishing.iter().zip(outs) {
                finish(&mut *seats[slots[p]].trial, out, started.elapsed().as_secs_f64());
            }
        }
        if !ending.is_empty() {
            let keep: Vec<usize> = (0..slots.len()).filter(|p| !ending.contains(p)).collect();
            if keep.is_empty() {
                return;
            }
            let rows = Tensor::from_slice(&keep.iter().map(|&p| p as i64).collect::<Vec<_>>()).to_device(device);
            stack.keep(&rows);
            adam.keep(&stack, &keep, &rows);
            tracing::info!(%stage, from = slots.len(), to = keep.len(), "pack shrinks: members left the stage");
            slots = keep.iter().map(|&p| slots[p]).collect();
        }
        if slots.is_empty() {
            return;
        }
        let context = Round { stage, config: &config, batch_size, epochs, device, started };
        let data = StageRows { train_parts: &train_parts, train: &train, val: &val, val_labeled: val_labeled.as_ref() };
        let records = context.epoch(&mut seats, &slots, &stack, &mut adam, &data);
        for (p, record) in records.into_iter().enumerate() {
            let seat = &mut seats[slots[p]];
            seat.done = record.epoch;
            report(stage, seat, record, &stack, &adam, p, &val_parts[slots[p]]);
        }
    }
}

/// The fixed facts of a stage's rounds.
struct Round<'c> {
    stage: Stage,
    config: &'c ModelConfig,
    batch_size: i64,
    epochs: usize,
    device: Device,
    started: Instant,
}

impl Round<'_> {
    /// One epoch of every member in `slots`; returns their records.
    fn epoch(
        &self,
        seats: &mut [Seat],
        slots: &[usize],
        stack: &Stack,
        adam: &mut PackedAdam,
        data: &StageRows,
    ) -> Vec<EpochRecord> {
        let train = data.train;
        let stage = self.stage;
        let k = slots.len() as i64;
        let epochs_now: Vec<usize> = slots.iter().map(|&s| seats[s].done + 1).collect();
        // DEC: P is recomputed every p_update epochs, before the epoch's shuffle (as solo).
        if stage == Stage::Dec {
            let refresh: Vec<usize> = slots
                .iter()
                .zip(&epochs_now)
                .filter(|&(&s, &e)| {
                    (e - 1) % seats[s].trial.member.params.p_update as usize == 0 || seats[s].target.is_none()
                })
                .map(|(&s, _)| s)
                .collect();
            if !refresh.is_empty() {
                let targets = self.target_distributions(seats, slots, stack, train);

                for (&s, p) in slots.iter().zip(targets) {
                    if refresh.contains(&s) {
                        seats[s].target = Some(p);
                    }
                }
            }
        }
        let batches: Vec<Vec<Vec<i64>>> = slots
            .iter()
            .zip(&epochs_now)
            .map(|(&s, &e)| {
                let seed = seats[s].trial.member.seed;
                tch::manual_seed(seeding::torch_seed(seed, stage, e as u64));
                epoch_batches(&data.train_parts[s], self.batch_size)
            })
            .collect();
        let all_targets = (stage == Stage::Dec).then(|| {
            let targets: Vec<Option<&Tensor>> = seats.iter().map(|s| s.target.as_ref()).collect();
            concatenated(&targets, train, self.config.n_clusters)
        });
        let rows: Vec<i64> = batches.iter().map(|b| b.iter().map(|x| x.len() as i64).sum()).collect();
        let rates: Vec<f64> = slots.iter().map(|&s| seats[s].trial.member.params.dropout).collect();
        let steps = batches.iter().map(Vec::len).max().unwrap_or(0);
        let mut sums = Tensor::zeros([k], (Kind::Double, self.device));
        for step in 0..steps {
            let picks: Vec<&[i64]> = batches.iter().map(|b| b.get(step).map_or(&[][..], Vec::as_slice)).collect();
            let active: Vec<bool> = picks.iter().map(|p| !p.is_empty()).collect();
            let batch = train.gather(slots, &picks, self.batch_size);
            let keys: Vec<i64> = slots
                .iter()
                .zip(&epochs_now)
                .map(|(&s, &e)| rng::step_key(seats[s].trial.member.seed, stage, e as u64, step as u64))
                .collect();
            let per_member =
                Nets::dropout_elements(self.config, self.batch_size, batch.x[0].size()[2], stage == Stage::Finetune);
            let dropout = Dropout::new(&keys, &rates, per_member, self.device);
            let nets = Nets { stack, config: self.config, dropout: dropout.as_ref() };
            let losses = self.losses(&nets, seats, slots, &batch, all_targets.as_ref());
            adam.backward_step(&losses.sum(Kind::Float), &active);
            let counts = Tensor::from_slice(&batch.counts).to_device(self.device).to_kind(Kind::Double);
            sums += losses.detach().to_kind(Kind::Double) * counts;
        }
        let sums = Vec::<f64>::try_from(sums.to_device(Device::Cpu)).expect("f64 sums");
        let (val_loss, val_accuracy) = self.validate(seats, slots, stack, data);
        slots
            .iter()
            .enumerate()
            .map(|(p, _)| EpochRecord {
                stage,
                epoch: epochs_now[p],
                epochs: self.epochs,
                train_loss: sums[p] / rows[p].max(1) as f64,
                val_loss: val_loss[p],
                val_accuracy: val_accuracy[p],
                elapsed_s: self.started.elapsed().as_secs_f64(),
            })
            .collect()
    }
}

/// The rows of a stage: each member's training rows, and all members' training, validation and
/// (DEC) labeled validation rows packed.
struct StageRows<'r> {
    train_parts: &'r [Batch],
    train: &'r PackedRows,
    val: &'r PackedRows,
    val_labeled: Option<&'r PackedRows>,
}

impl Round<'_> {
    /// The members' losses `[K]` on a stacked batch; `targets` (DEC) are P over `batch`'s row
    /// space.
    fn losses(
        &self,
        nets: &Nets,
        seats: &[Seat],
        slots: &[usize],
        batch: &Stacked,
        targets: Option<&Tensor>,
    ) -> Tensor {
        let k = slots.len() as i64;
        let params: Vec<&decsweep_api::Params> = slots.iter().map(|&s| seats[s].trial.member.params).collect();
        let weights = |f: fn(&decsweep_api::Params) -> f64| -> Vec<f64> { params.iter().map(|p| f(p)).collect() };
        match self.stage {
            Stage::Ae => {
                let z = nets.encode(batch);
                let mut total = loss::Weighted::new(k, self.device);
                total.add(&weights(|p| p.alpha_ae), || loss::reconstruction(&nets.decode(&z, batch), batch));
                total.add(&weights(|p| p.gamma_ae), || loss::disentangle(&z, &batch.rows));
                total.into_tensor()
            }
            Stage::Dec => {
                let z = nets.encode(batch);
                let dof = Tensor::from_slice(&weights(|p| p.dof).iter().map(|&d| d as f32).collect::<Vec<_>>())
                    .to_device(self.device);
                let q = loss::soft_assignment(&z, nets.stack.get("dec.centroids"), &dof);
                let map = nets.stack.get("dec.cluster_to_class");
                let targets = targets.expect("DEC has target distributions");
                let (b, c) = (batch.rows.size()[1], self.config.n_clusters);
                let target_rows = targets.index_select(0, &batch.index.view([-1])).view([k, b, c]);
                let mut total = loss::Weighted::new(k, self.device);
                total.add(&weights(|p| p.cluster_weight), || loss::cluster_kl(&target_rows, &q, &batch.rows));
                total.add(&weights(|p| p.alpha), || loss::reconstruction(&nets.decode(&z, batch), batch));
                total.add(&weights(|p| p.beta), || loss::supervised(&q, map, batch));
                total.add(&weights(|p| p.gamma), || loss::disentangle(&z, &batch.rows));
                total.into_tensor()
            }
            // Only training steps compute the classifier's loss here (validation reads its logits).
            _ => loss::bce_with_logits(&nets.classifier(batch, true), &batch.y, &batch.rows),
        }
    }
}

impl Round<'_> {
    /// Each member's latent codes `[N, L]` of its rows in `rows`, in evaluation mode.
    fn latent_codes(&self, slots: &[usize], stack: &Stack, rows: &PackedRows) -> Vec<Tensor> {
        let nets = Nets { stack, config: self.config, dropout: None };
        per_member_rows(slots, rows, |chunk| nets.encode(chunk))
    }

    /// Equation 3 over each member's training rows with its current network.
    fn target_distributions(&self, seats: &[Seat], slots: &[usize], stack: &Stack, rows: &PackedRows) -> Vec<Tensor> {
        tch::no_grad(|| {
            let z = self.latent_codes(slots, stack, rows);
            let centroids = stack.get("dec.centroids");
            z.iter()
                .enumerate()
                .map(|(p, z)| {
                    let dof = seats[slots[p]].trial.member.params.dof;
                    crate::losses::target_distribution(&crate::losses::soft_assignment(
                        z,
                        &centroids.get(p as i64),
                        dof,
                    ))
                })
                .collect()
        })
    }

    /// Each member's validation loss (NaN without validation rows) and, for the classifier and
    /// DEC, its validation accuracy; in evaluation mode, as the solo trainer computes them.
    fn validate(
        &self,
        seats: &[Seat],
        slots: &[usize],
        stack: &Stack,
        data: &StageRows,
    ) -> (Vec<f64>, Vec<Option<f64>>) {
        tch::no_grad(|| {
            let nets = Nets { stack, config: self.config, dropout: None };
            match self.stage {
                Stage::Finetune => {
                    let logits = per_member_rows(slots, data.val, |chunk| nets.classifier(chunk, false));
                    let evals: Vec<_> = logits
                        .iter()
                        .enumerate()
                        .map(|(p, l)| evaluation_of_logits(l, &data.val.labels(slots[p])))
                        .collect();
                    (evals.iter().map(|e| e.loss).collect(), evals.iter().map(|e| Some(e.metrics.accuracy)).collect())
                }
                stage => {
                    let targets = (stage == Stage::Dec).then(|| {
                        let p = self.target_distributions(seats, slots, stack, data.val);
                        let mut all: Vec<Option<&Tensor>> = vec![None; data.val.counts.len()];
                        for (&s, p) in slots.iter().zip(&p) {
                            all[s] = Some(p);
                        }
                        concatenated(&all, data.val, self.config.n_clusters)
                    });
                    let mut sums = vec![0.0; slots.len()];
                    for chunk in data.val.chunks(slots, eval_chunk(slots.len())) {
                        let l = Vec::<f64>::try_from(
                            self.losses(&nets, seats, slots, &chunk, targets.as_ref())
                                .to_kind(Kind::Double)
                                .to_device(Device::Cpu),
                        )
                        .expect("f64 losses");
                        for (p, l) in l.into_iter().enumerate() {
                            sums[p] += l * chunk.counts[p] as f64;
                        }
                    }
                    let loss = slots
                        .iter()
                        .zip(sums)
                        .map(|(&s, sum)| match data.val.counts[s] {
                            0 => f64::NAN,
                            n => sum / n as f64,
                        })
                        .collect();
                    let accuracy = match data.val_labeled {
                        Some(labeled) => self.cluster_accuracy(seats, slots, stack, labeled),
                        None => vec![None; slots.len()],
                    };
                    (loss, accuracy)
                }
            }
        })
    }

    /// DEC: the accuracy of each member's clusters' classes on its labeled validation rows.
    fn cluster_accuracy(
        &self,
        seats: &[Seat],
        slots: &[usize],
        stack: &Stack,
        labeled: &PackedRows,
    ) -> Vec<Option<f64>> {
        let z = self.latent_codes(slots, stack, labeled);
        let (centroids, map) = (stack.get("dec.centroids"), stack.get("dec.cluster_to_class"));
        z.iter()
            .enumerate()
            .map(|(p, z)| {
                let s = slots[p];
                (labeled.counts[s] > 0).then(|| {
                    let q =
                        crate::losses::soft_assignment(z, &centroids.get(p as i64), seats[s].trial.member.params.dof);
                    let predicted = crate::losses::class_probabilities(&q, &map.get(p as i64)).argmax(1, false);
                    predicted
                        .to_kind(Kind::Float)
                        .eq_tensor(&labeled.labels(s))
                        .to_kind(Kind::Double)
                        .mean(Kind::Double)
                        .double_value(&[])
                })
            })
            .collect()
    }
}

/// Every member's test rows (an empty set for a member without a test split), and which have one.
pub(super) struct TestRows {
    pub rows: PackedRows,
    pub present: Vec<bool>,
}

fn test_rows(seats: &[Seat]) -> TestRows {
    let parts: Vec<Batch> = seats
        .iter()
        .map(|seat| {
            let data = seat.trial.member.data;
            match data.test.as_ref().filter(|t| !t.is_empty()) {
                Some(test) => test.select(&Tensor::arange(test.len(), (Kind::Int64, test.y.device()))),
                None => data.val.select(&Tensor::zeros([0], (Kind::Int64, data.val.y.device()))),
            }
        })
        .collect();
    let present = seats.iter().map(|s| s.trial.member.data.test.as_ref().is_some_and(|t| !t.is_empty())).collect();
    TestRows { rows: PackedRows::new(&parts.iter().collect::<Vec<_>>()), present }
}

/// Rows per member in one evaluation chunk: the solo trainer's [`EVAL_BATCH`] rows shared among
/// the `k` members (at least 32 each), so a chunk's activations stay the size of a solo one's
/// rather than K times it (16 tiny members at 512 rows each made the test pass memory-bound).
fn eval_chunk(k: usize) -> i64 {
    (EVAL_BATCH / k.max(1) as i64).max(32)
}

/// `f` over chunks of every member's rows, then each member's rows of the outputs
/// (`[K, width, …]` → `[N_k, …]` per member).
pub(super) fn per_member_rows(slots: &[usize], rows: &PackedRows, f: impl Fn(&Stacked) -> Tensor) -> Vec<Tensor> {
    let mut parts: Vec<Vec<Tensor>> = (0..slots.len()).map(|_| Vec::new()).collect();
    for chunk in rows.chunks(slots, eval_chunk(slots.len())) {
        let out = f(&chunk);
        for (p, &n) in chunk.counts.iter().enumerate() {
            parts[p].push(out.get(p as i64).narrow(0, 0, n));
        }
    }
    parts.into_iter().map(|p| Tensor::cat(&p, 0)).collect()
}

/// Per-row tensors of every member (a member without one: zeros) concatenated in `rows`' row
/// space, the padding row included.
fn concatenated(per_member: &[Option<&Tensor>], rows: &PackedRows, width: i64) -> Tensor {
    let device = rows.device();
    let mut parts: Vec<Tensor> = per_member
        .iter()
        .zip(&rows.counts)
        .map(|(t, &n)| match t {
            Some(t) => t.to_device(device),
            None => Tensor::zeros([n, width], (Kind::Float, device)),
        })
        .collect();
    parts.push(Tensor::zeros([1, width], (Kind::Float, device)));
    Tensor::cat(&parts, 0)
}

/// Reports a member's epoch: divergence, best epoch (fine-tuning), its observer's answer.
fn report(stage: Stage, seat: &mut Seat, record: EpochRecord, stack: &Stack, adam: &PackedAdam, p: usize, val: &Batch) {
    if let Err(e) = check_divergence(&record, val.is_empty()) {
        seat.trial.fail(e);
        return;
    }
    if stage == Stage::Finetune {
        let (accuracy, loss) = (record.val_accuracy.unwrap_or(f64::NAN), record.val_loss);
        let better =
            seat.best.as_ref().is_none_or(|b| accuracy > b.accuracy || (accuracy == b.accuracy && loss < b.loss));
        if better {
            seat.best = Some(BestSoFar { accuracy, loss, epoch: record.epoch, weights: stack.member(p as i64) });
        }
    }
    let (epoch, trial) = (record.epoch, &mut *seat.trial);
    let control = trial.member.observer.epoch(&record);
    trial.curves.push(record);
    match control {
        Control::Continue => {}
        Control::Stop => trial.fail(TrainError::Stopped { stage, epoch }),
        Control::Checkpoint | Control::Suspend => {
            let state = TrialState {
                stage,
                epoch,
                weights: stack.member(p as i64),
                optimizer: adam.member_state(p),
                best: seat.best.as_ref().map(|b| BestSoFar {
                    accuracy: b.accuracy,
                    loss: b.loss,
                    epoch: b.epoch,
                    weights: b.weights.shallow_clone(),
                }),
                target: seat.target.as_ref().map(|t| t.to_device(Device::Cpu).copy()),
                dec_readout: trial.dec_readout.as_ref().map(DecReadout::shallow_clone),
                curves: trial.curves.clone(),
                finished_stages: trial.stages.clone(),
                resumes: trial.resumes,
            };
            trial.member.observer.checkpoint(&state);
            if control == Control::Suspend {
                trial.fail(TrainError::Suspended { stage, epoch });
            }
        }
    }
}

/// The rows a member trains on in `stage`: every training row (AE, DEC) or the labeled ones.
pub(super) fn training_rows(stage: Stage, trial: &Trial) -> Batch {
    let train = &trial.member.data.train;
    match stage {
        Stage::Finetune => train.labeled_rows(),
        _ => train.select(&Tensor::arange(train.len(), (Kind::Int64, train.y.device()))),
    }
}

/// The rows a member is validated on in `stage`: every validation row (AE, DEC) or the labeled.
fn validation_rows(stage: Stage, trial: &Trial) -> Batch {
    let val = &trial.member.data.val;
    match stage {
        Stage::Finetune => val.labeled_rows(),
        _ => val.select(&Tensor::arange(val.len(), (Kind::Int64, val.y.device()))),
    }
}

pub(super) fn stage_epochs(stage: Stage, p: &decsweep_api::Params) -> usize {
    (match stage {
        Stage::Ae => p.epochs_ae,
        Stage::Dec => p.epochs_dec,
        _ => p.epochs_ft,
    }) as usize
}
