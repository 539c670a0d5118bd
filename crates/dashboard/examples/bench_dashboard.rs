//! `make bench-dashboard`: the dashboard over a study of 100,000 finished trials with 30 epochs
//! of curves each, written straight into a store.
//!
//! Measures (medians of several runs, printed as a Markdown table for bench/RESULTS.md):
//! - the study page's time to first byte (HTTP client on loopback);
//! - the time until headless Chromium has rendered the trial table (the navigation's
//!   DOMContentLoaded, with the table's rows checked present: the table is in the HTML);
//! - the bytes of the one live update a page receives after one more trial completes.
//!
//! `cargo run --release -p decsweep-dashboard --example bench_dashboard -- [--trials N] [--epochs E]`

use std::path::Path;
use std::time::Instant;

use decsweep_api::wire::CreateStudy;
use decsweep_coordinator::{Coordinator, CoordinatorOptions};
use serde_json::json;

#[path = "../tests/support/mod.rs"]
mod support;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Creates the study (n + 1 trials) through the coordinator, then finishes n of them with
/// `epochs` curve points each directly in SQLite.
async fn fixture(db: &Path, n: u64, epochs: u64) -> anyhow::Result<()> {
    let values: Vec<String> = (0..=n).map(|i| i.to_string()).collect();
    let spec = format!(
        "[study]\nname = \"bench\"\ndataset = {{ synthetic = {{ seed = 1, n = 8 }} }}\npipelines = [\"command\"]\nseeds = [0]\n\n\
         [command]\nprogram = [\"true\"]\n\n[space]\nx = {{ grid = [{}] }}\n",
        values.join(", ")
    );
    let c = Coordinator::open(db, CoordinatorOptions::default())?;
    c.create_study(CreateStudy { spec, spec_path: "bench.toml".into() }).await?;
    drop(c);
    let mut conn = rusqlite::Connection::open(db)?;
    let tx = conn.transaction()?;
    tx.execute(
        "UPDATE trials SET status = 'completed', attempts = 1, worker = 'bench-' || (id % 8), lease_id = 'l' || id,
                started_ms = created_ms + id * 1000, finished_ms = created_ms + id * 1000 + 900,
                metrics = json_object('accuracy', 0.5 + (id * 7919 % 1000) / 2000.0, 'loss', 1.0 - (id * 7919 % 1000) / 1500.0)
          WHERE id <= ?1",
        [n as i64],
    )?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO curves (trial_id, attempt, stage, epoch, epochs, train_loss, val_loss, val_accuracy, recorded_ms)
             VALUES (?1, 1, 'finetune', ?2, ?3, ?4, ?5, ?6, 0)",
        )?;
        for id in 1..=n as i64 {
            for e in 1..=epochs as i64 {
                let t = e as f64 / epochs as f64;
                insert.execute(rusqlite::params![id, e, epochs as i64, 1.0 - 0.5 * t, 1.1 - 0.4 * t, 0.5 + 0.3 * t])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let n = arg("--trials", 100_000);
    let epochs = arg("--epochs", 30);
    let runs = arg("--runs", 5) as usize;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("bench.db");
    let start = Instant::now();
    fixture(&db, n, epochs).await?;
    eprintln!("fixture: {n} finished trials × {epochs} epochs written in {:.1} s", start.elapsed().as_secs_f64());

    let opened = Instant::now();
    let s = support::Server::start_at(&db, CoordinatorOptions::default()).await;
    eprintln!("coordinator opened in {:.2} s", opened.elapsed().as_secs_f64());
    let url = s.url("/studies/bench");

    // Time to first byte: until the response's status line and headers have arrived and the
    // first chunk of the body is in.
    let mut ttfb = Vec::new();
    let mut page_bytes = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let mut r = s.http.get(&url).send().await?;
        let first = r.chunk().await?;
        ttfb.push(t.elapsed().as_secs_f64() * 1000.0);
        let mut total = first.map_or(0, |c| c.len());
        while let Some(c) = r.chunk().await? {
            total += c.len();
        }
        page_bytes = total;
    }

    // Rendered in Chromium: navigation start to DOMContentLoaded, with 50 rows present.
    let b = support::browser::Browser::start("bench_dashboard").await;
    let mut rendered = Vec::new();
    for _ in 0..runs {
        b.goto(&url).await;
        let v = b
            .until(
                "the trial table",
                "const n = performance.getEntriesByType('navigation')[0];
                 const rows = document.querySelectorAll('#trials tbody tr').length;
                 return rows === 50 && n && n.domContentLoadedEventEnd > 0 ? n.domContentLoadedEventEnd : null;",
            )
            .await;
        rendered.push(v.as_f64().unwrap_or(f64::NAN));
    }
    b.close().await;

    // One more trial completes; the page's next poll carries it.
    let cursor = s.coordinator.change_cursor().await?;
    let lease = s.lease("bench-w/0", "bench-w", None).await;
    s.complete(&lease, json!({ "accuracy": 0.9, "loss": 0.2 }), None).await;
    let mut ids: Vec<String> = (1..=49).map(|i| i.to_string()).collect();
    ids.push(lease.trial_id.to_string());
    let live =
        s.url(&format!("/live/studies/bench?since={cursor}&ids={}&metrics=accuracy,loss&params=x", ids.join(",")));
    let update = s.http.get(&live).send().await?.bytes().await?;
    let mut quiet_ms = Vec::new();
    let now = s.coordinator.change_cursor().await?;
    for _ in 0..runs {
        let t = Instant::now();
        s.http.get(s.url(&format!("/live/studies/bench?since={now}&ids=1"))).send().await?.bytes().await?;
        quiet_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    s.stop().await;

    println!("| what ({n} trials × {epochs} epochs) | decsweep dashboard | goal |");
    println!("| --- | --- | --- |");
    println!("| study page, first byte (median of {runs}) | {:.0} ms | < 300 ms |", median(ttfb));
    println!("| study page size | {:.0} KB | |", page_bytes as f64 / 1024.0);
    println!("| rendered in headless Chromium (median of {runs}) | {:.0} ms | < 2 s |", median(rendered));
    println!("| live update after one more trial completes | {} bytes | < 10 KB |", update.len());
    println!("| an empty poll (median of {runs}) | {:.1} ms | |", median(quiet_ms));
    Ok(())
}
