//! `/workers`: every worker process the coordinator has seen; stopped and quiet ones are marked.

use axum::extract::{Extension, State};
use axum::response::Html;
use decsweep_coordinator::WorkerInfo;
use maud::{html, Markup};

use crate::error::PageResult;
use crate::format::{duration_ms, time_ms};
use crate::layout::{self, Viewer};
use crate::App;

/// A worker is quiet when nothing was heard from it for longer than this many lease TTLs
/// (idle workers ask for work every 2 s, busy ones heartbeat every third of a TTL).
const QUIET_TTLS: i64 = 1;

/// The table body (also what a live update sends).
pub(crate) fn rows(workers: &[WorkerInfo], now_ms: i64, ttl_ms: i64) -> Markup {
    html! {
        @for w in workers {
            @let silent = now_ms - w.last_seen_ms;
            // A goodbye (a clean exit) says more than silence does.
            @let stopped = w.stopped_ms.is_some();
            @let quiet = !stopped && silent > ttl_ms * QUIET_TTLS;
            tr.worker.quiet[quiet].stopped[stopped] data-worker=(w.name) {
                td.mono { (w.name) }
                td { (w.host) }
                td.num { (w.slots) }
                td { (w.device) }
                td { (time_ms(w.last_seen_ms)) span.small { " (" (duration_ms(silent)) " ago)" } }
                td {
                    @if stopped { span.status.stopped-mark { "stopped" } }
                    @else if quiet { span.status.s-failed.quiet-mark { "quiet" } }
                    @else if w.running.is_empty() { "idle" }
                    @else {
                        // Trials trained together first, as one pack each, then the lone ones.
                        @for pack in &w.packs {
                            span.pack title="trained together as one pack" {
                                "pack " @for (i, id) in pack.iter().enumerate() {
                                    @if i > 0 { "+" } a href={ "/trials/" (id) } { (id) }
                                }
                            } " "
                        }
                        @for id in w.running.iter().filter(|id| !w.packs.iter().any(|p| p.contains(id))) {
                            a href={ "/trials/" (id) } { (id) } " "
                        }
                    }
                }
            }
        }
    }
}

pub(crate) async fn page(State(app): State<App>, Extension(viewer): Extension<Viewer>) -> PageResult<Html<String>> {
    let c = &app.coordinator;
    let workers = c.workers().await?;
    let ttl_ms = i64::try_from(c.lease_ttl().as_millis()).unwrap_or(i64::MAX);
    let body = html! {
        h1 { "Workers" }
        p.small { "A worker is stopped when it said goodbye on a clean exit, and marked quiet when nothing was heard \
                   from it for longer than the lease TTL (it was killed, lost its network, or is hung)." }
        table #workers.summary data-live="/live/workers" {
            thead { tr { th { "name" } th { "host" } th { "slots" } th { "device" } th { "last heard" } th { "running trials" } } }
            tbody #workers-body { (rows(&workers, c.now_ms(), ttl_ms)) }
        }
    };
    Ok(Html(layout::page("Workers", Some(viewer), body).into_string()))
}
