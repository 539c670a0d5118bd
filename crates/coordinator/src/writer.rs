//! The writer's handle: its connection, clock and TTL, the pruners, and caches of rows that never
//! change. Its verbs live by who calls them: [`crate::ops`] (studies and trials enter the store),
//! [`crate::leases`] (a worker's calls on its lease), [`crate::control`] (the user's controls)
//! and [`crate::adaptive`] (asking a study's sampler for points). Each runs inside a transaction
//! its caller opened (the writer thread wraps each request in a savepoint of a batch transaction,
//! see [`crate::store`]); none commits.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use decsweep_api::wire::DatasetRef;
use decsweep_search::{LoadOptions, SweepSpec};
use rusqlite::{Connection, OptionalExtension};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::pruner::Pruner;

/// What the writer keeps between requests: its connection and caches of immutable rows.
pub(crate) struct WriteCtx {
    pub(crate) conn: Connection,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ttl_ms: i64,
    /// The pruner of studies whose spec has no `[pruner]`.
    pub(crate) pruner: Arc<dyn Pruner>,
    /// Use [`WriteCtx::pruner`] for every study, whatever its spec says.
    pub(crate) pruner_override: bool,
    /// Studies never change after creation, so the lease path reads them from here.
    studies: HashMap<i64, Arc<StudyMeta>>,
    /// Adaptive studies whose sampler has proposed its last point.
    pub(crate) exhausted: HashSet<i64>,
}

/// The parts of a study the lease path needs.
#[derive(Debug)]
pub(crate) struct StudyMeta {
    pub(crate) name: String,
    pub(crate) retries: u32,
    pub(crate) dataset: DatasetRef,
    pub(crate) objective_metric: String,
    pub(crate) maximize: bool,
    /// The stored spec, parsed again (dataset not checked); `None` if it no longer parses (a
    /// spec stored by another decsweep version): then the study has no spec pruner and no
    /// sampler to ask.
    pub(crate) spec: Option<Arc<SweepSpec>>,
    /// The pruner of the spec's `[pruner]`.
    pub(crate) pruner: Option<Arc<dyn Pruner>>,
}

/// A count column as `u32`; a value out of range (never written) reads as `u32::MAX`.
pub(crate) fn u32_col(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}
impl WriteCtx {
    pub(crate) fn new(conn: Connection, clock: Arc<dyn Clock>, ttl_ms: i64, pruner: Arc<dyn Pruner>) -> Self {
        WriteCtx {
            conn,
            clock,
            ttl_ms: ttl_ms.max(1),
            pruner,
            pruner_override: false,
            studies: HashMap::new(),
            exhausted: HashSet::new(),
        }
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Drops cached study rows (after a rollback, a cached row may not exist).
    pub(crate) fn forget_cached_studies(&mut self) {
        self.studies.clear();
        self.exhausted.clear();
    }

    pub(crate) fn study_meta(&mut self, study_id: i64) -> Result<Arc<StudyMeta>> {
        if let Some(m) = self.studies.get(&study_id) {
            return Ok(m.clone());
        }
        let meta = self
            .conn
            .query_row(
                "SELECT s.name, s.retries, s.objective_metric, s.objective_direction, d.sha256, d.bytes,
                        s.spec, s.spec_path, d.source
                   FROM studies s JOIN datasets d ON d.sha256 = s.dataset_sha256 WHERE s.id = ?1",
                [study_id],
                |r| {
                    Ok((
                        StudyMeta {
                            name: r.get(0)?,
                            retries: u32_col(r.get(1)?),
                            objective_metric: r.get(2)?,
                            maximize: r.get::<_, String>(3)? != "minimize",
                            dataset: DatasetRef {
                                sha256: r.get(4)?,
                                bytes: r.get::<_, i64>(5)?.max(0) as u64,
                                source: Some(r.get(8)?),
                            },
                            spec: None,
                            pruner: None,
                        },
                        r.get::<_, String>(6)?,
                        r.get::<_, String>(7)?,
                    ))
                },
            )
            .optional()?
            .ok_or_else(|| Error::Corrupt(format!("a trial names study {study_id}, which does not exist")))?;
        let (mut meta, text, path) = meta;
        match SweepSpec::from_source(&text, &path, &LoadOptions { check_dataset: false }) {
            Ok(spec) => {
                meta.pruner = spec.pruner().map(crate::pruner::from_spec);
                meta.spec = Some(Arc::new(spec));
            }
            Err(e) => {
                tracing::warn!(study = %meta.name, error = %e, "the stored spec does not parse; no spec pruner or sampler")
            }
        }
        let meta = Arc::new(meta);
        self.studies.insert(study_id, meta.clone());
        Ok(meta)
    }
}
