//! How the CLI reaches a running coordinator: the `--coordinator` / token / CA options, a client
//! with a person's timeouts, and the CLI's words for a failed call ([`Explain`]).

use clap::Args;
pub use decsweep_connect::Client;
use decsweep_connect::{ApiCallError, PermanentFault, Timeouts};

#[derive(Debug, Args)]
pub struct Connection {
    /// The coordinator's URL, scheme included: http://HOST:PORT, or https://... behind TLS
    /// (one without a scheme is refused, exit 2, with the URL to give instead).
    #[arg(long, env = "DECSWEEP_COORDINATOR", value_name = "URL", default_value = "http://127.0.0.1:8320")]
    coordinator: String,
    /// --token / --token-file and --ca-cert (crates/connect).
    #[command(flatten)]
    access: decsweep_connect::ClientArgs,
}

impl Connection {
    /// A client of this coordinator with the token and CA given.
    pub fn client(&self) -> anyhow::Result<Client> {
        connect(&self.coordinator, &self.access)
    }
}

/// A client of the coordinator at `url` (http:// or https://) with `access`'s token and CA, and
/// a person's timeouts. An unreadable token or CA file is bad input.
pub fn connect(url: &str, access: &decsweep_connect::ClientArgs) -> anyhow::Result<Client> {
    Client::connect_with(url, access, Timeouts::COMMAND).map_err(|e| crate::exit::BadInput(e.to_string()).into())
}

/// The CLI's words for a failed call: what was asked (`GET studies/x`), then a refused
/// certificate and what to do, the coordinator out of reach, or its answer: a 4xx is bad input
/// (exit 2) in the server's words, anything else a failure naming the status.
pub trait Explain<T> {
    fn explain(self, client: &Client, what: impl FnOnce() -> String) -> anyhow::Result<T>;
}

impl<T> Explain<T> for Result<T, ApiCallError> {
    fn explain(self, client: &Client, what: impl FnOnce() -> String) -> anyhow::Result<T> {
        self.map_err(|e| {
            let what = what();
            if let Some(problem) = e.certificate_problem() {
                return anyhow::anyhow!("{what}: {problem}");
            }
            // What waiting cannot cure, in the words the worker uses too (crates/connect). A 404
            // here names a missing study or trial, not a wrong URL, so it keeps the server's words.
            let fault = e.permanent_fault().filter(|f| *f != PermanentFault::NoApi);
            match e {
                ApiCallError::Transport(source) => anyhow::Error::new(source)
                    .context(format!("{what}: cannot reach the coordinator at {}", client.base())),
                ApiCallError::Decode(source) => {
                    let why = fault.map_or_else(|| "unreadable answer".to_string(), |f| f.to_string());
                    anyhow::Error::new(source).context(format!("{what}: {why}"))
                }
                e if e.is_client_error() => {
                    let hint = fault.map(|f| format!("\n  {f}")).unwrap_or_default();
                    crate::exit::BadInput(format!("{what}: {}{hint}", e.message().unwrap_or_default())).into()
                }
                e => {
                    let status = e.status().and_then(|s| reqwest::StatusCode::from_u16(s).ok());
                    let status = status.map_or_else(|| "?".to_string(), |s| s.to_string());
                    anyhow::anyhow!("{what}: the coordinator answered {status}: {}", e.message().unwrap_or_default())
                }
            }
        })
    }
}
