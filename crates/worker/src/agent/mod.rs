//! The worker agent: leases trials from a coordinator, runs each in a child process
//! (`decsweep-worker train --supervised`, or the spec's command), heartbeats, relays per-epoch
//! progress (and the coordinator's prune answers), and reports the outcome.
//!
//! Its rooms: [`lease_loop`] leases trials one slot at a time, heartbeats and reports outcomes;
//! a [`runner::Runner`] runs one leased trial ([`model_trials`]: the built-in pipeline in a
//! child; [`program_trials`]: the spec's command); [`transfer`] moves datasets and checkpoints;
//! [`lease_state`] says whether the lease still stands. The HTTP client is [`decsweep_connect::Client`],
//! and what the agent and its model child say to each other is [`crate::protocol`].
//!
//! A trial runs in a child process ([`model_trials`] says why). If the agent dies, the child reads
//! end-of-file at its next epoch and stops; the coordinator re-leases the trial when the lease
//! expires.
//!
//! Exit status as an agent: 0 after a stop signal or `--exit-when-idle`; 2 when the coordinator
//! cannot be worked with whatever the agent waits (a wrong token, a URL without a scheme or with
//! a wrong path, an incompatible coordinator: [`decsweep_connect::PermanentFault`]), so a
//! supervisor that restarts on failure does not restart it into the same error. While the
//! coordinator is only unreachable, restarting, or out of disk (503), the agent keeps waiting
//! with a bounded backoff and does not exit.
//!
//! On SIGTERM or SIGINT the agent stops its running trials within an epoch and *returns* them
//! (`/return`: pending again, the attempt not counted), then exits 0. A model trial first saves
//! its state (`suspend`), which is uploaded as a checkpoint, and a program's checkpoint directory
//! is uploaded after it exits, so the next lease of the trial resumes (unless `--no-resume`). It exits only once every
//! slot has ended, including a slot whose lease request is out, so a lease granted as the signal
//! arrives is returned too rather than left to expire; the price is that an idle agent takes up
//! to one long poll ([`lease_loop::LONG_POLL_MS`]) to exit.
//!
//! When the user cancels the study or fails the trial, the coordinator answers the next
//! heartbeat or progress report `stop`: the agent stops the child (a built-in pipeline through
//! its stdin at the next epoch, as for pruning; a command by SIGTERM to its process group, then
//! SIGKILL after its job's `stop_grace_s`, the spec's `[command] stop_grace`), reports nothing
//! (the coordinator has recorded the end) and leases the next trial.

mod lease_loop;
mod lease_state;
mod model_trials;
mod pack_trials;
mod program_trials;
mod runner;
mod transfer;

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use anyhow::Context;
use decsweep_api::wire::AgentInfo;

use crate::Failure;
use decsweep_connect::Client;
use lease_loop::Slot;
use model_trials::ModelTrials;
use program_trials::ProgramTrials;
use transfer::Transfer;

#[derive(clap::Args, Debug, Clone)]
pub struct AgentArgs {
    /// Coordinator to pull trials from, scheme included, e.g. `http://10.0.0.5:8320`. Without a
    /// subcommand the worker runs as an agent and this is required.
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
    /// Train up to K trials at once as one stacked model, one child process per pack: trials of
    /// one study that share every shape and schedule parameter (they may differ in the seed,
    /// learning rates, loss weights, dropout, label fraction). Each keeps its own lease,
    /// progress and outcome. Without it, the study's `[resources] pack` decides (else 1). A pack
    /// that runs out of device memory is given back and the slot asks for half as many.
    #[arg(long, value_name = "K", value_parser = decsweep_api::pack::parse_pack)]
    pack: Option<u32>,
    /// CPU threads per trial (default: the machine's cores divided among the slots).
    #[arg(long)]
    threads: Option<usize>,
    /// Where datasets, shared stage checkpoints and trial outputs are kept
    /// (default: $DECSWEEP_HOME, else ~/.cache/decsweep). It grows with every study:
    /// `decsweep cache du` shows it, `decsweep cache clean` clears it while no worker runs.
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

pub fn run(args: AgentArgs) -> Result<(), Failure> {
    let Some(url) = args.coordinator.clone() else {
        return Err(Failure::BadInput(anyhow::anyhow!("--coordinator URL is required to run as an agent")));
    };
    // A URL no request can be made to is bad input before anything else is set up.
    let client = Client::connect(&url, &args.access).map_err(|e| Failure::BadInput(e.into()))?;
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
    if let Some(warning) = decsweep_connect::plain_http::clear_text_warning(&url) {
        tracing::warn!("{warning}");
    }
    let home = args.work_dir.clone().unwrap_or_else(decsweep_connect::work_dir::default_work_dir);
    for (sub, _) in decsweep_connect::work_dir::SUBFOLDERS {
        fs::create_dir_all(home.join(sub)).with_context(|| format!("creating {}", home.join(sub).display()))?;
    }
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.threads.unwrap_or((cores / args.slots.max(1)).max(1));
    let base_name = args.name.clone().unwrap_or_else(default_name);
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

    let transfer = Transfer::new(client.clone(), home.clone());
    let resume = !args.no_resume;
    let handles: Vec<_> = (0..args.slots.max(1))
        .map(|slot| {
            let name = if args.slots > 1 { format!("{base_name}/{slot}") } else { base_name.clone() };
            let slot_ctx = Slot {
                client: client.clone(),
                stop: Arc::clone(&stop),
                exit_when_idle: args.exit_when_idle,
                agent: agent.clone(),
                transfer: transfer.clone(),
                models: ModelTrials {
                    device: slot_device(&args.device, slot),
                    threads,
                    home: home.clone(),
                    resume,
                    program_env: Arc::clone(&program_env),
                },
                programs: ProgramTrials {
                    worker: name.clone(),
                    home: home.clone(),
                    resume,
                    program_env: Arc::clone(&program_env),
                    allowed: allowed.clone(),
                },
                pack: std::cell::Cell::new(args.pack),
                name,
            };
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let ended = slot_ctx.run();
                if ended.is_err() {
                    // The other slots would meet the same refusal: they stop too, returning
                    // what they run.
                    stop.store(true, Ordering::Relaxed);
                }
                ended
            })
        })
        .collect();
    let mut refused = None;
    for h in handles {
        if let Err(e) = h.join().expect("slot thread does not panic") {
            refused.get_or_insert(e);
        }
    }
    match refused {
        // Not a failure of this machine's: the settings (or the coordinator) must change first.
        Some(e) => Err(Failure::BadInput(e.into())),
        None => {
            if stop.load(Ordering::Relaxed) {
                tracing::info!("stopped");
            }
            say_goodbye(&client, &agent.name);
            Ok(())
        }
    }
}

/// Tells the coordinator this process ends cleanly, so its dashboard lists it as stopped rather
/// than quiet. Best effort: an exit is not held up by a coordinator that cannot hear it.
fn say_goodbye(client: &Client, name: &str) {
    match client.goodbye(name) {
        Ok(_) => tracing::debug!(worker = %name, "said goodbye to the coordinator"),
        Err(e) => {
            tracing::warn!(worker = %name, error = %e.detail(), "could not tell the coordinator this worker stopped")
        }
    }
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
