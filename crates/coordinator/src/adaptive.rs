//! Adaptive studies: trials planned as the spec's sampler proposes them.
//!
//! A study whose sampler learns from results ([`SweepSpec::is_adaptive`]: TPE) starts with no
//! trials. Whenever it has **no pending trial** and fewer than `n_trials` points — at creation,
//! before every lease, after every completion, failure or prune of one of its trials, and after
//! expiry fails one — the writer rebuilds the sampler from the stored spec
//! ([`SweepSpec::sampler`]: the sampler keeps no state) and asks it for one point with:
//!
//! - `history`: every *finished* point (none of its trials pending or running), in the order the
//!   points were proposed. Its value is the mean of the objective metric over the point's
//!   **completed** trials (its seeds, and every configuration the point was crossed with);
//!   pruned and failed trials are left out. A point with no completed trial but a pruned one is
//!   a *pruned* observation (`pruned_at`: the furthest epoch its pruned trials reached; `value`:
//!   the mean of their last values), which TPE ranks below every completed point; a point whose
//!   trials all failed has `value: None` (a failed observation, which TPE leaves out).
//! - `pending`: every other point, in proposal order.
//!
//! The proposal becomes one trial per seed (and configuration) through
//! [`SweepSpec::trials_for_point`]; each row keeps the point as JSON in `trials.point`, which is
//! how history is rebuilt. Every ask runs in the writer's transaction, one at a time, so two
//! workers never race for a point, and the same sequence of results gives the same points
//! (the TPE sampler's random stream is a function of its seed and the number of points so far).
//!
//! "One point at a time, only when none is pending" keeps the sampler as informed as possible
//! and never lets a point's seeds wait behind another point's; with W workers and S seeds about
//! ⌈W / S⌉ points run at once. If the sampler proposes a point the study already has (possible
//! in a small discrete space), it is asked again with that point added to `pending` (which TPE
//! avoids), up to 8 times; if it still has nothing new (or returns `None`, e.g. because the extra
//! pending points reach `n_trials`), the study stops proposing and ends with fewer than
//! `n_trials` points, logged as a warning. A cancelled study (`studies.cancelled_ms`, set by
//! `cancel`) proposes nothing more, even if `retry` or `add-seeds` queue trials again later.
//!
//! [`SweepSpec::is_adaptive`]: decsweep_search::SweepSpec::is_adaptive
//! [`SweepSpec::sampler`]: decsweep_search::SweepSpec::sampler
//! [`SweepSpec::trials_for_point`]: decsweep_search::SweepSpec::trials_for_point

use std::collections::BTreeMap;

use decsweep_api::TrialStatus;
use decsweep_search::{Observation, Point};
use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::writer::WriteCtx;

/// How many times one top-up asks again after proposals of points the study already has.
const MAX_REPEATS: usize = 8;

/// A study's points so far, in proposal order.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Points {
    /// Finished points with their values.
    pub(crate) history: Vec<Observation>,
    /// Points with a pending or running trial.
    pub(crate) pending: Vec<Point>,
    /// Their JSON keys, to recognise a repeated proposal.
    pub(crate) keys: Vec<String>,
    /// Whether some trial of the study is pending.
    pub(crate) any_pending: bool,
}

impl Points {
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

/// The JSON a point is stored as (keys sorted: a `BTreeMap`).
pub(crate) fn point_key(point: &Point) -> Result<String> {
    serde_json::to_string(point).map_err(|e| Error::Internal(format!("cannot encode a sampled point: {e}")))
}

/// Rebuilds a study's history and pending points from its trials.
pub(crate) fn points(conn: &Connection, study_id: i64, metric: &str) -> Result<Points> {
    struct Acc {
        point: Point,
        open: bool,
        sum: f64,
        n: u32,
        /// Over the pruned trials: furthest step, sum and count of the last values.
        pruned_step: Option<u32>,
        pruned_sum: f64,
        pruned_n: u32,
    }
    let mut stmt = conn.prepare_cached(
        "SELECT point, status, metrics FROM trials WHERE study_id = ?1 AND point IS NOT NULL ORDER BY id",
    )?;
    let mut rows = stmt.query([study_id])?;
    let mut order: Vec<String> = Vec::new();
    let mut acc: BTreeMap<String, Acc> = BTreeMap::new();
    let mut any_pending = false;
    while let Some(r) = rows.next()? {
        let key: String = r.get(0)?;
        let status: TrialStatus = r.get(1)?;
        let metrics: Option<String> = r.get(2)?;
        if !acc.contains_key(&key) {
            let point: Point = serde_json::from_str(&key)
                .map_err(|e| Error::Corrupt(format!("a stored point of study {study_id} does not decode: {e}")))?;
            order.push(key.clone());
            acc.insert(
                key.clone(),
                Acc { point, open: false, sum: 0.0, n: 0, pruned_step: None, pruned_sum: 0.0, pruned_n: 0 },
            );
        }
        let a = acc.get_mut(&key).expect("inserted above");
        match status {
            TrialStatus::Pending => {
                a.open = true;
                any_pending = true;
            }
            TrialStatus::Running => a.open = true,
            TrialStatus::Completed | TrialStatus::Pruned => {
                let metrics = metrics.as_deref().and_then(|m| serde_json::from_str::<BTreeMap<String, f64>>(m).ok());
                let value = metrics.as_ref().and_then(|m| m.get(metric).copied()).filter(|v| v.is_finite());
                if status == TrialStatus::Completed {
                    if let Some(v) = value {
                        a.sum += v;
                        a.n += 1;
                    }
                } else {
                    let step = metrics.as_ref().and_then(|m| m.get("pruned_epoch")).map_or(0, |e| *e as u32);
                    a.pruned_step = Some(a.pruned_step.map_or(step, |s| s.max(step)));
                    if let Some(v) = value {
                        a.pruned_sum += v;
                        a.pruned_n += 1;
                    }
                }
            }
            TrialStatus::Failed | TrialStatus::Cancelled => {}
        }
    }
    let mut out = Points { any_pending, ..Points::default() };
    for key in order {
        let a = acc.remove(&key).expect("every key was inserted");
        if a.open {
            out.pending.push(a.point);
        } else {
            let mean = |sum: f64, n: u32| (n > 0).then(|| sum / f64::from(n));
            out.history.push(match (a.n, a.pruned_step) {
                (0, Some(step)) => {
                    Observation { point: a.point, value: mean(a.pruned_sum, a.pruned_n), pruned_at: Some(step) }
                }
                _ => Observation { point: a.point, value: mean(a.sum, a.n), pruned_at: None },
            });
        }
        out.keys.push(key);
    }
    Ok(out)
}

impl WriteCtx {
    /// Tops up every adaptive study (see the module docs).
    pub(crate) fn top_up_all(&mut self) -> Result<usize> {
        let ids: Vec<i64> = {
            let mut stmt = self.conn.prepare_cached("SELECT id FROM studies WHERE adaptive = 1 ORDER BY id")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut n = 0;
        for id in ids {
            if !self.exhausted.contains(&id) {
                n += self.top_up_quietly(id);
            }
        }
        Ok(n)
    }

    /// [`WriteCtx::top_up`] in a savepoint of its own: a failure is logged and undone, and never
    /// undoes the request that triggered it (a completion must not be lost to a sampler error).
    pub(crate) fn top_up_quietly(&mut self, study_id: i64) -> usize {
        if self.exhausted.contains(&study_id) {
            return 0;
        }
        if let Err(e) = self.conn.execute_batch("SAVEPOINT top_up") {
            tracing::error!(study_id, error = %e, "could not start a savepoint to sample a point");
            return 0;
        }
        match self.top_up(study_id) {
            Ok(n) => {
                if let Err(e) = self.conn.execute_batch("RELEASE top_up") {
                    tracing::error!(study_id, error = %e, "could not release the sampling savepoint");
                }
                n
            }
            Err(e) => {
                tracing::error!(study_id, error = %e, "sampling the next point failed; trying again at the next lease");
                let _ = self.conn.execute_batch("ROLLBACK TO top_up; RELEASE top_up");
                0
            }
        }
    }

    /// Asks the study's sampler for one more point when it has no pending trial and fewer than
    /// `n_trials` points; returns the number of trials inserted.
    pub(crate) fn top_up(&mut self, study_id: i64) -> Result<usize> {
        if self.exhausted.contains(&study_id) {
            return Ok(0);
        }
        let meta = self.study_meta(study_id)?;
        let Some(spec) = meta.spec.clone().filter(|s| s.is_adaptive()) else {
            return Ok(0);
        };
        // A cancelled study proposes nothing more (read here, not cached: `cancel` sets it).
        let cancelled: bool = self
            .conn
            .prepare_cached("SELECT cancelled_ms IS NOT NULL FROM studies WHERE id = ?1")?
            .query_row([study_id], |r| r.get(0))?;
        if cancelled {
            self.exhausted.insert(study_id);
            return Ok(0);
        }
        let pending: bool = self
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM trials WHERE study_id = ?1 AND status = ?2)")?
            .query_row(rusqlite::params![study_id, TrialStatus::Pending], |r| r.get(0))?;
        if pending {
            return Ok(0);
        }
        let points = points(&self.conn, study_id, &meta.objective_metric)?;
        let wanted = usize::try_from(spec.sampler_spec().n_trials.unwrap_or(0)).unwrap_or(usize::MAX);
        if points.len() >= wanted {
            self.exhausted.insert(study_id);
            return Ok(0);
        }
        let mut sampler = spec.sampler();
        // A proposal equal to a point the study already has (TPE may re-propose a finished point
        // in a small discrete space) is asked again with that point counted as pending, which the
        // sampler avoids; still deterministic, since the same state repeats the same asks.
        let mut pending = points.pending.clone();
        let mut found = None;
        for _ in 0..MAX_REPEATS {
            let Some(point) = sampler.ask(&points.history, &pending) else { break };
            let key = point_key(&point)?;
            if !points.keys.contains(&key) {
                found = Some((point, key));
                break;
            }
            tracing::debug!(study = %meta.name, %key, "the sampler proposed a point the study already has; asking again");
            pending.push(point);
        }
        let Some((point, key)) = found else {
            tracing::warn!(study = %meta.name, points = points.len(), "the sampler proposes no new point; the study ends here");
            self.exhausted.insert(study_id);
            return Ok(0);
        };
        let plans = spec
            .trials_for_point(&point)
            .map_err(|e| Error::Internal(format!("the sampler's point {key} cannot be planned: {e}")))?;
        let now = self.clock.now_ms();
        let mut inserted = 0;
        for plan in &plans {
            inserted += self.insert_trial(study_id, &crate::study::trial_row(plan)?, now, Some(&key))?;
        }
        if inserted == 0 {
            tracing::warn!(study = %meta.name, %key, "the sampler's point plans only existing trials; it proposes no more");
            self.exhausted.insert(study_id);
        } else {
            tracing::info!(study = %meta.name, point = points.len() + 1, trials = inserted, %key, "sampled a point");
        }
        Ok(inserted)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use decsweep_api::ParamValue;
    use rusqlite::params;

    use super::*;
    use crate::ops::tests::{command_study, Fixture};
    use crate::ops::{DatasetRow, Inserted};

    const TPE: &str = r#"
[study]
name = "tpe"
dataset = { synthetic = { seed = 1, n = 8 } }
pipelines = ["command"]
seeds = [0, 1]
[command]
program = ["python3", "f.py"]
[space]
x = { uniform = [0.0, 1.0] }
[sampler]
kind = "tpe"
n_trials = 2
"#;

    fn tpe_study(f: &mut Fixture) {
        study_from(f, TPE);
    }

    /// Inserts the adaptive study `text` over a stand-in dataset.
    pub(crate) fn study_from(f: &mut Fixture, text: &str) {
        let req = decsweep_api::wire::CreateStudy::new(text, "tpe.toml");
        let spec = crate::study::parse(&req, &Default::default()).unwrap();
        let dataset =
            DatasetRow { sha256: "ab".repeat(32), file: "x.safetensors".into(), bytes: 3, source: "test".into() };
        let new = crate::study::new_study(&req, &spec, dataset).unwrap();
        assert!(new.adaptive && new.trials.is_empty());
        assert_eq!(f.ctx.insert_study(&new).unwrap(), Inserted::Created);
    }

    fn count(f: &Fixture) -> i64 {
        f.ctx.conn.query_row("SELECT COUNT(*) FROM trials", [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn a_space_with_fewer_points_than_n_trials_ends_early() {
        let mut f = Fixture::new();
        let text = TPE.replace("uniform = [0.0, 1.0]", "choice = [1, 2]").replace("n_trials = 2", "n_trials = 3");
        study_from(&mut f, &text);
        while let Some(l) = f.ctx.lease("w").unwrap().0 {
            f.ctx.complete(&l.lease_id, &BTreeMap::from([("accuracy".into(), 0.5)])).unwrap();
        }
        assert_eq!(count(&f), 4, "both points, both seeds; no third point exists");
        assert!(f.ctx.exhausted.contains(&1));
        let p = points(&f.ctx.conn, 1, "accuracy").unwrap();
        assert_eq!(p.history.len(), 2);
        assert_ne!(p.history[0].point, p.history[1].point);
    }

    #[test]
    fn failures_also_make_room_for_the_next_point_until_n_trials() {
        let mut f = Fixture::new();
        tpe_study(&mut f);
        assert_eq!(count(&f), 2, "the first point at creation, once per seed");
        let a = f.ctx.lease("w").unwrap().0.unwrap();
        let b = f.ctx.lease("w").unwrap().0.unwrap();
        assert_eq!(count(&f), 2, "while seed 1 was pending, leasing it sampled nothing");
        let _held = f.ctx.lease("w").unwrap().0.expect("with both seeds running, a lease samples point 2");
        assert_eq!(count(&f), 4);
        f.ctx.fail(&a.lease_id, "bad", false).unwrap();
        f.ctx.fail(&b.lease_id, "bad", false).unwrap();
        let p = points(&f.ctx.conn, 1, "accuracy").unwrap();
        assert_eq!(p.history.len(), 1);
        assert_eq!(p.history[0].value, None, "every seed failed: a failed observation");
        assert_eq!(p.pending.len(), 1);
        // n_trials = 2: once point 2's seeds are done nothing more is sampled.
        let c = f.ctx.lease("w").unwrap().0.unwrap();
        f.ctx.complete(&c.lease_id, &BTreeMap::from([("accuracy".into(), 0.5)])).unwrap();
        assert!(f.ctx.lease("w").unwrap().0.is_none(), "point 2's seed 0 is still running; nothing pending");
        assert_eq!(count(&f), 4);
        assert!(f.ctx.exhausted.contains(&1));
    }

    fn point(x: f64) -> Point {
        BTreeMap::from([("x".to_string(), ParamValue::Float(x))])
    }

    /// Trial `id` belongs to point `x` with `status` and, if given, score `v` (a pruned trial
    /// stopped at epoch 7).
    fn set(f: &Fixture, id: i64, x: f64, status: &str, v: Option<f64>) {
        let pruned = if status == "pruned" { ",\"pruned_epoch\":7.0" } else { "" };
        let metrics = v.map(|v| format!("{{\"score\":{v},\"other\":1.0{pruned}}}"));
        f.ctx
            .conn
            .execute(
                "UPDATE trials SET point = ?2, status = ?3, metrics = ?4 WHERE id = ?1",
                params![id, point_key(&point(x)).unwrap(), status, metrics],
            )
            .unwrap();
    }

    #[test]
    fn history_is_the_mean_over_completed_seeds_in_proposal_order() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("s", 10, 2)).unwrap();
        // Point 0.5: two completed seeds → mean. Point 0.1: one completed, one pruned → the
        // completed one. Point 0.9: failed and pruned → pruned. Point 0.2: one running →
        // pending. Point 0.7: failed only → None.
        set(&f, 1, 0.5, "completed", Some(1.0));
        set(&f, 2, 0.1, "completed", Some(4.0));
        set(&f, 3, 0.5, "completed", Some(2.0));
        set(&f, 4, 0.1, "pruned", Some(0.0));
        set(&f, 5, 0.9, "failed", None);
        set(&f, 6, 0.9, "pruned", Some(3.0));
        set(&f, 10, 0.7, "failed", None);
        set(&f, 7, 0.2, "completed", Some(5.0));
        set(&f, 8, 0.2, "running", None);
        // Trial 9 has no point (not planned by a sampler) and is pending: it does not count.
        let p = points(&f.ctx.conn, 1, "score").unwrap();
        assert_eq!(
            p.history,
            [
                Observation { point: point(0.5), value: Some(1.5), pruned_at: None },
                Observation { point: point(0.1), value: Some(4.0), pruned_at: None },
                Observation { point: point(0.9), value: Some(3.0), pruned_at: Some(7) },
                Observation { point: point(0.7), value: None, pruned_at: None },
            ]
        );
        assert_eq!(p.pending, [point(0.2)]);
        assert_eq!(p.len(), 5);
        assert!(!p.any_pending, "trial 9 has no point; the running one is not pending");
        set(&f, 9, 0.3, "pending", None);
        let p = points(&f.ctx.conn, 1, "score").unwrap();
        assert!(p.any_pending);
        assert_eq!(p.pending, [point(0.2), point(0.3)]);
    }
}
