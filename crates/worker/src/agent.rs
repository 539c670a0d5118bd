//! The worker agent: leases trials from a coordinator, runs each in a child process
//! (`decsweep-worker train --supervised`, or the spec's command), heartbeats, relays per-epoch
//! progress (and the coordinator's prune answers), and reports the outcome.
//!
//! A trial runs in its own process so that concurrent slots keep their own torch generator state
//! (every stage seeds it), a crash of libtorch costs one trial rather than the agent, and a
//! pruned or abandoned trial is stopped by closing a pipe. If the agent dies, the child reads
//! end-of-file at its next epoch and stops; the coordinator re-leases the trial when the lease
//! expires.
//!
//! On SIGTERM or SIGINT the agent stops its running trials within an epoch and *returns* them
//! (`/return`: pending again, the attempt not counted), then exits 0. A model trial first saves
//! its state (`suspend`), which is uploaded as a checkpoint, and a program's checkpoint directory
//! is uploaded after it exits, so the next lease of the trial resumes (unless `--no-resume`). It exits only once every
//! slot has ended, including a slot whose lease request is out, so a lease granted as the signal
//! arrives is returned too rather than left to expire; the price is that an idle agent takes up
//! to one long poll ([`LONG_POLL_MS`]) to exit.
//!
//! When the user cancels the study or fails the trial, the coordinator answers the next
//! heartbeat or progress report `stop`: the agent stops the child (a built-in pipeline through
//! its stdin at the next epoch, as for pruning; a command by SIGTERM to its process group, then
//! SIGKILL after its job's `stop_grace_s`, the spec's `[command] stop_grace`), reports nothing
//! (the coordinator has recorded the end) and leases the next trial.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context};
use decsweep_api::wire::{
    AgentInfo, CheckpointInfo, CompleteTrial, EpochProgress, FailTrial, HeartbeatReply, Lease, LeaseRequest,
    ProgressAction, ProgressReply, PruneTrial, ReturnTrial, TrialJob,
};
use decsweep_api::Stage;
use decsweep_search::command::ProgramLine;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Failure;

#[derive(clap::Args, Debug, Clone)]
pub struct AgentArgs {
    /// Coordinator to pull trials from, e.g. `http://10.0.0.5:8320`. Without a subcommand the
    /// worker runs as an agent and this is required.
    #[arg(long, env = "DECSWEEP_COORDINATOR")]
    coordinator: Option<String>,
    /// --token / --token-file and --ca-cert for an https:// coordinator (crates/connect).
    #[command(flatten)]
    access: decsweep_connect::ClientArgs,
    /// Trials run at once on this machine (e.g. 4 trials sharing one GPU).
    #[arg(long, default_value_t = 1)]
    slots: usize,
    /// `cpu`, `cuda`, `cuda:K` or `auto` (slot i takes GPU i mod #GPUs when CUDA is usable).
    #[arg(long, default_value = "auto")]
    device: String,
    /// CPU threads per trial (default: the machine's cores divided among the slots).
    #[arg(long)]
    threads: Option<usize>,
    /// Where datasets, shared stage checkpoints and trial outputs are kept
    /// (default: $DECSWEEP_HOME, else ~/.cache/decsweep).
    #[arg(long, env = "DECSWEEP_HOME")]
    work_dir: Option<PathBuf>,
    /// This worker's name in the coordinator (default: host name and process id).
    #[arg(long)]
    name: Option<String>,
    /// Exit when the coordinator has no trial to hand out (instead of waiting for more).
    #[arg(long)]
    exit_when_idle: bool,
    /// Neither save nor resume trial checkpoints: a preempted trial starts again from epoch 0
    /// (what resuming saves is measured against this by `make bench-preempt`).
    #[arg(long)]
    no_resume: bool,
    /// What trial programs inherit of this worker's environment (crate::program_env).
    #[command(flatten)]
    program_env: crate::program_env::ProgramEnvArgs,
    /// Which programs `command` trials may run here (crate::allow).
    #[command(flatten)]
    allow: crate::allow::AllowArgs,
}

impl AgentArgs {
    pub fn wants_agent(&self) -> bool {
        self.coordinator.is_some()
    }
}

/// How long one lease request waits at the coordinator before answering "none". Short enough
/// that a stopping agent, which waits for its polls to come back, exits promptly; an idle slot
/// costs the coordinator one request this often.
const LONG_POLL_MS: u64 = 2_000;

/// The longest wait between two tries of a request that failed for want of a coordinator
/// (unreachable, restarting, or its disk full: 5xx). Waits double up to this, so a cut-off or
/// storage-less coordinator sees a few requests a minute per slot, not a storm.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How long an outcome (complete, prune, fail, return) is retried before it is given up. The
/// work behind it is done, so the worker waits out a long outage rather than lose it; a trial
/// whose outcome is given up is leased again once its lease expires.
const REPORT_PATIENCE: Duration = Duration::from_secs(30 * 60);

/// A request that is not a long poll must be answered within this (connecting included); a
/// partitioned link otherwise holds the request until TCP gives up, minutes later.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

pub fn run(args: AgentArgs) -> Result<(), Failure> {
    let Some(url) = args.coordinator.clone() else {
        return Err(Failure::BadInput(anyhow::anyhow!("--coordinator URL is required to run as an agent")));
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).context("installing signal handlers")?;
    }
    let program_env = crate::program_env::ProgramEnv::new(&args.program_env, std::env::vars_os())
        .map_err(|e| Failure::BadInput(e.into()))?;
    let allowed = crate::allow::AllowedPrograms::new(&args.allow).map_err(|e| Failure::BadInput(e.into()))?;
    if let Err(e) = crate::program_env::hide_worker_memory() {
        tracing::warn!(error = %e, "could not make the worker non-dumpable: its programs can read its environment");
    }
    if let Some(warning) = crate::plain_http::clear_text_warning(&url) {
        tracing::warn!("{warning}");
    }
    let home = args.work_dir.clone().unwrap_or_else(default_home);
    for sub in ["datasets", "stages", "trials", "checkpoints"] {
        fs::create_dir_all(home.join(sub)).with_context(|| format!("creating {}", home.join(sub).display()))?;
    }
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.threads.unwrap_or((cores / args.slots.max(1)).max(1));
    let base_name = args.name.clone().unwrap_or_else(default_name);
    let client = Client::connect(&url, &args.access)?;
    let dataset_lock = Arc::new(Mutex::new(()));
    let slots = args.slots.max(1);
    let mut devices: Vec<String> = (0..slots).map(|slot| slot_device(&args.device, slot)).collect();
    devices.dedup();
    // Sent with every lease request, so the coordinator can list this process on /workers.
    let agent = AgentInfo {
        name: base_name.clone(),
        host: host_name(),
        slots: u32::try_from(slots).unwrap_or(u32::MAX),
        device: devices.join(","),
    };
    tracing::info!(coordinator = %url, slots = args.slots, threads, home = %home.display(), "agent started");
    if !program_env.withheld().is_empty() {
        tracing::info!(withheld = %crate::program_env::list(program_env.withheld()),
            "trial programs do not get these variables of the worker (--program-env-keep NAME passes one on)");
    }
    if let Some(allowed) = &allowed {
        tracing::info!(prefixes = %allowed.describe(), "command trials run only programs under --allow-program");
    }
    let program_env = Arc::new(program_env);
    let allowed = allowed.map(Arc::new);

    let handles: Vec<_> = (0..args.slots.max(1))
        .map(|slot| {
            let slot_ctx = Slot {
                name: if args.slots > 1 { format!("{base_name}/{slot}") } else { base_name.clone() },
                device: slot_device(&args.device, slot),
                threads,
                home: home.clone(),
                client: client.clone(),
                stop: Arc::clone(&stop),
                exit_when_idle: args.exit_when_idle,
                resume: !args.no_resume,
                dataset_lock: Arc::clone(&dataset_lock),
                agent: agent.clone(),
                program_env: Arc::clone(&program_env),
                allowed: allowed.clone(),
            };
            thread::spawn(move || slot_ctx.run())
        })
        .collect();
    let mut first_error = None;
    for h in handles {
        if let Err(e) = h.join().expect("slot thread does not panic") {
            first_error.get_or_insert(e);
        }
    }
    if stop.load(Ordering::Relaxed) {
        tracing::info!("stopped");
    }
    match first_error {
        Some(e) => Err(Failure::Failed(e)),
        None => Ok(()),
    }
}

fn default_home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir).join(".cache/decsweep")
}

fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

fn default_name() -> String {
    let host = host_name();
    format!("{}-{}", if host.is_empty() { "worker" } else { &host }, std::process::id())
}

fn slot_device(device: &str, slot: usize) -> String {
    match device {
        "auto" if tch::Cuda::is_available() => format!("cuda:{}", slot % tch::Cuda::device_count().max(1) as usize),
        "auto" => "cpu".to_string(),
        other => other.to_string(),
    }
}

/// One lease at a time.
struct Slot {
    name: String,
    device: String,
    threads: usize,
    home: PathBuf,
    client: Client,
    stop: Arc<AtomicBool>,
    exit_when_idle: bool,
    /// Save trial checkpoints, upload them, and resume from the coordinator's.
    resume: bool,
    dataset_lock: Arc<Mutex<()>>,
    agent: AgentInfo,
    /// The worker's variables no child inherits.
    program_env: Arc<crate::program_env::ProgramEnv>,
    /// `--allow-program`: `None` runs every program.
    allowed: Option<Arc<crate::allow::AllowedPrograms>>,
}

impl Slot {
    fn run(self) -> anyhow::Result<()> {
        let mut backoff = Duration::from_millis(200);
        while !self.stop.load(Ordering::Relaxed) {
            let request =
                LeaseRequest { worker: self.name.clone(), wait_ms: LONG_POLL_MS, agent: Some(self.agent.clone()) };
            match self.client.lease(&request) {
                // The stop signal came while the request was out.
                Ok(Some(lease)) if self.stop.load(Ordering::Relaxed) => {
                    self.give_back(&lease, "granted as the worker stopped")
                }
                Ok(Some(lease)) => {
                    backoff = Duration::from_millis(200);
                    self.run_lease(lease);
                }
                Ok(None) if self.exit_when_idle => break,
                Ok(None) => {}
                Err(e) => {
                    // A refused certificate will not change by retrying.
                    if let Some(problem) = e.chain().find_map(decsweep_connect::certificate_problem) {
                        bail!("{problem}");
                    }
                    // The coordinator may be restarting: keep trying, more slowly.
                    tracing::warn!(worker = %self.name, error = %format!("{e:#}"), "lease request failed; retrying");
                    sleep_unless_stopped(jittered(backoff), &self.stop);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        Ok(())
    }

    /// Hands a lease's trial back to the queue without a result (the worker is stopping).
    fn give_back(&self, lease: &Lease, reason: &str) {
        let path = format!("leases/{}/return", lease.lease_id);
        match self.client.post_retrying(&path, &ReturnTrial { reason: format!("{reason} ({})", self.name) }) {
            Ok(()) => tracing::info!(trial = lease.trial_id, "returned the trial to the queue"),
            Err(e) => tracing::warn!(trial = lease.trial_id, error = %format!("{e:#}"), "could not return the trial"),
        }
    }

    fn run_lease(&self, lease: Lease) {
        tracing::info!(worker = %self.name, trial = lease.trial_id, attempt = lease.attempt, study = %lease.study, "leased");
        let lost = Arc::new(AtomicBool::new(false));
        // Set when the coordinator answers `stop` (the user cancelled or failed the trial).
        let halted = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let heartbeat = self.spawn_heartbeat(&lease, Arc::clone(&lost), Arc::clone(&halted), Arc::clone(&done));
        let ended = Ended { lost: &lost, halted: &halted };
        let outcome = match &lease.job {
            TrialJob::Model { .. } => self.run_model(&lease, ended),
            TrialJob::Command { .. } => self.run_command(&lease, ended),
        };
        // A lease lost while the trial ran stopped the trial: there is nothing to report. One
        // found lost only after the trial ended (a heartbeat in flight) is still reported: the
        // coordinator honours it if nobody re-leased the trial, and answers 409 otherwise.
        let lost_while_running = lost.load(Ordering::Relaxed);
        done.store(true, Ordering::Relaxed);
        let _ = heartbeat.join();
        if halted.load(Ordering::Relaxed) {
            tracing::info!(trial = lease.trial_id, "stopped: the trial was cancelled or failed by the user");
            return;
        }
        if lost_while_running {
            tracing::warn!(trial = lease.trial_id, "lease lost (expired or replaced); result discarded");
            return;
        }
        let id = &lease.lease_id;
        let outcome_name = outcome.name();
        let reported = match outcome {
            Outcome::Completed { metrics, manifest } => {
                self.client.post_retrying(&format!("leases/{id}/complete"), &CompleteTrial { metrics, manifest })
            }
            Outcome::Pruned { stage, epoch, metrics } => {
                self.client.post_retrying(&format!("leases/{id}/prune"), &PruneTrial { stage, epoch, metrics })
            }
            Outcome::Failed { reason, retryable } => {
                tracing::warn!(trial = lease.trial_id, %reason, "trial failed");
                self.client.post_retrying(&format!("leases/{id}/fail"), &FailTrial { reason, retryable })
            }
            Outcome::Stopped => {
                self.give_back(&lease, "the worker was shut down during the trial");
                return;
            }
        };
        match reported {
            Ok(()) => tracing::info!(trial = lease.trial_id, lease = %id, outcome = outcome_name, "outcome recorded"),
            // The trial was leased again while this worker was cut off; the other worker's result
            // counts. Nothing to do but take the next trial.
            Err(e) if e.downcast_ref::<ApiCallError>().is_some_and(|e| matches!(e, ApiCallError::Conflict(_))) => {
                tracing::warn!(trial = lease.trial_id, lease = %id, outcome = outcome_name, error = %format!("{e:#}"),
                    "late outcome refused: the trial was leased to another worker; moving on")
            }
            Err(e) => {
                tracing::warn!(trial = lease.trial_id, lease = %id, outcome = outcome_name, error = %format!("{e:#}"),
                "could not report the trial's outcome")
            }
        }
    }

    /// Extends the lease every third of its TTL until the trial is done; marks it lost when the
    /// coordinator says it is no longer ours, halted when it answers `stop`.
    fn spawn_heartbeat(
        &self,
        lease: &Lease,
        lost: Arc<AtomicBool>,
        halted: Arc<AtomicBool>,
        done: Arc<AtomicBool>,
    ) -> thread::JoinHandle<()> {
        let client = self.client.clone();
        let path = format!("leases/{}/heartbeat", lease.lease_id);
        let every = Duration::from_millis((lease.ttl_ms / 3).max(50));
        thread::spawn(move || {
            let tick = Duration::from_millis(25);
            let mut waited = Duration::ZERO;
            while !done.load(Ordering::Relaxed) {
                thread::sleep(tick);
                waited += tick;
                if waited < every {
                    continue;
                }
                waited = Duration::ZERO;
                match client.post::<_, HeartbeatReply>(&path, &serde_json::json!({})) {
                    Ok(HeartbeatReply { action: ProgressAction::Stop, .. }) => {
                        halted.store(true, Ordering::Relaxed);
                        return;
                    }
                    Ok(_) => {}
                    Err(ApiCallError::Conflict(_)) => {
                        lost.store(true, Ordering::Relaxed);
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                }
            }
        })
    }

    fn run_model(&self, lease: &Lease, ended: Ended<'_>) -> Outcome {
        let TrialJob::Model { pipeline, params } = &lease.job else { unreachable!("model job") };
        let data = match &lease.dataset {
            Some(d) => match self.fetch_dataset(&d.sha256) {
                Ok(path) => path,
                Err(e) => {
                    return Outcome::Failed { reason: format!("fetching dataset {}: {e:#}", d.sha256), retryable: true }
                }
            },
            None => return Outcome::Failed { reason: "the lease names no dataset".into(), retryable: false },
        };
        let out = self.home.join("trials").join(format!("{}-{}", lease.trial_id, lease.attempt));
        let _ = fs::remove_dir_all(&out);
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => return Outcome::Failed { reason: format!("locating decsweep-worker: {e}"), retryable: true },
        };
        let checkpoint = self.resume.then(|| self.prepare_checkpoint(lease));
        let mut cmd = Command::new(exe);
        self.program_env.apply(&mut cmd);
        cmd.arg("train")
            .arg("--supervised")
            .arg("--data")
            .arg(&data)
            .args(["--pipeline", pipeline.name(), "--seed", &lease.seed.to_string()])
            .args(["--device", &self.device, "--threads", &self.threads.to_string()])
            .arg("--cache")
            .arg(self.home.join("stages"))
            .arg("--out")
            .arg(&out);
        for (name, value) in params.to_map() {
            cmd.arg("--set").arg(format!("{name}={value}"));
        }
        if let Some(path) = &checkpoint {
            cmd.arg("--checkpoint").arg(path).args(["--checkpoint-every", &lease.checkpoint_every_s.to_string()]);
        }
        let mut child = match cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
            Ok(c) => c,
            Err(e) => return Outcome::Failed { reason: format!("starting the trial: {e}"), retryable: true },
        };
        let stderr_tail = tail_of(child.stderr.take().expect("piped"), lease.trial_id);
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        self.relay_progress(lease, stdout, stdin, &mut child, ended);
        let status = child.wait();
        let stderr_tail = stderr_tail.join().unwrap_or_default();
        if self.stop.load(Ordering::Relaxed) {
            return Outcome::Stopped;
        }
        match status {
            Ok(s) if s.success() => read_model_outcome(&out),
            // SIGTERM reached the trial itself (a preempting scheduler signals every process):
            // its state is saved and uploaded, so it goes back to the queue to resume.
            Ok(s) if s.code() == Some(i32::from(crate::EXIT_INTERRUPTED)) => Outcome::Stopped,
            Ok(s) => {
                let err: serde_json::Value = fs::read_to_string(out.join("error.json"))
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default();
                let kind = err["kind"].as_str().unwrap_or("error");
                let message =
                    err["message"].as_str().map(str::to_string).unwrap_or_else(|| format!("{s}: {stderr_tail}"));
                // Bad input and divergence are deterministic: running the same trial again would
                // fail the same way.
                Outcome::Failed { reason: message, retryable: kind == "error" }
            }
            Err(e) => Outcome::Failed { reason: format!("waiting for the trial: {e}"), retryable: true },
        }
    }

    /// Forwards every epoch the child prints to the coordinator and answers the child with the
    /// coordinator's decision. Stops the child when the lease is lost or the worker shuts down.
    fn relay_progress(
        &self,
        lease: &Lease,
        stdout: impl BufRead,
        mut stdin: ChildStdin,
        child: &mut Child,
        ended: Ended<'_>,
    ) {
        let Ended { lost, halted } = ended;
        let path = format!("leases/{}/progress", lease.lease_id);
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            let Ok(epoch) = serde_json::from_str::<EpochProgress>(&line) else {
                match serde_json::from_str::<CheckpointSaved>(&line) {
                    Ok(saved) if saved.event == "checkpoint" => {
                        self.upload_checkpoint(lease, &saved);
                    }
                    _ => tracing::debug!(%line, "ignoring a non-progress line from the trial"),
                }
                continue;
            };
            let stopping = self.stop.load(Ordering::Relaxed);
            let answer = if ended.is_over() || (stopping && !self.resume) {
                "stop"
            } else {
                // Shutting down with resume on (preempted), the epoch is still recorded: the
                // state the trial saves next includes it, and the next lease goes on after it.
                let reply = self.client.post::<_, ProgressReply>(&path, &epoch);
                match reply {
                    Ok(ProgressReply { action: ProgressAction::Stop }) => {
                        halted.store(true, Ordering::Relaxed);
                        "stop"
                    }
                    Err(ApiCallError::Conflict(_)) => {
                        lost.store(true, Ordering::Relaxed);
                        "stop"
                    }
                    // The trial saves its state (uploaded as it reports it) and exits 75; the
                    // lease is then returned.
                    _ if stopping => "suspend",
                    Ok(ProgressReply { action: ProgressAction::Prune }) => "prune",
                    Ok(_) => "continue",
                    // The coordinator is unreachable for now: keep training; heartbeats decide
                    // whether the lease survives.
                    Err(e) => {
                        tracing::warn!(error = %e, "progress not delivered");
                        "continue"
                    }
                }
            };
            if writeln!(stdin, "{answer}").and_then(|_| stdin.flush()).is_err() {
                break;
            }
        }
        drop(stdin);
        if self.stop.load(Ordering::Relaxed) || ended.is_over() {
            let _ = child.kill();
        }
    }

    /// The trial's checkpoint file on this machine: the coordinator's copy when the lease says
    /// there is one (downloaded and verified), else none (a stale local file is removed, so the
    /// coordinator's record is the only truth). A download that fails is logged and the trial
    /// starts from scratch.
    fn prepare_checkpoint(&self, lease: &Lease) -> PathBuf {
        let path = self.home.join("checkpoints").join(format!("{}.ckpt", lease.trial_id));
        let _ = fs::remove_file(&path);
        if let Some(stored) = &lease.resume {
            match self.download_checkpoint(lease, stored, &path) {
                Ok(()) => tracing::info!(trial = lease.trial_id, stage = %stored.stage, epoch = stored.epoch,
                    bytes = stored.bytes, "resuming from the stored checkpoint"),
                Err(e) => {
                    let _ = fs::remove_file(&path);
                    tracing::warn!(trial = lease.trial_id, error = %format!("{e:#}"),
                        "could not fetch the trial's checkpoint; starting it from scratch");
                }
            }
        }
        path
    }

    fn download_checkpoint(&self, lease: &Lease, stored: &CheckpointInfo, path: &Path) -> anyhow::Result<()> {
        self.download_verified(&format!("leases/{}/checkpoint", lease.lease_id), &stored.sha256, path, "checkpoint")
    }

    /// Downloads `url_path` to `path` through a temporary file, keeping it only when its SHA-256
    /// is `sha256`.
    fn download_verified(&self, url_path: &str, sha256: &str, path: &Path, what: &str) -> anyhow::Result<()> {
        let tmp = path.with_extension(format!("part-{}", std::process::id()));
        let mut response = self.client.get_raw(url_path)?;
        let mut file = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = response.read(&mut buf).with_context(|| format!("downloading the {what}"))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).with_context(|| format!("writing {}", tmp.display()))?;
        }
        file.sync_all()?;
        let got = hex(&hasher.finalize());
        if got != sha256 {
            let _ = fs::remove_file(&tmp);
            bail!("the downloaded {what} has SHA-256 {got}, expected {sha256}");
        }
        fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        Ok(())
    }

    /// Uploads the state the trial just saved. Failures are logged and training goes on: the
    /// trial then resumes from an older state, or starts over, if it is preempted.
    fn upload_checkpoint(&self, lease: &Lease, saved: &CheckpointSaved) -> bool {
        let uploaded = (|| -> anyhow::Result<u64> {
            let bytes = fs::read(&saved.path).with_context(|| format!("reading {}", saved.path.display()))?;
            let sha256 = hex(&Sha256::digest(&bytes));
            let path = format!(
                "leases/{}/checkpoint?stage={}&epoch={}&sha256={sha256}",
                lease.lease_id, saved.stage, saved.epoch
            );
            let size = bytes.len() as u64;
            self.client.put_bytes(&path, bytes)?;
            Ok(size)
        })();
        match uploaded {
            Ok(bytes) => {
                tracing::info!(trial = lease.trial_id, stage = %saved.stage, epoch = saved.epoch, bytes, "checkpoint uploaded");
                true
            }
            Err(e) => {
                tracing::warn!(trial = lease.trial_id, error = %format!("{e:#}"), "checkpoint not uploaded; the trial goes on");
                false
            }
        }
    }

    /// Runs a program trial (see `decsweep_search::command` for the protocol): its report
    /// lines become progress reports (pruning, curves), its checkpoint directory is restored
    /// before it starts and uploaded when it changed: on each `checkpoint` line, or every
    /// `checkpoint_every_s` for a program that prints none, and after the program is stopped
    /// for the worker's shutdown; its last own line is its metrics.
    fn run_command(&self, lease: &Lease, ended: Ended<'_>) -> Outcome {
        let TrialJob::Command { argv, env, workdir, stop_grace_s } = &lease.job else { unreachable!("command job") };
        // A job written by hand could hold anything; the spec allows (0, 600].
        let grace = Duration::from_secs_f64(stop_grace_s.clamp(0.0, decsweep_search::command::MAX_STOP_GRACE_S));
        let Some((program, args)) = argv.split_first() else {
            return Outcome::Failed { reason: "the command is empty".into(), retryable: false };
        };
        let allowed = self.allowed.as_deref();
        let executable = match crate::allow::executable(allowed, &self.program_env, program, env, workdir.as_deref()) {
            Ok(path) => path,
            // Permanent: this worker would refuse it every time.
            Err(refusal) => {
                return Outcome::Failed { reason: format!("{refusal} (worker {})", self.name), retryable: false }
            }
        };
        let state_dir = self.home.join("trials").join(format!("{}-state", lease.trial_id));
        if let Err(e) = self.prepare_state_dir(lease, &state_dir) {
            return Outcome::Failed { reason: format!("preparing {}: {e:#}", state_dir.display()), retryable: true };
        }
        let mut cmd = Command::new(&executable);
        // Checked by its resolved path, run by it; the program still sees the name it was given.
        std::os::unix::process::CommandExt::arg0(&mut cmd, program);
        self.program_env.apply(&mut cmd);
        cmd.args(args).envs(env).env("DECSWEEP_CHECKPOINT_DIR", &state_dir);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // Its own process group, so stopping it reaches what it started too (a shell's
        // children would otherwise live on, holding its stdout open).
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        if let Some(dir) = workdir {
            cmd.current_dir(dir);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Outcome::Failed { reason: format!("starting `{program}`: {e}"), retryable: false },
        };
        let stderr_tail = tail_of(child.stderr.take().expect("piped"), 0);
        let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
        let out = child.stdout.take().expect("piped");
        let reader = thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut own = String::new();
        let mut last_step: Option<u32> = None;
        let mut pruned_at: Option<u32> = None;
        let mut last_upload = std::time::Instant::now();
        let mut uploaded: Option<Vec<u8>> = None;
        // Set by the program's first `checkpoint` line: from then on it says when to upload.
        let mut announces = false;
        let every = Duration::from_secs_f64(lease.checkpoint_every_s.max(0.001));
        let progress = format!("leases/{}/progress", lease.lease_id);
        let status = loop {
            // Everything the program printed so far, reports first answered.
            while let Ok(line) = lines.try_recv() {
                let Some(addressed) = addressed_line(&line, &mut own, lease.trial_id) else { continue };
                if pruned_at.is_some() || ended.is_over() {
                    continue;
                }
                let ProgramLine::Report(r) = addressed else {
                    // A `checkpoint` line: the directory holds a complete state now.
                    announces = true;
                    if self.resume {
                        self.upload_state_dir(lease, &state_dir, last_step, &mut uploaded);
                    }
                    continue;
                };
                last_step = Some(r.step);
                let epoch = EpochProgress {
                    stage: Stage::Finetune,
                    epoch: r.step,
                    epochs: r.steps.unwrap_or(0),
                    train_loss: r.train_loss.unwrap_or(f64::NAN),
                    val_loss: r.val_loss.unwrap_or(f64::NAN),
                    val_accuracy: r.val_accuracy,
                };
                match self.client.post::<_, ProgressReply>(&progress, &epoch) {
                    Ok(ProgressReply { action: ProgressAction::Prune }) => pruned_at = Some(r.step),
                    Ok(ProgressReply { action: ProgressAction::Stop }) => ended.halted.store(true, Ordering::Relaxed),
                    Ok(_) => {}
                    Err(ApiCallError::Conflict(_)) => ended.lost.store(true, Ordering::Relaxed),
                    Err(e) => tracing::warn!(error = %e, "progress not delivered"),
                }
            }
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if self.stop.load(Ordering::Relaxed) || ended.is_over() || pruned_at.is_some() => {
                    break stop_group(&mut child, grace)
                }
                Ok(None) => {
                    if self.resume && !announces && last_upload.elapsed() >= every {
                        last_upload = std::time::Instant::now();
                        self.upload_state_dir(lease, &state_dir, last_step, &mut uploaded);
                    }
                    thread::sleep(Duration::from_millis(50))
                }
                Err(e) => break Err(e),
            }
        };
        let _ = reader.join();
        // Lines printed just before the exit.
        for line in lines.try_iter() {
            if let Some(ProgramLine::Report(r)) = addressed_line(&line, &mut own, lease.trial_id) {
                last_step = Some(r.step).max(last_step);
            }
        }
        let stderr_tail = stderr_tail.join().unwrap_or_default();
        if let Some(step) = pruned_at {
            return Outcome::Pruned { stage: Stage::Finetune, epoch: step, metrics: BTreeMap::new() };
        }
        if self.stop.load(Ordering::Relaxed) {
            // Whatever the program saved when it was told to stop goes with the trial.
            if self.resume {
                self.upload_state_dir(lease, &state_dir, last_step, &mut uploaded);
            }
            return Outcome::Stopped;
        }
        match status {
            Ok(s) if s.success() => match decsweep_search::command::parse_metrics(&own) {
                Ok(metrics) => Outcome::Completed { metrics, manifest: None },
                Err(e) => Outcome::Failed { reason: e.to_string(), retryable: false },
            },
            Ok(s) => Outcome::Failed { reason: format!("`{program}` exited with {s}: {stderr_tail}"), retryable: true },
            Err(e) => Outcome::Failed { reason: format!("waiting for `{program}`: {e}"), retryable: true },
        }
    }

    /// An empty `DECSWEEP_CHECKPOINT_DIR`, filled with the coordinator's copy of the trial's
    /// checkpoint when the lease has one (a copy that cannot be fetched or unpacked is logged and
    /// the program starts afresh).
    fn prepare_state_dir(&self, lease: &Lease, dir: &Path) -> anyhow::Result<()> {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("emptying {}", dir.display()))?;
        }
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let Some(stored) = lease.resume.as_ref().filter(|_| self.resume) else { return Ok(()) };
        let archive = dir.with_extension("download");
        let restored = self
            .download_checkpoint(lease, stored, &archive)
            .and_then(|()| fs::read(&archive).context("reading the downloaded checkpoint"))
            .and_then(|bytes| crate::dirpack::unpack(&bytes, dir));
        let _ = fs::remove_file(&archive);
        match restored {
            Ok(files) => {
                tracing::info!(trial = lease.trial_id, files, step = stored.epoch, "checkpoint directory restored")
            }
            Err(e) => {
                tracing::warn!(trial = lease.trial_id, error = %format!("{e:#}"),
                    "could not restore the checkpoint directory; the program starts afresh");
                fs::remove_dir_all(dir)?;
                fs::create_dir_all(dir)?;
            }
        }
        Ok(())
    }

    /// Uploads the program's checkpoint directory, unless it is empty or unchanged since the
    /// last upload (`uploaded`).
    fn upload_state_dir(&self, lease: &Lease, dir: &Path, step: Option<u32>, uploaded: &mut Option<Vec<u8>>) {
        let packed = match crate::dirpack::pack(dir) {
            Ok(Some(p)) => p,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(trial = lease.trial_id, error = %format!("{e:#}"), "could not pack the checkpoint directory");
                return;
            }
        };
        if uploaded.as_ref() == Some(&packed) {
            return;
        }
        let archive = dir.with_extension("upload");
        if let Err(e) = fs::write(&archive, &packed) {
            tracing::warn!(trial = lease.trial_id, error = %e, "could not write the checkpoint archive");
            return;
        }
        let saved = CheckpointSaved {
            event: "checkpoint".into(),
            path: archive.clone(),
            stage: Stage::Finetune,
            epoch: step.unwrap_or(0),
        };
        if self.upload_checkpoint(lease, &saved) {
            *uploaded = Some(packed);
        }
        let _ = fs::remove_file(&archive);
    }

    /// The dataset file with this hash, downloaded once per machine and verified.
    fn fetch_dataset(&self, sha256: &str) -> anyhow::Result<PathBuf> {
        if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!("`{sha256}` is not a SHA-256 hex digest");
        }
        let path = self.home.join("datasets").join(format!("{sha256}.safetensors"));
        let _guard = self.dataset_lock.lock().expect("dataset lock");
        if path.exists() {
            return Ok(path);
        }
        self.download_verified(&format!("datasets/{sha256}"), sha256, &path, "dataset")?;
        Ok(path)
    }
}

/// Whether the trial's lease ended under the agent: `lost` (expired and re-leased, or replaced)
/// or `halted` (the coordinator answered `stop`: cancelled or failed by the user).
#[derive(Clone, Copy)]
struct Ended<'a> {
    lost: &'a AtomicBool,
    halted: &'a AtomicBool,
}

impl Ended<'_> {
    fn is_over(&self) -> bool {
        self.lost.load(Ordering::Relaxed) || self.halted.load(Ordering::Relaxed)
    }
}

/// Stops a command started in its own process group: SIGTERM to the group, SIGKILL to it after
/// `grace` if the leader is still running. Returns the leader's exit status.
fn stop_group(child: &mut Child, grace: Duration) -> std::io::Result<std::process::ExitStatus> {
    let group = child.id() as libc::pid_t;
    // SAFETY: kill(2) on the process group we created for our own child; the leader is not yet
    // reaped (try_wait said it runs), so the group id cannot have been reused.
    unsafe { libc::kill(-group, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            // Members that ignored SIGTERM must not outlive the trial either.
            // SAFETY: as above; at worst the group is empty and kill fails with ESRCH.
            unsafe { libc::kill(-group, libc::SIGKILL) };
            return Ok(status);
        }
        thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: as above; the leader is still unreaped.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    child.wait()
}

enum Outcome {
    Completed {
        metrics: BTreeMap<String, f64>,
        /// `metrics.json`'s manifest, for `decsweep reproduce`.
        manifest: Option<serde_json::Value>,
    },
    Pruned {
        stage: Stage,
        epoch: u32,
        metrics: BTreeMap<String, f64>,
    },
    Failed {
        reason: String,
        retryable: bool,
    },
    /// The agent is stopping and stopped the trial: it goes back to the queue.
    Stopped,
}

impl Outcome {
    fn name(&self) -> &'static str {
        match self {
            Outcome::Completed { .. } => "completed",
            Outcome::Pruned { .. } => "pruned",
            Outcome::Failed { .. } => "failed",
            Outcome::Stopped => "stopped",
        }
    }
}

/// What a line of a program's stdout asks of the agent: `Report` or `Checkpoint`; its own
/// lines are collected in `own` (the last holds its metrics) and malformed ones warned about.
fn addressed_line(line: &str, own: &mut String, trial: i64) -> Option<ProgramLine> {
    match decsweep_search::command::read_line(line) {
        ProgramLine::Own => {
            own.push_str(line);
            own.push('\n');
            None
        }
        ProgramLine::Malformed(why) => {
            tracing::warn!(trial, %line, %why, "ignoring a malformed report line");
            None
        }
        addressed => Some(addressed),
    }
}

/// The line `train --supervised --checkpoint` prints after saving the trial's state.
#[derive(serde::Deserialize)]
struct CheckpointSaved {
    event: String,
    path: PathBuf,
    stage: Stage,
    epoch: u32,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads `metrics.json` of a finished `train --supervised` run.
fn read_model_outcome(out: &Path) -> Outcome {
    let text = match fs::read_to_string(out.join("metrics.json")) {
        Ok(t) => t,
        Err(e) => return Outcome::Failed { reason: format!("the trial wrote no metrics.json: {e}"), retryable: true },
    };
    let m: serde_json::Value = match serde_json::from_str(&text) {
        Ok(m) => m,
        Err(e) => return Outcome::Failed { reason: format!("unreadable metrics.json: {e}"), retryable: true },
    };
    let metrics = decsweep_api::wire::flatten_metrics(&m);
    if m["status"] == "pruned" {
        let stage = serde_json::from_value(m["pruned_stage"].clone()).unwrap_or(Stage::Finetune);
        let epoch = m["pruned_epoch"].as_u64().unwrap_or(0) as u32;
        Outcome::Pruned { stage, epoch, metrics }
    } else {
        Outcome::Completed { metrics, manifest: Some(m["manifest"].clone()).filter(|v| v.is_object()) }
    }
}

/// Copies a child's stderr to ours (prefixed with the trial) and keeps its last lines for
/// failure messages.
fn tail_of(stderr: impl Read + Send + 'static, trial: i64) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut tail: Vec<String> = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            tracing::debug!(trial, "{line}");
            if tail.len() == 8 {
                tail.remove(0);
            }
            tail.push(line);
        }
        tail.join("\n")
    })
}

/// `wait` scaled by a factor in [0.5, 1), so workers cut off together do not retry in step.
fn jittered(wait: Duration) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    // A cheap spread from the clock's low bits and the thread: no randomness quality is needed.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&(nanos, thread::current().id()), &mut h);
    let fraction = (std::hash::Hasher::finish(&h) % 1000) as f64 / 2000.0;
    wait.mul_f64(0.5 + fraction)
}

fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let step = Duration::from_millis(50);
    let mut slept = Duration::ZERO;
    while slept < total && !stop.load(Ordering::Relaxed) {
        thread::sleep(step);
        slept += step;
    }
}

#[derive(Debug, thiserror::Error)]
enum ApiCallError {
    #[error("the coordinator answered 409: {0}")]
    Conflict(String),
    #[error("the coordinator answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("request to the coordinator failed: {0}")]
    Transport(#[from] reqwest::Error),
}

/// The coordinator's `/v1` API over blocking HTTP.
#[derive(Clone)]
struct Client {
    http: reqwest::blocking::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    #[cfg(test)]
    fn new(url: &str, token: Option<String>) -> anyhow::Result<Self> {
        let client = Self::connect(url, &decsweep_connect::ClientArgs::default())
            .map_err(|_| anyhow::anyhow!("cannot build an HTTP client"))?;
        Ok(Client { token, ..client })
    }

    /// A client of `url` (http:// or https://) with `access`'s token and CA; an unreadable
    /// token or CA file is bad input (exit 2).
    fn connect(url: &str, access: &decsweep_connect::ClientArgs) -> Result<Self, Failure> {
        let token = access.token_for(url).map_err(|e| Failure::BadInput(e.into()))?;
        let builder =
            reqwest::blocking::Client::builder().connect_timeout(Duration::from_secs(5)).timeout(REQUEST_TIMEOUT);
        let http = access.build(builder).map_err(|e| Failure::BadInput(e.into()))?;
        Ok(Client { http, base: format!("{}/v1", url.trim_end_matches('/')), token })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        let req = self.http.request(method, format!("{}/{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    fn check(response: reqwest::blocking::Response) -> Result<reqwest::blocking::Response, ApiCallError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().unwrap_or_default();
        if status == reqwest::StatusCode::CONFLICT {
            Err(ApiCallError::Conflict(body))
        } else {
            Err(ApiCallError::Status { status: status.as_u16(), body })
        }
    }

    fn post<B: Serialize, R: DeserializeOwned>(&self, path: &str, body: &B) -> Result<R, ApiCallError> {
        let response = Self::check(self.request(reqwest::Method::POST, path).json(body).send()?)?;
        Ok(response.json()?)
    }

    /// Reports an outcome, retrying transport errors and 5xx (the coordinator may be restarting,
    /// cut off, or out of disk) with doubling waits for up to [`REPORT_PATIENCE`]; outcome calls
    /// are idempotent, so a repeat is harmless. A 409 (someone else has the trial) and other 4xx
    /// end it at once.
    fn post_retrying<B: Serialize>(&self, path: &str, body: &B) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let mut wait = Duration::from_millis(200);
        loop {
            match self.post::<_, serde_json::Value>(path, body) {
                Ok(_) => return Ok(()),
                Err(e @ ApiCallError::Conflict(_)) => return Err(e.into()),
                Err(ApiCallError::Status { status, body }) if status < 500 => bail!("{status}: {body}"),
                Err(e) if started.elapsed() >= REPORT_PATIENCE => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(%path, error = %e, "retrying");
                    thread::sleep(jittered(wait));
                    wait = (wait * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn lease(&self, request: &LeaseRequest) -> anyhow::Result<Option<Lease>> {
        // The coordinator holds a long poll for up to `wait_ms`.
        let timeout = REQUEST_TIMEOUT + Duration::from_millis(request.wait_ms);
        let response =
            Self::check(self.request(reqwest::Method::POST, "lease").json(request).timeout(timeout).send()?)?;
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        Ok(Some(response.json()?))
    }

    /// PUTs `body` (a checkpoint), with the same ten minutes as a download.
    fn put_bytes(&self, path: &str, body: Vec<u8>) -> Result<(), ApiCallError> {
        let upload = Duration::from_secs(600);
        Self::check(self.request(reqwest::Method::PUT, path).body(body).timeout(upload).send()?)?;
        Ok(())
    }

    fn get_raw(&self, path: &str) -> anyhow::Result<reqwest::blocking::Response> {
        // A dataset may be large and the link slow: the whole download gets ten minutes.
        let download = Duration::from_secs(600);
        Ok(Self::check(self.request(reqwest::Method::GET, path).timeout(download).send()?)?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// A coordinator stand-in on loopback speaking just enough HTTP/1.1: it sends the path of
    /// every request to `seen`, holds the first lease request until `go` fires and then grants
    /// `lease` (later ones wait a little and get 204), answers heartbeats `heartbeat`, and
    /// anything else `{"recorded": true}`.
    fn fake_coordinator(
        lease: Lease,
        seen: mpsc::Sender<String>,
        go: mpsc::Receiver<()>,
        heartbeat: &'static str,
    ) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        thread::spawn(move || {
            let mut granted = false;
            for stream in listener.incoming() {
                let mut reader = BufReader::new(stream.unwrap());
                loop {
                    let mut head = String::new();
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.push_str(&line);
                    }
                    let Some(path) = head.split_whitespace().nth(1).map(str::to_string) else { break };
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let _ = seen.send(path.clone());
                    let answer = if path == "/v1/lease" && !granted {
                        go.recv().unwrap();
                        granted = true;
                        Some(serde_json::to_string(&lease).unwrap())
                    } else if path == "/v1/lease" {
                        thread::sleep(Duration::from_millis(100));
                        None
                    } else if path.ends_with("/heartbeat") {
                        Some(heartbeat.to_string())
                    } else {
                        Some(r#"{"recorded": true}"#.to_string())
                    };
                    let response = match answer {
                        Some(answer) => format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                            answer.len()
                        ),
                        None => "HTTP/1.1 204 No Content\r\n\r\n".to_string(),
                    };
                    reader.get_mut().write_all(response.as_bytes()).unwrap();
                }
            }
        });
        url
    }

    #[test]
    fn a_stopped_command_gets_its_grace_before_sigkill() {
        use std::os::unix::process::ExitStatusExt;
        // Saving takes the program a second after SIGTERM.
        let stop_after = |grace: Duration| {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", "trap 'sleep 1; exit 7' TERM; echo ready; while :; do sleep 0.05; done"]);
            cmd.stdout(Stdio::piped());
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            let mut child = cmd.spawn().unwrap();
            let mut ready = String::new();
            BufReader::new(child.stdout.take().unwrap()).read_line(&mut ready).unwrap();
            stop_group(&mut child, grace).unwrap()
        };
        assert_eq!(stop_after(Duration::from_secs(10)).code(), Some(7), "a long enough grace lets it finish");
        assert_eq!(stop_after(Duration::from_millis(200)).signal(), Some(libc::SIGKILL), "a short one does not");
    }

    #[test]
    fn a_lease_granted_after_the_stop_signal_is_returned_unrun() {
        let home = tempfile::tempdir().unwrap();
        // Starting this program would fail the trial for good (`/fail`), so only a lease that is
        // handed back without being started ends in `/return`.
        let missing = home.path().join("no-such-program");
        let lease = Lease {
            lease_id: "L1".into(),
            trial_id: 7,
            study: "s".into(),
            job: TrialJob::Command {
                argv: vec![missing.display().to_string()],
                env: BTreeMap::new(),
                workdir: None,
                stop_grace_s: 3.0,
            },
            seed: 0,
            attempt: 1,
            dataset: None,
            ttl_ms: 60_000,
            resume: None,
            checkpoint_every_s: 300.0,
        };
        let (seen_tx, seen) = mpsc::channel();
        let (go, go_rx) = mpsc::channel();
        let url = fake_coordinator(lease, seen_tx, go_rx, r#"{"ttl_ms": 60000}"#);
        let stop = Arc::new(AtomicBool::new(false));
        let slot = slot_for(&url, home.path(), &stop);
        let running = thread::spawn(move || slot.run());
        // The lease request is out; the signal comes; then the coordinator grants the trial.
        assert_eq!(seen.recv_timeout(Duration::from_secs(10)).unwrap(), "/v1/lease");
        stop.store(true, Ordering::Relaxed);
        go.send(()).unwrap();
        running.join().unwrap().unwrap();
        let after: Vec<String> = seen.try_iter().collect();
        assert_eq!(after, ["/v1/leases/L1/return"], "returned unstarted, not failed");
    }

    fn slot_for(url: &str, home: &Path, stop: &Arc<AtomicBool>) -> Slot {
        Slot {
            name: "w".into(),
            device: "cpu".into(),
            threads: 1,
            home: home.to_path_buf(),
            client: Client::new(url, None).unwrap(),
            stop: Arc::clone(stop),
            exit_when_idle: false,
            resume: true,
            dataset_lock: Arc::new(Mutex::new(())),
            agent: AgentInfo { name: "w".into(), host: "h".into(), slots: 1, device: "cpu".into() },
            program_env: Arc::default(),
            allowed: None,
        }
    }

    /// Whether process `pid` has ended (gone, or a zombie nobody has reaped yet).
    fn ended(pid: i32) -> bool {
        match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
        }
    }

    #[test]
    fn a_stop_answer_to_a_heartbeat_ends_a_command_and_its_children_and_reports_nothing() {
        let home = tempfile::tempdir().unwrap();
        let pid_file = home.path().join("pid");
        // A shell whose own child (the long sleep) would outlive a signal to the shell alone.
        let script = "sleep 300 & echo $! > \"$1\"; wait";
        let lease = Lease {
            lease_id: "L2".into(),
            trial_id: 8,
            study: "s".into(),
            job: TrialJob::Command {
                argv: vec!["sh".into(), "-c".into(), script.into(), "sh".into(), pid_file.display().to_string()],
                env: BTreeMap::new(),
                workdir: None,
                stop_grace_s: 3.0,
            },
            seed: 0,
            attempt: 1,
            dataset: None,
            // Heartbeats every 100 ms.
            ttl_ms: 300,
            resume: None,
            checkpoint_every_s: 300.0,
        };
        let (seen_tx, seen) = mpsc::channel();
        let (go, go_rx) = mpsc::channel();
        let url = fake_coordinator(lease, seen_tx, go_rx, r#"{"ttl_ms": 300, "action": "stop"}"#);
        let stop = Arc::new(AtomicBool::new(false));
        let slot = slot_for(&url, home.path(), &stop);
        go.send(()).unwrap();
        let running = thread::spawn(move || slot.run());
        let started = std::time::Instant::now();
        let mut paths = Vec::new();
        // The agent goes back to leasing once the trial has stopped.
        while paths.iter().filter(|p: &&String| *p == "/v1/lease").count() < 2 {
            paths.push(seen.recv_timeout(Duration::from_secs(20)).expect("the agent leases again"));
        }
        let elapsed = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        running.join().unwrap().unwrap();
        paths.extend(seen.try_iter());
        assert_eq!(paths[..2], ["/v1/lease".to_string(), "/v1/leases/L2/heartbeat".to_string()], "{paths:?}");
        assert_eq!(paths.iter().filter(|p| p.contains("/heartbeat")).count(), 1, "no heartbeat after `stop`");
        assert!(
            paths.iter().all(|p| p == "/v1/lease" || p.ends_with("/heartbeat")),
            "nothing reported (no complete, fail or return): {paths:?}"
        );
        assert!(elapsed < Duration::from_secs(200), "stopped long before the program's 300 s: {elapsed:?}");
        let sleeper: i32 = fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !ended(sleeper) {
            assert!(std::time::Instant::now() < deadline, "the command's own child {sleeper} is still running");
            thread::sleep(Duration::from_millis(20));
        }
    }
}
