//! The security headers on every answer [`crate::Server::serve_with`] gives: API, dashboard
//! pages, assets, errors and 404s alike (issue 18, finding 8).
//!
//! The content security policy allows only what the dashboard serves itself: its one script and
//! style sheet (`/assets/…`), `fetch` to its own origin, forms posting to itself, and SVG drawn
//! inline. No inline script, inline style or event-handler attribute runs, so markup that slipped
//! past the templates' escaping could not execute; `frame-ancestors 'none'` and
//! `X-Frame-Options: DENY` stop other sites from framing a page (clickjacking the action
//! buttons). JSON answers carry the same policy: opened as a document they run nothing either.

use axum::extract::Request;
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// What pages may load: only this origin's script, style and fetches.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Every header [`secure`] sets, with its value.
pub const SECURITY_HEADERS: [(HeaderName, &str); 4] = [
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "same-origin"),
    (header::X_FRAME_OPTIONS, "DENY"),
];

/// Middleware: adds [`SECURITY_HEADERS`] to the answer.
pub(crate) async fn secure(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
