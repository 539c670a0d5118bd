//! `decsweep-bench-preempt [--kill-every 15] [--workers 2] [--seed 1] [--epochs-ft 60] [--out DIR]`
//!
//! What resuming saves under preemption. The same `dec` sweep (3 seeds × 2 label fractions on
//! synthetic CMU-MOSI, small encoders) runs twice on this machine: `decsweep serve` and
//! `--workers` agents, one of which, chosen at random, is stopped with SIGTERM every
//! `--kill-every` seconds and replaced by a fresh agent with a new work directory (a new machine,
//! as a spot instance would be). Once with resume (trial states saved every 5 s of training and
//! uploaded), once with `--no-resume`. Printed per run: interruptions, resumes, epochs trained
//! (progress reports the coordinator accepted), distinct epochs (stage, epoch) of every trial
//! (what a run that is never interrupted trains, cached stages aside), the epochs trained more
//! than once, and the wall time. The same seed picks the same agents to stop at the same times
//! in both runs; which trial each one runs depends on timing. A run still unfinished after
//! `--give-up-after` seconds (default 900) is stopped and reported as it stands: without resume,
//! a trial longer than a worker's typical lifetime may never finish.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use decsweep_api::wire::StudyInfo;

struct Args {
    kill_every: f64,
    /// A run still unfinished after this many seconds is stopped and reported as it stands.
    give_up_after: f64,
    workers: usize,
    seed: u64,
    epochs_ft: u32,
    out: PathBuf,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        kill_every: 15.0,
        give_up_after: 900.0,
        workers: 2,
        seed: 1,
        epochs_ft: 60,
        out: PathBuf::from("target/bench-preempt"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--kill-every" => a.kill_every = val()?.parse().context("--kill-every")?,
            "--give-up-after" => a.give_up_after = val()?.parse().context("--give-up-after")?,
            "--workers" => a.workers = val()?.parse().context("--workers")?,
            "--seed" => a.seed = val()?.parse().context("--seed")?,
            "--epochs-ft" => a.epochs_ft = val()?.parse().context("--epochs-ft")?,
            "--out" => a.out = PathBuf::from(val()?),
            "-h" | "--help" => {
                println!(
                    "usage: decsweep-bench-preempt [--kill-every 15] [--workers 2] [--seed 1] [--epochs-ft 60] [--out target/bench-preempt]\n\n\
                     Runs one `dec` sweep twice while stopping a random worker every --kill-every seconds\n\
                     (SIGTERM, then a fresh worker in a new directory): with resume and with --no-resume.\n\
                     Prints the epochs trained more than once and the wall time of each."
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}` (see --help)"),
        }
    }
    if a.kill_every.is_nan() || a.kill_every <= 0.0 || a.workers == 0 {
        bail!("--kill-every must be > 0 and --workers ≥ 1");
    }
    Ok(a)
}

const SPEC: &str = r#"[study]
name = "preempt"
dataset = { synthetic = { seed = 0, n = 2199 } }
pipelines = ["dec"]
seeds = [0, 1, 2]
retries = 5

[fixed]
d_model = 32
ff_dim = 64
latent_dim = 16
n_layers = 1
epochs_ae = 20
epochs_dec = 10
epochs_ft = EPOCHS_FT

[space]
label_fraction = { grid = [0.2, 1.0] }

[resources]
checkpoint_every = 5
"#;

/// A child killed when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sibling(name: &str) -> Result<PathBuf> {
    let bin = std::env::current_exe()?.with_file_name(name);
    if !bin.exists() {
        bail!("{} not found: build the workspace's binaries first (`make build`)", bin.display());
    }
    Ok(bin)
}

/// xorshift64*, so the choice of agents to stop needs no dependency and repeats per seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

struct Outcome {
    name: &'static str,
    /// Trials completed (all of them unless the run hit `--give-up-after`).
    completed: usize,
    interruptions: usize,
    resumes: u64,
    trained: u64,
    distinct: u64,
    wall_s: f64,
}

fn agent(worker: &Path, url: &str, home: &Path, resume: bool, log: &Path) -> Result<Guard> {
    let mut cmd = Command::new(worker);
    cmd.args(["--coordinator", url, "--threads", "1", "--device", "cpu", "--work-dir"]).arg(home);
    if !resume {
        cmd.arg("--no-resume");
    }
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    Ok(Guard(cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn()?))
}

/// A client of the coordinator with the token `serve` generated into this user's runtime file
/// (the bench gives it none).
fn client(url: &str) -> Result<decsweep_connect::Client> {
    decsweep_connect::runtime::token_for_url(url).context("no runtime token file for the coordinator")?;
    Ok(decsweep_connect::Client::connect(url, &decsweep_connect::ClientArgs::default())?)
}

fn run_once(a: &Args, name: &'static str, resume: bool) -> Result<Outcome> {
    let dir = a.out.join(name.replace(' ', "-"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let spec = dir.join("preempt.toml");
    std::fs::write(&spec, SPEC.replace("EPOCHS_FT", &a.epochs_ft.to_string()))?;
    let decsweep = sibling("decsweep")?;
    let worker = sibling("decsweep-worker")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut server = Command::new(&decsweep)
        .args(["serve", "--db"])
        .arg(dir.join("preempt.db"))
        .args(["--bind", &format!("127.0.0.1:{port}"), "--lease-ttl", "30"])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()?;
    let mut first = String::new();
    BufReader::new(server.stderr.take().expect("piped")).read_line(&mut first)?;
    let _server = Guard(server);
    let url = format!("http://127.0.0.1:{port}");
    let submitted = Command::new(&decsweep).arg("submit").arg(&spec).args(["--coordinator", &url]).output()?;
    if !submitted.status.success() {
        bail!("submit failed: {}", String::from_utf8_lossy(&submitted.stderr));
    }

    let started = Instant::now();
    let log = dir.join("agents.log");
    let mut homes = 0;
    let mut next_home = || {
        homes += 1;
        dir.join(format!("home-{homes}"))
    };
    let mut agents: Vec<Guard> =
        (0..a.workers).map(|_| agent(&worker, &url, &next_home(), resume, &log)).collect::<Result<_>>()?;
    let mut rng = Rng(a.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut interruptions = 0;
    let mut next_kill = Duration::from_secs_f64(a.kill_every);
    let coordinator = client(&url)?;
    loop {
        let info: StudyInfo = coordinator.study("preempt")?;
        let c = &info.counts;
        if c.pending + c.running == 0 || started.elapsed().as_secs_f64() >= a.give_up_after {
            break;
        }
        if started.elapsed() >= next_kill {
            next_kill += Duration::from_secs_f64(a.kill_every);
            let victim = rng.below(agents.len());
            let mut old = agents.swap_remove(victim);
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(old.0.id() as libc::pid_t, libc::SIGTERM) };
            let _ = old.0.wait();
            interruptions += 1;
            agents.push(agent(&worker, &url, &next_home(), resume, &log)?);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let wall_s = started.elapsed().as_secs_f64();

    let metrics = coordinator.metrics()?;
    let trained: u64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("decsweep_http_requests_total{") && l.contains("/progress\"") && l.contains("status=\"200\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    let trials = coordinator.trials("preempt", None)?;
    let mut distinct = 0;
    let mut resumes = 0;
    let mut completed = 0;
    for t in &trials {
        match t.status {
            decsweep_api::wire::TrialStatus::Completed => completed += 1,
            decsweep_api::wire::TrialStatus::Pending | decsweep_api::wire::TrialStatus::Running => {}
            other => bail!("trial {} ended {other} ({:?})", t.id, t.error),
        }
        resumes += u64::from(t.resumes);
        let points = coordinator.curves(t.id)?;
        let unique: BTreeMap<(String, u32), ()> =
            points.iter().map(|p| ((p.stage.name().to_string(), p.epoch), ())).collect();
        distinct += unique.len() as u64;
    }
    drop(agents);
    Ok(Outcome { name, completed, interruptions, resumes, trained, distinct, wall_s })
}

fn main() -> Result<()> {
    let a = parse_args()?;
    std::fs::create_dir_all(&a.out)?;
    let mut outcomes = Vec::new();
    for (name, resume) in [("resume", true), ("no resume", false)] {
        eprintln!("running the sweep ({name}), a worker stopped every {} s…", a.kill_every);
        let o = run_once(&a, name, resume)?;
        eprintln!("  done in {:.0} s", o.wall_s);
        outcomes.push(o);
    }
    println!("| run | trials completed | interruptions | resumes | epochs trained | distinct epochs | trained more than once | wall time |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for o in &outcomes {
        println!(
            "| {} | {}/6 | {} | {} | {} | {} | {} | {:.0} s |",
            o.name,
            o.completed,
            o.interruptions,
            o.resumes,
            o.trained,
            o.distinct,
            o.trained.saturating_sub(o.distinct),
            o.wall_s
        );
    }
    Ok(())
}
