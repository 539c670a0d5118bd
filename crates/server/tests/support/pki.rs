//! A self-signed certificate for tests that speak HTTPS to a coordinator; one file, included by
//! the server's and the dashboard's tests (`#[path]`), which live in different crates.

use std::sync::Arc;

use decsweep_server::ServerTls;

/// A self-signed certificate for `localhost`, and a client that trusts it.
pub fn pki(dir: &std::path::Path) -> (ServerTls, tokio_rustls::TlsConnector) {
    use tokio_rustls::rustls::{self, pki_types::CertificateDer};
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let tls = ServerTls::from_pem_files(&cert_path, &key_path).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(cert.der().to_vec())).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (tls, tokio_rustls::TlsConnector::from(Arc::new(config)))
}
