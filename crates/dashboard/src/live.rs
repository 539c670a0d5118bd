//! Live updates: each answers what changed after the page's cursor, as HTML fragments keyed by
//! what they replace. Only changed rows travel, so the size of an answer follows the change, not
//! the study.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::error::{PageError, PageResult};
use crate::pages;
use crate::summary;
use crate::App;

#[derive(Debug, Deserialize)]
pub(crate) struct Since {
    since: Option<String>,
    /// The trial ids the page shows, comma-separated.
    ids: Option<String>,
    /// The page's metric and parameter columns, comma-separated.
    metrics: Option<String>,
    params: Option<String>,
    /// The version of the summary tables the page shows (`data-version`), when it shows them:
    /// an answer about changed trials then carries the tables if they are no longer current.
    summary: Option<String>,
}

fn cursor_of(q: &Since) -> Result<i64, PageError> {
    match q.since.as_deref() {
        None => Ok(0),
        Some(s) => s.parse::<i64>().ok().filter(|c| *c >= 0).ok_or_else(|| {
            PageError::bad_request(format!("`since` is a change cursor (a whole number ≥ 0); got `{s}`"))
        }),
    }
}

/// The most trial ids one live update may name: a page shows at most this many rows.
pub(crate) const MAX_LIVE_IDS: usize = crate::query::MAX_PER_PAGE as usize;

/// The most metric and parameter columns one live update may name (each list). Parameters
/// must be the study's own (400 otherwise); metric names the study's latest results no longer
/// have answer `stale`, so the page redraws. A row is then at most a few kilobytes, and an
/// answer at most [`MAX_LIVE_IDS`] rows.
pub(crate) const MAX_LIVE_COLUMNS: usize = 200;

/// A comma-separated list of at most `max` entries (400 naming the limit past it), counted
/// lazily so a huge query is refused without being split into a huge vector.
fn list(text: Option<&str>, what: &str, max: usize) -> Result<Vec<String>, PageError> {
    let mut out = Vec::new();
    for item in text.unwrap_or("").split(',').filter(|s| !s.is_empty()) {
        if out.len() == max {
            return Err(PageError::bad_request(format!(
                "`{what}` lists more than {max} entries; at most {max} are allowed"
            )));
        }
        out.push(item.to_string());
    }
    Ok(out)
}

/// `names` when every one is among `known` (the study's own columns); 400 naming the others.
fn known_columns(names: Vec<String>, known: &[String], what: &str) -> Result<Vec<String>, PageError> {
    let unknown: Vec<&str> = names.iter().filter(|n| !known.contains(n)).map(String::as_str).collect();
    if unknown.is_empty() {
        return Ok(names);
    }
    let shown: Vec<&str> = unknown.iter().take(5).copied().collect();
    let more =
        if unknown.len() > shown.len() { format!(" and {} more", unknown.len() - shown.len()) } else { String::new() };
    Err(PageError::bad_request(format!("`{what}` names columns this study does not have: {}{more}", shown.join(", "))))
}

#[derive(Debug, Serialize)]
pub(crate) struct Patch {
    cursor: i64,
    /// The cursor fell off the change log: reload the page.
    stale: bool,
    /// Replacement HTML by row key.
    rows: BTreeMap<String, String>,
    /// Other fragments by element id.
    parts: BTreeMap<String, String>,
    /// Trials of the study that changed, shown or not.
    changed: u64,
}

pub(crate) async fn studies(State(app): State<App>, Query(q): Query<Since>) -> PageResult<Json<Patch>> {
    let since = cursor_of(&q)?;
    let c = &app.coordinator;
    let (cursor, list) = c.study_overviews(Some(since)).await?;
    let now = c.now_ms();
    let rows = list.iter().map(|o| (o.info.name.clone(), pages::studies::row(o, now).into_string())).collect();
    Ok(Json(Patch { cursor, stale: false, changed: list.len() as u64, rows, parts: BTreeMap::new() }))
}

pub(crate) async fn study(
    State(app): State<App>,
    Path(name): Path<String>,
    Query(q): Query<Since>,
) -> PageResult<Json<Patch>> {
    let since = cursor_of(&q)?;
    let mut ids: Vec<i64> = Vec::new();
    for id in list(q.ids.as_deref(), "ids", MAX_LIVE_IDS)? {
        ids.push(id.parse().map_err(|_| PageError::bad_request(format!("`ids` lists trial ids; got `{id}`")))?);
    }
    // Checked before any work: only the study's own columns, so no answer grows with the query.
    let (metrics, params) = (
        list(q.metrics.as_deref(), "metrics", MAX_LIVE_COLUMNS)?,
        list(q.params.as_deref(), "params", MAX_LIVE_COLUMNS)?,
    );
    let c = &app.coordinator;
    let columns = c.study_columns(&name).await?;
    let param_names: Vec<String> = columns.params.iter().map(|p| p.name.clone()).collect();
    let params = known_columns(params, &param_names, "params")?;
    if metrics.iter().any(|m| !columns.metrics.contains(m)) {
        // The study's metric columns moved on since the page was drawn (they come from its
        // latest results): a stale answer, so the page redraws with the columns it has now.
        let cursor = c.change_cursor().await?;
        return Ok(Json(Patch { cursor, stale: true, changed: 0, rows: BTreeMap::new(), parts: BTreeMap::new() }));
    }
    let changes = c.study_changes(&name, since, ids).await?;
    let mut patch = Patch {
        cursor: changes.cursor,
        stale: changes.stale,
        changed: changes.changed,
        rows: BTreeMap::new(),
        parts: BTreeMap::new(),
    };
    if changes.stale || changes.changed == 0 {
        return Ok(Json(patch));
    }
    let labels = c.config_labels(&name).await?;
    for r in c.trial_rows(changes.trials).await? {
        patch
            .rows
            .insert(r.trial.id.to_string(), pages::study::trial_row(&r, &labels, &params, &metrics).into_string());
    }
    if let Some(o) = c.study_overview(&name).await? {
        patch.parts.insert("counts".into(), pages::study::counts(&o.by_status).into_string());
    }
    // The summary and paired tables, in the same answer as the rows that changed them, so the
    // page never shows a finished trial beside a summary that does not count it yet.
    if let Some(shown) = q.summary.as_deref() {
        let fragment = summary::fragment(c, &app.summaries, &name).await?;
        if fragment.version != shown {
            patch.parts.insert(summary::TABLES_ID.into(), fragment.tables.clone());
        }
    }
    Ok(Json(patch))
}

pub(crate) async fn trial(
    State(app): State<App>,
    Path(raw): Path<String>,
    Query(q): Query<Since>,
) -> PageResult<Json<Patch>> {
    let id = pages::trial::parse_id(&raw)?;
    let since = cursor_of(&q)?;
    let c = &app.coordinator;
    let (cursor, changed) = c.trial_changed(id, since).await?;
    let mut patch =
        Patch { cursor, stale: false, changed: u64::from(changed), rows: BTreeMap::new(), parts: BTreeMap::new() };
    if changed {
        let (detail, curves) = pages::trial::load(c, id).await?;
        patch.parts.insert("trial-live".into(), pages::trial::live_part(&detail, &curves).into_string());
    }
    Ok(Json(patch))
}

pub(crate) async fn workers(State(app): State<App>) -> PageResult<Json<Patch>> {
    let c = &app.coordinator;
    let list = c.workers().await?;
    let ttl_ms = i64::try_from(c.lease_ttl().as_millis()).unwrap_or(i64::MAX);
    let mut parts = BTreeMap::new();
    parts.insert("workers-body".into(), pages::workers::rows(&list, c.now_ms(), ttl_ms).into_string());
    Ok(Json(Patch { cursor: 0, stale: false, changed: list.len() as u64, rows: BTreeMap::new(), parts }))
}
