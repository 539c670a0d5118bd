//! HTTPS for `decsweep serve --tls-cert FILE --tls-key FILE`: rustls with the ring provider
//! (no OpenSSL), PEM files read here so every problem names its file.
//!
//! Each connection's handshake runs in that connection's own task (`src/serve.rs`), bounded by
//! [`crate::ServeLimits::tls_handshake_timeout`] and counted in its connection limit, so a
//! client that connects and says nothing (or a port scanner) never holds up the others.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::error::ServeError;

type Result<T> = std::result::Result<T, ServeError>;

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

    /// What runs a connection's handshake.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.config))
    }
}

fn tls_error(path: &Path, reason: String) -> ServeError {
    ServeError::Tls { path: path.to_path_buf(), reason }
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| tls_error(path, format!("cannot read the {what}: {e}")))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = read_file(path, "certificate file")?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, pem::Error>>()
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
