//! How decsweep's programs reach a coordinator, shared by `decsweep` and `decsweep-worker`:
//!
//! - [`TokenArgs`]: `--token` / `--token-file` (and `DECSWEEP_TOKEN` / `DECSWEEP_TOKEN_FILE`),
//!   one clap group flattened into every command that takes a bearer token, server or client.
//!   A token file keeps the secret out of `ps` and shell history; its trailing newline is
//!   dropped.
//! - [`ClientArgs`]: a token plus `--ca-cert FILE`, a PEM CA added to the built-in roots so an
//!   `https://` coordinator with a certificate from a private CA is trusted.
//! - [`certificate_problem`]: recognises a refused server certificate in a transport error, so
//!   callers can say what to do instead of retrying a request that cannot succeed.
//!
//! TLS is rustls with ring through reqwest's `rustls-tls`: nothing links OpenSSL.

use std::path::{Path, PathBuf};

use clap::Args;

/// A secret or certificate file that cannot be used; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot read the token file {}: {source}", path.display())]
    TokenUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the token file {} is empty", path.display())]
    TokenEmpty { path: PathBuf },
    #[error(
        "the token file {} holds a character a bearer token cannot carry (at byte {at}); \
         a token is one line of printable ASCII without spaces",
        path.display()
    )]
    TokenMalformed { path: PathBuf, at: usize },
    #[error("cannot read the CA certificate file {}: {source}", path.display())]
    CaUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the CA certificate file {} {reason}", path.display())]
    CaInvalid { path: PathBuf, reason: String },
    #[error("building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// The bearer token of a coordinator's API, given inline or in a file.
#[derive(Debug, Clone, Default, Args)]
pub struct TokenArgs {
    /// Bearer token of the coordinator's API. Visible to anyone who can run `ps` on this
    /// machine; prefer --token-file (or the DECSWEEP_TOKEN environment variable).
    #[arg(long, env = "DECSWEEP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the bearer token, e.g. a mounted Kubernetes or compose secret (a trailing
    /// newline is ignored). Takes precedence over --token and DECSWEEP_TOKEN.
    #[arg(long, env = "DECSWEEP_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

impl TokenArgs {
    /// The token, read from the file when one was given (a file wins over an inline token, so
    /// a `DECSWEEP_TOKEN` left in the environment cannot override a file chosen on purpose).
    /// `None`: no token (an empty `--token` counts as none, as the coordinator treats it).
    pub fn resolve(&self) -> Result<Option<String>, ConnectError> {
        match (&self.token_file, &self.token) {
            (Some(path), _) => read_token_file(path).map(Some),
            (None, Some(token)) if !token.is_empty() => Ok(Some(token.clone())),
            (None, _) => Ok(None),
        }
    }
}

/// Reads a token file: its content without trailing whitespace (the newline editors and
/// `echo` add), which must be non-empty printable ASCII.
pub fn read_token_file(path: &Path) -> Result<String, ConnectError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConnectError::TokenUnreadable { path: path.to_path_buf(), source })?;
    let token = text.trim_end();
    if token.is_empty() {
        return Err(ConnectError::TokenEmpty { path: path.to_path_buf() });
    }
    // RFC 6750's token68 is narrower; any visible ASCII is accepted so existing tokens keep
    // working, but a space, a second line or a control character is surely a mistake.
    if let Some(at) = token.bytes().position(|b| !b.is_ascii_graphic()) {
        return Err(ConnectError::TokenMalformed { path: path.to_path_buf(), at });
    }
    Ok(token.to_string())
}

/// What a client of a coordinator needs besides its URL: the token and a private CA.
#[derive(Debug, Clone, Default, Args)]
pub struct ClientArgs {
    #[command(flatten)]
    pub token: TokenArgs,
    /// PEM file of the CA that signed an https:// coordinator's certificate (a private CA);
    /// added to the built-in roots. One file may hold several certificates.
    #[arg(long, env = "DECSWEEP_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

impl ClientArgs {
    /// The token (see [`TokenArgs::resolve`]).
    pub fn token(&self) -> Result<Option<String>, ConnectError> {
        self.token.resolve()
    }

    /// Builds `builder` into a client that also trusts `--ca-cert`.
    pub fn build(&self, builder: reqwest::blocking::ClientBuilder) -> Result<reqwest::blocking::Client, ConnectError> {
        let builder = match &self.ca_cert {
            Some(path) => load_ca(path)?.into_iter().fold(builder, |b, cert| b.add_root_certificate(cert)),
            None => builder,
        };
        builder.build().map_err(|e| match &self.ca_cert {
            // The certificates are only handed to rustls here, so a malformed one fails now.
            Some(path) => ConnectError::CaInvalid { path: path.clone(), reason: format!("was refused: {}", chain(&e)) },
            None => ConnectError::Client(e),
        })
    }
}

/// The certificates of a PEM file; a file without any is an error.
pub fn load_ca(path: &Path) -> Result<Vec<reqwest::Certificate>, ConnectError> {
    let bytes =
        std::fs::read(path).map_err(|source| ConnectError::CaUnreadable { path: path.to_path_buf(), source })?;
    let invalid = |reason: String| ConnectError::CaInvalid { path: path.to_path_buf(), reason };
    let certs = reqwest::Certificate::from_pem_bundle(&bytes)
        .map_err(|e| invalid(format!("is not PEM certificates: {}", chain(&e))))?;
    if certs.is_empty() {
        return Err(invalid("holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)".into()));
    }
    Ok(certs)
}

/// When `error` (or anything in its source chain) is a TLS certificate the client refused,
/// a sentence saying so and what to do; `None` for every other failure.
pub fn certificate_problem(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let text = chain(error);
    let lower = text.to_ascii_lowercase();
    let refused = ["invalid peer certificate", "unknownissuer", "certificate verify failed", "bad certificate"]
        .iter()
        .any(|needle| lower.contains(needle));
    refused.then(|| {
        format!(
            "the coordinator's TLS certificate was refused ({}); if a private CA signed it, pass that CA with \
             --ca-cert FILE",
            innermost(error)
        )
    })
}

/// Every message of an error's source chain, joined by `: `.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut next = error.source();
    while let Some(e) = next {
        parts.push(e.to_string());
        next = e.source();
    }
    parts.join(": ")
}

fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut last = error;
    while let Some(e) = last.source() {
        last = e;
    }
    last.to_string()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn file_with(content: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content).unwrap();
        f
    }

    #[test]
    fn a_token_file_loses_its_trailing_newline() {
        let f = file_with(b"s3cret-token\n");
        let args = TokenArgs { token: None, token_file: Some(f.path().into()) };
        assert_eq!(args.resolve().unwrap().as_deref(), Some("s3cret-token"));
        let crlf = file_with(b"abc\r\n");
        assert_eq!(read_token_file(crlf.path()).unwrap(), "abc");
    }

    #[test]
    fn empty_missing_or_multiline_token_files_are_refused_by_name() {
        let empty = file_with(b"\n");
        let err = read_token_file(empty.path()).unwrap_err();
        assert!(matches!(err, ConnectError::TokenEmpty { .. }), "{err}");
        assert!(err.to_string().contains(&empty.path().display().to_string()), "{err}");

        let missing = empty.path().with_extension("missing");
        let err = read_token_file(&missing).unwrap_err();
        assert!(err.to_string().contains(&missing.display().to_string()), "{err}");

        let two_lines = file_with(b"abc\ndef\n");
        let err = read_token_file(two_lines.path()).unwrap_err();
        assert!(matches!(err, ConnectError::TokenMalformed { at: 3, .. }), "{err}");
    }

    #[test]
    fn a_token_file_wins_over_an_inline_token() {
        let f = file_with(b"from-file\n");
        let args = TokenArgs { token: Some("inline".into()), token_file: Some(f.path().into()) };
        assert_eq!(args.resolve().unwrap().as_deref(), Some("from-file"));
    }

    #[test]
    fn an_inline_token_is_used_and_an_empty_one_is_none() {
        let args = TokenArgs { token: Some("t".into()), token_file: None };
        assert_eq!(args.resolve().unwrap().as_deref(), Some("t"));
        assert_eq!(TokenArgs { token: Some(String::new()), token_file: None }.resolve().unwrap(), None);
        assert_eq!(TokenArgs::default().resolve().unwrap(), None);
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_by_name() {
        let f = file_with(b"not a certificate\n");
        let err = load_ca(f.path()).unwrap_err();
        assert!(err.to_string().contains(&f.path().display().to_string()), "{err}");
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }

    #[test]
    fn certificate_problems_are_told_apart_from_other_failures() {
        let refused = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        let hint = certificate_problem(&refused).unwrap();
        assert!(hint.contains("--ca-cert") && hint.contains("UnknownIssuer"), "{hint}");
        let refused_conn = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        assert_eq!(certificate_problem(&refused_conn), None);
    }
}
