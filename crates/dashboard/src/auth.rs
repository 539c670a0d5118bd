//! Login, logout and the session every page needs when the coordinator has a token.
//!
//! Besides the form, a page's URL may carry the token once, as `?token=...` (the URL `decsweep
//! run` and `decsweep serve` print, like Jupyter's): the answer opens a session and redirects to
//! the same URL without the token, so it stays neither in the history nor in a `Referer`. Both
//! ways count failures against the client's address ([`Sessions::log_in`]).

use std::net::IpAddr;

use axum::extract::{Form, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use decsweep_coordinator::sessions::{
    client_ip, same_origin, session_cookie, Access, Login, Role, Sessions, LOGIN_WINDOW, MAX_FAILED_LOGINS,
    SESSION_COOKIE,
};
use maud::html;
use serde::Deserialize;

use crate::error::PageError;
use crate::layout::{self, Viewer};
use crate::App;

/// Lets a request through with its [`Viewer`] when it has a session (or none is needed);
/// otherwise pages redirect to the login form and live updates answer 401.
pub(crate) async fn require_session(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let sessions = app.coordinator.sessions();
    if req.method() == Method::GET && sessions.required() {
        if let Some(response) = token_in_url(sessions, &req) {
            return response;
        }
    }
    let access = sessions.access(req.headers());
    let viewer = match access.role() {
        Some(role) => Viewer { can_act: role == Role::Full, logged_in: sessions.required() },
        None if req.method() == Method::GET && !req.uri().path().starts_with("/live/") => {
            let next = req.uri().path_and_query().map_or("/", |p| p.as_str());
            return Redirect::to(&format!("/login?next={}", encode(next))).into_response();
        }
        None => return (StatusCode::UNAUTHORIZED, "log in first").into_response(),
    };
    if matches!(access, Access::Session(_)) && !same_origin(req.method(), req.headers()) {
        return PageError { status: StatusCode::FORBIDDEN, message: "cross-site request refused".into() }
            .into_response();
    }
    req.extensions_mut().insert(viewer);
    next.run(req).await
}

/// The client's address ([`client_ip`]), as an extractor that never fails.
pub(crate) struct Peer(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(client_ip(&parts.extensions)))
    }
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// A `GET` whose query holds `token`: a session and a redirect to the URL without it (or the
/// login page when the token is wrong). `None` when the query has no token.
fn token_in_url(sessions: &Sessions, req: &Request) -> Option<Response> {
    let Query(TokenQuery { token }) = Query::<TokenQuery>::try_from_uri(req.uri()).ok()?;
    let token = token?;
    let path = req.uri().path();
    let rest: Vec<&str> = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some("token"))
        .collect();
    let clean = if rest.is_empty() { path.to_string() } else { format!("{path}?{}", rest.join("&")) };
    Some(log_in_and_go(sessions, client_ip(req.extensions()), &token, &clean))
}

/// Checks `secret`; opens a session and redirects to `next` when it is a token.
fn log_in_and_go(sessions: &Sessions, peer: Option<IpAddr>, secret: &str, next: &str) -> Response {
    match sessions.log_in(peer, secret) {
        Login::Granted(role) => {
            let id = sessions.open(role);
            let cookie = format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict");
            let mut response = Redirect::to(next).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            response
        }
        Login::Wrong => {
            tracing::info!(?peer, "dashboard login with a wrong token");
            login_page(StatusCode::UNAUTHORIZED, next, Some("Wrong token. Try again."))
        }
        Login::TooMany { retry_after } => {
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            let message = format!(
                "Too many failed logins from your address (at most {MAX_FAILED_LOGINS} per {} s). Try again in {seconds} s.",
                LOGIN_WINDOW.as_secs()
            );
            let mut response = login_page(StatusCode::TOO_MANY_REQUESTS, next, Some(&message));
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            response
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Where to go after logging in: a path on this server only (never `//other.host`).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

/// Percent-encodes a path for a query value.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn login_page(status: StatusCode, next: &str, message: Option<&str>) -> Response {
    let body = html! {
        h1 { "Log in" }
        p { "This coordinator needs its token (or its read token, to look without changing anything)." }
        @if let Some(m) = message { p.error #login-error { (m) } }
        form #login method="post" action="/login" {
            input type="hidden" name="next" value=(next);
            label { "Token " input #token type="password" name="token" autocomplete="current-password" autofocus; }
            " "
            button #login-submit type="submit" { "Log in" }
        }
    };
    (status, Html(layout::page("Log in", None, body).into_string())).into_response()
}

pub(crate) async fn login_form(State(app): State<App>, Query(q): Query<NextQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    if !app.coordinator.sessions().required() {
        return Redirect::to(&next).into_response();
    }
    login_page(StatusCode::OK, &next, None)
}

pub(crate) async fn login(
    State(app): State<App>,
    Peer(peer): Peer,
    headers: HeaderMap,
    form: Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let sessions = app.coordinator.sessions();
    if !sessions.required() {
        return Redirect::to(&next).into_response();
    }
    if !same_origin(&Method::POST, &headers) {
        return login_page(StatusCode::FORBIDDEN, &next, Some("cross-site login refused"));
    }
    log_in_and_go(sessions, peer, &form.token, &next)
}

pub(crate) async fn logout(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Some(id) = session_cookie(&headers) {
        app.coordinator.sessions().close(id);
    }
    let mut response = Redirect::to("/login").into_response();
    let expired = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&expired) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(safe_next(Some("/studies/a?page=2")), "/studies/a?page=2");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(None), "/");
        assert_eq!(encode("/studies/a b?x=1&y"), "/studies/a%20b%3Fx%3D1%26y");
    }
}
