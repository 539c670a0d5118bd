//! Browser sessions of the dashboard, and the rules every request is authenticated by.
//!
//! With a token configured, a person logs in once on the dashboard's form with the token (full
//! access) or the read token (view only); the coordinator answers with a random session id in
//! an `HttpOnly; SameSite=Strict` cookie. The cookie never holds a token. Sessions live in memory:
//! a restarted coordinator asks people to log in again, which costs them one form.
//!
//! [`Access`] is decided the same way for `/v1` and the dashboard's pages: a bearer token, else
//! the session cookie. A request authenticated by its cookie that changes something (any method
//! but GET/HEAD) must also come from the dashboard's own origin (its `Origin`, else `Referer`,
//! names the `Host` it was sent to), so another site cannot make a logged-in browser act.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, Method};
use rand::Rng;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "decsweep_session";

/// Sessions end this long after they were opened.
const SESSION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// What a request may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Everything (the token, or no token configured).
    Full,
    /// Look, change nothing (the read token).
    ReadOnly,
}

/// How a request authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No token is configured: everything is open (loopback only).
    Open,
    /// A bearer token in `Authorization`.
    Bearer(Role),
    /// The dashboard's session cookie.
    Session(Role),
    /// Nothing valid was presented.
    Denied,
}

impl Access {
    /// The role, unless denied.
    pub fn role(self) -> Option<Role> {
        match self {
            Access::Open => Some(Role::Full),
            Access::Bearer(r) | Access::Session(r) => Some(r),
            Access::Denied => None,
        }
    }
}

/// The tokens a coordinator accepts and the sessions opened with them.
#[derive(Debug, Default)]
pub struct Sessions {
    token: Option<String>,
    read_token: Option<String>,
    open: Mutex<HashMap<String, (Role, Instant)>>,
}

/// Compares in constant time (`subtle`, which keeps the optimiser from adding an early exit), so
/// the time taken does not reveal how much of a guess matched; only a length difference shows.
pub(crate) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.ct_eq(b))
}

impl Sessions {
    pub(crate) fn new(token: Option<String>, read_token: Option<String>) -> Sessions {
        let token = token.filter(|t| !t.is_empty());
        // A read token means nothing without a token: everything is open then.
        let read_token = read_token.filter(|t| !t.is_empty() && token.is_some());
        Sessions { token, read_token, open: Mutex::new(HashMap::new()) }
    }

    /// Whether a token is required at all.
    pub fn required(&self) -> bool {
        self.token.is_some()
    }

    /// The role a presented secret grants, if any.
    pub fn role_of(&self, secret: &str) -> Option<Role> {
        let secret = secret.trim().as_bytes();
        if self.token.as_deref().is_some_and(|t| same_secret(secret, t.as_bytes())) {
            Some(Role::Full)
        } else if self.read_token.as_deref().is_some_and(|t| same_secret(secret, t.as_bytes())) {
            Some(Role::ReadOnly)
        } else {
            None
        }
    }

    /// Opens a session for `role`; returns its id (128 random bits, hex).
    pub fn open(&self, role: Role) -> String {
        let id = format!("{:032x}", rand::thread_rng().gen::<u128>());
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        open.retain(|_, (_, at)| now.duration_since(*at) < SESSION_LIFETIME);
        open.insert(id.clone(), (role, now));
        id
    }

    /// Ends a session (logout).
    pub fn close(&self, id: &str) {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    fn session_role(&self, id: &str) -> Option<Role> {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(id).filter(|(_, at)| at.elapsed() < SESSION_LIFETIME).map(|(role, _)| *role)
    }

    /// How a request authenticates: bearer token first, then the session cookie.
    pub fn access(&self, headers: &HeaderMap) -> Access {
        if !self.required() {
            return Access::Open;
        }
        let bearer =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if let Some(role) = bearer.and_then(|b| self.role_of(b)) {
            return Access::Bearer(role);
        }
        match session_cookie(headers).and_then(|id| self.session_role(id)) {
            Some(role) => Access::Session(role),
            None => Access::Denied,
        }
    }
}

/// The session id in a request's cookies.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
}

/// Whether a request that changes something came from the page of the host it was sent to:
/// its `Origin` (else its `Referer`) must be `http(s)://<Host>`. Safe methods always pass.
pub fn same_origin(method: &Method, headers: &HeaderMap) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else { return false };
    let origin = headers.get(header::ORIGIN).or_else(|| headers.get(header::REFERER)).and_then(|v| v.to_str().ok());
    let Some(origin) = origin else { return false };
    let rest = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    // The authority ends at the first `/` (a Referer carries a path).
    rest.is_some_and(|r| r.split('/').next() == Some(host))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn tokens_and_sessions_grant_their_roles() {
        let s = Sessions::new(Some("full".into()), Some("look".into()));
        assert_eq!(s.role_of("full"), Some(Role::Full));
        assert_eq!(s.role_of("look"), Some(Role::ReadOnly));
        assert_eq!(s.role_of("nope"), None);
        assert_eq!(s.access(&headers(&[(header::AUTHORIZATION, "Bearer look")])), Access::Bearer(Role::ReadOnly));
        assert_eq!(s.access(&HeaderMap::new()), Access::Denied);

        let id = s.open(Role::ReadOnly);
        assert_eq!(id.len(), 32);
        assert!(!id.contains("look"), "the cookie carries no token");
        let cookie = format!("a=1; {SESSION_COOKIE}={id}");
        assert_eq!(s.access(&headers(&[(header::COOKIE, &cookie)])), Access::Session(Role::ReadOnly));
        s.close(&id);
        assert_eq!(s.access(&headers(&[(header::COOKIE, &cookie)])), Access::Denied);

        let open = Sessions::new(None, Some("look".into()));
        assert_eq!(open.access(&HeaderMap::new()), Access::Open);
        assert_eq!(open.role_of("look"), None, "a read token alone grants nothing");
    }

    #[test]
    fn changes_must_come_from_the_same_origin() {
        let h = |origin: Option<(header::HeaderName, &str)>| {
            let mut pairs = vec![(header::HOST, "127.0.0.1:8320")];
            pairs.extend(origin);
            headers(&pairs)
        };
        assert!(same_origin(&Method::GET, &h(None)));
        assert!(same_origin(&Method::POST, &h(Some((header::ORIGIN, "http://127.0.0.1:8320")))));
        assert!(same_origin(&Method::POST, &h(Some((header::REFERER, "http://127.0.0.1:8320/studies/a")))));
        assert!(!same_origin(&Method::POST, &h(Some((header::ORIGIN, "http://evil.example")))));
        assert!(!same_origin(&Method::POST, &h(Some((header::ORIGIN, "http://127.0.0.1:8320.evil.example")))));
        assert!(!same_origin(&Method::POST, &h(None)), "no origin at all is refused");
    }
}
