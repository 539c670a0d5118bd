//! Logs on stderr through `tracing`, filtered by RUST_LOG, as text or JSON lines.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber. Without RUST_LOG, `info` and above are shown.
pub fn init(format: LogFormat) {
    let (filter, bad_filter) = match EnvFilter::try_from_default_env() {
        Ok(filter) => (filter, None),
        Err(e) => {
            // An unset RUST_LOG is normal; a malformed one is worth a warning once logging works.
            let set = std::env::var_os(EnvFilter::DEFAULT_ENV).is_some();
            (EnvFilter::new("info"), set.then(|| e.to_string()))
        }
    };
    // Colours only for a person at a terminal, never into a file or a log collector.
    let ansi = format == LogFormat::Text && std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    // Fails only if a subscriber is already installed, which leaves logging working anyway.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if let Some(e) = bad_filter {
        tracing::warn!("ignoring RUST_LOG ({e}); logging at info");
    }
}
