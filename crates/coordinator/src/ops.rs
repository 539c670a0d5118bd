//! Studies and trials enter the store: a new study with its dataset row and planned trials, and
//! single trials added later (a sampler's proposal, new seeds).

use std::collections::BTreeMap;

use rusqlite::{params, OptionalExtension};

use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::lifecycle;
use crate::writer::WriteCtx;

// Defined in a leaf module so that `dataset.rs` need not import this one (no import circle).
pub(crate) use crate::rows::DatasetRow;

/// A trial row to insert with a new study.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NewTrial {
    pub(crate) trial_key: String,
    pub(crate) pipeline: String,
    pub(crate) job_json: String,
    pub(crate) params_json: String,
    pub(crate) seed: u64,
    pub(crate) config_id: String,
    pub(crate) label: Option<String>,
}

/// A study ready to insert: the spec is parsed, the dataset stored.
#[derive(Clone, Debug)]
pub(crate) struct NewStudy {
    pub(crate) name: String,
    pub(crate) spec: String,
    pub(crate) spec_path: String,
    pub(crate) dataset: DatasetRow,
    pub(crate) retries: u32,
    pub(crate) objective_metric: String,
    pub(crate) maximize: bool,
    /// Trials are asked of the sampler as work is needed ([`crate::adaptive`]); `trials` is empty.
    pub(crate) adaptive: bool,
    pub(crate) trials: Vec<NewTrial>,
}

/// Whether [`WriteCtx::insert_study`] created the study.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Inserted {
    Created,
    Existing,
}

impl WriteCtx {
    /// Inserts a pending trial unless the study already has its `trial_key`; `point` is the
    /// sampled point's key for adaptive studies. Returns how many rows were inserted (0 or 1).
    pub(crate) fn insert_trial(&self, study_id: i64, t: &NewTrial, now: i64, point: Option<&str>) -> Result<usize> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT OR IGNORE INTO trials (study_id, trial_key, pipeline, job, params, seed, config_id, label,
                                           status, attempts, created_ms, updated_ms, point)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?11, 0, ?9, ?9, ?10)",
        )?;
        Ok(stmt.execute(params![
            study_id,
            t.trial_key,
            t.pipeline,
            t.job_json,
            t.params_json,
            t.seed as i64,
            t.config_id,
            t.label,
            now,
            point,
            lifecycle::NEW_TRIAL
        ])?)
    }

    /// Inserts a study with its dataset row and trials, or recognises it as already there.
    pub(crate) fn insert_study(&mut self, study: &NewStudy) -> Result<Inserted> {
        let existing: Option<String> =
            self.conn.query_row("SELECT spec FROM studies WHERE name = ?1", [&study.name], |r| r.get(0)).optional()?;
        if let Some(spec) = existing {
            return if spec == study.spec {
                Ok(Inserted::Existing)
            } else {
                Err(Error::StudyConflict { name: study.name.clone() })
            };
        }
        let now = self.now();
        let created_at = rfc3339(now);
        let d = &study.dataset;
        self.conn.execute(
            "INSERT OR IGNORE INTO datasets (sha256, file, bytes, source, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![d.sha256, d.file, d.bytes as i64, d.source, created_at],
        )?;
        self.conn.execute(
            "INSERT INTO studies (name, spec, spec_path, dataset_sha256, retries, objective_metric,
                                  objective_direction, created_at, created_ms, adaptive)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                study.name,
                study.spec,
                study.spec_path,
                d.sha256,
                study.retries,
                study.objective_metric,
                if study.maximize { "maximize" } else { "minimize" },
                created_at,
                now,
                study.adaptive
            ],
        )?;
        let study_id = self.conn.last_insert_rowid();
        for t in &study.trials {
            self.insert_trial(study_id, t, now, None)?;
        }
        if study.adaptive {
            // The first point, so the study has work at once. Errors here refuse the study.
            self.top_up(study_id)?;
        }
        Ok(Inserted::Created)
    }
}

/// Metrics as a JSON object, dropping non-finite values (JSON has no NaN).
pub(crate) fn metrics_json(metrics: &BTreeMap<String, f64>) -> String {
    let finite: BTreeMap<&String, f64> = metrics.iter().filter(|(_, v)| v.is_finite()).map(|(k, v)| (k, *v)).collect();
    serde_json::to_string(&finite).unwrap_or_else(|_| "{}".into())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use decsweep_api::wire::{Lease, TrialJob};

    use super::*;
    use crate::clock::ManualClock;
    use crate::pruner::NoPruner;
    use crate::schema::{connect, migrate, Role};
    use crate::writer::u32_col;

    pub(crate) const TTL_MS: i64 = 10_000;

    /// A study of `n` command trials, as the spec path would prepare it.
    pub(crate) fn command_study(name: &str, n: usize, retries: u32) -> NewStudy {
        let trials = (0..n)
            .map(|i| {
                let job = TrialJob::Command {
                    argv: vec!["true".into(), format!("--x={i}")],
                    env: Default::default(),
                    workdir: None,
                    stop_grace_s: 3.0,
                };
                NewTrial {
                    trial_key: format!("key-{i}"),
                    pipeline: "command".into(),
                    job_json: serde_json::to_string(&job).unwrap(),
                    params_json: format!("{{\"x\":{i}}}"),
                    seed: i as u64,
                    config_id: format!("cfg-{i}"),
                    label: None,
                }
            })
            .collect();
        NewStudy {
            name: name.into(),
            spec: format!("spec of {name}"),
            spec_path: format!("{name}.toml"),
            dataset: DatasetRow {
                sha256: "ab".repeat(32),
                file: "x.safetensors".into(),
                bytes: 3,
                source: "test".into(),
            },
            retries,
            objective_metric: "accuracy".into(),
            maximize: true,
            adaptive: false,
            trials,
        }
    }

    pub(crate) struct Fixture {
        pub(crate) ctx: WriteCtx,
        pub(crate) clock: Arc<ManualClock>,
        _dir: tempfile::TempDir,
    }

    impl Fixture {
        pub(crate) fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("c.db");
            let mut conn = connect(&path, Role::Writer).unwrap();
            migrate(&mut conn, &path).unwrap();
            let clock = Arc::new(ManualClock::new(1_700_000_000_000));
            let ctx = WriteCtx::new(conn, clock.clone(), TTL_MS, Arc::new(NoPruner));
            Fixture { ctx, clock, _dir: dir }
        }

        pub(crate) fn status(&self, trial: i64) -> (String, u32, Option<String>) {
            self.ctx
                .conn
                .query_row("SELECT status, attempts, error FROM trials WHERE id = ?1", [trial], |r| {
                    Ok((r.get(0)?, u32_col(r.get(1)?), r.get(2)?))
                })
                .unwrap()
        }

        pub(crate) fn lease(&mut self, worker: &str) -> Lease {
            self.ctx.lease(worker).unwrap().0.expect("a pending trial")
        }
    }

    #[test]
    fn studies_insert_once_and_conflict_on_a_different_spec() {
        let mut f = Fixture::new();
        let s = command_study("a", 3, 2);
        assert_eq!(f.ctx.insert_study(&s).unwrap(), Inserted::Created);
        assert_eq!(f.ctx.insert_study(&s).unwrap(), Inserted::Existing);
        let other = NewStudy { spec: "another spec".into(), ..s };
        assert!(matches!(f.ctx.insert_study(&other), Err(Error::StudyConflict { .. })));
        let n: i64 = f.ctx.conn.query_row("SELECT COUNT(*) FROM trials", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 3);
    }

    #[test]
    fn non_finite_metrics_are_dropped() {
        let m = BTreeMap::from([("a".to_string(), f64::NAN), ("b".to_string(), 1.5)]);
        assert_eq!(metrics_json(&m), r#"{"b":1.5}"#);
    }
}
