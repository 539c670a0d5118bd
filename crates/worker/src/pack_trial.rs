//! `decsweep-worker train-pack`: several trials of one pack key trained in one process as one
//! stacked model (decsweep_model::packed), each member with the outputs `train` would give it
//! alone: its own directory with `metrics.json` (or `error.json`), `curves.csv` and
//! `classifier.safetensors`, its own trial checkpoint file and stage cache entries.
//!
//! The members come from a JSON pack file ([`PackFile`]) that the agent writes. Supervised,
//! every member's epoch is a [`ChildEvent::MemberEpoch`] line answered by one reply for that
//! member (crate::protocol). The process exits 0 once every member has ended however it ended
//! (each member's result is in its directory), 75 when SIGTERM suspended every member with its
//! state saved, and 1 with `error.json` in `--out` when the whole pack failed
//! ([`FailureKind::OutOfMemory`]: fewer members might fit).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use decsweep_api::pack::PackFile;
use decsweep_api::{Params, Stage};
use decsweep_data::{PrepConfig, Prepared};
use decsweep_model::{NoCache, PackMember, PackTrainer, StageCache, TrainError, TrainSet, TrialState};

use crate::cache::DirCache;
use crate::protocol::FailureKind;
use crate::trial::{log_split, record_failure, CurvesWriter, TrialObserver, TrialRun};
use crate::{checkpoint, device, Failure, RunnerArgs};

#[derive(clap::Args, Debug)]
pub struct TrainPackArgs {
    /// JSON: `{"pack_id": …, "members": [{"trial_id", "seed", "params", "out", "checkpoint"}]}`.
    #[arg(long, value_name = "FILE")]
    pack_file: PathBuf,
    /// Where a failure of the whole pack leaves `error.json` (created).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    run: RunnerArgs,
}

/// Reads and checks a pack file.
pub fn read_pack_file(path: &Path) -> anyhow::Result<PackFile> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let pack: PackFile = serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?;
    if pack.members.is_empty() {
        return Err(anyhow!("{}: a pack needs at least one member", path.display()));
    }
    Ok(pack)
}

/// Runs the pack; see the module's doc for what it leaves behind.
pub fn train_pack(args: TrainPackArgs) -> Result<(), Failure> {
    let out = args.out.clone();
    let result = run(args);
    if let Err(failure) = &result {
        let oom = matches!(failure, Failure::Failed(e) if e.downcast_ref::<decsweep_model::PackError>().is_some_and(|p| p.is_out_of_memory()));
        record_failure(&out, failure, if oom { FailureKind::OutOfMemory } else { FailureKind::Error });
    }
    result
}

/// A member's inputs, prepared before the pack trains.
struct Prepped {
    params: Params,
    prepared: Prepared,
    data: TrainSet,
    cache: Option<DirCache>,
    observer: TrialObserver,
    resume: Option<TrialState>,
}

fn run(args: TrainPackArgs) -> Result<(), Failure> {
    let pack = read_pack_file(&args.pack_file).map_err(Failure::BadInput)?;
    for (i, m) in pack.members.iter().enumerate() {
        m.params.validate().map_err(|e| Failure::BadInput(anyhow!("member {i} (trial {}): {e}", m.trial_id)))?;
    }
    let device = device::parse(&args.run.device).map_err(Failure::BadInput)?;
    if let Some(n) = args.run.threads {
        tch::set_num_threads(n);
    }
    let any_checkpoint = pack.members.iter().any(|m| m.checkpoint.is_some());
    let sigterm = if any_checkpoint { Some(checkpoint::watch_sigterm()?) } else { None };
    let dataset = decsweep_data::load(&args.run.data).map_err(|e| Failure::BadInput(e.into()))?;
    let dataset_hash = decsweep_data::content_hash(&args.run.data).map_err(|e| Failure::BadInput(e.into()))?;
    let mut prepped = Vec::with_capacity(pack.members.len());
    for (i, m) in pack.members.iter().enumerate() {
        let prepared = decsweep_data::prepare(&dataset, &PrepConfig::from_params(&m.params, m.seed))
            .map_err(|e| Failure::BadInput(anyhow!("{} (member {i}): {e}", args.run.data.display())))?;
        log_split(&prepared);
        fs::create_dir_all(&m.out).with_context(|| format!("creating {}", m.out.display()))?;
        let saver = match (&m.checkpoint, &sigterm) {
            (Some(path), Some(sigterm)) => Some(
                checkpoint::Saver::new(
                    path,
                    checkpoint::trial_identity(&dataset_hash, args.run.pipeline, &m.params, m.seed),
                    Duration::from_secs_f64(args.run.checkpoint_every),
                    sigterm.clone(),
                    args.run.supervised,
                )
                .for_member(i),
            ),
            _ => None,
        };
        let resume = saver.as_ref().and_then(checkpoint::Saver::load);
        let mut curves = CurvesWriter::create(&m.out.join("curves.csv"))?;
        for record in resume.iter().flat_map(|s| &s.curves) {
            curves.append(record);
        }
        let cache = match &args.run.cache {
            Some(dir) => Some(
                DirCache::new(dir, &dataset_hash, &m.params, args.run.pipeline, m.seed)
                    .with_context(|| format!("creating cache directory {}", dir.display()))?,
            ),
            None => None,
        };
        prepped.push(Prepped {
            params: m.params.clone(),
            data: TrainSet::from_prepared(&prepared, device),
            prepared,
            cache,
            observer: TrialObserver {
                curves,
                last_epoch: None,
                supervised: args.run.supervised,
                saver,
                member: Some(i),
            },
            resume,
        });
    }
    drop(dataset);

    let started = Instant::now();
    let resumed: Vec<Option<(Stage, usize, u32)>> =
        prepped.iter().map(|p| p.resume.as_ref().map(|s| (s.stage, s.epoch, s.resumes + 1))).collect();
    let mut no_caches: Vec<NoCache> = prepped.iter().map(|_| NoCache).collect();
    let results = {
        let members: Vec<PackMember<'_>> = prepped
            .iter_mut()
            .zip(pack.members.iter())
            .zip(no_caches.iter_mut())
            .map(|((p, m), none)| {
                let cache: &mut dyn StageCache = match p.cache.as_mut() {
                    Some(c) => c,
                    None => none,
                };
                PackMember {
                    params: &p.params,
                    seed: m.seed,
                    data: &p.data,
                    cache,
                    observer: &mut p.observer,
                    resume: p.resume.take(),
                }
            })
            .collect();
        PackTrainer { pipeline: args.run.pipeline, device }.run(members).map_err(|e| Failure::Failed(e.into()))?
    };

    let trials: Vec<i64> = pack.members.iter().map(|m| m.trial_id).collect();
    let mut suspended = 0;
    for (i, ((result, p), m)) in results.into_iter().zip(prepped).zip(&pack.members).enumerate() {
        let run = TrialRun {
            pipeline: args.run.pipeline,
            seed: m.seed,
            data: &args.run.data,
            out: &m.out,
            params: &p.params,
            dataset_hash: &dataset_hash,
            prepared: &p.prepared,
            device,
            pack: Some(crate::manifest::pack_entry(pack.pack_id.as_deref(), &trials, i)),
        };
        let reuses = p.cache.as_ref().map_or(0, |c| c.reuses);
        let result = match result {
            // A state that does not fit this member is discarded: its next attempt starts afresh.
            Err(TrainError::Resume(problem)) => {
                if let Some(saver) = &p.observer.saver {
                    saver.discard();
                }
                Err(TrainError::Resume(problem))
            }
            other => other,
        };
        if let Err(failure) = run.finish(result, p.observer, reuses, started, resumed[i]) {
            suspended += usize::from(matches!(failure, Failure::Interrupted(_)));
            record_failure(&m.out, &failure, FailureKind::Error);
        }
    }
    if suspended == pack.members.len() {
        return Err(Failure::Interrupted(anyhow!("SIGTERM: every member's state is saved; run again to resume")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use decsweep_api::pack::PackFileMember;

    #[test]
    fn a_pack_file_names_its_members_and_refuses_unknown_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pack.json");
        let pack = PackFile {
            pack_id: Some("p".into()),
            members: vec![PackFileMember {
                trial_id: 3,
                seed: 1,
                params: Params::default(),
                out: "m0".into(),
                checkpoint: None,
            }],
        };
        fs::write(&path, serde_json::to_string(&pack).unwrap()).unwrap();
        assert_eq!(read_pack_file(&path).unwrap(), pack);
        fs::write(&path, r#"{"members": []}"#).unwrap();
        assert!(read_pack_file(&path).unwrap_err().to_string().contains("at least one member"));
        fs::write(&path, r#"{"members": [], "size": 2}"#).unwrap();
        assert!(format!("{:#}", read_pack_file(&path).unwrap_err()).contains("unknown field `size`"));
    }
}
