//! Error pages: a wrong address or a malformed query gets a page saying what was expected.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::html;

use crate::layout;

/// A page that could not be shown: its status and a message for the person reading it.
#[derive(Debug, thiserror::Error)]
#[error("{status}: {message}")]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
}

impl PageError {
    pub fn bad_request(message: impl Into<String>) -> PageError {
        PageError { status: StatusCode::BAD_REQUEST, message: message.into() }
    }

    pub fn not_found(message: impl Into<String>) -> PageError {
        PageError { status: StatusCode::NOT_FOUND, message: message.into() }
    }
}

impl From<decsweep_coordinator::Error> for PageError {
    fn from(e: decsweep_coordinator::Error) -> Self {
        let status = decsweep_server::status_of(&e);
        if status.is_server_error() {
            tracing::error!(error = %e, "dashboard page failed");
        }
        PageError { status, message: e.to_string() }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = match self.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::BAD_REQUEST => "Bad request",
            StatusCode::FORBIDDEN => "Forbidden",
            _ => "Error",
        };
        let body = html! {
            h1 { (title) }
            p.error #error-message { (self.message) }
            p { a href="/" { "All studies" } }
        };
        (self.status, Html(layout::page(title, None, body).into_string())).into_response()
    }
}

/// What page handlers return.
pub(crate) type PageResult<T> = Result<T, PageError>;
