//! `decsweep run SPEC`: the embedded default. Starts the coordinator on loopback over a SQLite
//! file, spawns local `decsweep-worker` processes that pull from it exactly as remote workers
//! would, shows progress, and writes the reports. Interrupting it and running the same command
//! again resumes the study from its database.
//!
//! The first line it prints is the dashboard's URL: the coordinator's port, which also serves
//! `/v1` (so `decsweep cancel STUDY --coordinator <that URL>` steers the run). The coordinator
//! needs a random token made for this run: the URL carries it once (`?token=`, which logs the
//! browser in and is then dropped from the address bar), the workers read it from the run's
//! token file (`--token-file`, mode 0600, in the per-user runtime folder; never in argv or the
//! environment), and so do decsweep's clients on this machine. The file is removed at the end. While the
//! progress bar is drawn, log lines (warnings only, unless `-v` or RUST_LOG) and the workers'
//! stderr are printed above it ([`crate::logging::set_progress_bar`]).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use decsweep_api::wire::{CreateStudy, StatusCounts};
use decsweep_coordinator::{Coordinator, CoordinatorOptions, StorageProblem};
use decsweep_server::{ServeOptions, Server};
use indicatif::{ProgressBar, ProgressStyle};

use super::placement::{self, Machine};
use super::report::write_reports;
use crate::exit::Interrupted;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Sweep spec (TOML), e.g. sweeps/demo.toml.
    #[arg(value_name = "SPEC")]
    spec: PathBuf,
    /// Local worker processes (each runs one trial at a time). Default on CPU: the machine's
    /// cores divided by the spec's `[resources] cpus` per trial (1 when unset). With CUDA: the
    /// GPUs divided by `[resources] gpus` per trial (a whole GPU when unset; 0.25 puts four
    /// trials on each GPU), at most the CPU figure; workers are spread over the GPUs.
    #[arg(long)]
    workers: Option<usize>,
    /// Study database; running again with the same database resumes.
    /// Default: <out>/decsweep.db. Locked while the run lasts, like `serve --db`: a second
    /// coordinator of it is refused (exit 2), naming this one.
    #[arg(long, value_name = "FILE")]
    db: Option<PathBuf>,
    /// Output directory: where the reports (and by default the database) go, the same option
    /// as `decsweep report --out`. Default: results/<study name>.
    // `--results`, this option's name until both commands shared `--out`, stays a hidden
    // alias so existing scripts keep working.
    #[arg(long, value_name = "DIR", alias = "results")]
    out: Option<PathBuf>,
    /// The worker binary. Default: $DECSWEEP_WORKER, else `decsweep-worker` beside this binary,
    /// else on PATH.
    #[arg(long, value_name = "PATH")]
    worker_bin: Option<PathBuf>,
    /// CPU threads per worker. Default: the machine's cores divided among the workers.
    #[arg(long)]
    threads: Option<usize>,
    /// Device for the workers' trials (`cpu`, `cuda`, `cuda:K`, `auto`). `auto` and `cuda` use
    /// every GPU the worker binary can see (`decsweep-worker info`), `auto` the CPU when none.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Seconds a lease lives without a heartbeat before its trial is handed out again.
    #[arg(long, default_value_t = 20)]
    lease_ttl: u64,
    /// The workers' folder: downloaded datasets, stage checkpoints that later runs reuse, trial
    /// outputs. It grows with every study; `decsweep cache du` shows it, `decsweep cache clean`
    /// clears it. Default: $DECSWEEP_HOME, else ~/.cache/decsweep.
    #[arg(long, value_name = "DIR", env = decsweep_connect::work_dir::ENV)]
    work_dir: Option<PathBuf>,
    /// Each worker trains up to K trials of the same shapes at once as one stacked model (one
    /// process per pack; each trial keeps its own lease and result). Default: the spec's
    /// `[resources] pack`, else 1.
    #[arg(long, value_name = "K", value_parser = decsweep_api::pack::parse_pack)]
    pack: Option<u32>,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let (spec_path, spec_text) = super::read_spec(&args.spec)?;
    // Parse here too, so a bad spec is reported before anything is created.
    let spec = decsweep_search::SweepSpec::from_source(&spec_text, &spec_path, &Default::default())
        .map_err(|e| crate::exit::BadInput(e.to_string()))?;
    super::check_dataset(&spec)?;
    let study = spec.name().to_string();
    let results = args.out.clone().unwrap_or_else(|| PathBuf::from("results").join(&study));
    std::fs::create_dir_all(&results).with_context(|| format!("creating {}", results.display()))?;
    let db = args.db.clone().unwrap_or_else(|| results.join("decsweep.db"));
    let worker_bin = find_worker(args.worker_bin.as_deref())?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cuda_devices = if args.device == "cpu" { 0 } else { placement::cuda_devices(&worker_bin)? };
    let devices = placement::place(args.workers, &args.device, spec.resources(), Machine { cores, cuda_devices })
        .map_err(crate::exit::BadInput)?;
    let workers = devices.len();

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        // Listening first, so the dashboard's address is the first thing printed; connections
        // wait in the backlog until the server starts below.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let local = listener.local_addr()?;
        let url = format!("http://{local}");
        let token = RunToken(decsweep_connect::runtime::run_token(local)?);
        eprintln!("dashboard: {url}/?token={}", token.0.token);
        let options = CoordinatorOptions {
            lease_ttl: Duration::from_secs(args.lease_ttl.max(1)),
            lock_command: Some("decsweep run".into()),
            ..Default::default()
        };
        let coordinator = Coordinator::open(&db, options)?;
        coordinator.announce_address(&url)?;
        let serve = ServeOptions { token: Some(token.0.token.clone()), ..Default::default() };
        let info = coordinator
            .create_study(CreateStudy::new(spec_text, spec_path.display().to_string()))
            .await
            .map_err(super::coordinator_error)?;
        if info.created {
            eprintln!("study `{study}`: {} trials, database {}", info.counts.total(), db.display());
        } else {
            let done = super::client::done_phrase(&info.counts);
            eprintln!("study `{study}`: resuming from {} ({} trials, {done})", db.display(), info.counts.total());
        }

        let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
        let server = {
            let server = Server::new(coordinator.clone(), serve);
            let dashboard = decsweep_dashboard::router(server.clone());
            tokio::spawn(async move {
                server
                    .serve_with(listener, dashboard, None, async {
                        let _ = server_stopped.await;
                    })
                    .await
            })
        };

        let threads = args.threads.unwrap_or((cores / workers.max(1)).max(1));
        let token_file = token.0.path.clone();
        let work_dir = args.work_dir.clone();
        let mut pool =
            WorkerPool { bin: worker_bin, url, token_file, threads, work_dir, pack: args.pack, children: Vec::new() };
        let outcome = if info.counts.finished() < info.counts.total() {
            for device in &devices {
                pool.spawn(device)?;
            }
            let result = watch(&coordinator, &study, &mut pool).await;
            // Signal first, then wake the idle agents' long polls (they come back empty now), so
            // every agent sees its stop flag at once; running trials are returned meanwhile.
            pool.signal_stop();
            coordinator.begin_shutdown();
            pool.wait_stopped().await;
            result
        } else {
            Ok(info.counts.clone())
        };

        // Wake the long polls of idle connections so the server can stop at once.
        coordinator.begin_shutdown();
        let _ = stop_server.send(());
        if let Ok(Err(e)) = server.await {
            tracing::warn!(error = %e, "coordinator server ended with an error");
        }
        let counts = outcome?;
        let files = write_reports(&coordinator, &study, &results).await?;
        let table = results.join("table.md");
        if let Ok(text) = std::fs::read_to_string(&table) {
            println!("{text}");
        }
        eprintln!("reports: {}", files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "));
        if counts.cancelled > 0 {
            eprintln!(
                "{} of {} trials were cancelled (listed in trials.csv, left out of summaries)",
                counts.cancelled,
                counts.total()
            );
        }
        if counts.failed > 0 {
            bail!(
                "{} of {} trials failed (their errors are in {})",
                counts.failed,
                counts.total(),
                results.join("trials.csv").display()
            );
        }
        Ok(())
    })
}

/// Follows the study until every trial is finished, with a progress bar; restarts workers that
/// die. Ctrl-C stops early (the workers return their trials to the queue; running again resumes).
async fn watch(coordinator: &Coordinator, study: &str, pool: &mut WorkerPool) -> anyhow::Result<StatusCounts> {
    let info = coordinator.study(study).await?;
    let first = &info.counts;
    // A TPE study samples its trials as it goes; `planned` is its final size.
    let bar = ProgressBar::new(info.planned.unwrap_or(first.total()));
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} trials  {msg}  ETA {eta}")
            .expect("valid template"),
    );
    bar.set_position(first.finished());
    bar.reset_eta();
    crate::logging::set_progress_bar(Some(bar.clone()));
    let counts = follow(coordinator, study, pool, &bar).await;
    crate::logging::set_progress_bar(None);
    counts
}

async fn follow(
    coordinator: &Coordinator,
    study: &str,
    pool: &mut WorkerPool,
    bar: &ProgressBar,
) -> anyhow::Result<StatusCounts> {
    let started = Instant::now();
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    let mut storage = None;
    loop {
        storage = say_storage_changes(bar, coordinator, storage);
        let info = coordinator.study(study).await?;
        let counts = info.counts;
        bar.set_length(info.planned.unwrap_or(counts.total()).max(counts.total()));
        bar.set_position(counts.finished());
        let mut message = format!("running {}  failed {}  pruned {}", counts.running, counts.failed, counts.pruned);
        if counts.cancelled > 0 {
            message.push_str(&format!("  cancelled {}", counts.cancelled));
        }
        bar.set_message(message);
        if counts.finished() >= counts.total() {
            bar.finish();
            tracing::info!(seconds = started.elapsed().as_secs_f64(), "study finished");
            return Ok(counts);
        }
        pool.replace_dead()?;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = &mut ctrl_c => {
                bar.abandon_with_message("interrupted");
                return Err(Interrupted.into());
            }
        }
    }
}

/// Prints a line above the progress bar when the database's disk starts or stops refusing
/// writes (the study stalls meanwhile; it resumes by itself once the disk takes writes).
/// Returns the problem now, for the next call.
fn say_storage_changes(
    bar: &ProgressBar,
    coordinator: &Coordinator,
    before: Option<StorageProblem>,
) -> Option<StorageProblem> {
    let fault = coordinator.storage_fault();
    let now = fault.as_ref().map(|f| f.problem);
    if now == before {
        return now;
    }
    let line = match &fault {
        Some(f) => format!(
            "WARNING: the study database's disk refuses writes ({}); the study is stalled until it is fixed \
             (free space or make it writable: it resumes by itself)",
            f.error
        ),
        None => "the study database's disk takes writes again; the study goes on".to_string(),
    };
    // A hidden bar (output not a terminal) prints nothing, not even `println`.
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
    now
}

/// The run's token file, removed when the run ends (its port is never reused on purpose).
struct RunToken(decsweep_connect::runtime::RuntimeToken);

impl Drop for RunToken {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0.path);
    }
}

/// The local worker processes, each with its device.
struct WorkerPool {
    bin: PathBuf,
    url: String,
    /// The coordinator's token, handed over as a file path.
    token_file: PathBuf,
    threads: usize,
    /// `--work-dir` for every worker; unset, they use their default (the same folder).
    work_dir: Option<PathBuf>,
    /// `--pack` for every worker; `None`: the study's `[resources] pack` decides.
    pack: Option<u32>,
    children: Vec<(Child, String)>,
}

impl WorkerPool {
    fn spawn(&mut self, device: &str) -> anyhow::Result<()> {
        let mut cmd = Command::new(&self.bin);
        cmd.args(["--coordinator", &self.url, "--threads", &self.threads.to_string(), "--device", device]);
        cmd.arg("--token-file").arg(&self.token_file);
        if let Some(dir) = &self.work_dir {
            cmd.arg("--work-dir").arg(dir);
        }
        if let Some(k) = self.pack {
            cmd.args(["--pack", &k.to_string()]);
        }
        // The progress bar is the view here; workers speak up only for warnings, unless
        // the user asked for more.
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        // Their lines go above the progress bar rather than through it; the thread ends when
        // the worker does.
        if let Some(stderr) = child.stderr.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    crate::logging::eprint_line(&line);
                }
            });
        }
        self.children.push((child, device.to_string()));
        Ok(())
    }

    /// A worker that exited while work remains (a crash, an out-of-memory kill) is replaced on
    /// the same device; its trial comes back when the lease expires.
    fn replace_dead(&mut self) -> anyhow::Result<()> {
        let mut dead = Vec::new();
        self.children.retain_mut(|(c, device)| match c.try_wait() {
            Ok(Some(status)) => {
                tracing::warn!(%status, device = %device, "a worker exited; starting another");
                dead.push(device.clone());
                false
            }
            _ => true,
        });
        dead.iter().try_for_each(|device| self.spawn(device))
    }

    /// SIGTERM to every worker: each returns its running trial and exits.
    fn signal_stop(&self) {
        for (c, _) in &self.children {
            // SAFETY: kill(2) on a child we own; at worst it has exited already.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
        }
    }

    /// Waits for the signalled workers to exit (SIGKILL after a grace period).
    async fn wait_stopped(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for (c, _) in &mut self.children {
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
    }
}

pub(crate) fn find_worker(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("DECSWEEP_WORKER") {
        return Ok(PathBuf::from(p));
    }
    if let Some(sibling) = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|d| d.join("decsweep-worker")))
    {
        if sibling.exists() {
            return Ok(sibling);
        }
    }
    Ok(PathBuf::from("decsweep-worker"))
}
