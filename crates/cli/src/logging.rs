//! Logs on stderr through `tracing`, filtered by RUST_LOG, as text or JSON lines.
//!
//! While `decsweep run` draws its progress bar, every log line (and every line forwarded from
//! its workers) is written with the bar suspended, so lines appear above the bar instead of
//! through it ([`set_progress_bar`]).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indicatif::ProgressBar;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The progress bar on the terminal, if one is drawn.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Routes stderr lines around `bar` until it is replaced or cleared (`None`).
pub fn set_progress_bar(bar: Option<ProgressBar>) {
    *BAR.lock().unwrap_or_else(|p| p.into_inner()) = bar;
}

/// Writes whole lines to stderr, above the progress bar when one is drawn.
pub fn write_stderr(bytes: &[u8]) {
    let bar = BAR.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let write = || {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(bytes);
        let _ = err.flush();
    };
    match bar {
        Some(bar) if !bar.is_finished() => bar.suspend(write),
        _ => write(),
    }
}

/// One line of text on stderr, above the progress bar.
pub fn eprint_line(line: &str) {
    let mut text = line.to_string();
    text.push('\n');
    write_stderr(text.as_bytes());
}

/// A `tracing` writer that collects one event and writes it with [`write_stderr`].
#[derive(Default)]
pub struct EventWriter(Vec<u8>);

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            write_stderr(&self.0);
        }
    }
}

struct BarAwareStderr;

impl<'a> MakeWriter<'a> for BarAwareStderr {
    type Writer = EventWriter;
    fn make_writer(&'a self) -> EventWriter {
        EventWriter::default()
    }
}

/// Installs the global subscriber. Without RUST_LOG, `default_level` and above are shown.
pub fn init(format: LogFormat, default_level: &str) {
    let (filter, bad_filter) = match EnvFilter::try_from_default_env() {
        Ok(filter) => (filter, None),
        Err(e) => {
            // An unset RUST_LOG is normal; a malformed one is worth a warning once logging works.
            let set = std::env::var_os(EnvFilter::DEFAULT_ENV).is_some();
            (EnvFilter::new(default_level), set.then(|| e.to_string()))
        }
    };
    // Colours only for a person at a terminal, never into a file or a log collector.
    let ansi = format == LogFormat::Text && std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(BarAwareStderr).with_ansi(ansi);
    // Fails only if a subscriber is already installed, which leaves logging working anyway.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if let Some(e) = bad_filter {
        tracing::warn!("ignoring RUST_LOG ({e}); logging at {default_level}");
    }
}

/// The level shown without RUST_LOG: `run` draws a progress bar and shows warnings only unless
/// asked for more (`-v` info, `-vv` debug); the other commands show info.
pub fn default_level(quiet_by_default: bool, verbose: u8) -> &'static str {
    match (verbose, quiet_by_default) {
        (0, true) => "warn",
        (0, false) | (1, _) => "info",
        (2, _) => "debug",
        _ => "trace",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_is_quiet_unless_asked() {
        assert_eq!(default_level(true, 0), "warn");
        assert_eq!(default_level(true, 1), "info");
        assert_eq!(default_level(false, 0), "info");
        assert_eq!(default_level(false, 2), "debug");
        assert_eq!(default_level(true, 5), "trace");
    }

    #[test]
    fn an_event_is_collected_whole_before_it_is_written() {
        let mut w = EventWriter::default();
        w.write_all(b"one ").unwrap();
        w.write_all(b"event\n").unwrap();
        assert_eq!(w.0, b"one event\n", "one write, so the bar is suspended once per line");
        w.0.clear();
    }
}
