//! Live updates: each answers what changed after the page's cursor, as HTML fragments keyed by
//! what they replace. Only changed rows travel, so the size of an answer follows the change, not
//! the study.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::error::{PageError, PageResult};
use crate::pages;
use crate::App;

#[derive(Debug, Deserialize)]
pub(crate) struct Since {
    since: Option<String>,
    /// The trial ids the page shows, comma-separated.
    ids: Option<String>,
    /// The page's metric and parameter columns, comma-separated.
    metrics: Option<String>,
    params: Option<String>,
}

fn cursor_of(q: &Since) -> Result<i64, PageError> {
    match q.since.as_deref() {
        None => Ok(0),
        Some(s) => s.parse::<i64>().ok().filter(|c| *c >= 0).ok_or_else(|| {
            PageError::bad_request(format!("`since` is a change cursor (a whole number ≥ 0); got `{s}`"))
        }),
    }
}

fn list(text: Option<&str>) -> Vec<String> {
    text.unwrap_or("").split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
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
    let ids: Vec<i64> = list(q.ids.as_deref()).iter().filter_map(|s| s.parse().ok()).take(1_000).collect();
    let c = &app.coordinator;
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
    let (metrics, params) = (list(q.metrics.as_deref()), list(q.params.as_deref()));
    for r in c.trial_rows(changes.trials).await? {
        patch.rows.insert(r.trial.id.to_string(), pages::study::trial_row(&r, &params, &metrics).into_string());
    }
    if let Some(o) = c.study_overview(&name).await? {
        patch.parts.insert("counts".into(), pages::study::counts(&o.by_status).into_string());
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
