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
use axum::Extension;
use decsweep_server::sessions::{
    client_ip, same_origin, session_cookie, Access, Login, Role, Sessions, LOGIN_WINDOW, MAX_FAILED_LOGINS,
    SESSION_COOKIE,
};
use decsweep_server::Scheme;
use maud::html;
use serde::Deserialize;

use crate::error::PageError;
use crate::layout::{self, Viewer};
use crate::App;

/// Lets a request through with its [`Viewer`] when it has a session (or none is needed);
/// otherwise pages redirect to the login form and live updates answer 401.
pub(crate) async fn require_session(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let sessions = app.server.sessions();
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
    // The same rule as the form's `next`: a path like `//evil.example` must not become a redirect.
    let clean = safe_next(Some(&clean));
    let scheme = req.extensions().get::<Scheme>().copied();
    Some(log_in_and_go(sessions, client_ip(req.extensions()), scheme, &token, &clean))
}

/// Checks `secret`; opens a session and redirects to `next` when it is a token.
fn log_in_and_go(
    sessions: &Sessions,
    peer: Option<IpAddr>,
    scheme: Option<Scheme>,
    secret: &str,
    next: &str,
) -> Response {
    match sessions.log_in(peer, secret) {
        Login::Granted(role) => {
            let id = sessions.open(role);
            let mut response = Redirect::to(next).into_response();
            set_cookie(&mut response, &id, scheme, "");
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

/// The longest `next` followed after logging in; a longer one goes to `/`.
const MAX_NEXT_BYTES: usize = 2048;

/// Where to go after logging in: a path on this server, else `/`.
///
/// Browsers drop tabs and newlines anywhere in a URL and read `\` as `/`, so `/\t/evil.example`
/// and `/\evil.example` mean `//evil.example`, another host. Rather than normalise such a
/// target and hope to agree with every browser, any target holding a control character or a
/// backslash is refused, as is one whose percent-decoded form would be (`/%09/evil.example`,
/// `/%5Cevil.example`, `/%2F/evil.example`), in case something decodes it once more. What is
/// left must start with exactly one `/`.
fn safe_next(next: Option<&str>) -> String {
    fn same_site_path(path: &str) -> bool {
        let mut chars = path.chars();
        chars.next() == Some('/')
            && !matches!(chars.next(), Some('/'))
            && !path.chars().any(|c| c.is_control() || c == '\\')
    }
    match next {
        Some(n) if n.len() <= MAX_NEXT_BYTES && same_site_path(n) => {
            let decoded = percent_encoding::percent_decode_str(n).decode_utf8_lossy();
            if same_site_path(&decoded) {
                n.to_string()
            } else {
                "/".to_string()
            }
        }
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
    if !app.server.sessions().required() {
        return Redirect::to(&next).into_response();
    }
    login_page(StatusCode::OK, &next, None)
}

pub(crate) async fn login(
    State(app): State<App>,
    scheme: Option<Extension<Scheme>>,
    Peer(peer): Peer,
    headers: HeaderMap,
    form: Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let sessions = app.server.sessions();
    if !sessions.required() {
        return Redirect::to(&next).into_response();
    }
    if !same_origin(&Method::POST, &headers) {
        return login_page(StatusCode::FORBIDDEN, &next, Some("cross-site login refused"));
    }
    log_in_and_go(sessions, peer, scheme.map(|Extension(s)| s), &form.token, &next)
}

pub(crate) async fn logout(State(app): State<App>, scheme: Option<Extension<Scheme>>, headers: HeaderMap) -> Response {
    if let Some(id) = session_cookie(&headers) {
        app.server.sessions().close(id);
    }
    let mut response = Redirect::to("/login").into_response();
    set_cookie(&mut response, "", scheme.map(|Extension(s)| s), "; Max-Age=0");
    response
}

/// The session cookie's header: `HttpOnly; SameSite=Strict`, and `Secure` when the request came
/// over HTTPS, so the browser never sends it over plain HTTP. `extra` ends the attributes.
fn session_cookie_header(value: &str, scheme: Option<Scheme>, extra: &str) -> String {
    let secure = if scheme == Some(Scheme::Https) { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{secure}{extra}")
}

fn set_cookie(response: &mut Response, value: &str, scheme: Option<Scheme>, extra: &str) {
    if let Ok(v) = HeaderValue::from_str(&session_cookie_header(value, scheme, extra)) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(safe_next(Some("/studies/a?page=2")), "/studies/a?page=2");
        assert_eq!(safe_next(Some("/studies/a%20b?sort=-accuracy")), "/studies/a%20b?sort=-accuracy");
        assert_eq!(safe_next(Some("/")), "/");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(None), "/");
        assert_eq!(encode("/studies/a b?x=1&y"), "/studies/a%20b%3Fx%3D1%26y");
    }

    /// Every target a browser could read as another host ends at `/` (issue 18, finding 7).
    #[test]
    fn targets_that_browsers_read_as_another_host_go_home() {
        let hostile = [
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "\t//evil.example",
            " //evil.example",
            "/%09/evil.example",
            "/%0a/evil.example",
            "/%0D%0A/evil.example",
            "/%5Cevil.example",
            "/%5cevil.example",
            "/%2F/evil.example",
            "/%2fevil.example",
            "/%00/evil.example",
            "https://evil.example",
            "http:/evil.example",
            "javascript:alert(1)",
            "evil.example",
            "",
        ];
        for target in hostile {
            assert_eq!(safe_next(Some(target)), "/", "{target:?}");
        }
        let long = format!("/studies/{}", "a".repeat(MAX_NEXT_BYTES));
        assert_eq!(safe_next(Some(&long)), "/", "past {MAX_NEXT_BYTES} bytes");
    }

    #[test]
    fn the_cookie_is_secure_over_https_only() {
        let https = session_cookie_header("abc", Some(Scheme::Https), "");
        assert_eq!(https, format!("{SESSION_COOKIE}=abc; Path=/; HttpOnly; SameSite=Strict; Secure"));
        let http = session_cookie_header("abc", Some(Scheme::Http), "");
        assert!(!http.contains("Secure"), "{http}");
        assert!(!session_cookie_header("abc", None, "").contains("Secure"));
        let expired = session_cookie_header("", Some(Scheme::Https), "; Max-Age=0");
        assert!(expired.ends_with("; Secure; Max-Age=0"), "{expired}");
    }
}
