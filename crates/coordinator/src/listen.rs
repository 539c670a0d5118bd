//! The plain-TCP listener `serve_with` uses, and the client address every request carries:
//! `ConnectInfo<ClientAddr>` in its extensions (plain or TLS), which failed logins are counted by
//! ([`crate::sessions::Sessions::log_in`]).

use std::net::SocketAddr;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::net::{TcpListener, TcpStream};

use crate::tls::TlsListener;

/// The address of the client at the other end of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// TCP with `TCP_NODELAY` on every accepted connection (small JSON answers go out at once).
pub(crate) struct NoDelayListener(pub(crate) TcpListener);

impl Listener for NoDelayListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // axum's accept retries failed accepts (out of descriptors and the like) itself.
        let (tcp, peer) = Listener::accept(&mut self.0).await;
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        (tcp, peer)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

impl Connected<IncomingStream<'_, NoDelayListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, NoDelayListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}
