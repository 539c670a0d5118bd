//! Reads for the dashboard (`crates/dashboard`): one page of a study's trials sorted and
//! filtered in SQL, study overviews, a trial's lease history. Each query touches the rows it
//! shows (plus indexed counts), never every trial of a study, so a study of 100,000 trials
//! pages as fast as one of 100.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use decsweep_api::wire::{StudyInfo, TrialInfo};
use decsweep_api::{LeaseOutcome, TrialStatus};
use decsweep_search::space::Dimension;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::config_labels;
use crate::error::{Error, Result};
use crate::read;

/// What a trial table is ordered by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SortKey {
    Id,
    Label,
    Seed,
    Status,
    Attempts,
    Worker,
    /// A parameter by name (numbers sort as numbers).
    Param(String),
    /// A metric by name; trials without it come last.
    Metric(String),
}

/// One page of a study's trial table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrialQuery {
    /// Only trials whose status is this name (a string, so statuses added later filter too).
    pub status: Option<String>,
    pub sort: SortKey,
    pub descending: bool,
    pub offset: u64,
    pub limit: u64,
}

/// Where a running trial is: its latest reported epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageProgress {
    pub stage: String,
    pub epoch: u32,
    pub epochs: u32,
}

/// A row of the trial table.
#[derive(Clone, Debug, PartialEq)]
pub struct TrialRowView {
    pub trial: TrialInfo,
    /// The latest epoch of the current attempt (running trials only).
    pub progress: Option<StageProgress>,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TrialPage {
    /// Trials matching the filter (all pages).
    pub total: u64,
    pub rows: Vec<TrialRowView>,
}

/// A swept parameter of a study.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweptParam {
    pub name: String,
    /// The spec draws it on a log scale (`loguniform`, `int` with `log`).
    pub log: bool,
}

/// What the columns of a study's tables are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StudyColumns {
    /// Parameters of `[space]` and those `[[configs]]` set, in the spec's order.
    pub params: Vec<SweptParam>,
    /// Metric names of the study's most recent results, sorted.
    pub metrics: Vec<String>,
    /// The spec's sampler learns from results (TPE) or draws points (random): a search.
    pub sampler: String,
}

/// A study on the dashboard's front page.
#[derive(Clone, Debug, PartialEq)]
pub struct StudyOverview {
    pub info: StudyInfo,
    /// Trials by status name, every status present in the store (so `cancelled` too).
    pub by_status: BTreeMap<String, u64>,
    /// The best configuration's mean objective over its completed seeds: the number the
    /// report's tables and parallel coordinates call "best", not one lucky seed's.
    pub best_config_mean: Option<f64>,
    /// When its first trial was leased and when its latest one ended (Unix ms).
    pub first_started_ms: Option<i64>,
    pub last_finished_ms: Option<i64>,
}

/// One lease of a trial, as its history shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaseView {
    pub lease_id: String,
    pub attempt: u32,
    pub worker: String,
    pub granted_ms: i64,
    pub ended_ms: Option<i64>,
    /// `None` while active.
    pub outcome: Option<LeaseOutcome>,
}

/// A trial with its history.
#[derive(Clone, Debug, PartialEq)]
pub struct TrialDetail {
    pub row: TrialRowView,
    pub created_ms: i64,
    pub leases: Vec<LeaseView>,
}

/// One epoch of a trial for the study's intermediate-values plot.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochValue {
    pub trial_id: i64,
    pub status: TrialStatus,
    pub epoch: u32,
    pub val_accuracy: f64,
}

/// A JSON path to a top-level key, refusing names SQLite's JSON paths cannot quote.
fn json_key(name: &str, what: &str) -> Result<String> {
    if name.is_empty() || name.contains('"') || name.contains('\\') {
        return Err(Error::BadRequest(format!("cannot sort by {what} `{name}`")));
    }
    Ok(format!("$.\"{name}\""))
}

fn study_id(conn: &Connection, name: &str) -> Result<i64> {
    conn.query_row("SELECT id FROM studies WHERE name = ?1", [name], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::StudyNotFound(name.to_string()))
}

/// `read::trial_from_row`'s columns (0–15), then the times.
fn row_columns() -> String {
    format!("{}, t.started_ms, t.finished_ms", read::TRIAL_COLUMNS)
}

/// The latest epoch of a trial's attempt.
fn latest_epoch(conn: &Connection, trial_id: i64, attempt: u32) -> Result<Option<StageProgress>> {
    Ok(conn
        .prepare_cached(
            "SELECT stage, epoch, epochs FROM curves WHERE trial_id = ?1 AND attempt = ?2 ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![trial_id, attempt], |r| {
            Ok(StageProgress {
                stage: r.get(0)?,
                epoch: u32::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                epochs: u32::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
            })
        })
        .optional()?)
}

fn row_view(conn: &Connection, r: &rusqlite::Row<'_>) -> Result<TrialRowView> {
    let trial = read::trial_from_row(r)?;
    let progress =
        if trial.status == TrialStatus::Running { latest_epoch(conn, trial.id, trial.attempts)? } else { None };
    Ok(TrialRowView { progress, started_ms: r.get(16)?, finished_ms: r.get(17)?, trial })
}

/// One page of a study's trials.
/// One page of a study's trials; sorted by label through the study's cached configuration
/// labels (see [`crate::config_labels`]).
pub(crate) fn trial_page(
    conn: &Connection,
    study: &str,
    q: &TrialQuery,
    labels: &config_labels::ConfigLabelsCache,
) -> Result<TrialPage> {
    let id = study_id(conn, study)?;
    let total: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM trials WHERE study_id = ?1 AND (?2 IS NULL OR status = ?2)")?
        .query_row(params![id, q.status], |r| r.get(0))?;
    let dir = if q.descending { "DESC" } else { "ASC" };
    // Every order ends with the id so pages never overlap or skip rows.
    let (order, key): (String, Option<String>) = match &q.sort {
        SortKey::Id => (format!("t.id {dir}"), None),
        SortKey::Label => {
            let labels = config_labels::study_labels(conn, id, labels)?;
            return config_labels::trial_page_by_label(conn, id, q, &labels);
        }
        SortKey::Seed => (format!("t.seed {dir}, t.id"), None),
        SortKey::Status => (format!("t.status {dir}, t.id"), None),
        SortKey::Attempts => (format!("t.attempts {dir}, t.id"), None),
        SortKey::Worker => (format!("t.worker IS NULL, t.worker {dir}, t.id"), None),
        SortKey::Param(name) => (
            format!("json_extract(t.params, ?5) IS NULL, json_extract(t.params, ?5) {dir}, t.id"),
            Some(json_key(name, "parameter")?),
        ),
        SortKey::Metric(name) => (
            format!("json_extract(t.metrics, ?5) IS NULL, json_extract(t.metrics, ?5) {dir}, t.id"),
            Some(json_key(name, "metric")?),
        ),
    };
    let sql = format!(
        "SELECT {} FROM trials t JOIN studies s ON s.id = t.study_id
          WHERE t.study_id = ?1 AND (?2 IS NULL OR t.status = ?2)
          ORDER BY {order} LIMIT ?3 OFFSET ?4",
        row_columns()
    );
    let limit = i64::try_from(q.limit.min(10_000)).unwrap_or(10_000);
    let offset = i64::try_from(q.offset).map_err(|_| Error::BadRequest("offset is too large".into()))?;
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = match &key {
        Some(k) => stmt.query(params![id, q.status, limit, offset, k])?,
        None => stmt.query(params![id, q.status, limit, offset])?,
    };
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(row_view(conn, r)?);
    }
    Ok(TrialPage { total: total.max(0) as u64, rows: out })
}

/// The given trials of a study (those of them that exist), in id order.
pub(crate) fn trial_rows(conn: &Connection, ids: &[i64]) -> Result<Vec<TrialRowView>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; ids.len()].join(",");
    let sql = format!(
        "SELECT {} FROM trials t JOIN studies s ON s.id = t.study_id WHERE t.id IN ({marks}) ORDER BY t.id",
        row_columns()
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(params_from_iter(ids))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(row_view(conn, r)?);
    }
    Ok(out)
}

/// What a study's spec says for its columns: the swept parameters and the sampler's name.
#[derive(Clone, Debug)]
pub(crate) struct SpecColumns {
    params: Vec<SweptParam>,
    sampler: String,
}

/// [`SpecColumns`] by study id. A study's spec never changes once stored, and parsing it plans and
/// checks every trial (seconds for a 100,000-point grid), so each is parsed once per process.
#[derive(Debug, Default)]
pub(crate) struct SpecColumnsCache(std::sync::Mutex<HashMap<i64, Arc<SpecColumns>>>);

impl SpecColumnsCache {
    fn get(&self, conn: &Connection, id: i64) -> Result<Arc<SpecColumns>> {
        if let Some(hit) = self.0.lock().expect("spec columns cache").get(&id) {
            return Ok(Arc::clone(hit));
        }
        let (text, path): (String, String) =
            conn.query_row("SELECT spec, spec_path FROM studies WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let parsed = Arc::new(spec_columns(&text, &path));
        self.0.lock().expect("spec columns cache").insert(id, Arc::clone(&parsed));
        Ok(parsed)
    }
}

fn spec_columns(text: &str, path: &str) -> SpecColumns {
    let options = decsweep_search::LoadOptions { check_dataset: false };
    let mut params: Vec<SweptParam> = Vec::new();
    let mut sampler = String::from("grid");
    if let Ok(spec) = decsweep_search::SweepSpec::from_source(text, path, &options) {
        sampler = format!("{:?}", spec.sampler_spec().kind).to_lowercase();
        for (name, dim) in &spec.space().dims {
            let log = matches!(dim, Dimension::LogUniform { .. } | Dimension::Int { log: true, .. });
            params.push(SweptParam { name: name.clone(), log });
        }
        for config in spec.configs() {
            for (name, _) in &config.params {
                if !params.iter().any(|p| &p.name == name) {
                    params.push(SweptParam { name: name.clone(), log: false });
                }
            }
        }
    }
    SpecColumns { params, sampler }
}

/// The swept parameters (from the stored spec) and the metric names of recent results.
pub(crate) fn study_columns(conn: &Connection, study: &str, cache: &SpecColumnsCache) -> Result<StudyColumns> {
    let id: i64 = conn
        .query_row("SELECT id FROM studies WHERE name = ?1", [study], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::StudyNotFound(study.to_string()))?;
    let spec = cache.get(conn, id)?;
    // The latest results name the metrics; scanning every trial's JSON would cost O(study).
    let mut metrics = BTreeSet::new();
    let mut stmt = conn.prepare_cached(
        "SELECT metrics FROM trials WHERE study_id = ?1 AND metrics IS NOT NULL ORDER BY id DESC LIMIT 200",
    )?;
    let mut rows = stmt.query([id])?;
    while let Some(r) = rows.next()? {
        let text: String = r.get(0)?;
        if let Ok(m) = serde_json::from_str::<BTreeMap<String, f64>>(&text) {
            metrics.extend(m.into_keys());
        }
    }
    Ok(StudyColumns {
        params: spec.params.clone(),
        metrics: metrics.into_iter().collect(),
        sampler: spec.sampler.clone(),
    })
}

/// Every study with its counts by status, best objective and timing.
///
/// An overview scans the study's trials (the best objective parses every result's JSON: a few
/// hundred milliseconds at 100,000 trials), so each is kept with the study's latest change
/// (`changes.seq`) and recomputed only after the study changed.
pub(crate) fn overviews(
    conn: &Connection,
    only: Option<&[i64]>,
    cache: &OverviewCache,
) -> Result<Vec<(i64, StudyOverview)>> {
    let mut out = Vec::new();
    let mut stmt = conn.prepare_cached("SELECT id, name FROM studies ORDER BY id")?;
    let studies: Vec<(i64, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
    for (id, name) in studies {
        if only.is_some_and(|ids| !ids.contains(&id)) {
            continue;
        }
        let stamp: i64 = conn
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM changes WHERE study_id = ?1")?
            .query_row([id], |r| r.get(0))?;
        if let Some((seen, overview)) = cache.0.lock().expect("overview cache").get(&id) {
            if *seen == stamp {
                out.push((id, overview.clone()));
                continue;
            }
        }
        let overview = overview(conn, id, &name)?;
        cache.0.lock().expect("overview cache").insert(id, (stamp, overview.clone()));
        out.push((id, overview));
    }
    Ok(out)
}

/// Each study's last overview and the change it was computed at.
#[derive(Debug, Default)]
pub(crate) struct OverviewCache(std::sync::Mutex<HashMap<i64, (i64, StudyOverview)>>);

fn overview(conn: &Connection, id: i64, name: &str) -> Result<StudyOverview> {
    let info = read::study(conn, name)?;
    let mut by_status = BTreeMap::new();
    let mut stmt = conn.prepare_cached("SELECT status, COUNT(*) FROM trials WHERE study_id = ?1 GROUP BY status")?;
    let mut rows = stmt.query([id])?;
    while let Some(r) = rows.next()? {
        by_status.insert(r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64);
    }
    let key = json_key(&info.objective_metric, "metric").ok();
    let aggregate = if info.maximize { "MAX" } else { "MIN" };
    // A configuration is (pipeline, config_id), as in the report's grouping; AVG skips trials
    // that lack the metric, as the report leaves out missing values.
    let best_config_mean: Option<f64> = match key {
        Some(key) => conn
            .prepare_cached(&format!(
                "SELECT {aggregate}(mean) FROM (SELECT AVG(json_extract(metrics, ?2)) AS mean FROM trials \
                 WHERE study_id = ?1 AND status = ?3 GROUP BY pipeline, config_id)"
            ))?
            .query_row(params![id, key, TrialStatus::Completed], |r| r.get::<_, Option<f64>>(0))?,
        None => None,
    };
    let (first_started_ms, last_finished_ms) = conn
        .prepare_cached("SELECT MIN(started_ms), MAX(finished_ms) FROM trials WHERE study_id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(StudyOverview { info, by_status, best_config_mean, first_started_ms, last_finished_ms })
}

/// A trial with its leases.
pub(crate) fn trial_detail(conn: &Connection, trial_id: i64) -> Result<TrialDetail> {
    let row = trial_rows(conn, &[trial_id])?.pop().ok_or(Error::TrialNotFound(trial_id))?;
    let created_ms: i64 = conn.query_row("SELECT created_ms FROM trials WHERE id = ?1", [trial_id], |r| r.get(0))?;
    let mut stmt = conn.prepare_cached(
        "SELECT lease_id, attempt, worker, granted_ms, ended_ms, outcome FROM leases
          WHERE trial_id = ?1 ORDER BY granted_ms, attempt",
    )?;
    let leases = stmt
        .query_map([trial_id], |r| {
            Ok(LeaseView {
                lease_id: r.get(0)?,
                attempt: u32::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                worker: r.get(2)?,
                granted_ms: r.get(3)?,
                ended_ms: r.get(4)?,
                outcome: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(TrialDetail { row, created_ms, leases })
}

/// Per-epoch validation accuracy of the latest `max_trials` trials of a study that reported
/// epochs (current attempts only), on one stage: the classifier's when there is one.
pub(crate) fn epoch_values(conn: &Connection, study: &str, max_trials: u64) -> Result<Vec<EpochValue>> {
    let id = study_id(conn, study)?;
    let mut stmt = conn.prepare_cached(
        "SELECT c.trial_id, t.status, c.stage, c.epoch, c.val_accuracy FROM curves c JOIN trials t ON t.id = c.trial_id
          WHERE t.id IN (SELECT id FROM trials WHERE study_id = ?1 AND attempts > 0 ORDER BY id DESC LIMIT ?2)
            AND c.attempt = t.attempts AND c.val_accuracy IS NOT NULL
          ORDER BY c.trial_id, c.id",
    )?;
    let mut rows = stmt.query(params![id, i64::try_from(max_trials).unwrap_or(i64::MAX)])?;
    let mut by_stage: BTreeMap<String, Vec<EpochValue>> = BTreeMap::new();
    while let Some(r) = rows.next()? {
        by_stage.entry(r.get(2)?).or_default().push(EpochValue {
            trial_id: r.get(0)?,
            status: r.get(1)?,
            epoch: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
            val_accuracy: r.get(4)?,
        });
    }
    // The classifier's epochs decide pruning; other stages only when it has none.
    let stage = ["finetune", "classifier"].into_iter().find(|s| by_stage.contains_key(*s)).map(str::to_string);
    let stage = stage.or_else(|| by_stage.iter().max_by_key(|(_, v)| v.len()).map(|(k, _)| k.clone()));
    Ok(stage.and_then(|s| by_stage.remove(&s)).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ops::tests::{command_study, Fixture};

    fn query(sort: SortKey, descending: bool, status: Option<&str>) -> TrialQuery {
        TrialQuery { status: status.map(str::to_string), sort, descending, offset: 0, limit: 2 }
    }

    #[test]
    fn pages_sort_and_filter_in_sql() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 5, 2)).unwrap();
        for acc in [0.3, 0.9, 0.5] {
            let lease = f.ctx.lease("w").unwrap().0.unwrap();
            f.ctx.complete(&lease.lease_id, &BTreeMap::from([("accuracy".into(), acc)])).unwrap();
        }
        f.ctx.lease("w").unwrap();
        let ids = |p: TrialPage| p.rows.iter().map(|r| r.trial.id).collect::<Vec<_>>();
        let labels = config_labels::ConfigLabelsCache::default();

        let by_acc =
            trial_page(&f.ctx.conn, "a", &query(SortKey::Metric("accuracy".into()), true, None), &labels).unwrap();
        assert_eq!(by_acc.total, 5);
        assert_eq!(ids(by_acc), [2, 3], "best first");
        let mut last = query(SortKey::Metric("accuracy".into()), false, None);
        last.offset = 2;
        assert_eq!(ids(trial_page(&f.ctx.conn, "a", &last, &labels).unwrap()), [2, 4], "then those without it");

        let running = trial_page(&f.ctx.conn, "a", &query(SortKey::Id, false, Some("running")), &labels).unwrap();
        assert_eq!((running.total, running.rows[0].trial.id), (1, 4));
        let by_x = trial_page(&f.ctx.conn, "a", &query(SortKey::Param("x".into()), true, None), &labels).unwrap();
        assert_eq!(ids(by_x), [5, 4]);
        assert!(matches!(
            trial_page(&f.ctx.conn, "a", &query(SortKey::Metric("a\"b".into()), true, None), &labels),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(
            trial_page(&f.ctx.conn, "zz", &query(SortKey::Id, true, None), &labels),
            Err(Error::StudyNotFound(_))
        ));
    }

    #[test]
    fn the_best_is_a_configurations_mean_over_seeds_not_one_seed() {
        let mut f = Fixture::new();
        let mut study = command_study("b", 4, 2);
        // Two configurations of two seeds each: trials 1 and 2 are cfg-0, 3 and 4 are cfg-2.
        study.trials[1].config_id = "cfg-0".into();
        study.trials[3].config_id = "cfg-2".into();
        f.ctx.insert_study(&study).unwrap();
        // cfg-0 scores 0.9 and 0.5 (mean 0.7), cfg-2 0.8 and 0.8 (mean 0.8); the best single
        // trial (0.9) is not the best configuration.
        for acc in [0.9, 0.5, 0.8, 0.8] {
            let lease = f.ctx.lease("w").unwrap().0.unwrap();
            f.ctx.complete(&lease.lease_id, &BTreeMap::from([("accuracy".into(), acc)])).unwrap();
        }
        let o = &overviews(&f.ctx.conn, None, &OverviewCache::default()).unwrap()[0].1;
        assert!((o.best_config_mean.unwrap() - 0.8).abs() < 1e-12, "{:?}", o.best_config_mean);
    }

    #[test]
    fn overviews_count_every_status_and_find_the_best() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 3, 2)).unwrap();
        for acc in [0.3, 0.9] {
            let lease = f.ctx.lease("w").unwrap().0.unwrap();
            f.ctx.complete(&lease.lease_id, &BTreeMap::from([("accuracy".into(), acc)])).unwrap();
        }
        let cache = OverviewCache::default();
        let all = overviews(&f.ctx.conn, None, &cache).unwrap();
        let o = &all[0].1;
        assert_eq!(o.by_status, BTreeMap::from([("completed".into(), 2), ("pending".into(), 1)]));
        assert_eq!(o.best_config_mean, Some(0.9), "one seed per configuration: its value");
        assert!(o.first_started_ms.is_some() && o.last_finished_ms.is_some());
        assert!(overviews(&f.ctx.conn, Some(&[99]), &cache).unwrap().is_empty());
        assert_eq!(overviews(&f.ctx.conn, None, &cache).unwrap()[0].1, *o, "unchanged: served from the cache");
        // A change to the study makes the cached overview stale.
        let lease = f.ctx.lease("w").unwrap().0.unwrap();
        f.ctx.complete(&lease.lease_id, &BTreeMap::from([("accuracy".into(), 0.95)])).unwrap();
        let again = &overviews(&f.ctx.conn, None, &cache).unwrap()[0].1;
        assert_eq!((again.best_config_mean, again.by_status.get("completed")), (Some(0.95), Some(&3)));

        let detail = trial_detail(&f.ctx.conn, 1).unwrap();
        assert_eq!(detail.leases.len(), 1);
        assert_eq!(detail.leases[0].outcome, Some(LeaseOutcome::Completed));
        assert!(matches!(trial_detail(&f.ctx.conn, 42), Err(Error::TrialNotFound(42))));
        let cols = study_columns(&f.ctx.conn, "a", &SpecColumnsCache::default()).unwrap();
        assert_eq!(cols.metrics, ["accuracy"]);
    }
}
