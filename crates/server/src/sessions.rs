//! Browser sessions of the dashboard, and the rules every request is authenticated by.
//!
//! With a token configured, a person logs in once on the dashboard's form with the token (full
//! access) or the read token (view only); the coordinator answers with a random session id in
//! an `HttpOnly; SameSite=Strict` cookie. The cookie never holds a token. Sessions live in memory:
//! a restarted coordinator asks people to log in again, which costs them one form. A session ends
//! after [`SESSION_IDLE`] unused or [`SESSION_LIFETIME`] in all, and at most [`MAX_SESSIONS`] are
//! kept (opening one more drops the longest unused). Failed logins are limited per client address
//! (`logins.rs`).
//!
//! [`Access`] is decided the same way for `/v1` and the dashboard's pages: a bearer token, else
//! the session cookie. A request authenticated by its cookie that changes something (any method
//! but GET/HEAD) must also come from the dashboard's own origin (its `Origin`, else `Referer`,
//! names the `Host` it was sent to), so another site cannot make a logged-in browser act.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::connect_info::ConnectInfo;
use axum::http::{header, Extensions, HeaderMap, Method};
use rand::Rng;

use crate::logins::LoginLimiter;
pub use crate::logins::{LOGIN_WINDOW, MAX_FAILED_LOGINS};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "decsweep_session";

/// Sessions end this long after they were opened, however much they are used.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// Sessions end when unused this long.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);

/// The most sessions kept at once.
pub const MAX_SESSIONS: usize = 10_000;

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

/// The client's IP address from a request's extensions, when the server recorded it (`serve.rs`
/// puts the peer's `ConnectInfo<SocketAddr>` on every request, plain or TLS).
pub fn client_ip(extensions: &Extensions) -> Option<IpAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip())
}

/// What a login attempt came to ([`Sessions::log_in`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Login {
    /// The secret is a token; open a session with this role.
    Granted(Role),
    /// Not a token (counted against the client's address).
    Wrong,
    /// The address failed [`MAX_FAILED_LOGINS`] times within [`LOGIN_WINDOW`]; the secret was
    /// not looked at.
    TooMany { retry_after: Duration },
}

/// The tokens a coordinator accepts and the sessions opened with them.
#[derive(Debug, Default)]
pub struct Sessions {
    token: Option<String>,
    read_token: Option<String>,
    open: Mutex<HashMap<String, Session>>,
    logins: LoginLimiter,
}

#[derive(Clone, Copy, Debug)]
struct Session {
    role: Role,
    opened: Instant,
    last_used: Instant,
}

impl Session {
    fn live(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.opened) < SESSION_LIFETIME
            && now.saturating_duration_since(self.last_used) < SESSION_IDLE
    }
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
        Sessions { token, read_token, open: Mutex::new(HashMap::new()), logins: LoginLimiter::default() }
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

    /// A login with `secret` from `peer` (the client's address, when known): refused without
    /// looking at the secret while the address is over its failed-login limit.
    pub fn log_in(&self, peer: Option<IpAddr>, secret: &str) -> Login {
        let now = Instant::now();
        if let Some(retry_after) = self.logins.retry_after(peer, now) {
            return Login::TooMany { retry_after };
        }
        match self.role_of(secret) {
            Some(role) => Login::Granted(role),
            None => {
                self.logins.failed(peer, now);
                Login::Wrong
            }
        }
    }

    /// Opens a session for `role`; returns its id (128 random bits, hex).
    pub fn open(&self, role: Role) -> String {
        self.open_at(role, Instant::now())
    }

    fn open_at(&self, role: Role, now: Instant) -> String {
        let id = format!("{:032x}", rand::thread_rng().gen::<u128>());
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|_, s| s.live(now));
        if open.len() >= MAX_SESSIONS {
            let unused_longest = open.iter().min_by_key(|(_, s)| s.last_used).map(|(id, _)| id.clone());
            if let Some(id) = unused_longest {
                open.remove(&id);
            }
        }
        open.insert(id.clone(), Session { role, opened: now, last_used: now });
        id
    }

    /// Ends a session (logout).
    pub fn close(&self, id: &str) {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// The role of a live session, which counts as a use of it.
    fn session_role(&self, id: &str, now: Instant) -> Option<Role> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let session = open.get_mut(id)?;
        if !session.live(now) {
            open.remove(id);
            return None;
        }
        session.last_used = now;
        Some(session.role)
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
        match session_cookie(headers).and_then(|id| self.session_role(id, Instant::now())) {
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
    fn sessions_end_when_idle_or_old_however_used() {
        let s = Sessions::new(Some("full-token-0123456789".into()), None);
        let t0 = Instant::now();
        let idle = s.open_at(Role::Full, t0);
        assert_eq!(s.session_role(&idle, t0 + SESSION_IDLE - Duration::from_secs(1)), Some(Role::Full));
        let used_at = t0 + SESSION_IDLE - Duration::from_secs(1);
        assert_eq!(
            s.session_role(&idle, used_at + SESSION_IDLE - Duration::from_secs(1)),
            Some(Role::Full),
            "each use starts the idle time again"
        );
        let later = used_at + SESSION_IDLE - Duration::from_secs(1);
        assert_eq!(s.session_role(&idle, later + SESSION_IDLE), None, "unused for the idle time: ended");
        assert!(!s.open.lock().unwrap().contains_key(&idle), "and dropped");

        let busy = s.open_at(Role::ReadOnly, t0);
        let mut now = t0;
        while now < t0 + SESSION_LIFETIME - Duration::from_secs(3600) {
            now += Duration::from_secs(3600);
            assert_eq!(s.session_role(&busy, now), Some(Role::ReadOnly));
        }
        assert_eq!(s.session_role(&busy, t0 + SESSION_LIFETIME), None, "used hourly, it still ends after 7 days");
    }

    #[test]
    fn sessions_are_capped_dropping_the_longest_unused() {
        let s = Sessions::new(Some("full-token-0123456789".into()), None);
        let t0 = Instant::now();
        let first = s.open_at(Role::Full, t0);
        let second = s.open_at(Role::Full, t0 + Duration::from_millis(1));
        for i in 2..MAX_SESSIONS as u64 {
            s.open_at(Role::ReadOnly, t0 + Duration::from_millis(i));
        }
        // The first is used again, so the second is now the longest unused.
        let now = t0 + Duration::from_secs(60);
        assert_eq!(s.session_role(&first, now), Some(Role::Full));
        let newest = s.open_at(Role::Full, now);
        let open = s.open.lock().unwrap();
        assert_eq!(open.len(), MAX_SESSIONS);
        assert!(open.contains_key(&first) && open.contains_key(&newest));
        assert!(!open.contains_key(&second), "the longest unused session made room");
    }

    #[test]
    fn failed_logins_are_limited_per_address() {
        let s = Sessions::new(Some("full-token-0123456789".into()), Some("look-token-0123456789".into()));
        let attacker: Option<IpAddr> = Some("192.0.2.1".parse().unwrap());
        for _ in 0..MAX_FAILED_LOGINS {
            assert_eq!(s.log_in(attacker, "guess"), Login::Wrong);
        }
        let refused = s.log_in(attacker, "full-token-0123456789");
        assert!(matches!(refused, Login::TooMany { retry_after } if retry_after <= LOGIN_WINDOW), "{refused:?}");
        let other = Some("192.0.2.2".parse().unwrap());
        assert_eq!(s.log_in(other, "look-token-0123456789"), Login::Granted(Role::ReadOnly));
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
