//! HTTPS for `decsweep serve --tls-cert FILE --tls-key FILE`: rustls with the ring provider
//! (no OpenSSL), PEM files read here so every problem names its file, and a listener that
//! hands axum finished TLS streams.
//!
//! Handshakes run in their own tasks, each bounded by [`HANDSHAKE_TIMEOUT`], so a client that
//! connects and says nothing (or a port scanner) never holds up the others; only completed
//! handshakes reach axum's accept loop, which then serves them exactly as it serves plain TCP
//! (graceful shutdown included).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::error::{Error, Result};

/// A TLS handshake taking longer than this is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A server certificate chain and its key, checked and ready to serve. Cheap to clone.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads a PEM certificate chain (server certificate first, then any intermediates) and a
    /// PEM private key (PKCS#8, PKCS#1 or SEC1), and checks that they belong together.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<ServerTls> {
        let chain = read_chain(cert)?;
        let key_der = read_key(key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(cert, format!("no usable TLS version: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, key_der)
            .map_err(|e| tls_error(key, format!("cannot be used with the certificate in {}: {e}", cert.display())))?;
        // axum serves HTTP/1.1 (its http2 feature is off), so that is all we offer.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls { config: Arc::new(config) })
    }
}

fn tls_error(path: &Path, reason: String) -> Error {
    Error::Tls { path: path.to_path_buf(), reason }
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| tls_error(path, format!("cannot read the {what}: {e}")))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = read_file(path, "certificate file")?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| tls_error(path, format!("is not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(tls_error(path, "holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)".into()));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = read_file(path, "key file")?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => tls_error(
            path,
            "holds no PEM private key (expected -----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY)".into(),
        ),
        other => tls_error(path, format!("is not a PEM private key: {other}")),
    })
}

/// Accepts TCP connections, runs their handshakes concurrently, and yields the finished ones.
pub(crate) struct TlsListener {
    addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub(crate) fn new(listener: TcpListener, tls: &ServerTls) -> std::io::Result<TlsListener> {
        let addr = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let acceptor = tokio::spawn(accept_loop(listener, TlsAcceptor::from(tls.config.clone()), tx));
        Ok(TlsListener { addr, ready, acceptor })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        // Closes the listening socket now rather than when the runtime ends.
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            _ = ready.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, as axum does.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = ready.send((stream, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_and_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = ServerTls::from_pem_files(&missing, &missing).unwrap_err();
        assert!(err.to_string().contains("missing.pem") && err.to_string().contains("certificate"), "{err}");

        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello\n").unwrap();
        let err = ServerTls::from_pem_files(&junk, &junk).unwrap_err();
        assert!(err.to_string().contains("junk.pem") && err.to_string().contains("no PEM certificate"), "{err}");
    }
}
