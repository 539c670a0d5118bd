//! How the CLI reaches a running coordinator: the `--coordinator` / token / CA options, a client
//! with a person's timeouts, and the CLI's words for a failed call ([`Explain`]).

use clap::Args;
pub use decsweep_connect::Client;
use decsweep_connect::{ApiCallError, Timeouts};

#[derive(Debug, Args)]
pub struct Connection {
    /// The coordinator's URL.
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
            match e {
                ApiCallError::Transport(source) => anyhow::Error::new(source)
                    .context(format!("{what}: cannot reach the coordinator at {}", client.base())),
                ApiCallError::Decode(source) => {
                    anyhow::Error::new(source).context(format!("{what}: unreadable answer"))
                }
                e if e.is_client_error() => {
                    crate::exit::BadInput(format!("{what}: {}", e.message().unwrap_or_default())).into()
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
