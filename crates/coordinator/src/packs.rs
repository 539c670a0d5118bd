//! Packs: which pending trials a packing worker gets together with the head of the queue.
//!
//! A pack is the head trial and up to `size − 1` later pending trials of the same study that
//! share its [`PackKey`] (pipeline, dataset, key parameters) and its resume point (none, or the
//! same stage and epoch: the members of a pack step through their epochs together). The size
//! is the worker's `--pack`, else the study's `[resources] pack`, else 1. `command` trials have
//! no key and are never packed. Each member is granted its own lease
//! ([`WriteCtx::lease_pack`]); the pack id on those leases only records who trained together.
//! Nothing here knows how a pack is trained.

use std::collections::HashSet;

use decsweep_api::pack::{PackKey, MAX_PACK};
use decsweep_api::wire::{PackAsk, TrialJob};
use decsweep_api::Stage;
use rusqlite::params;

use crate::checkpoints;
use crate::error::Result;
use crate::grant::Pending;
use crate::writer::{u32_col, StudyMeta, WriteCtx};

/// Pending trials read past the head while looking for its pack-mates: bounds the work of one
/// lease request in a study whose queue holds few trials of the head's key.
const MATES_SCANNED: i64 = 4096;

/// The most trials one answer packs: the worker's ask, else the study's default, capped.
pub(crate) fn pack_size(ask: PackAsk, study_default: Option<u32>) -> u32 {
    ask.max.or(study_default).unwrap_or(1).clamp(1, MAX_PACK)
}

/// Where a trial resumes: the stage and epochs done of its stored checkpoint.
fn resume_point(ctx: &WriteCtx, trial_id: i64) -> Result<Option<(Stage, u32)>> {
    Ok(checkpoints::of_trial(&ctx.conn, trial_id)?.map(|(c, _)| (c.stage, c.epoch)))
}

impl WriteCtx {
    /// The pending trials of `study_id` after `head`, oldest first, that may be trained
    /// together with it, at most the pack's size less one.
    pub(crate) fn pack_mates(
        &mut self,
        head: &Pending,
        study_id: i64,
        meta: &StudyMeta,
        ask: PackAsk,
    ) -> Result<Vec<Pending>> {
        let study_default = meta.spec.as_ref().and_then(|spec| spec.resources().pack);
        let wanted = pack_size(ask, study_default) as usize - 1;
        let Some(key) = PackKey::of_job(&head.job, &meta.dataset.sha256) else { return Ok(Vec::new()) };
        if wanted == 0 {
            return Ok(Vec::new());
        }
        let head_resume = resume_point(self, head.trial_id)?;
        let candidates: Vec<(i64, u32, i64, String)> = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT id, attempts, seed, config_id FROM trials
                  WHERE study_id = ?1 AND status = 'pending' AND id > ?2 ORDER BY id LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![study_id, head.trial_id, MATES_SCANNED], |r| {
                Ok((r.get(0)?, u32_col(r.get(1)?), r.get(2)?, r.get(3)?))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        // A study's trials of one configuration (`config_id`, a hash of pipeline and parameters)
        // have the same job but for the seed, so a configuration whose job is not of the head's
        // key is skipped after its first trial: a queue of many seeds per configuration costs a
        // few decodes, not thousands. A mate's own job is always read and checked.
        let mut off_key: HashSet<String> = HashSet::new();
        let mut mates = Vec::new();
        for (trial_id, attempts, seed, config_id) in candidates {
            if off_key.contains(&config_id) {
                continue;
            }
            let job: String = self.conn.query_row("SELECT job FROM trials WHERE id = ?1", [trial_id], |r| r.get(0))?;
            // A job that does not decode is failed when it reaches the head of the queue.
            let Some(job) = serde_json::from_str::<TrialJob>(&job)
                .ok()
                .filter(|job| PackKey::of_job(job, &meta.dataset.sha256).as_ref() == Some(&key))
            else {
                off_key.insert(config_id);
                continue;
            };
            if resume_point(self, trial_id)? != head_resume {
                continue;
            }
            mates.push(Pending { trial_id, attempts, job, seed });
            if mates.len() == wanted {
                break;
            }
        }
        Ok(mates)
    }
}

#[cfg(test)]
mod tests {
    use decsweep_api::{Params, Pipeline};

    use super::*;
    use crate::ops::tests::{command_study, Fixture};
    use crate::ops::{NewStudy, NewTrial};

    /// A `dec` study whose trial `i` has seed `i` and `d_model` (a key parameter) and `lr_dec`
    /// (a per-member one) from `shapes[i]`; its spec sets `[resources] pack` when given.
    fn model_study(name: &str, shapes: &[(i64, f64)], pack: Option<u32>) -> NewStudy {
        let trials = shapes
            .iter()
            .enumerate()
            .map(|(i, &(d_model, lr_dec))| {
                let params = Params { d_model, lr_dec, ..Params::default() };
                let job = TrialJob::Model { pipeline: Pipeline::Dec, params };
                NewTrial {
                    trial_key: format!("key-{i}"),
                    pipeline: "dec".into(),
                    job_json: serde_json::to_string(&job).unwrap(),
                    params_json: "{}".into(),
                    seed: i as u64,
                    config_id: format!("cfg-{d_model}"),
                    label: None,
                }
            })
            .collect();
        let resources = pack.map_or(String::new(), |k| format!("[resources]\npack = {k}\n"));
        let spec = format!(
            "[study]\nname = \"{name}\"\ndataset = {{ synthetic = {{ seed = 0 }} }}\npipelines = [\"dec\"]\nseeds = [0]\n{resources}"
        );
        NewStudy { spec, trials, ..command_study(name, 0, 0) }
    }

    fn pack_ids(f: &Fixture) -> Vec<(i64, Option<String>)> {
        let mut stmt = f.ctx.conn.prepare("SELECT trial_id, pack_id FROM leases ORDER BY trial_id").unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    #[test]
    fn a_pack_is_the_head_and_the_next_trials_of_its_key() {
        let mut f = Fixture::new();
        let shapes = [(16, 1e-4), (32, 1e-4), (16, 2e-4), (16, 3e-4), (32, 2e-4), (16, 1e-4)];
        f.ctx.insert_study(&model_study("s", &shapes, None)).unwrap();
        let (pack, _) = f.ctx.lease_pack("w", Some(PackAsk { max: Some(3) })).unwrap();
        let ids: Vec<i64> = pack.iter().map(|l| l.trial_id).collect();
        assert_eq!(ids, [1, 3, 4], "d_model 32 splits the pack; lr_dec does not");
        let pack_id = pack[0].pack_id.clone().expect("three trials trained together");
        assert!(pack.iter().all(|l| l.pack_id.as_ref() == Some(&pack_id) && l.attempt == 1));
        let distinct: std::collections::BTreeSet<&str> = pack.iter().map(|l| l.lease_id.as_str()).collect();
        assert_eq!(distinct.len(), 3, "each trial has its own lease");
        for id in [1, 3, 4] {
            assert_eq!(f.status(id).0, "running");
        }
        assert_eq!(f.status(2).0, "pending");

        // The next pack starts at the head again: trial 2 with the other d_model 32 trial.
        let (pack, _) = f.ctx.lease_pack("w", Some(PackAsk { max: Some(3) })).unwrap();
        assert_eq!(pack.iter().map(|l| l.trial_id).collect::<Vec<_>>(), [2, 5]);
        // A lone trial carries no pack id.
        let (pack, _) = f.ctx.lease_pack("w", Some(PackAsk { max: Some(3) })).unwrap();
        assert_eq!((pack.len(), pack[0].trial_id, pack[0].pack_id.clone()), (1, 6, None));
        assert!(f.ctx.lease_pack("w", Some(PackAsk { max: Some(3) })).unwrap().0.is_empty());

        let stored = pack_ids(&f);
        let first = stored[0].1.clone().unwrap();
        assert_eq!(stored.iter().filter(|(_, p)| p.as_deref() == Some(first.as_str())).count(), 3);
        assert_eq!(stored[5], (6, None));
        // What trials.csv's `pack` column and the dashboard read.
        assert_eq!(crate::read::trial(&f.ctx.conn, 3).unwrap().pack, [1, 3, 4]);
        assert_eq!(crate::read::trial(&f.ctx.conn, 5).unwrap().pack, [2, 5]);
        assert!(crate::read::trial(&f.ctx.conn, 6).unwrap().pack.is_empty(), "trained alone");
    }

    #[test]
    fn the_workers_list_shows_which_running_trials_train_together() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&model_study("s", &[(16, 1e-4), (16, 2e-4), (32, 1e-4)], None)).unwrap();
        let agent =
            decsweep_api::wire::AgentInfo { name: "gpu".into(), host: "h".into(), slots: 2, device: "cuda:0".into() };
        crate::workers::seen(&f.ctx.conn, "gpu/0", Some(&agent), 1).unwrap();
        crate::workers::seen(&f.ctx.conn, "gpu/1", Some(&agent), 1).unwrap();
        f.ctx.lease_pack("gpu/0", Some(PackAsk { max: Some(4) })).unwrap();
        f.ctx.lease_pack("gpu/1", Some(PackAsk { max: Some(4) })).unwrap();
        let workers = crate::workers::list(&f.ctx.conn).unwrap();
        assert_eq!((workers[0].running.clone(), workers[0].packs.clone()), (vec![1, 2, 3], vec![vec![1, 2]]));
    }

    #[test]
    fn members_end_on_their_own_leases() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&model_study("s", &[(16, 1e-4), (16, 2e-4)], None)).unwrap();
        let (pack, _) = f.ctx.lease_pack("w", Some(PackAsk { max: Some(2) })).unwrap();
        assert!(f.ctx.complete(&pack[0].lease_id, &Default::default()).unwrap());
        f.ctx.give_back(&pack[1].lease_id, "stopping").unwrap();
        assert_eq!((f.status(1).0.as_str(), f.status(2).0.as_str()), ("completed", "pending"));
        assert!(!f.ctx.complete(&pack[0].lease_id, &Default::default()).unwrap(), "exactly once");
        // The returned member comes back alone, or in a later pack.
        let (again, _) = f.ctx.lease_pack("w", Some(PackAsk { max: Some(2) })).unwrap();
        assert_eq!((again.len(), again[0].trial_id), (1, 2));
        assert_ne!(again[0].lease_id, pack[1].lease_id, "a new lease");
    }

    #[test]
    fn the_study_default_applies_when_the_worker_names_no_size() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&model_study("s", &[(16, 1e-4); 6], Some(2))).unwrap();
        let (pack, _) = f.ctx.lease_pack("w", Some(PackAsk { max: None })).unwrap();
        assert_eq!(pack.len(), 2, "[resources] pack = 2");
        let (pack, _) = f.ctx.lease_pack("w", Some(PackAsk { max: Some(3) })).unwrap();
        assert_eq!(pack.len(), 3, "the worker's --pack wins");
        let (one, _) = f.ctx.lease("w").unwrap();
        assert_eq!(one.unwrap().pack_id, None, "a worker that does not pack gets one trial");
    }

    #[test]
    fn command_trials_are_never_packed() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("c", 4, 0)).unwrap();
        let (pack, _) = f.ctx.lease_pack("w", Some(PackAsk { max: Some(4) })).unwrap();
        assert_eq!((pack.len(), pack[0].pack_id.clone()), (1, None));
    }

    #[test]
    fn only_trials_resuming_from_the_same_point_are_packed() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&model_study("s", &[(16, 1e-4); 4], None)).unwrap();
        f.ctx
            .conn
            .execute_batch(
                "INSERT INTO checkpoints VALUES (1, 'aa', 7, 'dec', 2, 0, 10);
                 INSERT INTO checkpoints VALUES (3, 'bb', 7, 'dec', 2, 0, 10);
                 INSERT INTO checkpoints VALUES (4, 'cc', 7, 'dec', 3, 0, 10);",
            )
            .unwrap();
        let (pack, _) = f.ctx.lease_pack("w", Some(PackAsk { max: Some(4) })).unwrap();
        assert_eq!(pack.iter().map(|l| l.trial_id).collect::<Vec<_>>(), [1, 3], "both resume at dec:2");
        assert!(pack.iter().all(|l| l.resume.as_ref().map(|r| (r.stage, r.epoch)) == Some((Stage::Dec, 2))));
        let (pack, _) = f.ctx.lease_pack("w", Some(PackAsk { max: Some(4) })).unwrap();
        assert_eq!(pack.iter().map(|l| l.trial_id).collect::<Vec<_>>(), [2], "fresh; trial 4 resumes at dec:3");
    }

    #[test]
    fn the_worker_decides_then_the_study_then_one() {
        assert_eq!(pack_size(PackAsk { max: Some(4) }, Some(8)), 4);
        assert_eq!(pack_size(PackAsk { max: None }, Some(8)), 8);
        assert_eq!(pack_size(PackAsk { max: None }, None), 1);
        assert_eq!(pack_size(PackAsk { max: Some(1000) }, None), MAX_PACK);
        assert_eq!(pack_size(PackAsk { max: Some(0) }, None), 1);
    }
}
