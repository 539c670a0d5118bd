//! How a `/v1` call fails: the coordinator's answer (its status and its own message), or no
//! usable answer at all. Whether to try again is decided here, once: an outcome call is retried
//! while [`ApiCallError::is_retryable`]; a long-running client (the worker agent) gives up for
//! good on a [`PermanentFault`] ([`ApiCallError::permanent_fault`]) and keeps its backoff on
//! everything else.
//!
//! | failure | class | why |
//! |---|---|---|
//! | connection refused or reset, DNS, timeout | transient | the coordinator may be restarting or cut off |
//! | 5xx, 503 "storage full" included | transient | the coordinator is up but cannot serve now; an operator frees disk |
//! | a 2xx body cut off in transit | transient | the connection broke |
//! | 401 | permanent | the token is missing or wrong; it will not become right by itself |
//! | 403 | permanent | the token may not make this call (a read-only token on a worker) |
//! | 404 on a route that names nothing (`/v1/lease`) | permanent | the URL's path is wrong, or nothing there speaks `/v1` |
//! | 400, 405, 406, 415, 422, or a 2xx body that is not what the call returns | permanent | the coordinator and this client speak incompatible API versions |
//! | URL without `http://` or `https://`, or one that cannot be built | permanent | bad input ([`crate::ConnectError::BadUrl`] catches it before any call) |
//! | refused TLS certificate | permanent | it will not change by itself; pass `--ca-cert` |
//!
//! Other 4xx answers (409 on a lease that was replaced, 429, 408) are about one request, not
//! the client: neither permanent nor retried by [`crate::Client::post_retrying`].

use decsweep_api::wire::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum ApiCallError {
    /// 409: the lease is no longer the caller's (re-leased, replaced or ended by the user), or
    /// the request conflicts with what is stored.
    #[error("the coordinator answered 409: {0}")]
    Conflict(String),
    /// Any other answer that is not 2xx; `message` is the server's [`ApiError`] in words (its
    /// details one per line), or the body as it came when it is not one.
    #[error("the coordinator answered {status}: {message}")]
    Status { status: u16, message: String },
    /// No answer: the coordinator is unreachable, the connection broke, or the call timed out.
    #[error("request to the coordinator failed: {0}")]
    Transport(#[source] reqwest::Error),
    /// A 2xx answer whose body is not what the call returns.
    #[error("the coordinator's answer is unreadable: {0}")]
    Decode(#[source] reqwest::Error),
}

impl ApiCallError {
    /// The error of a non-2xx answer with `body`.
    pub(crate) fn from_answer(status: u16, body: &str) -> Self {
        let message = match serde_json::from_str::<ApiError>(body) {
            Ok(e) if e.details.is_empty() => e.error,
            Ok(e) => format!("{}\n{}", e.error, e.details.join("\n")),
            Err(_) => body.to_string(),
        };
        if status == 409 {
            ApiCallError::Conflict(message)
        } else {
            ApiCallError::Status { status, message }
        }
    }

    /// The HTTP status the coordinator answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiCallError::Conflict(_) => Some(409),
            ApiCallError::Status { status, .. } => Some(*status),
            ApiCallError::Transport(_) | ApiCallError::Decode(_) => None,
        }
    }

    /// The server's message, if it answered.
    pub fn message(&self) -> Option<&str> {
        match self {
            ApiCallError::Conflict(message) | ApiCallError::Status { message, .. } => Some(message),
            ApiCallError::Transport(_) | ApiCallError::Decode(_) => None,
        }
    }

    /// This error and every cause under it, joined by `: ` (a transport error's own words stop
    /// at "error sending request"; the cause says "connection refused" or "timed out"), for logs.
    pub fn detail(&self) -> String {
        crate::chain(self)
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, ApiCallError::Conflict(_))
    }

    /// A 4xx: the request itself was refused (409 included), so repeating it cannot help.
    pub fn is_client_error(&self) -> bool {
        self.status().is_some_and(|s| (400..500).contains(&s))
    }

    /// When the client refused the coordinator's TLS certificate, what to do about it
    /// ([`crate::certificate_problem`]).
    pub fn certificate_problem(&self) -> Option<String> {
        crate::certificate_problem(self)
    }

    /// Whether the same call may succeed later: no answer (but a refused certificate or a URL
    /// that cannot be requested, which do not change by themselves), a garbled one, or a 5xx.
    /// Never a 4xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiCallError::Transport(e) => !e.is_builder() && self.certificate_problem().is_none(),
            ApiCallError::Decode(_) => true,
            ApiCallError::Status { status, .. } => *status >= 500,
            ApiCallError::Conflict(_) => false,
        }
    }

    /// For a call to a route that names no study, trial or lease (`/v1/lease`, `/v1/studies`),
    /// why no later try can succeed until someone changes the client's settings or the
    /// coordinator; `None` when waiting may help (the table in this module's doc). On a route
    /// that names something, a 404 means that thing is gone, so callers of such routes read
    /// [`ApiCallError::status`] instead.
    pub fn permanent_fault(&self) -> Option<PermanentFault> {
        match self {
            ApiCallError::Transport(e) if e.is_builder() => Some(PermanentFault::BadUrl),
            ApiCallError::Transport(_) => self.certificate_problem().map(|_| PermanentFault::Certificate),
            // A body that arrived whole but does not parse is another version's answer; one
            // that broke off is the connection's doing.
            ApiCallError::Decode(e) if e.is_decode() => Some(PermanentFault::IncompatibleApi),
            ApiCallError::Decode(_) => None,
            ApiCallError::Status { status: 401, .. } => Some(PermanentFault::Unauthorized),
            ApiCallError::Status { status: 403, .. } => Some(PermanentFault::Forbidden),
            ApiCallError::Status { status: 404, .. } => Some(PermanentFault::NoApi),
            ApiCallError::Status { status: 400 | 405 | 406 | 415 | 422, .. } => Some(PermanentFault::IncompatibleApi),
            ApiCallError::Status { .. } | ApiCallError::Conflict(_) => None,
        }
    }
}

/// Why a client cannot go on calling a coordinator, whatever it waits: the classes marked
/// permanent in this module's table. Its words say what to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PermanentFault {
    #[error("the coordinator refused the token (401): check --token / --token-file against the coordinator's")]
    Unauthorized,
    #[error(
        "the token may not make this call (403): a read token only reads; workers, and commands that change \
         something, need the coordinator's full token"
    )]
    Forbidden,
    #[error("no decsweep API at this URL (404): give the coordinator's address without a path, e.g. http://HOST:8320")]
    NoApi,
    #[error(
        "the coordinator does not understand this client's requests, or this client its answers: \
         incompatible decsweep versions (run the same release on both sides)"
    )]
    IncompatibleApi,
    #[error("the URL cannot be requested: it needs http:// or https:// and a host, e.g. http://HOST:8320")]
    BadUrl,
    #[error("the coordinator's TLS certificate was refused: pass its CA with --ca-cert FILE")]
    Certificate,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_keep_their_status_and_the_servers_words() {
        let e = ApiCallError::from_answer(404, r#"{"error": "no study `x`"}"#);
        assert_eq!((e.status(), e.message()), (Some(404), Some("no study `x`")));
        assert!(e.is_client_error() && !e.is_retryable());
        let spec = ApiCallError::from_answer(400, r#"{"error": "2 problems", "details": ["a:1:1: x", "a:2:1: y"]}"#);
        assert_eq!(spec.message(), Some("2 problems\na:1:1: x\na:2:1: y"));
        let plain = ApiCallError::from_answer(502, "Bad Gateway");
        assert_eq!(plain.to_string(), "the coordinator answered 502: Bad Gateway");
        assert!(plain.is_retryable() && !plain.is_client_error());
        let conflict = ApiCallError::from_answer(409, r#"{"error": "lease replaced"}"#);
        assert!(conflict.is_conflict() && !conflict.is_retryable());
        assert_eq!(conflict.to_string(), "the coordinator answered 409: lease replaced");
    }

    #[test]
    fn permanent_faults_are_told_apart_from_waits_that_may_help() {
        let fault = |status| ApiCallError::from_answer(status, r#"{"error": "x"}"#).permanent_fault();
        assert_eq!(fault(401), Some(PermanentFault::Unauthorized));
        assert_eq!(fault(403), Some(PermanentFault::Forbidden));
        assert_eq!(fault(404), Some(PermanentFault::NoApi));
        for status in [400, 405, 415, 422] {
            assert_eq!(fault(status), Some(PermanentFault::IncompatibleApi), "{status}");
        }
        for status in [408, 409, 429, 500, 502, 503, 504] {
            assert_eq!(fault(status), None, "{status} may pass");
        }
        let storage_full = ApiCallError::from_answer(503, r#"{"error": "storage full"}"#);
        assert!(storage_full.permanent_fault().is_none() && storage_full.is_retryable());
    }
}
