//! How a `/v1` call fails: the coordinator's answer (its status and its own message), or no
//! usable answer at all. Whether to try again is decided here, once ([`ApiCallError::is_retryable`]).

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

    /// Whether the same call may succeed later: no answer (but a refused certificate, which
    /// does not change by itself), a garbled one, or a 5xx. Never a 4xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiCallError::Transport(_) => self.certificate_problem().is_none(),
            ApiCallError::Decode(_) => true,
            ApiCallError::Status { status, .. } => *status >= 500,
            ApiCallError::Conflict(_) => false,
        }
    }
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
}
