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
//! - [`runtime`]: the per-user token file of a coordinator started without a token, which
//!   clients given no token read for a loopback URL.
//! - [`Client`]: the one typed, blocking client of the coordinator's `/v1` API (the worker
//!   agent's, the `decsweep` command's and the tests'), with a verb per call ([`verbs`]), an
//!   error that keeps the status and the server's message ([`ApiCallError`]), one retry
//!   policy ([`retry`]: jittered doubling waits on transport errors and 5xx, never on a 4xx),
//!   and one classification of what waiting cannot cure ([`PermanentFault`]: a refused token,
//!   a wrong URL, an incompatible coordinator), which ends a worker with exit status 2.
//!   A URL without `http://` or `https://` is refused before any call ([`check_url`]).
//! - [`plain_http::clear_text_warning`]: what to say when a token would cross the network in
//!   clear text.
//! - [`work_dir`]: the worker's folder on a machine (datasets, stage checkpoints, trial
//!   outputs), which `decsweep run` and `decsweep cache` must find where the worker does.
//!
//! Token rules: a coordinator refuses tokens shorter than [`MIN_TOKEN_BYTES`]
//! ([`check_token_length`]); a token file that other users can read gets a warning naming the
//! file and the fix ([`read_token_file`]), as ssh does for its keys.
//!
//! TLS is rustls with ring through reqwest's `rustls-tls`: nothing links OpenSSL.

mod client;
mod error;
pub mod plain_http;
pub mod retry;
pub mod runtime;
pub mod verbs;
pub mod work_dir;

pub use client::{check_url, Client, Timeouts, TRANSFER_TIMEOUT};
pub use error::{ApiCallError, PermanentFault};

use std::os::unix::fs::MetadataExt;
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
    #[error(
        "{what} is {len} bytes long: a coordinator's token must be at least {MIN_TOKEN_BYTES} bytes \
         (generate one with `openssl rand -hex 32`)"
    )]
    TokenTooShort { what: String, len: usize },
    #[error("the runtime folder or token file {}: {reason}", path.display())]
    RuntimeDir { path: PathBuf, reason: String },
    #[error("cannot read the CA certificate file {}: {source}", path.display())]
    CaUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the CA certificate file {} {reason}", path.display())]
    CaInvalid { path: PathBuf, reason: String },
    #[error("{reason}")]
    BadUrl { reason: String },
    #[error("building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// The shortest token a coordinator accepts, in bytes.
pub const MIN_TOKEN_BYTES: usize = 16;

/// Refuses a token shorter than [`MIN_TOKEN_BYTES`]; `what` names where it came from
/// (`--token`, a file), for the message.
pub fn check_token_length(token: &str, what: &str) -> Result<(), ConnectError> {
    if token.len() < MIN_TOKEN_BYTES {
        return Err(ConnectError::TokenTooShort { what: what.to_string(), len: token.len() });
    }
    Ok(())
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

    /// Where the token [`TokenArgs::resolve`] returns came from, for messages.
    pub fn source(&self) -> String {
        match &self.token_file {
            Some(path) => format!("the token file {}", path.display()),
            None => "--token (or DECSWEEP_TOKEN)".to_string(),
        }
    }
}

/// Reads a token file: its content without trailing whitespace (the newline editors and
/// `echo` add), which must be non-empty printable ASCII. Warns when others may read it
/// ([`exposure`]).
pub fn read_token_file(path: &Path) -> Result<String, ConnectError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConnectError::TokenUnreadable { path: path.to_path_buf(), source })?;
    if let Some(warning) = std::fs::metadata(path).ok().and_then(|m| exposure(path, m.mode(), m.uid())) {
        tracing::warn!("{warning}");
    }
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

/// A warning when a token file of `mode`, owned by `owner`, can be read by more than it should:
/// any access for others; for a file of this user's own, any access for its group too (a file
/// someone else provisioned, like a Kubernetes secret mounted for the pod's group or a systemd
/// credential, may rightly be shared with a group).
pub fn exposure(path: &Path, mode: u32, owner: u32) -> Option<String> {
    let own = owner == runtime::own_uid();
    let open_to_group = own && mode & 0o070 != 0;
    let open_to_others = mode & 0o007 != 0;
    let who = match (open_to_group, open_to_others) {
        (false, false) => return None,
        (true, false) => "its group",
        (false, true) => "other users",
        (true, true) => "its group and other users",
    };
    Some(format!(
        "the token file {} is open to {who} (mode {:04o}): anyone who reads it can run programs on every worker; \
         run `chmod 600 {}`",
        path.display(),
        mode & 0o7777,
        path.display()
    ))
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
    /// The token for a coordinator at `url` ([`TokenArgs::resolve`]); without one, for a
    /// loopback URL, the token of the runtime file a tokenless `decsweep serve` or `decsweep run`
    /// wrote for that address ([`runtime::token_for_url`]).
    pub fn token_for(&self, url: &str) -> Result<Option<String>, ConnectError> {
        match self.token.resolve()? {
            Some(token) => Ok(Some(token)),
            None => Ok(runtime::token_for_url(url)),
        }
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
    fn short_tokens_are_refused_naming_the_rule() {
        let err = check_token_length("abc", "--token").unwrap_err();
        assert!(err.to_string().contains("--token is 3 bytes") && err.to_string().contains("at least 16"), "{err}");
        assert!(check_token_length("0123456789abcdef", "--token").is_ok());
    }

    #[test]
    fn token_files_open_to_others_are_named_with_the_fix() {
        let me = runtime::own_uid();
        let path = Path::new("/secrets/token");
        assert_eq!(exposure(path, 0o100600, me), None);
        assert_eq!(exposure(path, 0o100400, me), None);
        let warning = exposure(path, 0o100644, me).unwrap();
        assert!(warning.contains("/secrets/token") && warning.contains("its group and other users"), "{warning}");
        assert!(warning.contains("chmod 600 /secrets/token") && warning.contains("0644"), "{warning}");
        assert!(exposure(path, 0o100640, me).unwrap().contains("its group"));
        let someone_else = me.wrapping_add(1);
        assert_eq!(exposure(path, 0o100440, someone_else), None, "a group-shared secret provisioned by another user");
        assert!(exposure(path, 0o100444, someone_else).unwrap().contains("other users"));
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
