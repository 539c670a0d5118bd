//! The errors of serving, and the one mapping of the core's errors to HTTP statuses (the core's
//! [`decsweep_coordinator::Error`] knows no HTTP; the API contract's statuses are written here).

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use decsweep_api::wire::ApiError;
use decsweep_coordinator::Error as CoreError;

/// What can stop [`crate::Server::serve`] or its set-up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The core refused (its database, the listener's address).
    #[error(transparent)]
    Core(#[from] CoreError),

    /// `serve` was asked to listen beyond loopback without a bearer token.
    #[error(
        "refusing to serve on {addr} without a bearer token: anything but a loopback address needs \
         one (set a token, or bind 127.0.0.1)"
    )]
    InsecureBind { addr: SocketAddr },

    /// `serve`'s TLS certificate or key cannot be used.
    #[error("TLS: {}: {reason}", path.display())]
    Tls { path: PathBuf, reason: String },
}

/// The HTTP status a core error answers with: the API contract's mapping, in one place.
pub fn status_of(e: &CoreError) -> StatusCode {
    match e {
        CoreError::Spec { .. } | CoreError::BadRequest(_) => StatusCode::BAD_REQUEST,
        CoreError::StudyNotFound(_)
        | CoreError::TrialNotFound(_)
        | CoreError::TrialNotInStudy { .. }
        | CoreError::LeaseNotFound(_)
        | CoreError::DatasetNotFound(_)
        | CoreError::CheckpointNotFound(_) => StatusCode::NOT_FOUND,
        CoreError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        CoreError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
        CoreError::StudyConflict { .. } | CoreError::LeaseConflict { .. } | CoreError::WrongState(_) => {
            StatusCode::CONFLICT
        }
        CoreError::Closed | CoreError::Storage { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An error answer: a status and an [`ApiError`] body.
#[derive(Debug)]
pub(crate) struct HttpError {
    status: StatusCode,
    body: ApiError,
}

impl HttpError {
    pub(crate) fn new(status: StatusCode, error: impl Into<String>) -> Self {
        HttpError { status, body: ApiError { error: error.into(), details: Vec::new() } }
    }

    /// 401: no credentials, or wrong ones.
    pub(crate) fn unauthorized() -> Self {
        HttpError::new(StatusCode::UNAUTHORIZED, "missing or wrong bearer token")
    }

    /// 403: authenticated, but not allowed (a view-only login changing something, a cross-site
    /// request).
    pub(crate) fn forbidden(why: &str) -> Self {
        HttpError::new(StatusCode::FORBIDDEN, format!("forbidden: {why}"))
    }
}

impl From<CoreError> for HttpError {
    fn from(e: CoreError) -> Self {
        let status = status_of(&e);
        if status.is_server_error() {
            tracing::error!(error = %e, "request failed");
        }
        let error = match &e {
            CoreError::Spec { details } => format!("the sweep spec has {} problem(s)", details.len()),
            other => other.to_string(),
        };
        HttpError { status, body: ApiError { error, details: e.details() } }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use decsweep_coordinator::StorageProblem;

    use super::*;

    #[test]
    fn statuses_follow_the_api_contract() {
        let status = |e: CoreError| status_of(&e).as_u16();
        assert_eq!(status(CoreError::Spec { details: vec!["a:1:1: x".into()] }), 400);
        assert_eq!(status(CoreError::StudyConflict { name: "s".into() }), 409);
        let conflict = CoreError::LeaseConflict { lease_id: "l".into(), trial_id: 1, reason: "re-leased".into() };
        assert_eq!(status(conflict), 409);
        assert_eq!(status(CoreError::LeaseNotFound("l".into())), 404);
        assert_eq!(status(CoreError::TrialNotInStudy { study: "s".into(), trial_id: 3 }), 404);
        assert_eq!(status(CoreError::WrongState("trial 3 is completed".into())), 409);
        assert_eq!(HttpError::unauthorized().status, 401);
        assert_eq!(HttpError::forbidden("this login is view-only").status, 403);
        assert_eq!(status(CoreError::Closed), 503);
        let full = CoreError::Storage { problem: StorageProblem::Full, message: "x".into() };
        assert_eq!(status(full), 503);
        assert_eq!(status(CoreError::Corrupt("x".into())), 500);
        assert_eq!(status(CoreError::TooLarge("x".into())), 413);
        assert_eq!(status(CoreError::Unprocessable("x".into())), 422);
    }
}
