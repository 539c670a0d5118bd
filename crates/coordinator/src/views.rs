//! The dashboard's reads: change cursors, overviews, trial pages and details (queries in
//! `src/browse.rs` and `src/changes.rs`), and the caches that keep them cheap.
//!
//! The caches stay beside the queries, not in the dashboard: an overview is reused only while
//! the study's change cursor, read in the same read transaction, has not moved, and only the
//! core holds that transaction. The dashboard keeps its own rendered-HTML caches.

use std::sync::Arc;

use crate::browse::{self, EpochValue, StudyColumns, StudyOverview, TrialDetail, TrialPage, TrialQuery, TrialRowView};
use crate::changes::{self, StudyChanges};
use crate::config_labels::{self, ConfigLabels};
use crate::{Coordinator, Error, Result};

/// The dashboard reads' caches, one set per coordinator.
#[derive(Debug, Default)]
pub(crate) struct Caches {
    /// Each study's spec-derived dashboard columns, parsed once.
    spec_columns: browse::SpecColumnsCache,
    /// Each study's dashboard overview, recomputed only after the study changed.
    overviews: browse::OverviewCache,
    /// Each study's configuration labels, recomputed only after trials were added.
    config_labels: config_labels::ConfigLabelsCache,
}

impl Coordinator {
    /// The newest change's cursor (see [`StudyChanges`]).
    pub async fn change_cursor(&self) -> Result<i64> {
        self.inner.store.read(changes::cursor).await
    }

    /// What changed in a study after `since`, among the trials `among`.
    pub async fn study_changes(&self, study: &str, since: i64, among: Vec<i64>) -> Result<StudyChanges> {
        let study = study.to_string();
        self.inner
            .store
            .read(move |c| {
                let id: i64 = c
                    .query_row("SELECT id FROM studies WHERE name = ?1", [&study], |r| r.get(0))
                    .map_err(|_| Error::StudyNotFound(study.clone()))?;
                changes::study_changes(c, id, since, &among)
            })
            .await
    }

    /// Overviews of the studies changed after `since` (all of them when the cursor is stale or
    /// `since` is `None`), and the cursor now.
    pub async fn study_overviews(&self, since: Option<i64>) -> Result<(i64, Vec<StudyOverview>)> {
        let inner = Arc::clone(&self.inner);
        self.inner
            .store
            .read(move |c| {
                let (cursor, only) = match since {
                    Some(since) => changes::changed_studies(c, since)?,
                    None => (changes::cursor(c)?, None),
                };
                let list = browse::overviews(c, only.as_deref(), &inner.views.overviews)?;
                Ok((cursor, list.into_iter().map(|(_, o)| o).collect()))
            })
            .await
    }

    /// One study's overview; `None` when there is no such study.
    pub async fn study_overview(&self, name: &str) -> Result<Option<StudyOverview>> {
        let name = name.to_string();
        let inner = Arc::clone(&self.inner);
        self.inner
            .store
            .read(move |c| {
                let id: Option<i64> = rusqlite::OptionalExtension::optional(c.query_row(
                    "SELECT id FROM studies WHERE name = ?1",
                    [&name],
                    |r| r.get(0),
                ))?;
                let Some(id) = id else { return Ok(None) };
                Ok(browse::overviews(c, Some(&[id]), &inner.views.overviews)?.pop().map(|(_, o)| o))
            })
            .await
    }

    /// Whether a trial changed after `since`, and the cursor now.
    pub async fn trial_changed(&self, trial_id: i64, since: i64) -> Result<(i64, bool)> {
        self.inner.store.read(move |c| changes::trial_changed(c, trial_id, since)).await
    }

    /// One page of a study's trials, sorted and filtered in SQL.
    pub async fn trial_page(&self, study: &str, query: TrialQuery) -> Result<TrialPage> {
        let study = study.to_string();
        let inner = Arc::clone(&self.inner);
        self.inner.store.read(move |c| browse::trial_page(c, &study, &query, &inner.views.config_labels)).await
    }

    /// The given trials as table rows.
    pub async fn trial_rows(&self, ids: Vec<i64>) -> Result<Vec<TrialRowView>> {
        self.inner.store.read(move |c| browse::trial_rows(c, &ids)).await
    }

    /// A study's swept parameters and metric names.
    pub async fn study_columns(&self, study: &str) -> Result<StudyColumns> {
        let study = study.to_string();
        let inner = Arc::clone(&self.inner);
        self.inner.store.read(move |c| browse::study_columns(c, &study, &inner.views.spec_columns)).await
    }

    /// The readable label of each of the study's configurations ([`decsweep_api::labels`]).
    pub async fn config_labels(&self, study: &str) -> Result<Arc<ConfigLabels>> {
        let study = study.to_string();
        let inner = Arc::clone(&self.inner);
        self.inner.store.read(move |c| config_labels::config_labels(c, &study, &inner.views.config_labels)).await
    }

    /// A trial with its lease history.
    pub async fn trial_detail(&self, trial_id: i64) -> Result<TrialDetail> {
        self.inner.store.read(move |c| browse::trial_detail(c, trial_id)).await
    }

    /// Per-epoch validation accuracy of a study's latest `max_trials` trials.
    pub async fn epoch_values(&self, study: &str, max_trials: u64) -> Result<Vec<EpochValue>> {
        let study = study.to_string();
        self.inner.store.read(move |c| browse::epoch_values(c, &study, max_trials)).await
    }
}
