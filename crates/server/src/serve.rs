//! The accept loop behind [`crate::Server::serve_with`]: HTTP/1.1 over hyper, plain or
//! TLS, with every wait a client can impose on the server bounded (issue 18, finding 3).
//!
//! | limit | default | what happens past it |
//! | --- | --- | --- |
//! | [`ServeLimits::max_connections`] | 1024 | no more are accepted until one closes; the rest wait in the kernel's listen backlog |
//! | [`ServeLimits::tls_handshake_timeout`] | 10 s | the connection is closed |
//! | [`ServeLimits::header_read_timeout`] | 10 s | the connection is closed (also the keep-alive idle timeout, see below) |
//! | [`ServeLimits::request_timeout`] | 60 s | 503 naming the limit; the lease long poll gets `max_wait` more |
//! | [`ServeLimits::transfer_timeout`] | 15 min | 503 naming the limit, for the uploads that stream a body to disk |
//! | [`ServeLimits::write_stall_timeout`] | 60 s | the connection is closed when the client reads nothing of an answer for that long |
//!
//! hyper starts its header-read timer as soon as a connection waits for a request head, also
//! between two requests of a kept-alive connection, so one timer bounds both a client that
//! sends half a head and one that keeps an idle connection open. Clients reconnect when a
//! kept-alive connection was closed (reqwest checks before reusing one).
//!
//! Every request carries the peer's address as axum's [`ConnectInfo<SocketAddr>`] and the
//! connection's [`Scheme`] as an extension.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::error::HttpError;
use crate::Server;

/// How long a client may make the server wait, and how many may connect at once. `Default` is
/// what `decsweep serve` uses; see the module table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeLimits {
    /// The most connections served at once (TLS handshakes included).
    pub max_connections: usize,
    /// The longest a TLS handshake may take.
    pub tls_handshake_timeout: Duration,
    /// The longest a client may take to send a request's head, counted from the moment the
    /// connection waits for one: also how long an idle kept-alive connection stays open.
    pub header_read_timeout: Duration,
    /// The longest a request may take from its head to its answer's head, body read included,
    /// on every route but the streaming uploads. The lease long poll gets `max_wait` on top.
    pub request_timeout: Duration,
    /// [`ServeLimits::request_timeout`] for the uploads that stream a body to disk (a
    /// checkpoint, a dataset).
    pub transfer_timeout: Duration,
    /// A connection whose client reads nothing of an answer for this long is closed (a slow
    /// reader would otherwise hold a connection, and a dataset download its file, forever).
    pub write_stall_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_connections: 1024,
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            transfer_timeout: Duration::from_secs(15 * 60),
            write_stall_timeout: Duration::from_secs(60),
        }
    }
}

/// How a request reached the server, as a request extension (the dashboard marks its cookie
/// `Secure` under [`Scheme::Https`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// The routes that stream a request body to disk, and so get [`ServeLimits::transfer_timeout`].
const TRANSFERS: &[(Method, &str)] =
    &[(Method::PUT, "/v1/leases/{lease_id}/checkpoint"), (Method::PUT, "/v1/datasets/{sha256}")];

/// The route whose answer may wait for work (`LeaseRequest::wait_ms`, capped at `max_wait`).
const LONG_POLL: (Method, &str) = (Method::POST, "/v1/lease");

/// The time a request on `route` may take under `limits`.
pub(crate) fn time_limit(limits: &ServeLimits, max_wait: Duration, method: &Method, route: Option<&str>) -> Duration {
    let is = |(m, p): &(Method, &str)| m == method && route == Some(*p);
    if TRANSFERS.iter().any(is) {
        limits.transfer_timeout
    } else if is(&LONG_POLL) {
        limits.request_timeout + max_wait
    } else {
        limits.request_timeout
    }
}

/// Middleware: answers 503 naming the limit when a request takes longer than [`time_limit`].
/// A write the request had started still commits (the store's writer finishes it), so a client
/// may repeat the call; every worker call is idempotent.
pub(crate) async fn bound_request_time(State(server): State<Server>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let limit = time_limit(server.limits(), server.coordinator().max_wait(), req.method(), route.as_deref());
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            let route = route.as_deref().unwrap_or("this path");
            tracing::warn!(route, limit_s = limit.as_secs_f64(), "request timed out");
            HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the request took longer than the {} s limit for {route} (request timeout)", limit.as_secs()),
            )
            .into_response()
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, asks every open
/// connection to finish its request and close, and waits for them.
pub(crate) async fn serve(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<TlsAcceptor>,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()>,
) {
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let permits = Arc::new(Semaphore::new(max));
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        // A permit first: past the limit, connections wait in the listen backlog.
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    if !is_connection_error(&e) {
                        // Out of file descriptors and the like: wait a little, as axum does.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let connection = Connection { app: app.clone(), peer, limits, stopping: stopping.clone() };
        let tls = tls.clone();
        tokio::spawn(async move {
            connection.run(tcp, tls).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a permit until it has closed.
    let _ = permits.acquire_many(max as u32).await;
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

struct Connection {
    app: axum::Router,
    peer: SocketAddr,
    limits: ServeLimits,
    stopping: watch::Receiver<bool>,
}

impl Connection {
    async fn run(self, tcp: TcpStream, tls: Option<TlsAcceptor>) {
        let Some(acceptor) = tls else { return self.http(tcp, Scheme::Http).await };
        match tokio::time::timeout(self.limits.tls_handshake_timeout, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => self.http(stream, Scheme::Https).await,
            Ok(Err(e)) => tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(peer = %self.peer, "TLS handshake timed out"),
        }
    }

    async fn http<I>(mut self, io: I, scheme: Scheme)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = PerConnection { app: self.app.clone(), peer: self.peer, scheme };
        let io = TokioIo::new(StallGuard::new(io, self.limits.write_stall_timeout));
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(self.limits.header_read_timeout);
        let mut conn = pin!(builder.serve_connection(io, service));
        let mut asked_to_stop = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(peer = %self.peer, error = %e, "connection ended");
                    }
                    return;
                }
                changed = self.stopping.wait_for(|stop| *stop), if !asked_to_stop => {
                    // Also when the sender is gone: the server is stopping either way.
                    let _ = changed;
                    asked_to_stop = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// The router, with the connection's facts added to each request.
#[derive(Clone)]
struct PerConnection {
    app: axum::Router,
    peer: SocketAddr,
    scheme: Scheme,
}

impl hyper::service::Service<hyper::Request<Incoming>> for PerConnection {
    type Response = Response;
    type Error = Infallible;
    type Future = tower::util::Oneshot<axum::Router, Request>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        use tower::ServiceExt;
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(self.peer));
        req.extensions_mut().insert(self.scheme);
        self.app.clone().oneshot(req)
    }
}

/// An I/O stream whose writes fail with `TimedOut` once one has waited
/// [`ServeLimits::write_stall_timeout`] for the peer to read.
struct StallGuard<I> {
    io: I,
    stall: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<I> StallGuard<I> {
    fn new(io: I, stall: Duration) -> Self {
        StallGuard { io, stall, stalled: None }
    }

    /// Passes `poll`'s answer on, starting the clock at the first `Pending` and failing once it
    /// has run out; any progress stops it.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let stall = self.stall;
        let timer = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {} s", stall.as_secs()),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for StallGuard<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for StallGuard<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_shutdown(cx);
        self.watch(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_defaults() {
        let l = ServeLimits::default();
        assert_eq!(l.max_connections, 1024);
        assert_eq!(l.tls_handshake_timeout, Duration::from_secs(10));
        assert_eq!(l.header_read_timeout, Duration::from_secs(10));
        assert_eq!(l.request_timeout, Duration::from_secs(60));
        assert_eq!(l.transfer_timeout, Duration::from_secs(900));
        assert_eq!(l.write_stall_timeout, Duration::from_secs(60));
    }

    #[test]
    fn uploads_and_the_long_poll_get_their_own_bounds() {
        let l = ServeLimits::default();
        let wait = Duration::from_secs(60);
        let limit = |m: Method, r: Option<&str>| time_limit(&l, wait, &m, r);
        assert_eq!(limit(Method::PUT, Some("/v1/leases/{lease_id}/checkpoint")), l.transfer_timeout);
        assert_eq!(limit(Method::PUT, Some("/v1/datasets/{sha256}")), l.transfer_timeout);
        assert_eq!(limit(Method::GET, Some("/v1/leases/{lease_id}/checkpoint")), l.request_timeout);
        assert_eq!(limit(Method::POST, Some("/v1/lease")), l.request_timeout + wait);
        assert_eq!(limit(Method::GET, Some("/v1/studies")), l.request_timeout);
        assert_eq!(limit(Method::PUT, None), l.request_timeout, "an unmatched path is no upload");
    }

    #[tokio::test]
    async fn a_write_the_peer_never_reads_fails_after_the_stall_limit() {
        use tokio::io::AsyncWriteExt;
        // A pipe whose other end reads nothing: writes block once its buffer is full.
        let (near, _far) = tokio::io::duplex(1024);
        let stall = Duration::from_millis(200);
        let mut guarded = StallGuard::new(near, stall);
        let started = std::time::Instant::now();
        let err = guarded.write_all(&vec![0u8; 64 * 1024]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= stall && started.elapsed() < stall * 20, "{:?}", started.elapsed());
    }
}
