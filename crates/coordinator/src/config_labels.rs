//! The readable labels of a study's configurations ([`decsweep_api::labels`]), for the
//! dashboard's tables and pages, which show a page of trials but must name each by the rules
//! applied to the study's whole set of configurations.
//!
//! Reading that set scans the study's trials once (one row per configuration kept), so each
//! study's labels are cached until its trials change in number or in their largest id: both
//! come from the `(study_id, status)` index. Only adding trials can add a configuration (a
//! study's trials are never deleted, and a trial's configuration never changes).
//!
//! The labels also order the trial table when it is sorted by configuration
//! ([`trial_page_by_label`]): SQL cannot sort by a name it does not store, so that one order
//! reads every matching trial's id and config id and sorts them here.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use decsweep_api::labels::{label_all, varying, Configuration};
use decsweep_api::ParamValue;
use rusqlite::{params, Connection, OptionalExtension};

use crate::browse::{self, TrialPage, TrialQuery};
use crate::error::{Error, Result};

/// The label of each configuration of one study, by `config_id`, with its place in the
/// study's order of configurations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigLabels {
    by_config: HashMap<String, (usize, String)>,
}

impl ConfigLabels {
    /// The label of configuration `config_id`; the id itself for a configuration the study did
    /// not have when the labels were read (a trial inserted since).
    pub fn of<'a>(&'a self, config_id: &'a str) -> &'a str {
        self.by_config.get(config_id).map_or(config_id, |(_, label)| label.as_str())
    }

    /// Where configuration `config_id` comes when sorted by label: by spec label, pipeline,
    /// then the values of the parameters the labels show (numbers numerically); unknown ones
    /// last.
    pub fn rank(&self, config_id: &str) -> usize {
        self.by_config.get(config_id).map_or(usize::MAX, |(rank, _)| *rank)
    }

    /// Configurations labelled.
    pub fn len(&self) -> usize {
        self.by_config.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_config.is_empty()
    }
}

/// What a study's cached labels were computed at: its trial count and largest trial id.
type Stamp = (i64, i64);

/// Each study's labels, by study id.
#[derive(Debug, Default)]
pub(crate) struct ConfigLabelsCache(Mutex<HashMap<i64, (Stamp, Arc<ConfigLabels>)>>);

/// One configuration as stored: its first trial's pipeline, parameters and spec label.
struct StoredConfig {
    config_id: String,
    pipeline: String,
    params: BTreeMap<String, ParamValue>,
    spec_label: Option<String>,
}

/// The labels of study `study`'s configurations, from the cache while no trial was added.
pub(crate) fn config_labels(conn: &Connection, study: &str, cache: &ConfigLabelsCache) -> Result<Arc<ConfigLabels>> {
    let id: i64 = conn
        .query_row("SELECT id FROM studies WHERE name = ?1", [study], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::StudyNotFound(study.to_string()))?;
    study_labels(conn, id, cache)
}

/// [`config_labels`] of the study with id `id`.
pub(crate) fn study_labels(conn: &Connection, id: i64, cache: &ConfigLabelsCache) -> Result<Arc<ConfigLabels>> {
    let stamp: Stamp = conn
        .prepare_cached("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM trials WHERE study_id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if let Some((seen, labels)) = cache.0.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
        if *seen == stamp {
            return Ok(Arc::clone(labels));
        }
    }
    let stored = stored_configs(conn, id)?;
    let configs: Vec<Configuration> = stored
        .iter()
        .map(|c| Configuration::new(&c.pipeline, &c.config_id, &c.params).with_spec_label(c.spec_label.as_deref()))
        .collect();
    let ranks = ranks(&configs);
    let by_config =
        stored.iter().zip(ranks).zip(label_all(&configs)).map(|((c, r), l)| (c.config_id.clone(), (r, l))).collect();
    let labels = Arc::new(ConfigLabels { by_config });
    cache.0.lock().unwrap_or_else(|p| p.into_inner()).insert(id, (stamp, Arc::clone(&labels)));
    Ok(labels)
}

/// Each configuration's place in label order (see [`ConfigLabels::rank`]).
fn ranks(configs: &[Configuration]) -> Vec<usize> {
    let shown = varying(configs);
    let value_order = |a: &Configuration, b: &Configuration| {
        shown
            .iter()
            .map(|p| match (a.value(p), b.value(p)) {
                (Some(x), Some(y)) => x.cmp_readable(&y),
                (x, y) => x.is_some().cmp(&y.is_some()),
            })
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    };
    let mut order: Vec<usize> = (0..configs.len()).collect();
    order.sort_by(|&i, &j| {
        let (a, b) = (&configs[i], &configs[j]);
        a.spec_label
            .cmp(&b.spec_label)
            .then_with(|| a.pipeline.cmp(b.pipeline))
            .then_with(|| value_order(a, b))
            .then_with(|| a.config_id.cmp(b.config_id))
    });
    let mut ranks = vec![0; configs.len()];
    for (rank, i) in order.into_iter().enumerate() {
        ranks[i] = rank;
    }
    ranks
}

/// One page of a study's trials sorted by configuration label (then id), filtered by status.
pub(crate) fn trial_page_by_label(
    conn: &Connection,
    study_id: i64,
    q: &TrialQuery,
    labels: &ConfigLabels,
) -> Result<TrialPage> {
    let mut stmt =
        conn.prepare_cached("SELECT id, config_id FROM trials WHERE study_id = ?1 AND (?2 IS NULL OR status = ?2)")?;
    let mut keyed: Vec<(usize, i64)> = stmt
        .query_map(params![study_id, q.status], |r| Ok((labels.rank(&r.get::<_, String>(1)?), r.get(0)?)))?
        .collect::<rusqlite::Result<_>>()?;
    keyed.sort_by(|a, b| if q.descending { b.0.cmp(&a.0) } else { a.0.cmp(&b.0) }.then(a.1.cmp(&b.1)));
    let offset = usize::try_from(q.offset).unwrap_or(usize::MAX);
    let limit = usize::try_from(q.limit.min(10_000)).unwrap_or(10_000);
    let ids: Vec<i64> = keyed.iter().skip(offset).take(limit).map(|(_, id)| *id).collect();
    let mut rows = browse::trial_rows(conn, &ids)?;
    let place: HashMap<i64, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    rows.sort_by_key(|r| place.get(&r.trial.id).copied().unwrap_or(usize::MAX));
    Ok(TrialPage { total: keyed.len() as u64, rows })
}

/// Each configuration of a study, as its first trial stores it (a configuration's trials share
/// pipeline, parameters and spec label: they are its seeds).
fn stored_configs(conn: &Connection, study_id: i64) -> Result<Vec<StoredConfig>> {
    let mut stmt = conn.prepare_cached(
        "SELECT config_id, pipeline, params, label FROM trials
          WHERE id IN (SELECT MIN(id) FROM trials WHERE study_id = ?1 GROUP BY config_id)
          ORDER BY id",
    )?;
    let mut rows = stmt.query([study_id])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let config_id: String = r.get(0)?;
        let text: String = r.get(2)?;
        let params = serde_json::from_str(&text)
            .map_err(|e| Error::Corrupt(format!("parameters of configuration {config_id} do not decode: {e}")))?;
        out.push(StoredConfig { pipeline: r.get(1)?, params, spec_label: r.get(3)?, config_id });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::tests::{command_study, Fixture};

    #[test]
    fn labels_name_every_configuration_and_follow_added_trials() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 3, 2)).unwrap();
        let cache = ConfigLabelsCache::default();
        let labels = config_labels(&f.ctx.conn, "a", &cache).unwrap();
        assert_eq!((labels.of("cfg-0"), labels.of("cfg-2"), labels.len()), ("x=0", "x=2", 3));
        assert_eq!(labels.of("cfg-9"), "cfg-9", "an unknown configuration keeps its id");
        assert!(Arc::ptr_eq(&labels, &config_labels(&f.ctx.conn, "a", &cache).unwrap()), "cached");

        // A trial of a new configuration that also sets `y`, which now varies too.
        f.ctx
            .conn
            .execute(
                "INSERT INTO trials (study_id, trial_key, pipeline, job, params, seed, config_id, label, status, created_ms, updated_ms)
                 SELECT study_id, 'key-new', pipeline, job, '{\"x\":0,\"y\":\"b\"}', 0, 'cfg-new', 'Named', status, created_ms, updated_ms
                   FROM trials WHERE config_id = 'cfg-0'",
                [],
            )
            .unwrap();
        let labels = config_labels(&f.ctx.conn, "a", &cache).unwrap();
        assert_eq!(labels.len(), 4);
        assert_eq!(labels.of("cfg-0"), "x=0", "never given y");
        assert_eq!(labels.of("cfg-new"), "Named", "a spec label leads, alone with no namesake");
        assert!(matches!(config_labels(&f.ctx.conn, "zz", &cache), Err(Error::StudyNotFound(_))));
    }

    #[test]
    fn the_table_sorted_by_configuration_follows_label_order() {
        let mut f = Fixture::new();
        // x = 0..11: as text, x=10 and x=11 would come between x=1 and x=2.
        f.ctx.insert_study(&command_study("a", 12, 2)).unwrap();
        let cache = ConfigLabelsCache::default();
        let labels = config_labels(&f.ctx.conn, "a", &cache).unwrap();
        let page = |descending, offset, status: Option<&str>| {
            let q = TrialQuery {
                status: status.map(str::to_string),
                sort: crate::browse::SortKey::Label,
                descending,
                offset,
                limit: 3,
            };
            let p = trial_page_by_label(&f.ctx.conn, 1, &q, &labels).unwrap();
            (p.total, p.rows.iter().map(|r| labels.of(&r.trial.config_id).to_string()).collect::<Vec<_>>())
        };
        assert_eq!(page(false, 0, None), (12, vec!["x=0".into(), "x=1".into(), "x=2".into()]));
        assert_eq!(page(false, 9, None).1, ["x=9", "x=10", "x=11"]);
        assert_eq!(page(true, 0, None).1, ["x=11", "x=10", "x=9"]);
        assert_eq!(page(false, 0, Some("running")), (0, vec![]));
    }
}
