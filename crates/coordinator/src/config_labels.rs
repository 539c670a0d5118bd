//! The readable labels of a study's configurations ([`decsweep_api::labels`]), for the
//! dashboard's tables and pages, which show a page of trials but must name each by the rules
//! applied to the study's whole set of configurations.
//!
//! Reading that set scans the study's trials once (one row per configuration kept), so each
//! study's labels are cached until its trials change in number or in their largest id: both
//! come from the `(study_id, status)` index. Only adding trials can add a configuration (a
//! study's trials are never deleted, and a trial's configuration never changes).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use decsweep_api::labels::{label_all, Configuration};
use decsweep_api::ParamValue;
use rusqlite::{Connection, OptionalExtension};

use crate::error::{Error, Result};

/// The label of each configuration of one study, by `config_id`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigLabels {
    by_config: HashMap<String, String>,
}

impl ConfigLabels {
    /// The label of configuration `config_id`; the id itself for a configuration the study did
    /// not have when the labels were read (a trial inserted since).
    pub fn of<'a>(&'a self, config_id: &'a str) -> &'a str {
        self.by_config.get(config_id).map_or(config_id, String::as_str)
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
    let by_config = stored.iter().map(|c| c.config_id.clone()).zip(label_all(&configs)).collect();
    let labels = Arc::new(ConfigLabels { by_config });
    cache.0.lock().unwrap_or_else(|p| p.into_inner()).insert(id, (stamp, Arc::clone(&labels)));
    Ok(labels)
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
}
