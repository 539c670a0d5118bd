//! `decsweep submit`'s dataset upload: the coordinator never reads a path a client names, so
//! the bytes travel (`PUT /v1/datasets/{sha256}`), once per content.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use decsweep_api::wire::DatasetStored;
use indicatif::{ProgressBar, ProgressStyle};

use super::client::Client;

/// Files at least this large show a progress bar (on a terminal).
const PROGRESS_FROM_BYTES: u64 = 64 << 20;

/// Uploads the dataset `file` unless the coordinator already has it; returns its SHA-256.
/// Errors name the file.
pub fn dataset(client: &Client, file: &Path) -> anyhow::Result<String> {
    let sha256 = decsweep_data::content_hash(file).map_err(|e| crate::exit::BadInput(e.to_string()))?;
    let path = format!("datasets/{sha256}");
    if client.exists(&path).with_context(|| format!("dataset {}", file.display()))? {
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
    let stored: DatasetStored =
        client.put_body(&path, body, timeout).with_context(|| format!("uploading dataset {}", file.display()))?;
    bar.finish_and_clear();
    if stored.created {
        eprintln!("uploaded dataset {} ({} bytes, sha256 {sha256})", file.display(), stored.bytes);
    }
    Ok(sha256)
}
