//! `/trials/{id}`: parameters, lease history, per-stage curves, metrics and error text. The
//! part that changes while the trial runs (`#trial-live`) is redrawn by live updates.

use std::collections::BTreeMap;

use axum::extract::{Extension, Path, State};
use axum::response::Html;
use decsweep_api::wire::TrialCurvePoint;
use decsweep_coordinator::{Coordinator, TrialDetail};
use maud::{html, Markup, PreEscaped};

use crate::error::{PageError, PageResult};
use crate::format::{num, time_ms};
use crate::layout::{self, Viewer};
use crate::pages::study::param_text;
use crate::query::encode;
use crate::App;
use decsweep_report::charts::{self, LineSeries, Marker};
use decsweep_report::svg::PALETTE;

/// The trial id of a path segment, or a 400 saying what was expected.
pub(crate) fn parse_id(text: &str) -> Result<i64, PageError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| PageError::bad_request(format!("a trial id is a positive whole number; got `{text}`")))
}

pub(crate) async fn load(c: &Coordinator, id: i64) -> Result<(TrialDetail, Vec<TrialCurvePoint>), PageError> {
    let detail = c.trial_detail(id).await.map_err(|e| match e {
        decsweep_coordinator::Error::TrialNotFound(_) => PageError::not_found(format!("There is no trial {id}.")),
        e => e.into(),
    })?;
    let curves = c.curves(id).await?;
    Ok((detail, curves))
}

/// One chart per stage of the latest attempt: losses, and validation accuracy when reported.
fn curve_charts(curves: &[TrialCurvePoint]) -> Markup {
    let attempt = curves.iter().map(|p| p.attempt).max().unwrap_or(0);
    let mut stages: Vec<(String, Vec<&TrialCurvePoint>)> = Vec::new();
    for p in curves.iter().filter(|p| p.attempt == attempt) {
        let stage = p.stage.to_string();
        match stages.iter_mut().find(|(s, _)| *s == stage) {
            Some((_, v)) => v.push(p),
            None => stages.push((stage, vec![p])),
        }
    }
    let series = |name: &str, color: &'static str, dashed: bool, pts: Vec<(f64, f64)>| LineSeries {
        name: name.into(),
        color,
        dashed,
        points: pts,
        end: Marker::None,
        faint: false,
        legend: true,
    };
    html! {
        @if stages.is_empty() { p.small #no-curves { "No epoch reported yet." } }
        div.plots {
            @for (stage, points) in &stages {
                @let xs = |f: fn(&TrialCurvePoint) -> Option<f64>| points.iter().filter_map(|p| f(p).map(|v| (f64::from(p.epoch), v))).collect::<Vec<_>>();
                @let loss = charts::line_chart(
                    "chart curve-loss", &format!("{stage}: loss (attempt {attempt})"), "epoch", "loss",
                    &[series("train", PALETTE[0], false, xs(|p| p.train_loss)), series("validation", PALETTE[1], true, xs(|p| p.val_loss))],
                    false,
                );
                @let acc = charts::line_chart(
                    "chart curve-accuracy", &format!("{stage}: validation accuracy"), "epoch", "accuracy",
                    &[series("validation", PALETTE[2], false, xs(|p| p.val_accuracy))],
                    false,
                );
                figure.curve data-stage=(stage) data-epochs=(points.len()) {
                    @if let Some(svg) = loss { (PreEscaped(svg)) }
                    @if let Some(svg) = acc { (PreEscaped(svg)) }
                    figcaption.small { (stage) ": " (points.len()) " epoch(s)" }
                }
            }
        }
    }
}

/// `#trial-live`'s contents.
pub(crate) fn live_part(detail: &TrialDetail, curves: &[TrialCurvePoint]) -> Markup {
    let r = &detail.row;
    let t = &r.trial;
    html! {
        p {
            "status " span #trial-status data-status=(t.status.name()) { (layout::status(t.status.name())) }
            " · attempt " (t.attempts)
            @if let Some(w) = &t.worker { " · worker " span.mono { (w) } }
            @if !t.pack.is_empty() {
                " · " span #trial-pack title="trials trained together as one stacked model in the latest lease" {
                    "pack " @for (i, id) in t.pack.iter().enumerate() {
                        @if i > 0 { "+" } @if *id == t.id { (id) } @else { a href={ "/trials/" (id) } { (id) } }
                    }
                }
            }
            @if let Some(p) = &r.progress { " · " span #trial-progress { (p.stage) " epoch " (p.epoch) "/" (p.epochs) } }
        }
        @if let Some(e) = &t.error { h2 { "Error" } pre.error #trial-error { (e) } }
        h2 { "Metrics" }
        @if t.metrics.is_empty() { p.small { "none yet" } } @else {
            table.kv #metrics { @for (k, v) in &t.metrics { tr { th { (k) } td.num { (num(*v)) } } } }
        }
        h2 { "Curves" }
        (curve_charts(curves))
        h2 { "History" }
        table.summary #leases {
            thead { tr { th { "attempt" } th { "worker" } th { "granted" } th { "ended" } th { "outcome" } th { "lease" } } }
            tbody {
                tr { td {} td {} td { (time_ms(detail.created_ms)) } td {} td { "created" } td {} }
                @for l in &detail.leases {
                    tr {
                        td.num { (l.attempt) } td.mono { (l.worker) } td { (time_ms(l.granted_ms)) }
                        td { (l.ended_ms.map(time_ms).unwrap_or_default()) }
                        td { (l.outcome.map_or("active", |o| o.name())) }
                        td.mono.small { (l.lease_id) }
                    }
                }
            }
        }
    }
}

pub(crate) async fn page(
    State(app): State<App>,
    Extension(viewer): Extension<Viewer>,
    Path(raw): Path<String>,
) -> PageResult<Html<String>> {
    let id = parse_id(&raw)?;
    let c = &app.coordinator;
    let cursor = c.change_cursor().await?;
    let (detail, curves) = load(c, id).await?;
    let t = &detail.row.trial;
    let labels = c.config_labels(&t.study).await?;
    let params: BTreeMap<&String, String> = t.params.iter().map(|(k, v)| (k, param_text(v))).collect();
    let body = html! {
        h1 { "Trial " (id) }
        p {
            "study " a href={ "/studies/" (encode(&t.study)) } { (t.study) }
            " · " span.label #trial-label data-config=(t.config_id) title={ "config " (t.config_id) } { (labels.of(&t.config_id)) }
            " · pipeline " (t.pipeline) " · seed " (t.seed)
        }
        @if viewer.can_act && t.status.name() == "running" {
            div.actions {
                button #fail-trial data-action={ "/v1/trials/" (id) "/fail" } data-body="{\"reason\":\"marked failed from the dashboard\"}"
                    data-confirm={ "Mark trial " (id) " failed? Its worker stops it." } { "Mark failed" }
                span #action-result {}
            }
        }
        div #trial-live data-live={ "/live/trials/" (id) } data-cursor=(cursor) { (live_part(&detail, &curves)) }
        h2 { "Parameters" }
        table.kv #params { @for (k, v) in &params { tr { th { (k) } td.mono { (v) } } } }
    };
    Ok(Html(layout::page(&format!("Trial {id}"), Some(viewer), body).into_string()))
}
