//! `decsweep submit`'s dataset upload: the coordinator never reads a path a client names, so
//! the bytes travel (`PUT /v1/datasets/{sha256}`), once per content.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use decsweep_api::wire::DatasetStored;
use indicatif::{ProgressBar, ProgressStyle};

use super::connection::{Client, Explain};

/// Files at least this large show a progress bar (on a terminal).
const PROGRESS_FROM_BYTES: u64 = 64 << 20;

/// Uploads the dataset `file` unless the coordinator already has it; returns its SHA-256.
/// Errors name the file.
pub fn dataset(client: &Client, file: &Path) -> anyhow::Result<String> {
    let sha256 = decsweep_data::content_hash(file).map_err(|e| crate::exit::BadInput(e.to_string()))?;
    let path = format!("datasets/{sha256}");
    if has_dataset(client, &sha256).with_context(|| format!("dataset {}", file.display()))? {
        return Ok(sha256);
    }
    let opened = std::fs::File::open(file).with_context(|| format!("dataset {}: cannot read", file.display()))?;
    let bytes = opened.metadata().with_context(|| format!("dataset {}", file.display()))?.len();
    let bar = if bytes >= PROGRESS_FROM_BYTES && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(bytes).with_message(format!("uploading {}", file.display()));
        if let Ok(style) = ProgressStyle::with_template("{msg} {bar:30} {bytes}/{total_bytes} ({bytes_per_sec})") {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let body = reqwest::blocking::Body::sized(bar.wrap_read(opened), bytes);
    // A minute per 100 MiB and at least ten: a slow link may carry gigabytes.
    let timeout = Duration::from_secs(600 + bytes / (100 << 20) * 60);
    let stored: DatasetStored = client
        .upload_dataset(&sha256, body, timeout)
        .explain(client, || format!("PUT {path}"))
        .with_context(|| format!("uploading dataset {}", file.display()))?;
    bar.finish_and_clear();
    if stored.created {
        eprintln!("uploaded dataset {} ({} bytes, sha256 {sha256})", file.display(), stored.bytes);
    }
    Ok(sha256)
}

/// Whether the coordinator has the dataset (`HEAD`); a failure is never bad input, as before
/// uploads existed: the coordinator is out of reach or refuses the look.
fn has_dataset(client: &Client, sha256: &str) -> anyhow::Result<bool> {
    let path = format!("datasets/{sha256}");
    client.has_dataset(sha256).map_err(|e| match e.status().and_then(|s| reqwest::StatusCode::from_u16(s).ok()) {
        Some(status) => anyhow::anyhow!("HEAD {path}: the coordinator answered {status}"),
        None => anyhow::Error::new(e).context(format!("HEAD {path}: cannot reach the coordinator")),
    })
}
