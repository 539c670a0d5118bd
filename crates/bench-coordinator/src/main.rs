//! `decsweep-bench-coordinator`: drives the coordinator's HTTP API with simulated workers and,
//! in the same run, the same loop through Optuna with SQLite storage as the peer.
//!
//! The coordinator runs in-process on 127.0.0.1 with a temporary database. A study of N
//! `command` trials (never run) is created; W workers (tokio tasks, one HTTP client and
//! connection each) loop `lease → complete` with no training between, until the queue is
//! empty. Printed: trials/s over the whole drain, p50/p99 latency of the lease calls, and the
//! same for `crates/bench-coordinator/bench/optuna_peer.py` (ask/tell, N trials, W threads), then the
//! ratio.
//!
//! With `--netem DELAY` (root; `make bench-coordinator-netem`) the workers are not on loopback:
//! they run as two child processes (`--swarm`), each in its own network namespace linked to this
//! one by a veth pair whose every packet, both ways, `decsweep-netem` holds for DELAY. The same
//! drain is run first on loopback with as many workers, and the two are compared. The peer is
//! then Optuna's networked path over the same links: its gRPC storage proxy beside the
//! coordinator, and as many ask/tell threads split between the namespaces
//! (`crates/bench-coordinator/bench/optuna_grpc_peer.py`; `--peer-trials`, default 1,000 there).
//!
//! ```text
//! cargo run --release -p decsweep-bench-coordinator -- \
//!     [--trials 20000] [--workers 64] [--peer-trials N] [--python PATH] [--no-peer] [--netem 50ms]
//! ```

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use decsweep_api::wire::{CreateStudy, Lease};
use decsweep_coordinator::{Coordinator, CoordinatorOptions};
use decsweep_server::{ServeOptions, Server};

mod netlab;

/// The bearer token the benchmark's coordinator requires and its workers send.
const TOKEN: &str = "bench-coordinator-token";

struct Args {
    trials: usize,
    workers: usize,
    peer_trials: Option<usize>,
    python: Option<String>,
    peer: bool,
    /// One-way delay on the workers' links (`--netem`).
    netem: Option<String>,
    /// Run as one swarm of simulated workers against this URL (a child of a `--netem` run).
    swarm: Option<String>,
}

fn parse_args() -> Result<Args> {
    let mut args =
        Args { trials: 20_000, workers: 64, peer_trials: None, python: None, peer: true, netem: None, swarm: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--trials" => args.trials = value("--trials")?.parse().context("--trials expects a count")?,
            "--workers" => args.workers = value("--workers")?.parse().context("--workers expects a count")?,
            "--peer-trials" => {
                args.peer_trials = Some(value("--peer-trials")?.parse().context("--peer-trials expects a count")?)
            }
            "--python" => args.python = Some(value("--python")?),
            "--no-peer" => args.peer = false,
            "--netem" => args.netem = Some(value("--netem")?),
            "--swarm" => args.swarm = Some(value("--swarm")?),
            "-h" | "--help" => {
                println!(
                    "usage: decsweep-bench-coordinator [--trials N] [--workers W] [--peer-trials N] [--python PATH] [--no-peer] [--netem DELAY]\n\
                     Python defaults to $DECSWEEP_PYTHON, then python3; it needs optuna installed.\n\
                     --netem DELAY (root, iproute2, iptables): workers in two network namespaces whose links\n\
                     delay every packet by DELAY each way (e.g. 50ms), compared with loopback and with Optuna's\n\
                     gRPC storage proxy over the same links (needs grpcio; --no-peer skips it)."
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}` (see --help)"),
        }
    }
    if args.trials == 0 || args.workers == 0 {
        bail!("--trials and --workers must be at least 1");
    }
    if args.trials > decsweep_search::MAX_TRIALS {
        bail!("--trials is at most {} (a spec's limit)", decsweep_search::MAX_TRIALS);
    }
    Ok(args)
}

/// A spec of `n` command trials: one grid parameter with `n` values.
fn spec(n: usize) -> String {
    let values: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    format!(
        "[study]\nname = \"bench\"\ndataset = {{ synthetic = {{ seed = 0, n = 4 }} }}\npipelines = [\"command\"]\n\
         seeds = [0]\nretries = 0\n\n[command]\nprogram = [\"true\"]\n\n[space]\nx = {{ grid = [{}] }}\n",
        values.join(", ")
    )
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let k = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[k.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Run {
    trials: usize,
    seconds: f64,
    p50: Duration,
    p99: Duration,
}

async fn worker(http: reqwest::Client, base: Arc<str>, name: String) -> Result<(usize, Vec<Duration>)> {
    let mut done = 0;
    let mut latencies = Vec::new();
    let lease_url = format!("{base}/v1/lease");
    let body = serde_json::json!({ "worker": name, "wait_ms": 0 });
    loop {
        let t0 = Instant::now();
        let r = http.post(&lease_url).json(&body).send().await?;
        let status = r.status();
        if status == reqwest::StatusCode::NO_CONTENT {
            latencies.push(t0.elapsed());
            return Ok((done, latencies));
        }
        if !status.is_success() {
            bail!("lease answered {status}: {}", r.text().await.unwrap_or_default());
        }
        let lease: Lease = r.json().await?;
        latencies.push(t0.elapsed());
        let r = http
            .post(format!("{base}/v1/leases/{}/complete", lease.lease_id))
            .json(&serde_json::json!({ "metrics": { "accuracy": 0.5 } }))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("complete answered {}", r.status());
        }
        done += 1;
    }
}

/// `workers` simulated workers draining the queue at `base`; returns completions and every
/// lease call's latency.
async fn drain(base: &str, workers: usize, prefix: &str) -> Result<(usize, Vec<Duration>)> {
    let base: Arc<str> = base.into();
    let mut auth = reqwest::header::HeaderMap::new();
    auth.insert(reqwest::header::AUTHORIZATION, format!("Bearer {TOKEN}").parse()?);
    let clients: Vec<reqwest::Client> = (0..workers)
        .map(|_| {
            let client = reqwest::Client::builder().pool_max_idle_per_host(1).tcp_nodelay(true);
            client.default_headers(auth.clone()).build()
        })
        .collect::<Result<_, _>>()?;
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, http)| tokio::spawn(worker(http, base.clone(), format!("{prefix}-{i}"))))
        .collect();
    let mut done = 0;
    let mut latencies = Vec::new();
    for t in tasks {
        let (n, l) = t.await.context("a worker task panicked")??;
        done += n;
        latencies.extend(l);
    }
    Ok((done, latencies))
}

/// `--swarm URL`: one namespace's share of the workers; prints its completions and latencies.
async fn swarm(args: &Args, url: &str) -> Result<()> {
    let prefix = format!("swarm-{}", std::process::id());
    let (done, latencies) = drain(url, args.workers, &prefix).await?;
    let micros: Vec<u64> = latencies.iter().map(|d| d.as_micros() as u64).collect();
    println!("{}", serde_json::json!({ "trials": done, "latency_us": micros }));
    Ok(())
}

/// `n` split over `hosts`: host `i`'s share.
fn share(n: usize, hosts: usize, i: usize) -> usize {
    n / hosts + usize::from(i < n % hosts)
}

/// The result a child drain (a `--swarm`, an Optuna drain) printed as its last JSON line:
/// `{"trials": N, "latency_us": [...], ...}`. Returns the trials, the latencies and the whole
/// object, for what else that kind of drain reports.
fn drain_result(out: &std::process::Output, what: &str) -> Result<(usize, Vec<Duration>, serde_json::Value)> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    let Some(line) = line.filter(|_| out.status.success()) else {
        bail!("{what} failed ({}): {stdout}", out.status);
    };
    let v: serde_json::Value = serde_json::from_str(line).with_context(|| format!("the JSON of {what}"))?;
    let trials = v["trials"].as_u64().with_context(|| format!("`trials` in the JSON of {what}"))? as usize;
    let micros = v["latency_us"].as_array().with_context(|| format!("`latency_us` in the JSON of {what}"))?;
    let latencies = micros.iter().filter_map(|m| m.as_u64()).map(Duration::from_micros).collect();
    Ok((trials, latencies, v))
}

/// The `--swarm` children, one per namespace, sharing the workers; waited for off the runtime.
async fn drain_from_namespaces(args: &Args, lab: &netlab::Lab, port: u16) -> Result<(usize, Vec<Duration>)> {
    let me = std::env::current_exe()?;
    let mut waits = Vec::new();
    for (i, host) in lab.hosts.iter().enumerate() {
        let share = share(args.workers, lab.hosts.len(), i);
        let child_args =
            ["--swarm".to_string(), format!("http://{}:{port}", host.gateway), "--workers".into(), share.to_string()];
        let child = lab.spawn_in(host, &me, &child_args)?;
        waits.push(tokio::task::spawn_blocking(move || child.wait_with_output()));
    }
    let (mut done, mut latencies) = (0, Vec::new());
    for wait in waits {
        let (trials, lease_latencies, _) = drain_result(&wait.await??, "a worker swarm")?;
        done += trials;
        latencies.extend(lease_latencies);
    }
    Ok((done, latencies))
}

/// Serves a fresh study of `args.trials` trials and drains it: from tokio tasks over loopback,
/// or, given a lab, from its namespaces.
async fn bench_decsweep(args: &Args, dir: &std::path::Path, lab: Option<&netlab::Lab>) -> Result<Run> {
    // A token in both runs: a coordinator serves beyond loopback only with one.
    let options = CoordinatorOptions { lease_ttl: Duration::from_secs(300), ..Default::default() };
    let coordinator = Coordinator::open(dir.join(format!("bench-{}.db", lab.is_some())), options)?;
    let serve = ServeOptions { token: Some(TOKEN.into()), ..Default::default() };
    let listener = tokio::net::TcpListener::bind(if lab.is_some() { "0.0.0.0:0" } else { "127.0.0.1:0" }).await?;
    let addr = listener.local_addr()?;
    let server = Server::new(coordinator.clone(), serve);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        server
            .serve(listener, async move {
                let _ = stopped.await;
            })
            .await
    });

    let t = Instant::now();
    let info = coordinator.create_study(CreateStudy::new(spec(args.trials), "bench.toml")).await?;
    println!("  study creation: {:.2} s ({} trials inserted)", t.elapsed().as_secs_f64(), info.counts.total());

    let started = Instant::now();
    let (done, mut latencies) = match lab {
        None => drain(&format!("http://{addr}"), args.workers, "bench").await?,
        Some(lab) => drain_from_namespaces(args, lab, addr.port()).await?,
    };
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort();

    let counts = coordinator.study("bench").await?.counts;
    if done != args.trials || counts.completed as usize != args.trials {
        bail!("expected {} completions, workers made {done} and the store has {}", args.trials, counts.completed);
    }
    let _ = stop.send(());
    served.await.context("server task")??;
    Ok(Run { trials: done, seconds, p50: percentile(&latencies, 0.5), p99: percentile(&latencies, 0.99) })
}

fn bench_optuna(args: &Args, dir: &std::path::Path) -> Result<(Run, String)> {
    let python = python(args);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/optuna_peer.py");
    let trials = args.peer_trials.unwrap_or(args.trials);
    let out = Command::new(&python)
        .arg(&script)
        .args(["--trials", &trials.to_string(), "--workers", &args.workers.to_string()])
        .arg("--db")
        .arg(dir.join("optuna.db"))
        .output()
        .with_context(|| format!("running {python} {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "the Optuna peer failed ({}); is optuna installed for {python}?\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).context("no JSON from the peer")?;
    let v: serde_json::Value = serde_json::from_str(line).context("the peer's JSON")?;
    let num = |k: &str| v[k].as_f64().with_context(|| format!("`{k}` missing from the peer's JSON"));
    let run = Run {
        trials: num("trials")? as usize,
        seconds: num("seconds")?,
        p50: Duration::from_secs_f64(num("ask_p50_ms")? / 1000.0),
        p99: Duration::from_secs_f64(num("ask_p99_ms")? / 1000.0),
    };
    Ok((run, v["optuna"].as_str().unwrap_or("?").to_string()))
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = parse_args()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if let Some(url) = &args.swarm {
        return rt.block_on(swarm(&args, url));
    }
    let dir = tempfile::tempdir()?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "decsweep coordinator bench: {} command trials, {} workers, HTTP on loopback, {cores} cores",
        args.trials, args.workers
    );
    let ours = rt.block_on(bench_decsweep(&args, dir.path(), None))?;
    let rate = ours.trials as f64 / ours.seconds;
    println!(
        "  decsweep: {} trials in {:.2} s = {rate:.0} trials/s; lease latency p50 {:.2} ms, p99 {:.2} ms",
        ours.trials,
        ours.seconds,
        ms(ours.p50),
        ms(ours.p99)
    );
    if let Some(delay) = &args.netem {
        return bench_netem(&rt, &args, dir.path(), delay, &ours);
    }
    drop(rt);
    if !args.peer {
        println!(
            "RESULT {}",
            serde_json::json!({ "trials": ours.trials, "trials_per_s": rate, "lease_p50_ms": ms(ours.p50), "lease_p99_ms": ms(ours.p99) })
        );
        return Ok(());
    }
    let (peer, version) = bench_optuna(&args, dir.path())?;
    let peer_rate = peer.trials as f64 / peer.seconds;
    println!(
        "  optuna {version} (SQLite WAL, RandomSampler, {} threads, ask/tell): {} trials in {:.2} s = {peer_rate:.0} trials/s; \
         ask latency p50 {:.2} ms, p99 {:.2} ms",
        args.workers,
        peer.trials,
        peer.seconds,
        ms(peer.p50),
        ms(peer.p99)
    );
    let ratio = rate / peer_rate;
    println!("  ratio: {ratio:.1}x Optuna's throughput (goal: >= 2000 trials/s and >= 10x)");
    println!(
        "RESULT {}",
        serde_json::json!({
            "trials": ours.trials, "workers": args.workers, "trials_per_s": rate,
            "lease_p50_ms": ms(ours.p50), "lease_p99_ms": ms(ours.p99),
            "optuna_version": version, "optuna_trials": peer.trials, "optuna_trials_per_s": peer_rate,
            "optuna_ask_p50_ms": ms(peer.p50), "optuna_ask_p99_ms": ms(peer.p99), "ratio": ratio,
        })
    );
    Ok(())
}

/// The same drain with the workers behind delayed links, compared with the loopback run and,
/// unless `--no-peer`, with Optuna's gRPC storage proxy over the same links.
fn bench_netem(
    rt: &tokio::runtime::Runtime,
    args: &Args,
    dir: &std::path::Path,
    delay: &str,
    loopback: &Run,
) -> Result<()> {
    let netem = netlab::sibling("decsweep-netem")?;
    let mut lab = netlab::Lab::new(2)?;
    lab.delay_links(&netem, delay)?;
    println!(
        "  then {} workers in {} network namespaces, every packet of their links delayed {delay} each way \
         (decsweep-netem)",
        args.workers,
        lab.hosts.len()
    );
    let run = rt.block_on(bench_decsweep(args, dir, Some(&lab)))?;
    let rate = run.trials as f64 / run.seconds;
    let loopback_rate = loopback.trials as f64 / loopback.seconds;
    println!(
        "  decsweep over delayed links: {} trials in {:.2} s = {rate:.0} trials/s; lease latency p50 {:.2} ms, p99 {:.2} ms",
        run.trials,
        run.seconds,
        ms(run.p50),
        ms(run.p99)
    );
    println!("  ratio: {:.2}x of the loopback throughput", rate / loopback_rate);
    let mut result = serde_json::json!({
        "trials": run.trials, "workers": args.workers, "delay": delay,
        "trials_per_s": rate, "lease_p50_ms": ms(run.p50), "lease_p99_ms": ms(run.p99),
        "loopback_trials_per_s": loopback_rate, "loopback_lease_p50_ms": ms(loopback.p50),
        "loopback_lease_p99_ms": ms(loopback.p99),
    });
    if args.peer {
        let (peer, version) = optuna_over_links(args, &lab, dir)?;
        let peer_rate = peer.trials as f64 / peer.seconds;
        println!(
            "  optuna {version} through its gRPC storage proxy over the same links, {} threads: {} trials in {:.2} s \
             = {peer_rate:.1} trials/s; ask latency p50 {:.2} ms, p99 {:.2} ms",
            args.workers,
            peer.trials,
            peer.seconds,
            ms(peer.p50),
            ms(peer.p99)
        );
        println!("  ratio: {:.0}x Optuna's throughput over the same links", rate / peer_rate);
        result["optuna_version"] = version.into();
        result["optuna_trials"] = peer.trials.into();
        result["optuna_trials_per_s"] = peer_rate.into();
        result["optuna_ask_p50_ms"] = ms(peer.p50).into();
        result["optuna_ask_p99_ms"] = ms(peer.p99).into();
        result["ratio"] = (rate / peer_rate).into();
    }
    let packets = lab.stop_delays();
    println!("  links: {}", packets.join("; "));
    result["links"] = packets.into();
    println!("RESULT {result}");
    Ok(())
}

fn python(args: &Args) -> String {
    args.python
        .clone()
        .or_else(|| std::env::var("DECSWEEP_PYTHON").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "python3".into())
}

/// Optuna's gRPC storage proxy (SQLite behind it) served here, and `--peer-trials` ask/tell
/// trials drained by `args.workers` threads split between the lab's namespaces.
fn optuna_over_links(args: &Args, lab: &netlab::Lab, dir: &std::path::Path) -> Result<(Run, String)> {
    use std::io::BufRead;
    let python = python(args);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/optuna_grpc_peer.py");
    let port = std::net::TcpListener::bind("0.0.0.0:0")?.local_addr()?.port();
    let db = dir.join("optuna-grpc.db");
    let server = Command::new(&python)
        .arg(&script)
        .args(["serve", "--port", &port.to_string()])
        .arg("--db")
        .arg(&db)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {python} {}", script.display()))?;
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut server = Stop(server);
    let mut ready = String::new();
    std::io::BufReader::new(server.0.stdout.take().expect("piped")).read_line(&mut ready)?;
    if ready.trim() != "ready" {
        bail!("the Optuna gRPC proxy did not start (is grpcio installed for {python}? `make bench-coordinator-netem` installs it)");
    }
    let trials = args.peer_trials.unwrap_or(1000);
    let hosts = lab.hosts.len();
    let mut children = Vec::new();
    for (i, host) in lab.hosts.iter().enumerate() {
        let drain_args = [
            script.display().to_string(),
            "drain".into(),
            "--host".into(),
            host.gateway.clone(),
            "--port".into(),
            port.to_string(),
            "--trials".into(),
            share(trials, hosts, i).to_string(),
            "--workers".into(),
            share(args.workers, hosts, i).to_string(),
        ];
        children.push(lab.spawn_in(host, std::path::Path::new(&python), &drain_args)?);
    }
    // Each drain times itself from when all its threads have loaded the study, so Python's
    // start-up is not counted against Optuna; the slower of the two is the run's time.
    let (mut done, mut latencies, mut version, mut seconds) = (0, Vec::new(), String::new(), 0f64);
    for child in children {
        let (trials, ask_latencies, v) = drain_result(&child.wait_with_output()?, "an Optuna drain")?;
        done += trials;
        latencies.extend(ask_latencies);
        version = v["optuna"].as_str().unwrap_or("?").to_string();
        seconds = seconds.max(v["seconds"].as_f64().context("`seconds` in a drain's JSON")?);
    }
    latencies.sort();
    Ok((Run { trials: done, seconds, p50: percentile(&latencies, 0.5), p99: percentile(&latencies, 0.99) }, version))
}
