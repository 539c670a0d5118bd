//! decsweep's coordinator over HTTP: a [`Server`] over a [`decsweep_coordinator::Coordinator`]
//! serves the `/v1` API (JSON bodies of `decsweep_api::wire`) described by
//! [`openapi::document`], `/healthz` and `/metrics`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), decsweep_server::ServeError> {
//! use decsweep_coordinator::{Coordinator, CoordinatorOptions};
//! use decsweep_server::{ServeOptions, Server};
//!
//! let coordinator = Coordinator::open("sweeps.db", CoordinatorOptions::default())?;
//! let server = Server::new(coordinator, ServeOptions { token: Some("secret".into()), ..Default::default() });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! server.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
//!
//! | module | what |
//! | --- | --- |
//! | `http` | the routes: thin handlers over the core's verbs, bearer auth, request counting |
//! | `error` | the core's errors → HTTP statuses ([`status_of`]), the JSON error body |
//! | [`openapi`] | the OpenAPI document of the routes |
//! | [`sessions`] | tokens, the dashboard's browser sessions, same-origin checks (`logins`: failed-login limits) |
//! | `serve` | the accept loop: HTTP/1.1 over hyper, plain or TLS, every wait bounded ([`ServeLimits`]) |
//! | `host` | the `Host` rule against DNS rebinding ([`AllowedHosts`]) |
//! | `headers` | the security headers on every answer |
//! | `tls` | the certificate of `serve --tls-cert` ([`ServerTls`]) |
//! | `limits` | the body limit of each JSON route |
//!
//! [`Server::serve`] also runs the core's background lease expiry, refuses a non-loopback
//! address without a bearer token ([`check_bind`]) and, at shutdown, answers waiting lease
//! requests at once.
//!
//! Architecture invariant: this crate knows HTTP and nothing of SQLite; every answer is the
//! core's verb's answer, so what the API does is decided in `decsweep-coordinator`.

mod error;
mod headers;
mod host;
mod http;
mod limits;
mod logins;
pub mod openapi;
mod serve;
pub mod sessions;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use decsweep_coordinator::Coordinator;

pub use error::{status_of, ServeError};
pub use host::AllowedHosts;
pub use serve::{Scheme, ServeLimits};
pub use sessions::Sessions;
pub use tls::ServerTls;

/// How a coordinator is served: who may call it and how long a client may make it wait.
/// `Default` suits a single machine on loopback.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// Bearer token required on `/v1/*` and `/metrics`. Required by [`Server::serve`] on a
    /// non-loopback address. An empty string counts as none.
    pub token: Option<String>,
    /// A second token that may only read (`GET` on `/v1`, a view-only dashboard login).
    /// Ignored without `token`.
    pub read_token: Option<String>,
    /// Timeouts and the connection limit of [`Server::serve`] (see [`ServeLimits`]).
    pub limits: ServeLimits,
    /// `Host` names served besides IP addresses and `localhost` (`serve --allowed-host`); every
    /// other name is refused with 421 (see `src/host.rs`).
    pub allowed_hosts: AllowedHosts,
}

/// Refuses to listen on anything but loopback without a bearer token.
pub fn check_bind(addr: SocketAddr, token: Option<&str>) -> Result<(), ServeError> {
    let loopback = addr.ip().to_canonical().is_loopback();
    if !loopback && token.is_none_or(str::is_empty) {
        return Err(ServeError::InsecureBind { addr });
    }
    Ok(())
}

/// A coordinator and how it is served. Cheap to clone; clones share everything.
#[derive(Clone, Debug)]
pub struct Server {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    coordinator: Coordinator,
    token: Option<String>,
    sessions: Sessions,
    limits: ServeLimits,
    allowed_hosts: AllowedHosts,
}

impl Server {
    pub fn new(coordinator: Coordinator, options: ServeOptions) -> Server {
        Server {
            inner: Arc::new(Inner {
                coordinator,
                sessions: Sessions::new(options.token.clone(), options.read_token),
                token: options.token.filter(|t| !t.is_empty()),
                limits: options.limits,
                allowed_hosts: options.allowed_hosts,
            }),
        }
    }

    /// The core this server answers for.
    pub fn coordinator(&self) -> &Coordinator {
        &self.inner.coordinator
    }

    /// The bearer token, if one is configured.
    pub fn token(&self) -> Option<&str> {
        self.inner.token.as_deref()
    }

    /// The tokens and the dashboard's browser sessions.
    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    /// Timeouts and the connection limit of [`Server::serve`].
    pub fn limits(&self) -> &ServeLimits {
        &self.inner.limits
    }

    /// The HTTP API (see [`openapi::document`]) behind the `Host` rule (`src/host.rs`). Serve it
    /// with [`Server::serve`], which also runs background expiry, bounds request times and
    /// adds the security headers, or mount it yourself.
    pub fn router(&self) -> axum::Router {
        self.guard_hosts(http::router(self.clone()).0)
    }

    /// `app` behind the `Host` rule: every route, fallback included.
    fn guard_hosts(&self, app: axum::Router) -> axum::Router {
        let allowed = self.inner.allowed_hosts.clone();
        app.layer(axum::middleware::from_fn_with_state(allowed, host::require_known_host))
    }

    /// Every `(method, path)` the router serves, e.g. `("POST", "/v1/lease")`.
    pub fn routes(&self) -> Vec<(&'static str, &'static str)> {
        http::router(self.clone()).1
    }

    /// Serves the API on `listener` until `shutdown` completes, expiring leases in the
    /// background. Refuses a non-loopback address without a token ([`check_bind`]). Timeouts and
    /// the connection limit are [`ServeOptions::limits`]. At shutdown, waiting lease requests
    /// are answered 204 at once, and open connections finish their request and close.
    pub async fn serve<F>(&self, listener: tokio::net::TcpListener, shutdown: F) -> Result<(), ServeError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.serve_with(listener, axum::Router::new(), None, shutdown).await
    }

    /// [`Server::serve`] with `extra` routes beside the API (the dashboard at `/`), over
    /// HTTPS with `tls`'s certificate when given. `extra` must not set a fallback: unknown paths
    /// get the API's JSON 404. The token rule is the same with TLS: encryption does not replace
    /// authentication.
    pub async fn serve_with<F>(
        &self,
        listener: tokio::net::TcpListener,
        extra: axum::Router,
        tls: Option<&ServerTls>,
        shutdown: F,
    ) -> Result<(), ServeError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let addr = listener
            .local_addr()
            .map_err(|source| decsweep_coordinator::Error::Io { path: "listener".into(), source })?;
        check_bind(addr, self.token())?;
        // The `Host` rule covers `extra` (the dashboard's pages) as well as the API.
        let app = self
            .guard_hosts(http::router(self.clone()).0.merge(extra))
            .layer(axum::middleware::from_fn_with_state(self.clone(), serve::bound_request_time))
            .layer(axum::middleware::from_fn(headers::secure));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let expiry = tokio::spawn(self.coordinator().clone().expire_in_background());
        let coordinator = self.coordinator().clone();
        let signal = async move {
            shutdown.await;
            coordinator.begin_shutdown();
        };
        tracing::info!(%addr, scheme, auth = self.token().is_some(), "coordinator listening");
        serve::serve(listener, app, tls.map(ServerTls::acceptor), self.inner.limits, signal).await;
        expiry.abort();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_may_go_without_a_token() {
        let ok = |a: &str, t: Option<&str>| check_bind(a.parse().unwrap(), t).is_ok();
        assert!(ok("127.0.0.1:80", None));
        assert!(ok("[::1]:80", None));
        assert!(ok("[::ffff:127.0.0.1]:80", None));
        assert!(!ok("0.0.0.0:80", None));
        assert!(!ok("10.1.2.3:80", Some("")));
        assert!(ok("0.0.0.0:80", Some("secret")));
        let err = check_bind("0.0.0.0:8080".parse().unwrap(), None).unwrap_err();
        assert!(err.to_string().contains("without a bearer token"), "{err}");
    }
}
