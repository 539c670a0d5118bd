//! Exactness of packed training (`decsweep_model::packed`), on the CPU with tiny shapes.
//!
//! - **Pack-mates don't matter.** The same trial trained alone, in a pack of 2 and in a pack of
//!   4 (mates with other seeds, label fractions and learning rates), dropout 0.1, `dec`
//!   pipeline: identical validation and test accuracy and F1, and every epoch's training and
//!   validation loss equal within `MATES_BOUND` (relative). Not bit for bit in general: a
//!   member's dropout masks and its arithmetic are its own, but libtorch's batched products
//!   and reductions round differently for different K (some trials come out bit-identical,
//!   others differ in the 6th or 7th digit); the test prints the largest difference seen.
//! - **Packed equals solo.** With dropout 0, a packed member and the solo `Trainer` run of the
//!   same trial: identical accuracy and F1, losses within `SOLO_BOUND` (relative; the packed
//!   path writes attention out and uses batched products, which round differently).
//! - **Skipped steps.** A member with fewer labeled rows (fewer fine-tuning batches) than its
//!   mates gets the result it gets alone (the optimiser's masking itself is unit-tested in
//!   `src/packed/adam.rs`).
//! - **A dropped member.** A member stopped by its observer mid-stage ends with `Stopped`, and
//!   the others' results are those they get without it.
//! - **Suspend and resume.** A member suspended mid-DEC resumes, in a pack of other mates, to
//!   the result of the run that never stopped; its state also resumes in the solo trainer.

use std::sync::{Mutex, MutexGuard, OnceLock};

use decsweep_api::{Params, Pipeline, Stage};
use decsweep_data::{prepare, synthesize, PrepConfig, SynthConfig};
use decsweep_model::packed::{PackError, PackMember, PackTrainer};
use decsweep_model::{
    Control, EpochRecord, ModelConfig, NoCache, Observer, PipelineOutcome, Session, TrainError, TrainSet, Trainer,
    TrialState,
};
use tch::Device;

/// Relative bound on a loss of the same trial in packs of different sizes (measured: up to
/// 1.2e-5 over a dozen draws of the dropout keys); `decsweep reproduce` relies on it.
const MATES_BOUND: f64 = decsweep_api::pack::PACK_SIZE_TOLERANCE;
/// Relative bound on a loss of a packed member against its solo run (dropout 0).
const SOLO_BOUND: f64 = 1e-4;

/// Training seeds torch's one global generator (the solo trainer per epoch, the pack per member
/// and step): tests that train take turns, as trials in one process do.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn dataset() -> &'static decsweep_data::Dataset {
    static DATA: OnceLock<decsweep_data::Dataset> = OnceLock::new();
    DATA.get_or_init(|| synthesize(&SynthConfig { n: 160, seed: 3, dims: [6, 4, 3], max_len: 9, min_len: 3 }))
}

fn params(dropout: f64, label_fraction: f64, lr_scale: f64) -> Params {
    let mut p = Params::default();
    for set in [
        "d_model=8",
        "n_heads=2",
        "n_layers=1",
        "ff_dim=16",
        "latent_dim=4",
        "batch_size=16",
        "seq_len=8",
        "epochs_ae=2",
        "epochs_dec=2",
        "epochs_ft=3",
    ] {
        p.apply_assignment(set).unwrap();
    }
    p.dropout = dropout;
    p.label_fraction = label_fraction;
    p.lr_ae *= lr_scale;
    p.lr_dec *= lr_scale;
    p.lr_ft *= 10.0 * lr_scale;
    p
}

/// A trial: its parameters, seed and prepared rows.
struct Trial {
    params: Params,
    seed: u64,
    data: TrainSet,
}

fn trial(params: Params, seed: u64) -> Trial {
    let prepared = prepare(dataset(), &PrepConfig::from_params(&params, seed)).unwrap();
    Trial { data: TrainSet::from_prepared(&prepared, Device::Cpu), params, seed }
}

/// Records epochs; answers `Stop` or `Suspend` at one (stage, epoch) when asked to.
#[derive(Default)]
struct Recorder {
    epochs: Vec<EpochRecord>,
    at: Option<(Stage, usize, Control)>,
    state: Option<TrialState>,
}

impl Observer for Recorder {
    fn epoch(&mut self, record: &EpochRecord) -> Control {
        self.epochs.push(record.clone());
        match self.at {
            Some((stage, epoch, control)) if stage == record.stage && epoch == record.epoch => control,
            _ => Control::Continue,
        }
    }
    fn checkpoint(&mut self, state: &TrialState) {
        self.state = Some(TrialState::from_bytes(&state.to_bytes("t").unwrap(), "t").unwrap());
    }
}

/// Trains `trials` as one pack; `recorders[i]` observes trial `i`, `resume[i]` its state.
fn pack(
    pipeline: Pipeline,
    trials: &[&Trial],
    recorders: &mut [Recorder],
    resume: Vec<Option<TrialState>>,
) -> Vec<Result<PipelineOutcome, TrainError>> {
    try_pack(pipeline, trials, recorders, resume).expect("the pack trains")
}

/// [`pack`], when the pack as a whole may be refused.
fn try_pack(
    pipeline: Pipeline,
    trials: &[&Trial],
    recorders: &mut [Recorder],
    mut resume: Vec<Option<TrialState>>,
) -> Result<Vec<Result<PipelineOutcome, TrainError>>, PackError> {
    resume.resize_with(trials.len(), || None);
    let mut caches: Vec<NoCache> = trials.iter().map(|_| NoCache).collect();
    let members = trials
        .iter()
        .zip(recorders.iter_mut())
        .zip(caches.iter_mut())
        .zip(resume)
        .map(|(((t, observer), cache), resume)| PackMember {
            params: &t.params,
            seed: t.seed,
            data: &t.data,
            cache,
            observer,
            resume,
        })
        .collect();
    PackTrainer { pipeline, device: Device::Cpu }.run(members)
}

fn recorders(n: usize) -> Vec<Recorder> {
    (0..n).map(|_| Recorder::default()).collect()
}

/// Largest relative difference between two runs' losses; panics when accuracy or F1 differ or
/// the curves do not line up.
fn compare(a: &PipelineOutcome, a_curves: &[EpochRecord], b: &PipelineOutcome, b_curves: &[EpochRecord]) -> f64 {
    assert_eq!(a.val.metrics, b.val.metrics, "validation metrics");
    assert_eq!(a.test.as_ref().map(|t| &t.metrics), b.test.as_ref().map(|t| &t.metrics), "test metrics");
    assert_eq!(a.best_epoch, b.best_epoch);
    assert_eq!(a.dec, b.dec, "the DEC head's readout (dec_head_accuracy)");
    assert_eq!(a_curves.len(), b_curves.len());
    let rel = |x: f64, y: f64| if x.is_nan() && y.is_nan() { 0.0 } else { (x - y).abs() / y.abs().max(1e-3) };
    let mut worst = rel(a.val.loss, b.val.loss);
    for (x, y) in a_curves.iter().zip(b_curves) {
        assert_eq!((x.stage, x.epoch), (y.stage, y.epoch));
        assert_eq!(x.val_accuracy, y.val_accuracy, "{} epoch {} accuracy", x.stage, x.epoch);
        worst = worst.max(rel(x.train_loss, y.train_loss)).max(rel(x.val_loss, y.val_loss));
    }
    worst
}

#[test]
fn a_members_result_does_not_depend_on_its_pack_mates() {
    let _turn = one_at_a_time();
    let a = trial(params(0.1, 0.5, 1.0), 11);
    let mates = [trial(params(0.1, 0.3, 2.0), 12), trial(params(0.2, 0.8, 0.5), 13), trial(params(0.0, 1.0, 1.0), 14)];
    let mut alone_obs = recorders(1);
    let alone = pack(Pipeline::Dec, &[&a], &mut alone_obs, vec![]).remove(0).unwrap();
    let mut worst = 0.0f64;
    let mut bit_identical = true;
    for mates in [&mates[..1], &mates[..]] {
        let trials: Vec<&Trial> = std::iter::once(&a).chain(mates).collect();
        let mut obs = recorders(trials.len());
        let results = pack(Pipeline::Dec, &trials, &mut obs, vec![]);
        assert!(results.iter().all(Result::is_ok), "every member completes");
        let packed = results.into_iter().next().unwrap().unwrap();
        let diff = compare(&packed, &obs[0].epochs, &alone, &alone_obs[0].epochs);
        bit_identical &= diff == 0.0 && packed.val.loss.to_bits() == alone.val.loss.to_bits();
        worst = worst.max(diff);
    }
    eprintln!("pack-mates: largest relative loss difference {worst:e}; bit-identical: {bit_identical}");
    assert!(worst <= MATES_BOUND, "losses differ by {worst:e} (bound {MATES_BOUND:e})");
}

#[test]
fn with_dropout_zero_a_packed_member_equals_its_solo_run() {
    let _turn = one_at_a_time();
    for pipeline in [Pipeline::Baseline, Pipeline::Dec] {
        let a = trial(params(0.0, 0.6, 1.0), 21);
        let mate = trial(params(0.0, 0.4, 3.0), 22);
        let mut obs = recorders(2);
        let packed = pack(pipeline, &[&a, &mate], &mut obs, vec![]).remove(0).unwrap();
        let mut solo_obs = Recorder::default();
        let trainer = Trainer {
            params: &a.params,
            config: ModelConfig::new(&a.params, [6, 4, 3]),
            seed: a.seed,
            device: Device::Cpu,
            data: &a.data,
        };
        let solo = trainer.run(pipeline, &mut NoCache, &mut Session::new(&mut solo_obs)).unwrap();
        let diff = compare(&packed, &obs[0].epochs, &solo, &solo_obs.epochs);
        eprintln!("{pipeline}: packed vs solo, largest relative loss difference {diff:e}");
        assert!(diff <= SOLO_BOUND, "{pipeline}: losses differ by {diff:e} (bound {SOLO_BOUND:e})");
    }
}

#[test]
fn a_member_with_fewer_batches_gets_its_result_alone() {
    let _turn = one_at_a_time();
    // 0.2 of the training rows labeled: fewer fine-tuning batches than the fully labeled mate.
    let few = trial(params(0.1, 0.2, 1.0), 31);
    let many = trial(params(0.1, 1.0, 1.0), 32);
    assert!(few.data.train.labeled_rows().len() + 16 <= many.data.train.labeled_rows().len());
    let mut alone_obs = recorders(1);
    let alone = pack(Pipeline::Baseline, &[&few], &mut alone_obs, vec![]).remove(0).unwrap();
    let mut obs = recorders(2);
    let packed = pack(Pipeline::Baseline, &[&many, &few], &mut obs, vec![]).remove(1).unwrap();
    let diff = compare(&packed, &obs[1].epochs, &alone, &alone_obs[0].epochs);
    eprintln!("fewer batches: largest relative loss difference {diff:e}");
    assert!(diff <= MATES_BOUND, "losses differ by {diff:e} (bound {MATES_BOUND:e})");
}

#[test]
fn a_stopped_member_leaves_and_the_others_are_unchanged() {
    let _turn = one_at_a_time();
    let trials = [trial(params(0.1, 0.5, 1.0), 41), trial(params(0.1, 0.5, 1.0), 42), trial(params(0.1, 0.7, 1.0), 43)];
    let all: Vec<&Trial> = trials.iter().collect();
    let mut obs = recorders(3);
    obs[1].at = Some((Stage::Dec, 1, Control::Stop));
    let results = pack(Pipeline::Dec, &all, &mut obs, vec![]);
    assert!(matches!(results[1], Err(TrainError::Stopped { stage: Stage::Dec, epoch: 1 })), "{:?}", results[1]);
    assert_eq!(obs[1].epochs.len(), 3, "no epoch reported after the stop");
    let mut without_obs = recorders(2);
    let without = pack(Pipeline::Dec, &[all[0], all[2]], &mut without_obs, vec![]);
    for (i, j) in [(0, 0), (2, 1)] {
        let (with, alone) = (results[i].as_ref().unwrap(), without[j].as_ref().unwrap());
        assert!(compare(with, &obs[i].epochs, alone, &without_obs[j].epochs) <= MATES_BOUND);
    }
}

#[test]
fn a_suspended_member_resumes_in_another_pack_or_alone() {
    let _turn = one_at_a_time();
    let a = trial(params(0.1, 0.5, 1.0), 51);
    let b = trial(params(0.1, 0.9, 2.0), 52);
    let c = trial(params(0.1, 0.3, 0.5), 53);
    let mut full_obs = recorders(1);
    let full = pack(Pipeline::Dec, &[&a], &mut full_obs, vec![]).remove(0).unwrap();

    let mut obs = recorders(2);
    obs[0].at = Some((Stage::Dec, 1, Control::Suspend));
    let first = pack(Pipeline::Dec, &[&a, &b], &mut obs, vec![]);
    assert!(matches!(first[0], Err(TrainError::Suspended { stage: Stage::Dec, epoch: 1 })));
    assert!(first[1].is_ok());
    let state = obs[0].state.take().expect("the state was handed over");
    let copy = TrialState::from_bytes(&state.to_bytes("t").unwrap(), "t").unwrap();

    // In another pack, ahead of its new mate: the uninterrupted run's result.
    let mut again = recorders(2);
    let resumed = pack(Pipeline::Dec, &[&c, &a], &mut again, vec![None, Some(state)]).remove(1).unwrap();
    let before = &obs[0].epochs;
    let curves: Vec<EpochRecord> = before.iter().chain(&again[1].epochs).cloned().collect();
    assert!(compare(&resumed, &curves, &full, &full_obs[0].epochs) <= MATES_BOUND);

    // Alone in the solo trainer: the state fits and the trial completes.
    let trainer = Trainer {
        params: &a.params,
        config: ModelConfig::new(&a.params, [6, 4, 3]),
        seed: a.seed,
        device: Device::Cpu,
        data: &a.data,
    };
    let mut solo_obs = Recorder::default();
    let solo = trainer.run(Pipeline::Dec, &mut NoCache, &mut Session::resuming(&mut solo_obs, copy)).unwrap();
    assert_eq!(solo_obs.epochs.first().map(|r| (r.stage, r.epoch)), Some((Stage::Dec, 2)));
    assert!(solo.val.metrics.accuracy > 0.0);
}

#[test]
fn members_of_different_shapes_are_refused() {
    let _turn = one_at_a_time();
    let a = trial(params(0.1, 0.5, 1.0), 61);
    let mut other = params(0.1, 0.5, 1.0);
    other.d_model = 16;
    let b = trial(other, 62);
    let mut obs = recorders(2);
    let err = try_pack(Pipeline::Baseline, &[&a, &b], &mut obs, vec![]).expect_err("the pack is refused");
    let message = err.to_string();
    assert!(message.contains("d_model") && message.contains("members 0 and 1"), "{message}");
    assert!(!err.is_out_of_memory());
}

#[test]
fn members_with_pseudo_labels_are_refused_as_solo_only() {
    let _turn = one_at_a_time();
    let mut with_pseudo = params(0.1, 0.5, 1.0);
    with_pseudo.pseudo_threshold = 0.3;
    let a = trial(params(0.1, 0.5, 1.0), 71);
    let b = trial(with_pseudo, 72);
    let mut obs = recorders(2);
    let err = try_pack(Pipeline::Dec, &[&a, &b], &mut obs, vec![]).expect_err("the pack is refused");
    let message = err.to_string();
    assert!(message.contains("member 1") && message.contains("pseudo_threshold = 0.3"), "{message}");
    assert!(obs.iter().all(|o| o.epochs.is_empty()), "nothing trained");
}
