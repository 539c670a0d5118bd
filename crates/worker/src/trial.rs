//! `decsweep-worker train`: one trial on this machine, outputs in a directory.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, Context};
use decsweep_api::{Params, Stage};
use decsweep_data::{PrepConfig, Prepared};
use decsweep_model::train::Evaluation;
use decsweep_model::{
    Control, EpochRecord, ModelConfig, NoCache, PipelineOutcome, StageCache, TrainError, TrainSet, Trainer,
};
use serde_json::json;

use crate::cache::DirCache;
use crate::{device, Failure, TrainArgs};

/// Runs the trial; on failure also leaves `error.json` (`kind`: bad_input, diverged or error,
/// and the message) in the output directory for the agent.
pub fn train(args: TrainArgs) -> Result<(), Failure> {
    let out = args.out.clone();
    let result = run(args);
    if let Err(failure) = &result {
        let (kind, e) = match failure {
            Failure::BadInput(e) => ("bad_input", e),
            Failure::Failed(e)
                if e.downcast_ref::<TrainError>().is_some_and(|t| matches!(t, TrainError::Diverged { .. })) =>
            {
                ("diverged", e)
            }
            Failure::Failed(e) => ("error", e),
        };
        let body = json!({ "kind": kind, "message": format!("{e:#}") });
        if fs::create_dir_all(&out).is_ok() {
            let _ = write_atomically(&out.join("error.json"), body.to_string().as_bytes());
        }
    }
    result
}

fn run(args: TrainArgs) -> Result<(), Failure> {
    let mut params = Params::default();
    for assignment in &args.set {
        params.apply_assignment(assignment).map_err(|e| Failure::BadInput(anyhow!("--set {assignment}: {e}")))?;
    }
    params.validate().map_err(|e| Failure::BadInput(e.into()))?;
    let device = device::parse(&args.device).map_err(Failure::BadInput)?;
    if let Some(n) = args.threads {
        tch::set_num_threads(n);
    }

    let dataset = decsweep_data::load(&args.data).map_err(|e| Failure::BadInput(e.into()))?;
    let dataset_hash = decsweep_data::content_hash(&args.data).map_err(|e| Failure::BadInput(e.into()))?;
    let prepared = decsweep_data::prepare(&dataset, &PrepConfig::from_params(&params, args.seed))
        .map_err(|e| Failure::BadInput(anyhow!("{}: {e}", args.data.display())))?;
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

    let mut curves = CurvesWriter::create(&args.out.join("curves.csv"))?;
    let started = Instant::now();
    let mut last_epoch: Option<EpochRecord> = None;
    let supervised = args.supervised;
    let mut progress = |r: &EpochRecord| {
        curves.append(r);
        eprintln!("{}", progress_line(r));
        last_epoch = Some(r.clone());
        if supervised {
            supervisor_says(r)
        } else {
            Control::Continue
        }
    };
    let mut dir_cache = match &args.cache {
        Some(dir) => Some(
            DirCache::new(dir, &dataset_hash, &params, args.pipeline, args.seed)
                .with_context(|| format!("creating cache directory {}", dir.display()))?,
        ),
        None => None,
    };
    let cache: &mut dyn StageCache = match dir_cache.as_mut() {
        Some(c) => c,
        None => &mut NoCache,
    };
    let result = trainer.run(args.pipeline, cache, &mut progress);
    let reuses = dir_cache.map_or(0, |c| c.reuses);
    curves.finish()?;
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(TrainError::Stopped { stage, epoch }) => {
            let last = last_epoch.expect("a stage stops only after an epoch");
            let metrics = json!({
                "status": "pruned",
                "pruned_stage": stage,
                "pruned_epoch": epoch,
                "val_loss": last.val_loss,
                "val_accuracy": last.val_accuracy,
                "cache_reuses": reuses,
                "wall_s": started.elapsed().as_secs_f64(),
            });
            write_atomically(&args.out.join("metrics.json"), serde_json::to_string_pretty(&metrics)?.as_bytes())?;
            eprintln!("stopped in stage {stage} at epoch {epoch} on request");
            return Ok(());
        }
        Err(e @ TrainError::NoLabeledRows { .. }) => return Err(Failure::BadInput(e.into())),
        Err(e) => return Err(Failure::Failed(e.into())),
    };

    outcome.classifier.save(&args.out.join("classifier.safetensors"))?;
    let metrics = metrics_json(
        &args,
        &params,
        &dataset_hash,
        &prepared,
        &outcome,
        device,
        reuses,
        started.elapsed().as_secs_f64(),
    );
    write_atomically(&args.out.join("metrics.json"), serde_json::to_string_pretty(&metrics)?.as_bytes())?;
    eprintln!(
        "done: accuracy {:.4}  f1_weighted {:.4}  f1_macro {:.4}  loss {:.4}  (best epoch {}, {} parameters) → {}",
        outcome.val.metrics.accuracy,
        outcome.val.metrics.f1_weighted,
        outcome.val.metrics.f1_macro,
        outcome.val.loss,
        outcome.best_epoch,
        outcome.param_count,
        args.out.display()
    );
    Ok(())
}

fn log_split(p: &Prepared) {
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

/// Supervised mode: the epoch as a JSON line on stdout, then the supervisor's answer from stdin.
/// A closed stdin means the supervisor is gone, and the trial stops rather than run unowned.
fn supervisor_says(r: &EpochRecord) -> Control {
    let epoch = decsweep_api::wire::EpochProgress {
        stage: r.stage,
        epoch: r.epoch as u32,
        epochs: r.epochs as u32,
        train_loss: r.train_loss,
        val_loss: r.val_loss,
        val_accuracy: r.val_accuracy,
    };
    let mut stdout = std::io::stdout().lock();
    let line = serde_json::to_string(&epoch).expect("epoch serialises");
    if writeln!(stdout, "{line}").and_then(|_| stdout.flush()).is_err() {
        return Control::Stop;
    }
    let mut answer = String::new();
    match std::io::stdin().read_line(&mut answer) {
        Ok(n) if n > 0 && answer.trim() == "continue" => Control::Continue,
        _ => Control::Stop,
    }
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

#[allow(clippy::too_many_arguments)]
fn metrics_json(
    args: &TrainArgs,
    params: &Params,
    dataset_hash: &str,
    prepared: &Prepared,
    outcome: &PipelineOutcome,
    device: tch::Device,
    cache_reuses: usize,
    wall_s: f64,
) -> serde_json::Value {
    let mut m = evaluation_json(&outcome.val);
    let stage_time = |stage: Stage| outcome.stages.iter().find(|s| s.stage == stage).map(|s| s.wall_s);
    let obj = m.as_object_mut().expect("object");
    obj.insert("status".into(), "completed".into());
    obj.insert("test".into(), outcome.test.as_ref().map(evaluation_json).into());
    obj.insert("param_count".into(), outcome.param_count.into());
    obj.insert("best_epoch".into(), outcome.best_epoch.into());
    for stage in [Stage::Ae, Stage::Dec, Stage::Finetune] {
        obj.insert(format!("time_{}_s", stage.name()), stage_time(stage).into());
    }
    obj.insert("wall_s".into(), wall_s.into());
    obj.insert("cache_reuses".into(), cache_reuses.into());
    obj.insert("device".into(), device::describe(device).into());
    obj.insert("pipeline".into(), args.pipeline.name().into());
    obj.insert("seed".into(), args.seed.into());
    obj.insert("params".into(), serde_json::to_value(params).expect("params serialise"));
    obj.insert("dataset".into(), json!({ "path": args.data, "sha256": dataset_hash }));
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
            .map(|s| json!({ "stage": s.stage, "epochs_run": s.epochs_run, "wall_s": s.wall_s, "cached": s.cached }))
            .collect::<Vec<_>>()
            .into(),
    );
    m
}

/// `curves.csv`: one row per epoch of every stage, flushed as it goes so a crash keeps the
/// epochs already run.
struct CurvesWriter {
    file: fs::File,
}

impl CurvesWriter {
    fn create(path: &Path) -> anyhow::Result<Self> {
        let mut file = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        writeln!(file, "stage,epoch,train_loss,val_loss,val_accuracy")?;
        Ok(CurvesWriter { file })
    }

    fn append(&mut self, r: &EpochRecord) {
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
