//! `make bench-dashboard`: the dashboard over a study of 100,000 finished trials with 30 epochs
//! of curves each, written straight into a store, against optuna-dashboard showing the same
//! trials from Optuna's SQLite storage, timed the same way in the same run.
//!
//! Measures (medians of several runs, printed as a Markdown table for bench/RESULTS.md):
//! - the study page's time to first byte (HTTP client on loopback), and for optuna-dashboard,
//!   whose page is a static shell, also its study API's, which carries the data;
//! - the time until headless Chromium shows the trials: decsweep's table is in the HTML, so the
//!   navigation's DOMContentLoaded with its 50 rows present; optuna-dashboard's "Trials (List)"
//!   page renders after its script has fetched the study, so the page's clock when the first
//!   trial is on screen (polled every 20 ms);
//! - the bytes of the one live update a page receives after one more trial completes.
//!
//! `cargo run --release -p decsweep-dashboard --example bench_dashboard -- [--trials N] [--epochs E]
//! [--runs R] [--peer-runs P] [--no-optuna]`; the peer needs `optuna-dashboard` next to
//! `$DECSWEEP_PYTHON` (the Makefile installs it into `.venv`). Its study API takes minutes per call
//! at 100,000 trials, so it is measured `--peer-runs` times (default 1) and each browser load may
//! take up to [`RENDER_LIMIT`]; decsweep's figures are printed as soon as they are measured.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use decsweep_api::wire::CreateStudy;
use decsweep_coordinator::{Coordinator, CoordinatorOptions};
use serde_json::json;

#[path = "../tests/support/mod.rs"]
mod support;

/// How long a page may take to show the trials before the benchmark calls it "not rendered".
const RENDER_LIMIT: Duration = Duration::from_secs(600);
/// How long one request to optuna-dashboard may take.
const PEER_LIMIT: Duration = Duration::from_secs(1200);

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Creates the study (n trials, the most a spec may plan) through the coordinator, finishes
/// them with `epochs` curve points each directly in SQLite, and adds one pending trial (a copy of
/// the first with another key), which the benchmark completes to measure a live update.
async fn fixture(db: &Path, n: u64, epochs: u64) -> anyhow::Result<()> {
    let values: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let spec = format!(
        "[study]\nname = \"bench\"\ndataset = {{ synthetic = {{ seed = 1, n = 8 }} }}\npipelines = [\"command\"]\nseeds = [0]\n\n\
         [command]\nprogram = [\"true\"]\n\n[space]\nx = {{ grid = [{}] }}\n",
        values.join(", ")
    );
    let c = Coordinator::open(db, CoordinatorOptions::default())?;
    c.create_study(CreateStudy::new(spec, "bench.toml")).await?;
    drop(c);
    let mut conn = rusqlite::Connection::open(db)?;
    let tx = conn.transaction()?;
    tx.execute(
        "UPDATE trials SET status = 'completed', attempts = 1, worker = 'bench-' || (id % 8), lease_id = 'l' || id,
                started_ms = created_ms + id * 1000, finished_ms = created_ms + id * 1000 + 900,
                metrics = json_object('accuracy', 0.5 + (id * 7919 % 1000) / 2000.0, 'loss', 1.0 - (id * 7919 % 1000) / 1500.0)",
        [],
    )?;
    tx.execute(
        "INSERT INTO trials (study_id, trial_key, pipeline, job, params, seed, config_id, label, status, created_ms, updated_ms)
         SELECT study_id, 'bench-extra', pipeline, job, json_set(params, '$.x', ?1), seed, config_id || '-extra', label,
                'pending', created_ms, updated_ms
           FROM trials WHERE id = 1",
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

/// What one dashboard measured; `None` where it has no such thing or never got there.
#[derive(Default)]
struct Figures {
    page_ttfb_ms: f64,
    data_ttfb_ms: Option<f64>,
    bytes_to_show: usize,
    rendered_ms: Option<f64>,
    update_bytes: usize,
}

/// Time to first byte and size on the wire of `url`, fetched `runs` times as a browser would
/// (accepting gzip, which reqwest here does not undo); returns (median ms, bytes).
async fn first_byte(http: &reqwest::Client, url: &str, runs: usize) -> anyhow::Result<(f64, usize)> {
    let mut ttfb = Vec::new();
    let mut bytes = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let mut r = http.get(url).header("accept-encoding", "gzip").send().await?.error_for_status()?;
        let first = r.chunk().await?;
        ttfb.push(t.elapsed().as_secs_f64() * 1000.0);
        let mut total = first.map_or(0, |c| c.len());
        while let Some(c) = r.chunk().await? {
            total += c.len();
        }
        bytes = total;
    }
    Ok((median(ttfb), bytes))
}

/// Opens `url` `runs` times and returns the median of what `script` reports (ms since navigation
/// start), or `None` when a run did not render within [`RENDER_LIMIT`].
async fn rendered(name: &str, url: &str, runs: usize, script: &str) -> Option<f64> {
    let b = support::browser::Browser::start(name).await;
    let mut times = Vec::new();
    for _ in 0..runs {
        b.goto(url).await;
        match b.until_within(RENDER_LIMIT, script).await {
            Some(v) => times.push(v.as_f64().unwrap_or(f64::NAN)),
            None => {
                b.close().await;
                return None;
            }
        }
    }
    b.close().await;
    Some(median(times))
}

async fn bench_decsweep(n: u64, epochs: u64, runs: usize) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("bench.db");
    let start = Instant::now();
    fixture(&db, n, epochs).await?;
    eprintln!(
        "decsweep fixture: {n} finished trials × {epochs} epochs written in {:.1} s",
        start.elapsed().as_secs_f64()
    );

    let opened = Instant::now();
    let s = support::Server::start_at(&db, CoordinatorOptions::default()).await;
    eprintln!("coordinator opened in {:.2} s", opened.elapsed().as_secs_f64());
    let url = s.url("/studies/bench");
    let (page_ttfb_ms, page_bytes) = first_byte(&s.http, &url, runs).await?;
    eprintln!("decsweep: study page first byte {page_ttfb_ms:.0} ms, {page_bytes} bytes");
    let rendered_ms = rendered(
        "bench_dashboard",
        &url,
        runs,
        "const n = performance.getEntriesByType('navigation')[0];
         const rows = document.querySelectorAll('#trials tbody tr').length;
         return rows === 50 && n && n.domContentLoadedEventEnd > 0 ? n.domContentLoadedEventEnd : null;",
    )
    .await;

    // One more trial completes; the page's next poll carries it.
    let cursor = s.coordinator.change_cursor().await?;
    let lease = s.lease("bench-w/0", "bench-w", None).await;
    s.complete(&lease, json!({ "accuracy": 0.9, "loss": 0.2 }), None).await;
    let mut ids: Vec<String> = (1..=49).map(|i| i.to_string()).collect();
    ids.push(lease.trial_id.to_string());
    let live =
        s.url(&format!("/live/studies/bench?since={cursor}&ids={}&metrics=accuracy,loss&params=x", ids.join(",")));
    let update = s.http.get(&live).send().await?.error_for_status()?.bytes().await?;
    eprintln!("decsweep: rendered in {rendered_ms:?} ms, live update {} bytes", update.len());
    s.stop().await;
    Ok(Figures { page_ttfb_ms, data_ttfb_ms: None, bytes_to_show: page_bytes, rendered_ms, update_bytes: update.len() })
}

fn python() -> anyhow::Result<PathBuf> {
    std::env::var_os("DECSWEEP_PYTHON").map(PathBuf::from).ok_or_else(|| {
        anyhow::anyhow!("set DECSWEEP_PYTHON to the .venv's python (the Makefile does), or pass --no-optuna")
    })
}

fn run_python(args: &[&str]) -> anyhow::Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/optuna_dashboard_fixture.py");
    let status = Command::new(python()?).arg(&script).args(args).status()?;
    anyhow::ensure!(status.success(), "{} {} failed: {status}", script.display(), args.join(" "));
    Ok(())
}

async fn bench_optuna_dashboard(n: u64, epochs: u64, runs: usize) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("optuna.db");
    let db_arg = db.to_str().expect("a UTF-8 temporary path");
    let start = Instant::now();
    run_python(&["create", db_arg, &n.to_string(), &epochs.to_string()])?;
    eprintln!("Optuna fixture: {n} finished trials × {epochs} steps written in {:.1} s", start.elapsed().as_secs_f64());

    let exe = python()?.with_file_name("optuna-dashboard");
    anyhow::ensure!(exe.exists(), "{} is missing: `make bench-dashboard` installs optuna-dashboard", exe.display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let _server = support::spawn_quiet(Command::new(&exe).arg(format!("sqlite:///{db_arg}")).args([
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
    ]))?;
    let base = format!("http://127.0.0.1:{port}");
    // Its study API takes minutes at this size; past PEER_LIMIT the benchmark says so and stops.
    let http = reqwest::Client::builder().timeout(PEER_LIMIT).build()?;
    support::eventually("optuna-dashboard to answer /api/meta", Duration::from_secs(60), || {
        let (http, url) = (http.clone(), format!("{base}/api/meta"));
        async move { http.get(&url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
    })
    .await;

    // The page is a static shell; the trials come from the study API its script calls.
    let shell = format!("{base}/dashboard/studies/1/trials");
    let (page_ttfb_ms, shell_bytes) = first_byte(&http, &shell, runs).await?;
    let (_, bundle_bytes) = first_byte(&http, &format!("{base}/static/bundle.js"), 1).await?;
    let started = Instant::now();
    let (data_ttfb_ms, data_bytes) = first_byte(&http, &format!("{base}/api/studies/1"), runs).await?;
    eprintln!(
        "optuna-dashboard: study API first byte {data_ttfb_ms:.0} ms (median of {runs}), {data_bytes} bytes, {:.0} s in all",
        started.elapsed().as_secs_f64()
    );
    let rendered_ms = rendered(
        "bench_optuna_dashboard",
        &shell,
        runs,
        "return document.body.innerText.includes('Trial 0') ? performance.now() : null;",
    )
    .await;
    eprintln!("optuna-dashboard: trials shown in Chromium after {rendered_ms:?} ms");
    // At 100,000 trials the server may not survive the page's request (on a 24 GiB machine the
    // kernel's OOM killer ended it at 22.8 GB): then there is no update to measure.
    if http.get(format!("{base}/api/meta")).send().await.is_err() {
        eprintln!("optuna-dashboard: the server is gone (see `dmesg` for the OOM killer)");
        return Ok(Figures {
            page_ttfb_ms,
            data_ttfb_ms: Some(data_ttfb_ms),
            bytes_to_show: shell_bytes + bundle_bytes + data_bytes,
            rendered_ms,
            update_bytes: 0,
        });
    }

    // One more trial completes; the page's next poll asks for the trials after those it has.
    run_python(&["complete-one", db_arg, &epochs.to_string()])?;
    let update = http.get(format!("{base}/api/studies/1?after={n}")).send().await?.error_for_status()?.bytes().await?;
    Ok(Figures {
        page_ttfb_ms,
        data_ttfb_ms: Some(data_ttfb_ms),
        bytes_to_show: shell_bytes + bundle_bytes + data_bytes,
        rendered_ms,
        update_bytes: update.len(),
    })
}

fn kb(bytes: usize) -> String {
    format!("{:.1} KB", bytes as f64 / 1024.0)
}

fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) => format!("{v:.0} ms"),
        None => "—".into(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let n = arg("--trials", 100_000);
    let epochs = arg("--epochs", 30);
    let runs = arg("--runs", 5) as usize;
    let peer_runs = arg("--peer-runs", 1) as usize;
    let ours = bench_decsweep(n, epochs, runs).await?;
    let peer = if std::env::args().any(|a| a == "--no-optuna") {
        None
    } else {
        Some(bench_optuna_dashboard(n, epochs, peer_runs).await?)
    };

    let not_rendered = format!("not within {} s", RENDER_LIMIT.as_secs());
    let render = |f: &Figures| f.rendered_ms.map_or(not_rendered.clone(), |v| format!("{v:.0} ms"));
    let theirs = |f: &dyn Fn(&Figures) -> String| peer.as_ref().map_or("(skipped)".to_string(), f);
    println!("| {n} finished trials × {epochs} epochs | decsweep (median of {runs}) | optuna-dashboard (median of {peer_runs}) | goal |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| study page, first byte | {:.0} ms | {} | < 300 ms |",
        ours.page_ttfb_ms,
        theirs(&|f| format!("{:.0} ms (a static shell)", f.page_ttfb_ms))
    );
    println!("| the trials' data, first byte | in the page | {} | |", theirs(&|f| ms(f.data_ttfb_ms)));
    println!("| bytes sent to show the study | {} | {} | |", kb(ours.bytes_to_show), theirs(&|f| kb(f.bytes_to_show)));
    println!("| trials shown in headless Chromium | {} | {} | < 2 s |", render(&ours), theirs(&render));
    println!(
        "| live update after one more trial completes | {} bytes | {} | < 10 KB |",
        ours.update_bytes,
        theirs(&|f| format!("{} bytes", f.update_bytes))
    );
    Ok(())
}
