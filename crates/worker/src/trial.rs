//! `decsweep-worker train`: one trial on this machine, outputs in a directory.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use decsweep_api::{Params, Pipeline, Stage};
use decsweep_data::{PrepConfig, Prepared};
use decsweep_model::train::Evaluation;
use decsweep_model::{
    Control, EpochRecord, ModelConfig, NoCache, Observer, PipelineOutcome, Session, StageCache, TrainError, TrainSet,
    Trainer, TrialState,
};
use serde_json::json;

use crate::cache::DirCache;
use crate::protocol::{ChildEvent, FailureKind, Reply};
use crate::{checkpoint, device, Failure, TrainArgs};

/// Runs the trial; on failure also leaves `error.json` ([`ChildEvent::Failed`]: the
/// [`FailureKind`] and the message) in the output directory for the agent.
pub fn train(args: TrainArgs) -> Result<(), Failure> {
    let out = args.out.clone();
    let result = run(args);
    if let Err(failure) = &result {
        record_failure(&out, failure, FailureKind::Error);
    }
    result
}

/// Leaves `error.json` ([`ChildEvent::Failed`]) in `out` for the agent; `other` is the kind of a
/// failure that is neither bad input, divergence nor an interruption.
pub(crate) fn record_failure(out: &Path, failure: &Failure, other: FailureKind) {
    let (kind, e) = match failure {
        Failure::BadInput(e) => (FailureKind::BadInput, e),
        Failure::Failed(e)
            if e.downcast_ref::<TrainError>().is_some_and(|t| matches!(t, TrainError::Diverged { .. })) =>
        {
            (FailureKind::Diverged, e)
        }
        Failure::Failed(e) => (other, e),
        Failure::Interrupted(e) => (FailureKind::Interrupted, e),
    };
    let body = ChildEvent::Failed { kind, message: format!("{e:#}") }.to_line();
    if fs::create_dir_all(out).is_ok() {
        let _ = write_atomically(&out.join("error.json"), body.as_bytes());
    }
}

fn run(args: TrainArgs) -> Result<(), Failure> {
    let mut params = Params::default();
    for assignment in &args.set {
        params.apply_assignment(assignment).map_err(|e| Failure::BadInput(anyhow!("--set {assignment}: {e}")))?;
    }
    params.validate().map_err(|e| Failure::BadInput(e.into()))?;
    refuse_other_pipelines_params(&params, args.run.pipeline)?;
    let device = device::parse(&args.run.device).map_err(Failure::BadInput)?;
    if let Some(n) = args.run.threads {
        tch::set_num_threads(n);
    }
    // Before the (possibly long) data preparation, so a SIGTERM during it still saves at the
    // end of the first epoch rather than kill the process.
    let sigterm = match &args.checkpoint {
        Some(_) => Some(checkpoint::watch_sigterm()?),
        None => None,
    };

    let dataset = decsweep_data::load(&args.run.data).map_err(|e| Failure::BadInput(e.into()))?;
    let dataset_hash = decsweep_data::content_hash(&args.run.data).map_err(|e| Failure::BadInput(e.into()))?;
    let prepared = decsweep_data::prepare(&dataset, &PrepConfig::from_params(&params, args.seed))
        .map_err(|e| Failure::BadInput(anyhow!("{}: {e}", args.run.data.display())))?;
    drop(dataset);
    log_split(&prepared);

    fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let data = TrainSet::from_prepared(&prepared, device);
    let trainer = Trainer {
        params: &params,
        config: ModelConfig::new(&params, prepared.dims),
        seed: args.seed,
        device,
        data: &data,
    };

    let saver = match (&args.checkpoint, sigterm) {
        (Some(path), Some(sigterm)) => Some(checkpoint::Saver::new(
            path,
            checkpoint::trial_identity(&dataset_hash, args.run.pipeline, &params, args.seed),
            Duration::from_secs_f64(args.run.checkpoint_every),
            sigterm,
            args.run.supervised,
        )),
        _ => None,
    };
    let mut resume = saver.as_ref().and_then(checkpoint::Saver::load);
    let started = Instant::now();
    let mut dir_cache = match &args.run.cache {
        Some(dir) => Some(
            DirCache::new(dir, &dataset_hash, &params, args.run.pipeline, args.seed)
                .with_context(|| format!("creating cache directory {}", dir.display()))?,
        ),
        None => None,
    };
    let mut observer = TrialObserver {
        curves: CurvesWriter::create(&args.out.join("curves.csv"))?,
        last_epoch: None,
        supervised: args.run.supervised,
        saver,
        member: None,
    };
    let (result, resumed) = loop {
        let resumed = resume.as_ref().map(|s| (s.stage, s.epoch, s.resumes + 1));
        let mut session = match resume.take() {
            Some(state) => {
                eprintln!("resuming after epoch {} of stage {} from {}", state.epoch, state.stage, saver_path(&args));
                for record in &state.curves {
                    observer.curves.append(record);
                }
                Session::resuming(&mut observer, state)
            }
            None => Session::new(&mut observer),
        };
        let cache: &mut dyn StageCache = match dir_cache.as_mut() {
            Some(c) => c,
            None => &mut NoCache,
        };
        let result = trainer.run(args.run.pipeline, cache, &mut session);
        drop(session);
        match result {
            // The state did not fit (nothing was trained): discard it and start afresh.
            Err(TrainError::Resume(problem)) if resumed.is_some() => {
                tracing::warn!(checkpoint = %saver_path(&args), %problem, "discarding the trial checkpoint; starting from scratch");
                if let Some(saver) = &observer.saver {
                    saver.discard();
                }
                observer.curves = CurvesWriter::create(&args.out.join("curves.csv"))?;
                observer.last_epoch = None;
            }
            result => break (result, resumed),
        }
    };
    let reuses = dir_cache.map_or(0, |c| c.reuses);
    let run = TrialRun {
        pipeline: args.run.pipeline,
        seed: args.seed,
        data: &args.run.data,
        out: &args.out,
        params: &params,
        dataset_hash: &dataset_hash,
        prepared: &prepared,
        device,
        pack: None,
    };
    run.finish(result, observer, reuses, started, resumed)
}

/// What a finished trial's result is written with: the trial, where it ran, and the pack it was
/// trained in (`train-pack`).
pub(crate) struct TrialRun<'a> {
    pub pipeline: Pipeline,
    pub seed: u64,
    pub data: &'a Path,
    pub out: &'a Path,
    pub params: &'a Params,
    pub dataset_hash: &'a str,
    pub prepared: &'a Prepared,
    pub device: tch::Device,
    /// The manifest's `pack` (crate::manifest::pack_entry) when trained in a pack.
    pub pack: Option<serde_json::Value>,
}

impl TrialRun<'_> {
    /// Writes the trial's `metrics.json` (completed, or pruned) and `classifier.safetensors`,
    /// discarding its state once it is of no further use; a suspended or failed trial is the
    /// error `train` exits with.
    pub(crate) fn finish(
        &self,
        result: Result<PipelineOutcome, TrainError>,
        observer: TrialObserver,
        reuses: usize,
        started: Instant,
        resumed: Option<(Stage, usize, u32)>,
    ) -> Result<(), Failure> {
        let out = self.out;
        let TrialObserver { curves, last_epoch, saver, .. } = observer;
        curves.finish()?;
        let resume_json = json!({
            "resumes": resumed.map_or(0, |(_, _, n)| n),
            "resumed_from": resumed.map(|(stage, epoch, _)| json!({ "stage": stage, "epoch": epoch })),
        });
        let saved_to = saver.as_ref().map(|s| s.path().display().to_string()).unwrap_or_default();
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(TrainError::Stopped { stage, epoch }) => {
                let last = last_epoch.expect("a stage stops only after an epoch");
                let mut metrics = json!({
                    "status": "pruned",
                    "pruned_stage": stage,
                    "pruned_epoch": epoch,
                    "val_loss": last.val_loss,
                    "val_accuracy": last.val_accuracy,
                    "cache_reuses": reuses,
                    "wall_s": started.elapsed().as_secs_f64(),
                });
                merge(&mut metrics, &resume_json);
                write_atomically(&out.join("metrics.json"), serde_json::to_string_pretty(&metrics)?.as_bytes())?;
                // Pruning is final: nothing will resume the trial.
                if let Some(saver) = &saver {
                    saver.discard();
                }
                eprintln!("stopped in stage {stage} at epoch {epoch} on request");
                return Ok(());
            }
            Err(TrainError::Suspended { stage, epoch }) => {
                return match saver.is_some_and(|s| s.saved_at() == Some((stage, epoch))) {
                    true => Err(Failure::Interrupted(anyhow!(
                        "SIGTERM: the state after epoch {epoch} of stage {stage} is saved in {saved_to}; run again to resume"
                    ))),
                    false => Err(Failure::Failed(anyhow!(
                        "SIGTERM: stopped after epoch {epoch} of stage {stage}, but the state could not be saved to {saved_to}"
                    ))),
                };
            }
            Err(e @ TrainError::NoLabeledRows { .. }) => return Err(Failure::BadInput(e.into())),
            Err(e) => return Err(Failure::Failed(e.into())),
        };

        outcome.classifier.save(&out.join("classifier.safetensors"))?;
        let mut metrics = self.metrics_json(&outcome, reuses, started.elapsed().as_secs_f64());
        merge(&mut metrics, &resume_json);
        write_atomically(&out.join("metrics.json"), serde_json::to_string_pretty(&metrics)?.as_bytes())?;
        // The trial is complete: its state is of no further use.
        if let Some(saver) = &saver {
            saver.discard();
        }
        eprintln!(
            "done: accuracy {:.4}  f1_weighted {:.4}  f1_macro {:.4}  loss {:.4}  (best epoch {}, {} parameters) → {}",
            outcome.val.metrics.accuracy,
            outcome.val.metrics.f1_weighted,
            outcome.val.metrics.f1_macro,
            outcome.val.loss,
            outcome.best_epoch,
            outcome.param_count,
            out.display()
        );
        Ok(())
    }
}

/// A parameter reserved to another pipeline ([`decsweep_api::ParamSpec::only_in`]) set away from
/// its default would be silently ignored (pseudo-labels without a DEC stage): refused instead.
/// Parameters of stages the pipeline does not run are left alone, as the agent passes them all.
fn refuse_other_pipelines_params(params: &Params, pipeline: Pipeline) -> Result<(), Failure> {
    let defaults = Params::default();
    for spec in decsweep_api::SPECS.iter().filter(|s| s.only_in.is_some() && !pipeline.reads(s)) {
        let value = params.get(spec.name).map_err(|e| Failure::BadInput(e.into()))?;
        if defaults.get(spec.name).ok().as_ref() != Some(&value) {
            return Err(Failure::BadInput(anyhow!(
                "--set {}={value}: the {pipeline} pipeline does not read it (only {} reads it)",
                spec.name,
                spec.read_by()
            )));
        }
    }
    Ok(())
}

fn saver_path(args: &TrainArgs) -> String {
    args.checkpoint.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
}

/// Adds the keys of `extra` (an object) to `metrics` (an object).
fn merge(metrics: &mut serde_json::Value, extra: &serde_json::Value) {
    if let (Some(m), Some(e)) = (metrics.as_object_mut(), extra.as_object()) {
        m.extend(e.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
}

/// Writes every epoch to curves.csv and stderr, relays it to the supervisor, and asks for the
/// trial's state at the checkpoint interval or after SIGTERM.
pub(crate) struct TrialObserver {
    pub curves: CurvesWriter,
    pub last_epoch: Option<EpochRecord>,
    pub supervised: bool,
    pub saver: Option<checkpoint::Saver>,
    /// The pack member this trial is (`train-pack`): its epochs are announced as that member's.
    pub member: Option<usize>,
}

impl Observer for TrialObserver {
    fn epoch(&mut self, r: &EpochRecord) -> Control {
        self.curves.append(r);
        eprintln!("{}", progress_line(r));
        self.last_epoch = Some(r.clone());
        let reply = if self.supervised { supervisor_says(r, self.member) } else { Reply::Continue };
        let Some(saver) = &self.saver else {
            return match reply {
                Reply::Continue => Control::Continue,
                Reply::Prune | Reply::Stop | Reply::Suspend => Control::Stop,
            };
        };
        match reply {
            Reply::Prune => Control::Stop,
            // The supervisor is shutting down (preempted): save, exit 75, resume elsewhere.
            Reply::Suspend => Control::Suspend,
            // A supervisor that stops the trial after a SIGTERM (its own shutdown) gets the
            // state saved too; otherwise stopping is final.
            Reply::Stop if saver.sigterm() => Control::Suspend,
            Reply::Stop => Control::Stop,
            Reply::Continue if saver.sigterm() => Control::Suspend,
            Reply::Continue if saver.due() => Control::Checkpoint,
            Reply::Continue => Control::Continue,
        }
    }

    fn checkpoint(&mut self, state: &TrialState) {
        if let Some(saver) = &mut self.saver {
            saver.save(state);
        }
    }
}

pub(crate) fn log_split(p: &Prepared) {
    let s = &p.stats;
    tracing::info!(
        train_labeled = s.n_train_labeled,
        train_unlabeled = s.n_train_unlabeled,
        val_labeled = s.n_val_labeled,
        val_unlabeled = s.n_val_unlabeled,
        test = s.n_test,
        dropped_zero = s.dropped_zero,
        dims = ?p.dims,
        "data prepared"
    );
}

fn progress_line(r: &EpochRecord) -> String {
    let acc = r.val_accuracy.map(|a| format!("  val_acc {a:.4}")).unwrap_or_default();
    format!(
        "[{:<8} {:>4}/{:<4}] train_loss {:.5}  val_loss {:.5}{acc}  ({:.1}s)",
        r.stage.name(),
        r.epoch,
        r.epochs,
        r.train_loss,
        r.val_loss,
        r.elapsed_s
    )
}

/// Supervised mode: the epoch as a JSON line on stdout, then the supervisor's reply from stdin
/// (crate::protocol). A closed stdin means the supervisor is gone, and the trial stops rather
/// than run unowned.
fn supervisor_says(r: &EpochRecord, member: Option<usize>) -> Reply {
    let progress = decsweep_api::wire::EpochProgress {
        stage: r.stage,
        epoch: r.epoch as u32,
        epochs: r.epochs as u32,
        train_loss: r.train_loss,
        val_loss: r.val_loss,
        val_accuracy: r.val_accuracy,
    };
    let epoch = match member {
        Some(member) => ChildEvent::MemberEpoch { member, progress },
        None => ChildEvent::Epoch(progress),
    };
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{}", epoch.to_line()).and_then(|_| stdout.flush()).is_err() {
        return Reply::Stop;
    }
    Reply::receive(&mut std::io::stdin().lock())
}

fn evaluation_json(e: &Evaluation) -> serde_json::Value {
    json!({
        "accuracy": e.metrics.accuracy,
        "f1_weighted": e.metrics.f1_weighted,
        "f1_macro": e.metrics.f1_macro,
        "loss": e.loss,
        "n": e.metrics.n,
    })
}

impl TrialRun<'_> {
    fn metrics_json(&self, outcome: &PipelineOutcome, cache_reuses: usize, wall_s: f64) -> serde_json::Value {
        let (params, dataset_hash, prepared, device) = (self.params, self.dataset_hash, self.prepared, self.device);
        let mut m = evaluation_json(&outcome.val);
        let stage_time = |stage: Stage| outcome.stages.iter().find(|s| s.stage == stage).map(|s| s.wall_s);
        let obj = m.as_object_mut().expect("object");
        obj.insert("status".into(), "completed".into());
        obj.insert("test".into(), outcome.test.as_ref().map(evaluation_json).into());
        obj.insert("param_count".into(), outcome.param_count.into());
        obj.insert("best_epoch".into(), outcome.best_epoch.into());
        if let Some(dec) = &outcome.dec {
            // The DEC head's own predictions (clusters → classes), beside the classifier's.
            obj.insert("dec_head_accuracy".into(), dec.head_val_accuracy.into());
            obj.insert("dec_head_test_accuracy".into(), dec.head_test_accuracy.into());
            if let Some(rows) = dec.pseudo_rows {
                obj.insert("pseudo_rows".into(), rows.into());
                obj.insert("pseudo_accuracy".into(), dec.pseudo_accuracy.into());
            }
        }
        for stage in [Stage::Ae, Stage::Dec, Stage::Finetune] {
            obj.insert(format!("time_{}_s", stage.name()), stage_time(stage).into());
        }
        obj.insert("wall_s".into(), wall_s.into());
        obj.insert("cache_reuses".into(), cache_reuses.into());
        obj.insert("device".into(), device::describe(device).into());
        obj.insert("pipeline".into(), self.pipeline.name().into());
        obj.insert("seed".into(), self.seed.into());
        obj.insert("params".into(), serde_json::to_value(params).expect("params serialise"));
        obj.insert("dataset".into(), json!({ "path": self.data, "sha256": dataset_hash }));
        obj.insert(
            "manifest".into(),
            crate::manifest::manifest(self.pipeline, params, self.seed, dataset_hash, device, self.pack.clone()),
        );
        let s = &prepared.stats;
        obj.insert(
            "split".into(),
            json!({
                "train_labeled": s.n_train_labeled, "train_unlabeled": s.n_train_unlabeled,
                "val_labeled": s.n_val_labeled, "val_unlabeled": s.n_val_unlabeled,
                "test": s.n_test, "dropped_zero": s.dropped_zero,
            }),
        );
        obj.insert(
            "stages".into(),
            outcome
                .stages
                .iter()
                .map(
                    |s| json!({ "stage": s.stage, "epochs_run": s.epochs_run, "wall_s": s.wall_s, "cached": s.cached }),
                )
                .collect::<Vec<_>>()
                .into(),
        );
        m
    }
}

/// `curves.csv`: one row per epoch of every stage, flushed as it goes so a crash keeps the
/// epochs already run.
pub(crate) struct CurvesWriter {
    file: fs::File,
}

impl CurvesWriter {
    pub(crate) fn create(path: &Path) -> anyhow::Result<Self> {
        let mut file = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        writeln!(file, "stage,epoch,train_loss,val_loss,val_accuracy")?;
        Ok(CurvesWriter { file })
    }

    pub(crate) fn append(&mut self, r: &EpochRecord) {
        let acc = r.val_accuracy.map(|a| a.to_string()).unwrap_or_default();
        if let Err(e) = writeln!(self.file, "{},{},{},{},{}", r.stage, r.epoch, r.train_loss, r.val_loss, acc) {
            tracing::warn!(error = %e, "could not append to curves.csv");
        }
    }

    fn finish(mut self) -> anyhow::Result<()> {
        self.file.flush()?;
        Ok(self.file.sync_all()?)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
