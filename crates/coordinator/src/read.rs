//! Read-only queries, run on the reader pool.

use std::collections::{BTreeMap, HashMap};

use decsweep_api::wire::{
    ExportedTrial, StatusCounts, StudyExport, StudyInfo, TrialCurvePoint, TrialInfo, TrialStatus,
};
use decsweep_api::{ParamValue, Stage};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::{Error, Result};
use crate::ops::DatasetRow;

fn add_count(counts: &mut StatusCounts, status: TrialStatus, n: i64) {
    counts.add(status, n.max(0) as u64);
}

fn parse_stage(s: &str) -> Result<Stage> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| Error::Corrupt(format!("unknown stage `{s}` in curves")))
}

fn study_counts(conn: &Connection, study_id: i64) -> Result<StatusCounts> {
    let mut stmt = conn.prepare_cached("SELECT status, COUNT(*) FROM trials WHERE study_id = ?1 GROUP BY status")?;
    let mut rows = stmt.query([study_id])?;
    let mut counts = StatusCounts::default();
    while let Some(r) = rows.next()? {
        add_count(&mut counts, r.get(0)?, r.get(1)?);
    }
    Ok(counts)
}

/// [`StudyInfo::adaptive`] and [`StudyInfo::planned`] of a study: for an adaptive one,
/// `n_trials` × the trials one point plans (seeds × configurations; a TPE spec crosses no grid).
fn planned(conn: &Connection, study_id: i64) -> Result<(bool, Option<u64>)> {
    let (adaptive, text, path): (bool, String, String) = conn
        .prepare_cached("SELECT adaptive, spec, spec_path FROM studies WHERE id = ?1")?
        .query_row([study_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    if !adaptive {
        return Ok((false, None));
    }
    let options = decsweep_search::LoadOptions { check_dataset: false };
    let planned = decsweep_search::SweepSpec::from_source(&text, &path, &options).ok().and_then(|spec| {
        let per_point = (spec.seeds().len() * spec.configs().len()) as u64;
        spec.sampler_spec().n_trials.map(|n| n.saturating_mul(per_point))
    });
    Ok((true, planned))
}

/// The study's id and spec text, if it exists.
pub(crate) fn study_spec(conn: &Connection, name: &str) -> Result<Option<(i64, String)>> {
    Ok(conn
        .query_row("SELECT id, spec FROM studies WHERE name = ?1", [name], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

pub(crate) fn study(conn: &Connection, name: &str) -> Result<StudyInfo> {
    let row: Option<(i64, String, String, String, String)> = conn
        .query_row(
            "SELECT id, created_at, dataset_sha256, objective_metric, objective_direction FROM studies WHERE name = ?1",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let (id, created_at, dataset_sha256, objective_metric, direction) =
        row.ok_or_else(|| Error::StudyNotFound(name.to_string()))?;
    let (adaptive, planned) = planned(conn, id)?;
    Ok(StudyInfo {
        name: name.to_string(),
        created_at,
        dataset_sha256,
        counts: study_counts(conn, id)?,
        created: false,
        planned,
        adaptive,
        objective_metric,
        maximize: direction == "maximize",
    })
}

pub(crate) fn studies(conn: &Connection) -> Result<Vec<StudyInfo>> {
    let mut counts: HashMap<i64, StatusCounts> = HashMap::new();
    {
        let mut stmt =
            conn.prepare_cached("SELECT study_id, status, COUNT(*) FROM trials GROUP BY study_id, status")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            add_count(counts.entry(r.get(0)?).or_default(), r.get(1)?, r.get(2)?);
        }
    }
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, created_at, dataset_sha256, objective_metric, objective_direction FROM studies ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get::<_, String>(5)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, name, created_at, dataset_sha256, objective_metric, direction) = row?;
        let (adaptive, planned) = planned(conn, id)?;
        out.push(StudyInfo {
            name,
            created_at,
            dataset_sha256,
            counts: counts.remove(&id).unwrap_or_default(),
            created: false,
            planned,
            adaptive,
            objective_metric,
            maximize: direction == "maximize",
        });
    }
    Ok(out)
}

pub(crate) const TRIAL_COLUMNS: &str =
    "t.id, s.name, t.pipeline, t.params, t.seed, t.config_id, t.label, t.status, t.attempts, t.worker, t.error, t.metrics,
     t.resumes, t.resumed_from, t.manifest,
     (SELECT group_concat(mate.trial_id) FROM leases own JOIN leases mate ON mate.pack_id = own.pack_id
       WHERE own.lease_id = t.lease_id)";

pub(crate) fn trial_from_row(r: &Row<'_>) -> Result<TrialInfo> {
    let id: i64 = r.get(0)?;
    let params: String = r.get(3)?;
    let params: BTreeMap<String, ParamValue> = serde_json::from_str(&params)
        .map_err(|e| Error::Corrupt(format!("parameters of trial {id} do not decode: {e}")))?;
    let metrics: Option<String> = r.get(11)?;
    let metrics: BTreeMap<String, f64> = match metrics {
        Some(m) => serde_json::from_str(&m).map_err(|e| Error::Corrupt(format!("metrics of trial {id}: {e}")))?,
        None => BTreeMap::new(),
    };
    Ok(TrialInfo {
        id,
        study: r.get(1)?,
        pipeline: r.get(2)?,
        params,
        seed: r.get::<_, i64>(4)? as u64,
        config_id: r.get(5)?,
        label: r.get(6)?,
        status: r.get(7)?,
        attempts: u32::try_from(r.get::<_, i64>(8)?).unwrap_or(u32::MAX),
        worker: r.get(9)?,
        error: r.get(10)?,
        metrics,
        resumes: u32::try_from(r.get::<_, i64>(12)?).unwrap_or(u32::MAX),
        resumed_from: r.get(13)?,
        manifest: r.get::<_, Option<String>>(14)?.and_then(|m| serde_json::from_str(&m).ok()),
        pack: pack_mates(id, r.get(15)?)?,
    })
}

/// The `group_concat` of the trial ids sharing a trial's latest pack, as sorted ids.
fn pack_mates(id: i64, mates: Option<String>) -> Result<Vec<i64>> {
    let mut ids = mates
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<i64>().map_err(|_| Error::Corrupt(format!("pack of trial {id} names `{s}`"))))
        .collect::<Result<Vec<i64>>>()?;
    ids.sort_unstable();
    Ok(ids)
}

/// A study's trials in id order, optionally only those in `status`.
pub(crate) fn trials(conn: &Connection, study: &str, status: Option<TrialStatus>) -> Result<Vec<TrialInfo>> {
    let study_id: i64 = conn
        .query_row("SELECT id FROM studies WHERE name = ?1", [study], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::StudyNotFound(study.to_string()))?;
    let sql = format!(
        "SELECT {TRIAL_COLUMNS} FROM trials t JOIN studies s ON s.id = t.study_id
          WHERE t.study_id = ?1 AND (?2 IS NULL OR t.status = ?2) ORDER BY t.id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params![study_id, status])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(trial_from_row(r)?);
    }
    Ok(out)
}

pub(crate) fn trial(conn: &Connection, id: i64) -> Result<TrialInfo> {
    let sql = format!("SELECT {TRIAL_COLUMNS} FROM trials t JOIN studies s ON s.id = t.study_id WHERE t.id = ?1");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query([id])?;
    match rows.next()? {
        Some(r) => trial_from_row(r),
        None => Err(Error::TrialNotFound(id)),
    }
}

/// Every point a trial's attempts reported, in the order recorded.
pub(crate) fn curves(conn: &Connection, trial_id: i64) -> Result<Vec<TrialCurvePoint>> {
    let exists: Option<i64> =
        conn.query_row("SELECT id FROM trials WHERE id = ?1", [trial_id], |r| r.get(0)).optional()?;
    if exists.is_none() {
        return Err(Error::TrialNotFound(trial_id));
    }
    let mut stmt = conn.prepare_cached(
        "SELECT attempt, stage, epoch, epochs, train_loss, val_loss, val_accuracy FROM curves
          WHERE trial_id = ?1 ORDER BY id",
    )?;
    let mut rows = stmt.query([trial_id])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(curve_point_from_row(r, 0)?);
    }
    Ok(out)
}

/// A curve point from `attempt, stage, epoch, epochs, train_loss, val_loss, val_accuracy`,
/// starting at column `first`.
fn curve_point_from_row(r: &Row<'_>, first: usize) -> Result<TrialCurvePoint> {
    let count = |i: usize| -> Result<u32> { Ok(u32::try_from(r.get::<_, i64>(first + i)?).unwrap_or(u32::MAX)) };
    Ok(TrialCurvePoint {
        attempt: count(0)?,
        stage: parse_stage(&r.get::<_, String>(first + 1)?)?,
        epoch: count(2)?,
        epochs: count(3)?,
        train_loss: r.get(first + 4)?,
        val_loss: r.get(first + 5)?,
        val_accuracy: r.get(first + 6)?,
    })
}

/// The stored file name and size of a dataset.
pub(crate) fn dataset(conn: &Connection, sha256: &str) -> Result<Option<(String, u64)>> {
    Ok(conn
        .query_row("SELECT file, bytes FROM datasets WHERE sha256 = ?1", [sha256], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64))
        })
        .optional()?)
}

/// A dataset stored earlier from the same source (a synthetic generator setting).
pub(crate) fn dataset_by_source(conn: &Connection, source: &str) -> Result<Option<DatasetRow>> {
    Ok(conn
        .query_row("SELECT sha256, file, bytes, source FROM datasets WHERE source = ?1 LIMIT 1", [source], |r| {
            Ok(DatasetRow {
                sha256: r.get(0)?,
                file: r.get(1)?,
                bytes: r.get::<_, i64>(2)?.max(0) as u64,
                source: r.get(3)?,
            })
        })
        .optional()?)
}

/// Trial counts by study and status, for `/metrics`.
pub(crate) fn status_gauges(conn: &Connection) -> Result<Vec<(String, String, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.name, t.status, COUNT(*) FROM trials t JOIN studies s ON s.id = t.study_id
          GROUP BY t.study_id, t.status ORDER BY s.name, t.status",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A study's rows as the report crate takes them. Curves are those of each trial's latest
/// attempt (the one whose result is stored), in the order recorded; a missing validation
/// accuracy is NaN.
pub(crate) fn report_input(
    conn: &Connection,
    study: &str,
) -> Result<(Vec<decsweep_report::TrialRow>, Vec<decsweep_report::CurvePoint>)> {
    let rows = trials(conn, study, None)?.into_iter().map(decsweep_report::TrialRow::from).collect();
    let mut stmt = conn.prepare_cached(
        "SELECT c.trial_id, c.stage, c.epoch, c.train_loss, c.val_loss, c.val_accuracy
           FROM curves c JOIN trials t ON t.id = c.trial_id JOIN studies s ON s.id = t.study_id
          WHERE s.name = ?1 AND c.attempt = t.attempts ORDER BY c.id",
    )?;
    let points = stmt.query_map([study], |r| {
        Ok(decsweep_report::CurvePoint {
            trial_id: r.get(0)?,
            stage: r.get(1)?,
            epoch: u32::try_from(r.get::<_, i64>(2)?).unwrap_or(u32::MAX),
            train_loss: r.get::<_, Option<f64>>(3)?.unwrap_or(f64::NAN),
            val_loss: r.get::<_, Option<f64>>(4)?.unwrap_or(f64::NAN),
            val_accuracy: r.get::<_, Option<f64>>(5)?.unwrap_or(f64::NAN),
        })
    })?;
    Ok((rows, points.collect::<rusqlite::Result<_>>()?))
}

/// The most trials one [`export_page`] holds.
pub(crate) const EXPORT_MAX_TRIALS: u32 = 1000;

/// One page of a study's [`report_input`] for the wire: its trials with ids above `after`, at
/// most `limit` of them (clamped to 1..=[`EXPORT_MAX_TRIALS`]), in id order, each with the points
/// of its latest attempt in the order recorded; `next_after` is set when more trials follow.
pub(crate) fn export_page(conn: &Connection, study: &str, after: i64, limit: u32) -> Result<StudyExport> {
    let study_id: i64 = conn
        .query_row("SELECT id FROM studies WHERE name = ?1", [study], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::StudyNotFound(study.to_string()))?;
    let limit = limit.clamp(1, EXPORT_MAX_TRIALS);
    let sql = format!(
        "SELECT {TRIAL_COLUMNS} FROM trials t JOIN studies s ON s.id = t.study_id
          WHERE t.study_id = ?1 AND t.id > ?2 ORDER BY t.id LIMIT ?3"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    // One more than the page, to know whether another page follows.
    let mut rows = stmt.query(params![study_id, after, i64::from(limit) + 1])?;
    let mut trials = Vec::new();
    while let Some(r) = rows.next()? {
        trials.push(ExportedTrial { trial: trial_from_row(r)?, curve: Vec::new() });
    }
    let more = trials.len() > limit as usize;
    trials.truncate(limit as usize);
    let Some(last) = trials.last().map(|t| t.trial.id) else {
        return Ok(StudyExport { trials, next_after: None });
    };
    let mut stmt = conn.prepare_cached(
        "SELECT c.trial_id, c.attempt, c.stage, c.epoch, c.epochs, c.train_loss, c.val_loss, c.val_accuracy
           FROM curves c JOIN trials t ON t.id = c.trial_id
          WHERE t.study_id = ?1 AND c.trial_id > ?2 AND c.trial_id <= ?3 AND c.attempt = t.attempts
          ORDER BY c.trial_id, c.id",
    )?;
    let mut rows = stmt.query(params![study_id, after, last])?;
    let mut slot = trials.iter_mut().peekable();
    while let Some(r) = rows.next()? {
        let trial_id: i64 = r.get(0)?;
        // Both lists are in trial id order: walk them together.
        while slot.peek().is_some_and(|t| t.trial.id < trial_id) {
            slot.next();
        }
        match slot.peek_mut() {
            Some(t) if t.trial.id == trial_id => t.curve.push(curve_point_from_row(r, 1)?),
            _ => return Err(Error::Corrupt(format!("curve points of trial {trial_id}, which is not in the page"))),
        }
    }
    Ok(StudyExport { trials, next_after: more.then_some(last) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::tests::{command_study, Fixture};

    #[test]
    fn listings_count_trials_by_status() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 3, 2)).unwrap();
        f.ctx.insert_study(&command_study("b", 2, 2)).unwrap();
        let lease = f.ctx.lease("w").unwrap().0.unwrap();
        f.ctx.complete(&lease.lease_id, &BTreeMap::from([("accuracy".into(), 0.5)])).unwrap();
        f.ctx.lease("w").unwrap();
        let all = studies(&f.ctx.conn).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].counts.completed, all[0].counts.running, all[0].counts.pending), (1, 1, 1));
        assert_eq!(all[1].counts.total(), 2);
        assert_eq!(study(&f.ctx.conn, "a").unwrap().counts, all[0].counts);
        assert!(matches!(study(&f.ctx.conn, "zz"), Err(Error::StudyNotFound(_))));

        let t = trial(&f.ctx.conn, 1).unwrap();
        assert_eq!((t.status, t.worker.as_deref(), t.metrics["accuracy"]), (TrialStatus::Completed, Some("w"), 0.5));
        assert_eq!(t.params["x"], ParamValue::Int(0));
        assert_eq!(trials(&f.ctx.conn, "a", Some(TrialStatus::Pending)).unwrap().len(), 1);
        assert_eq!(trials(&f.ctx.conn, "a", None).unwrap().len(), 3);
        assert!(matches!(trial(&f.ctx.conn, 99), Err(Error::TrialNotFound(99))));

        let gauges = status_gauges(&f.ctx.conn).unwrap();
        assert!(gauges.contains(&("a".into(), "completed".into(), 1)), "{gauges:?}");
    }

    #[test]
    fn report_rows_map_statuses_and_latest_curves() {
        use decsweep_api::wire::EpochProgress;
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 1, 2)).unwrap();
        let p = |epoch, loss| EpochProgress {
            stage: Stage::Finetune,
            epoch,
            epochs: 2,
            train_loss: loss,
            val_loss: loss,
            val_accuracy: None,
        };
        let first = f.ctx.lease("w").unwrap().0.unwrap();
        f.ctx.progress(&first.lease_id, &p(1, 9.0)).unwrap();
        f.ctx.fail(&first.lease_id, "oom", true).unwrap();
        let second = f.ctx.lease("w").unwrap().0.unwrap();
        f.ctx.progress(&second.lease_id, &p(1, 1.0)).unwrap();
        f.ctx.progress(&second.lease_id, &p(2, 0.5)).unwrap();
        f.ctx.complete(&second.lease_id, &BTreeMap::from([("accuracy".into(), 0.9)])).unwrap();

        let (rows, points) = report_input(&f.ctx.conn, "a").unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].status, rows[0].attempts), (decsweep_report::TrialStatus::Completed, 2));
        assert_eq!(points.iter().map(|c| c.train_loss).collect::<Vec<_>>(), [1.0, 0.5], "only the last attempt");
        assert!(points[0].val_accuracy.is_nan());
        let all = curves(&f.ctx.conn, 1).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!((all[0].attempt, all[0].stage, all[0].val_accuracy), (1, Stage::Finetune, None));
    }

    #[test]
    fn export_pages_hold_what_report_input_gives() {
        use decsweep_api::wire::EpochProgress;
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 5, 2)).unwrap();
        f.ctx.insert_study(&command_study("b", 2, 2)).unwrap();
        let p = |epoch: u32| EpochProgress {
            stage: Stage::Finetune,
            epoch,
            epochs: 2,
            train_loss: f64::from(epoch),
            val_loss: 1.0,
            val_accuracy: Some(0.5),
        };
        // Two leases at once, so the curves of trials 1 and 2 interleave; trial 1 fails once.
        let first = f.ctx.lease("w").unwrap().0.unwrap();
        let second = f.ctx.lease("w").unwrap().0.unwrap();
        f.ctx.progress(&first.lease_id, &p(1)).unwrap();
        f.ctx.progress(&second.lease_id, &p(1)).unwrap();
        f.ctx.fail(&first.lease_id, "oom", true).unwrap();
        f.ctx.progress(&second.lease_id, &p(2)).unwrap();
        f.ctx.complete(&second.lease_id, &BTreeMap::from([("accuracy".into(), 0.9)])).unwrap();
        let again = f.ctx.lease("w").unwrap().0.unwrap();
        f.ctx.progress(&again.lease_id, &p(1)).unwrap();

        let mut pages = Vec::new();
        let mut after = 0;
        loop {
            let page = export_page(&f.ctx.conn, "a", after, 2).unwrap();
            assert!(page.trials.len() <= 2);
            pages.push(page.trials.iter().map(|t| t.trial.id).collect::<Vec<_>>());
            match page.next_after {
                Some(next) => after = next,
                None => break,
            }
        }
        assert_eq!(pages, [vec![1, 2], vec![3, 4], vec![5]]);

        let whole = export_page(&f.ctx.conn, "a", 0, 0).unwrap();
        assert_eq!(whole.trials.len(), 1, "a limit of 0 is taken as 1");
        let whole = export_page(&f.ctx.conn, "a", 0, EXPORT_MAX_TRIALS + 1).unwrap();
        assert_eq!(whole.next_after, None);
        let (rows, points) = report_input(&f.ctx.conn, "a").unwrap();
        let ids: Vec<i64> = whole.trials.iter().map(|t| t.trial.id).collect();
        assert_eq!(ids, rows.iter().map(|r| r.id).collect::<Vec<_>>());
        for t in &whole.trials {
            let expected: Vec<(String, u32, f64)> = points
                .iter()
                .filter(|c| c.trial_id == t.trial.id)
                .map(|c| (c.stage.clone(), c.epoch, c.train_loss))
                .collect();
            let got: Vec<(String, u32, f64)> =
                t.curve.iter().map(|c| (c.stage.name().to_string(), c.epoch, c.train_loss.unwrap())).collect();
            assert_eq!(got, expected, "trial {}", t.trial.id);
        }
        assert_eq!(whole.trials[0].curve.len(), 1, "trial 1: only its second attempt's point");
        assert!(matches!(export_page(&f.ctx.conn, "zz", 0, 10), Err(Error::StudyNotFound(_))));
        assert!(export_page(&f.ctx.conn, "b", 0, 10).unwrap().trials.iter().all(|t| t.trial.study == "b"));
    }
}
