//! `/studies/{name}`: the trial table (sorted, filtered, paginated in SQL) and, loaded after
//! it, the summary, paired comparisons and plots (`/studies/{name}/summary`).

use std::collections::BTreeMap;

use axum::extract::{Extension, Path, Query, State};
use axum::response::Html;
use decsweep_api::ParamValue;
use decsweep_coordinator::{ConfigLabels, StudyColumns, TrialRowView};
use maud::{html, Markup};

use crate::error::{PageError, PageResult};
use crate::format::num;
use crate::layout::{self, Viewer};
use crate::query::{encode, TableParams, STATUSES};
use crate::summary;
use crate::App;

/// A parameter value as the table shows it.
pub(crate) fn param_text(v: &ParamValue) -> String {
    match v {
        ParamValue::Int(i) => i.to_string(),
        ParamValue::Float(f) => num(*f),
        ParamValue::Str(s) => s.clone(),
    }
}

/// One row of the trial table (also what a live update sends). `params` and `metrics` are the
/// page's columns, so a patched row always lines up with its header. The configuration is
/// named by its label, its id in the tooltip.
pub(crate) fn trial_row(r: &TrialRowView, labels: &ConfigLabels, params: &[String], metrics: &[String]) -> Markup {
    let t = &r.trial;
    let status = t.status.name();
    html! {
        tr id={ "trial-" (t.id) } data-trial=(t.id) data-status=(status) {
            td { a href={ "/trials/" (t.id) } { (t.id) } }
            td.label data-config=(t.config_id) title={ "config " (t.config_id) } { (labels.of(&t.config_id)) }
            td.num { (t.seed) }
            td { (layout::status(status)) }
            td.num { (t.attempts) }
            td.small { (t.worker.as_deref().unwrap_or("")) }
            td.small.progress-cell {
                @if let Some(p) = &r.progress { (p.stage) " " (p.epoch) "/" (p.epochs) }
            }
            @for p in params { td.num { (t.params.get(p).map(param_text).unwrap_or_default()) } }
            @for m in metrics { td.num data-metric=(m) { (t.metrics.get(m).copied().map(num).unwrap_or_default()) } }
        }
    }
}

/// The counts by status above the table (also sent by live updates).
pub(crate) fn counts(by_status: &BTreeMap<String, u64>) -> Markup {
    html! {
        @for s in STATUSES {
            span.count { (layout::status(s)) " " span data-count=(s) { (by_status.get(s).copied().unwrap_or(0)) } }
        }
    }
}

fn sort_header(name: &str, key: &str, study: &str, p: &TableParams) -> Markup {
    let active = p.sort == key;
    let descending = if active { !p.descending } else { !matches!(key, "id" | "label" | "seed" | "worker") };
    let href = p.href(study, |q| {
        q.sort = key.to_string();
        q.descending = descending;
        q.page = 1;
    });
    let arrow = match (active, p.descending) {
        (true, true) => " ▼",
        (true, false) => " ▲",
        _ => "",
    };
    html! { th { a.sort data-sort=(key) href=(href) { (name) (arrow) } } }
}

pub(crate) async fn page(
    State(app): State<App>,
    Extension(viewer): Extension<Viewer>,
    Path(name): Path<String>,
    Query(raw): Query<BTreeMap<String, String>>,
) -> PageResult<Html<String>> {
    let c = &app.coordinator;
    let info = c.study(&name).await.map_err(|e| match e {
        decsweep_coordinator::Error::StudyNotFound(_) => {
            PageError::not_found(format!("There is no study named `{name}`."))
        }
        e => e.into(),
    })?;
    let columns: StudyColumns = c.study_columns(&name).await?;
    let p = TableParams::parse(&raw, &columns)?;
    let cursor = c.change_cursor().await?;
    let page = c.trial_page(&name, p.query(&columns)?).await?;
    let labels = c.config_labels(&name).await?;
    let overview = c.study_overview(&name).await?;
    let by_status = overview.as_ref().map(|o| o.by_status.clone()).unwrap_or_default();
    let params: Vec<String> = columns.params.iter().map(|p| p.name.clone()).collect();
    let pages = page.total.div_ceil(p.per_page).max(1);
    let first = (p.page - 1) * p.per_page;
    let body = html! {
        h1 { "Study " span #study-name { (name) } }
        p.small {
            "objective: " (info.objective_metric) (if info.maximize { " (maximise)" } else { " (minimise)" })
            " · sampler: " (columns.sampler) " · created " (info.created_at)
            @if let Some(best) = overview.as_ref().and_then(|o| o.best_config_mean) {
                " · best configuration (mean over seeds) " strong #best { (num(best)) }
            }
        }
        div #counts { (counts(&by_status)) }
        @if viewer.can_act {
            div.actions {
                button #cancel-study data-action={ "/v1/studies/" (encode(&name)) "/cancel" } data-body="{}"
                    data-confirm={ "Cancel study " (name) "? Pending trials are cancelled and running ones stopped." } { "Cancel study" }
                // Only where there is something to resume: cancelled trials.
                @if by_status.get("cancelled").is_some_and(|&n| n > 0) {
                    button #resume-study data-action={ "/v1/studies/" (encode(&name)) "/resume" } data-body="{}"
                        title="Cancelled trials go back in the queue" { "Resume study" }
                }
                button #retry-failed data-action={ "/v1/studies/" (encode(&name)) "/retry" } data-body="{\"trial_id\":null}" { "Retry failed trials" }
                span #action-result {}
            }
        }
        div.filters {
            "status: "
            a.filter.on[p.status.is_none()] data-status="" href=(p.href(&name, |q| { q.status = None; q.page = 1; })) { "all" }
            @for s in STATUSES {
                " " a.filter.on[p.status.as_deref() == Some(s)] data-status=(s)
                    href=(p.href(&name, |q| { q.status = Some(s.to_string()); q.page = 1; })) { (s) }
            }
        }
        p.small #row-range {
            @if page.total == 0 { "no trials" } @else {
                "trials " (first + 1) "–" (first + page.rows.len() as u64) " of " span #total { (page.total) }
            }
            " · page " (p.page) " of " (pages)
            @if p.page > 1 { " · " a #prev-page href=(p.href(&name, |q| q.page -= 1)) { "previous" } }
            @if p.page < pages { " · " a #next-page href=(p.href(&name, |q| q.page += 1)) { "next" } }
            span #live-note {}
        }
        div.scroll {
            table #trials data-live={ "/live/studies/" (encode(&name)) } data-cursor=(cursor)
                data-metrics=(columns.metrics.join(",")) data-params=(params.join(",")) {
                thead { tr {
                    (sort_header("id", "id", &name, &p))
                    (sort_header("config", "label", &name, &p))
                    (sort_header("seed", "seed", &name, &p))
                    (sort_header("status", "status", &name, &p))
                    (sort_header("attempts", "attempts", &name, &p))
                    (sort_header("worker", "worker", &name, &p))
                    th { "stage / epoch" }
                    @for sp in &columns.params {
                        (sort_header(&if sp.log { format!("{} (log)", sp.name) } else { sp.name.clone() }, &format!("param:{}", sp.name), &name, &p))
                    }
                    @for m in &columns.metrics { (sort_header(m, &format!("metric:{m}"), &name, &p)) }
                } }
                tbody { @for r in &page.rows { (trial_row(r, &labels, &params, &columns.metrics)) } }
            }
        }
        div #summary data-src={ "/studies/" (encode(&name)) "/summary" } { p.small { "Loading the summary…" } }
    };
    Ok(Html(layout::page(&format!("Study {name}"), Some(viewer), body).into_string()))
}

/// The summary, paired comparisons and plots, as an HTML fragment.
pub(crate) async fn summary_fragment(State(app): State<App>, Path(name): Path<String>) -> PageResult<Html<String>> {
    let fragment = summary::fragment(&app.coordinator, &app.summaries, &name).await?;
    Ok(Html(fragment.html()))
}
