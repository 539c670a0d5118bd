//! `/`: every study with its state, counts by status, progress, ETA and the best configuration's
//! mean objective over its seeds.

use axum::extract::{Extension, State};
use axum::response::Html;
use decsweep_coordinator::StudyOverview;
use maud::{html, Markup};

use crate::error::PageResult;
use crate::format::{duration_ms, num};
use crate::layout::{self, Viewer};
use crate::query::{encode, STATUSES};
use crate::App;

/// What a study is doing, in one word.
fn state(o: &StudyOverview) -> &'static str {
    let n = |s: &str| o.by_status.get(s).copied().unwrap_or(0);
    let total: u64 = o.by_status.values().sum();
    let planned = o.info.planned.unwrap_or(total).max(total);
    if n("running") > 0 {
        "running"
    } else if n("pending") > 0 || total < planned {
        if n("cancelled") > 0 {
            "cancelling"
        } else {
            "waiting"
        }
    } else if total == 0 {
        "empty"
    } else if n("cancelled") > 0 {
        "cancelled"
    } else {
        "finished"
    }
}

/// One row of the studies table (also what a live update sends).
pub(crate) fn row(o: &StudyOverview, now_ms: i64) -> Markup {
    let n = |s: &str| o.by_status.get(s).copied().unwrap_or(0);
    let total: u64 = o.by_status.values().sum();
    let planned = o.info.planned.unwrap_or(total).max(total);
    let done = n("completed") + n("failed") + n("pruned") + n("cancelled");
    let fraction = if planned > 0 { done as f64 / planned as f64 } else { 0.0 };
    // Remaining trials at the pace so far (finished trials per wall-clock time since the first lease).
    let eta = match o.first_started_ms {
        Some(start) if done > 0 && done < planned && now_ms > start => {
            Some(duration_ms(((now_ms - start) as f64 / done as f64 * (planned - done) as f64) as i64))
        }
        _ => None,
    };
    let name = &o.info.name;
    html! {
        tr.study data-key=(name) {
            td { a href={ "/studies/" (encode(name)) } { (name) } }
            td { (layout::status(state(o))) }
            @for s in STATUSES { td.num data-count=(s) { (n(s)) } }
            td {
                // An SVG rectangle, not a styled div: the content security policy allows no
                // inline style, and an SVG `width` is an attribute.
                svg.progress viewBox="0 0 100 1" preserveAspectRatio="none" role="img" {
                    title { (done) " of " (planned) }
                    rect.bar width=(format!("{:.1}", fraction * 100.0)) height="1" {}
                }
                span.small { (done) "/" (planned) }
            }
            td { (eta.unwrap_or_else(|| "–".into())) }
            td.num { (o.best_config_mean.map(num).unwrap_or_else(|| "–".into())) span.small { " " (o.info.objective_metric) } }
            td.small { (o.info.created_at) }
        }
    }
}

pub(crate) async fn page(State(app): State<App>, Extension(viewer): Extension<Viewer>) -> PageResult<Html<String>> {
    let c = &app.coordinator;
    let (cursor, studies) = c.study_overviews(None).await?;
    let now = c.now_ms();
    let body = html! {
        h1 { "Studies" }
        @if studies.is_empty() {
            p { "No study yet. Submit one with " code { "decsweep submit SPEC" } " or start " code { "decsweep run SPEC" } "." }
        }
        div.scroll {
            table #studies data-live="/live/studies" data-cursor=(cursor) {
                thead { tr {
                    th { "study" } th { "state" }
                    @for s in STATUSES { th { (s) } }
                    th { "progress" } th { "ETA" } th title="the best configuration's mean objective over its completed seeds" { "best config (mean)" } th { "created" }
                } }
                tbody { @for o in &studies { (row(o, now)) } }
            }
        }
    };
    Ok(Html(layout::page("Studies", Some(viewer), body).into_string()))
}
