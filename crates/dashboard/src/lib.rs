//! decsweep's dashboard: HTML pages rendered on the server over a coordinator's store, served
//! beside its `/v1` API by `decsweep serve` and `decsweep run`.
//!
//! | path | what |
//! | --- | --- |
//! | `/` | every study: state, trials by status, progress and ETA, best configuration's mean objective over seeds, creation time |
//! | `/studies/{name}` | the trial table (sorted, filtered and paginated in SQL), then the seed-grouped summary, paired comparisons and plots (`/studies/{name}/summary`, loaded after the page) |
//! | `/trials/{id}` | parameters, lease history, per-stage curves, metrics, error |
//! | `/workers` | every worker process seen, quiet ones marked |
//! | `/login`, `/logout` | the session cookie when the coordinator has a token |
//! | `/live/...` | what changed since a cursor, as HTML fragments the page's script patches in |
//! | `/assets/...` | the one script and style sheet, compiled in |
//!
//! # Live pages
//!
//! Each page is drawn at a change cursor ([`decsweep_coordinator::StudyChanges`]) and polls
//! `/live/...?since=CURSOR` every second; the answer carries only the rows that changed (and
//! that the page shows), so one more finished trial costs a row of HTML whatever the study's
//! size. A cursor older than the coordinator's change log makes the page reload.
//!
//! # Auth
//!
//! Without a token every page is open (the coordinator then listens on loopback only). With
//! one, every page needs a session: `/login` takes the token (full) or the read token (view
//! only) and sets an `HttpOnly; SameSite=Strict` cookie holding a random session id. Actions are
//! `/v1` POSTs made by the page's script with that cookie; the coordinator's auth layer accepts
//! the cookie there, refuses view-only sessions and cross-site requests
//! ([`decsweep_server::sessions`]). Every string from a user is escaped by the templates.

mod assets;
mod auth;
mod error;
mod format;
mod layout;
mod live;
mod pages;
mod query;
mod summary;

use std::sync::Arc;

use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use decsweep_coordinator::Coordinator;
use decsweep_server::Server;

pub use error::PageError;

/// What every handler reads: the coordinator, its server (sessions) and the summary cache.
#[derive(Clone)]
pub(crate) struct App {
    pub(crate) coordinator: Coordinator,
    pub(crate) server: Server,
    pub(crate) summaries: Arc<summary::Cache>,
}

/// The dashboard's routes, to merge beside [`Server::router`] (it sets no fallback; see
/// [`Server::serve_with`]).
pub fn router(server: Server) -> Router {
    let coordinator = server.coordinator().clone();
    let app = App { coordinator, server, summaries: Arc::new(summary::Cache::default()) };
    let pages = Router::new()
        .route("/", get(pages::studies::page))
        .route("/studies/{name}", get(pages::study::page))
        .route("/studies/{name}/summary", get(pages::study::summary_fragment))
        .route("/trials/{id}", get(pages::trial::page))
        .route("/workers", get(pages::workers::page))
        .route("/live/studies", get(live::studies))
        .route("/live/studies/{name}", get(live::study))
        .route("/live/trials/{id}", get(live::trial))
        .route("/live/workers", get(live::workers))
        .route("/logout", post(auth::logout))
        .route_layer(middleware::from_fn_with_state(app.clone(), auth::require_session));
    Router::new()
        .merge(pages)
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/assets/dashboard.js", get(assets::script))
        .route("/assets/dashboard.css", get(assets::style))
        .with_state(app)
}
