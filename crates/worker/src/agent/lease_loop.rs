//! The lease loop of one slot: lease a trial (a long poll), hand it to the runner of its kind,
//! heartbeat while it runs, and report its outcome once, retrying through outages; back off
//! while the coordinator is unreachable; on the worker's stop, return what it holds.
//!
//! A lease request that fails for a reason waiting cannot cure (a wrong token, a wrong URL, a
//! coordinator of an incompatible version: [`decsweep_connect::PermanentFault`]) ends the slot
//! with [`Refused`], and the worker exits 2 saying why; an orchestrator must not see it as a
//! healthy worker. Everything else (no answer, a 5xx, a full disk) keeps the bounded backoff.
//!
//! It knows leases and outcomes; how a trial runs is its runner's (super::runner).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use decsweep_api::wire::{
    AgentInfo, CompleteTrial, FailTrial, HeartbeatReply, Lease, LeaseRequest, PackAsk, ProgressAction, PruneTrial,
    ReturnTrial, TrialJob,
};

use super::lease_state::{LeaseEvent, LeaseState, LeaseWatch};
use super::model_trials::ModelTrials;
use super::pack_trials::{check_pack, PackOutcome, PackRun};
use super::program_trials::ProgramTrials;
use super::runner::{Outcome, Reporter, Runner, Trial};
use super::transfer::Transfer;
use decsweep_connect::retry::Backoff;
use decsweep_connect::{ApiCallError, Client, PermanentFault};

/// How long one lease request waits at the coordinator before answering "none". Short enough
/// that a stopping agent, which waits for its polls to come back, exits promptly; an idle slot
/// costs the coordinator one request this often.
pub(crate) const LONG_POLL_MS: u64 = 2_000;

/// One lease at a time.
pub(crate) struct Slot {
    /// This slot's worker name in the coordinator.
    pub name: String,
    pub client: Client,
    /// Raised by SIGTERM or SIGINT.
    pub stop: Arc<AtomicBool>,
    pub exit_when_idle: bool,
    /// Sent with every lease request.
    pub agent: AgentInfo,
    pub transfer: Transfer,
    /// The runner of each kind of trial.
    pub models: ModelTrials,
    pub programs: ProgramTrials,
    /// The most trials leased at once (`--pack`); `None`: as many as the study's `[resources]
    /// pack` says. Halved, for the rest of the run, when a pack runs out of device memory.
    pub pack: Cell<Option<u32>>,
}

/// A slot's end when the coordinator cannot be worked with: what failed and why it will not
/// pass by itself.
#[derive(Debug, thiserror::Error)]
#[error("lease request to {url} failed for good: {fault} (the coordinator said: {detail})")]
pub(crate) struct Refused {
    pub url: String,
    pub fault: PermanentFault,
    /// The call's own error (the server's words, or the transport's).
    pub detail: String,
}

impl Slot {
    /// Leases and runs trials until the worker stops, the coordinator runs dry under
    /// `--exit-when-idle`, or a lease request fails for good ([`Refused`]).
    pub(crate) fn run(self) -> Result<(), Refused> {
        let mut backoff = Backoff::new();
        while !self.stop.load(Ordering::Relaxed) {
            let request = LeaseRequest {
                worker: self.name.clone(),
                wait_ms: LONG_POLL_MS,
                agent: Some(self.agent.clone()),
                pack: Some(PackAsk { max: self.pack.get() }),
            };
            match self.client.lease_pack(&request).map(|leases| (!leases.is_empty()).then_some(leases)) {
                // The stop signal came while the request was out.
                Ok(Some(leases)) if self.stop.load(Ordering::Relaxed) => {
                    for lease in &leases {
                        self.give_back(lease, "granted as the worker stopped");
                    }
                }
                Ok(Some(mut leases)) => {
                    backoff.reset();
                    if leases.len() == 1 {
                        self.run_lease(leases.pop().expect("one lease"));
                    } else {
                        self.run_pack(leases);
                    }
                }
                Ok(None) if self.exit_when_idle => break,
                Ok(None) => {}
                Err(e) => {
                    if let Some(fault) = e.permanent_fault() {
                        let detail = e.certificate_problem().unwrap_or_else(|| e.detail());
                        return Err(Refused { url: self.client.base().to_string(), fault, detail });
                    }
                    // The coordinator may be restarting, cut off or out of disk: keep trying,
                    // more slowly.
                    let wait = backoff.next_wait();
                    tracing::warn!(worker = %self.name, error = %e.detail(), retry_in_ms = wait.as_millis() as u64,
                        "lease request failed; retrying (transient: no answer, a 5xx or a full disk)");
                    sleep_unless_stopped(wait, &self.stop);
                }
            }
        }
        Ok(())
    }

    /// Hands a lease's trial back to the queue without a result (the worker is stopping).
    fn give_back(&self, lease: &Lease, reason: &str) {
        match self.client.give_back(&lease.lease_id, &ReturnTrial { reason: format!("{reason} ({})", self.name) }) {
            Ok(()) => tracing::info!(trial = lease.trial_id, "returned the trial to the queue"),
            Err(e) => tracing::warn!(trial = lease.trial_id, error = %format!("{e:#}"), "could not return the trial"),
        }
    }

    /// The runner of `job`'s kind of trial.
    fn runner_for(&self, job: &TrialJob) -> &dyn Runner {
        match job {
            TrialJob::Model { .. } => &self.models,
            TrialJob::Command { .. } => &self.programs,
        }
    }

    fn run_lease(&self, lease: Lease) {
        tracing::info!(worker = %self.name, trial = lease.trial_id, attempt = lease.attempt, study = %lease.study, "leased");
        let watch = Arc::new(LeaseWatch::new());
        let heartbeat = self.spawn_heartbeat(&lease, Arc::clone(&watch));
        let trial = Trial {
            lease: &lease,
            report: Reporter { client: &self.client, lease: &lease, watch: &watch, transfer: &self.transfer },
            transfer: &self.transfer,
            stopping: &self.stop,
        };
        let outcome = self.runner_for(&lease.job).run(&trial);
        watch.record(LeaseEvent::Finished);
        let _ = heartbeat.join();
        self.report(&lease, &watch, outcome);
    }

    /// Trains the leases of one pack answer together (super::pack_trials), each keeping its
    /// own heartbeat, progress and outcome. A pack that cannot be trained together is given back
    /// naming the trials; one that ran out of device memory is given back and the next request
    /// asks for half as many.
    fn run_pack(&self, leases: Vec<Lease>) {
        let trials: Vec<i64> = leases.iter().map(|l| l.trial_id).collect();
        if let Err(why) = check_pack(&leases) {
            tracing::error!(worker = %self.name, ?trials, "refusing the lease answer: {why}; giving the leases back");
            for lease in &leases {
                self.give_back(lease, &format!("refused: {why}"));
            }
            return;
        }
        tracing::info!(worker = %self.name, ?trials, pack_id = ?leases[0].pack_id, study = %leases[0].study, "leased a pack");
        let watches: Vec<Arc<LeaseWatch>> = leases.iter().map(|_| Arc::new(LeaseWatch::new())).collect();
        let heartbeats: Vec<_> =
            leases.iter().zip(&watches).map(|(lease, watch)| self.spawn_heartbeat(lease, Arc::clone(watch))).collect();
        let run = PackRun {
            leases: &leases,
            reports: leases
                .iter()
                .zip(&watches)
                .map(|(lease, watch)| Reporter { client: &self.client, lease, watch, transfer: &self.transfer })
                .collect(),
            transfer: &self.transfer,
            stopping: &self.stop,
        };
        let outcome = self.models.run_pack(&run);
        for watch in &watches {
            watch.record(LeaseEvent::Finished);
        }
        for heartbeat in heartbeats {
            let _ = heartbeat.join();
        }
        match outcome {
            PackOutcome::Members(outcomes) => {
                for ((lease, watch), outcome) in leases.iter().zip(&watches).zip(outcomes) {
                    self.report(lease, watch, outcome);
                }
            }
            PackOutcome::OutOfMemory(message) => {
                let half = u32::try_from(leases.len() / 2).unwrap_or(1).max(1);
                tracing::warn!(worker = %self.name, ?trials, %message,
                    "the pack of {} ran out of device memory: giving its leases back and asking for at most {half} trials at once from now on",
                    leases.len());
                self.pack.set(Some(half));
                for lease in &leases {
                    self.give_back(lease, "the pack ran out of device memory; retried in a smaller pack");
                }
            }
        }
    }

    /// Reports one lease's outcome, once, unless the lease ended under the trial.
    fn report(&self, lease: &Lease, watch: &LeaseWatch, outcome: Outcome) {
        match watch.get() {
            LeaseState::Halted => {
                tracing::info!(trial = lease.trial_id, "stopped: the trial was cancelled or failed by the user");
                return;
            }
            LeaseState::Lost => {
                tracing::warn!(trial = lease.trial_id, "lease lost (expired or replaced); result discarded");
                return;
            }
            LeaseState::Running | LeaseState::Finished => {}
        }
        let id = &lease.lease_id;
        let outcome_name = outcome.name();
        let reported = match outcome {
            Outcome::Completed { metrics, manifest } => self.client.complete(id, &CompleteTrial { metrics, manifest }),
            Outcome::Pruned { stage, epoch, metrics } => self.client.prune(id, &PruneTrial { stage, epoch, metrics }),
            Outcome::Failed { reason, retryable } => {
                tracing::warn!(trial = lease.trial_id, %reason, "trial failed");
                self.client.fail(id, &FailTrial { reason, retryable })
            }
            Outcome::Stopped => {
                self.give_back(lease, "the worker was shut down during the trial");
                return;
            }
        };
        match reported {
            Ok(()) => tracing::info!(trial = lease.trial_id, lease = %id, outcome = outcome_name, "outcome recorded"),
            // The trial was leased again while this worker was cut off; the other worker's result
            // counts. Nothing to do but take the next trial.
            Err(e) if e.is_conflict() => {
                tracing::warn!(trial = lease.trial_id, lease = %id, outcome = outcome_name, error = %format!("{e:#}"),
                    "late outcome refused: the trial was leased to another worker; moving on")
            }
            Err(e) => {
                tracing::warn!(trial = lease.trial_id, lease = %id, outcome = outcome_name, error = %format!("{e:#}"),
                "could not report the trial's outcome")
            }
        }
    }

    /// Extends the lease every third of its TTL while the trial runs; records the lease lost
    /// when the coordinator says it is no longer ours, halted when it answers `stop`.
    fn spawn_heartbeat(&self, lease: &Lease, watch: Arc<LeaseWatch>) -> thread::JoinHandle<()> {
        let client = self.client.clone();
        let lease_id = lease.lease_id.clone();
        let every = Duration::from_millis((lease.ttl_ms / 3).max(50));
        thread::spawn(move || {
            let tick = Duration::from_millis(25);
            let mut waited = Duration::ZERO;
            while watch.get() == LeaseState::Running {
                thread::sleep(tick);
                waited += tick;
                if waited < every {
                    continue;
                }
                waited = Duration::ZERO;
                match client.heartbeat(&lease_id) {
                    Ok(HeartbeatReply { action: ProgressAction::Stop, .. }) => {
                        watch.record(LeaseEvent::Halted);
                        return;
                    }
                    Ok(_) => {}
                    Err(ApiCallError::Conflict(_)) => {
                        watch.record(LeaseEvent::Lost);
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                }
            }
        })
    }
}

fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let step = Duration::from_millis(50);
    let mut slept = Duration::ZERO;
    while slept < total && !stop.load(Ordering::Relaxed) {
        thread::sleep(step);
        slept += step;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::path::Path;
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
            pack_id: None,
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
        let client = Client::new(url, None).unwrap();
        Slot {
            name: "w".into(),
            client: client.clone(),
            stop: Arc::clone(stop),
            exit_when_idle: false,
            agent: AgentInfo { name: "w".into(), host: "h".into(), slots: 1, device: "cpu".into() },
            transfer: Transfer::new(client, home.to_path_buf()),
            models: ModelTrials {
                device: "cpu".into(),
                threads: 1,
                home: home.to_path_buf(),
                resume: true,
                program_env: Arc::default(),
            },
            programs: ProgramTrials {
                worker: "w".into(),
                home: home.to_path_buf(),
                resume: true,
                program_env: Arc::default(),
                allowed: None,
            },
            pack: Cell::new(None),
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
            pack_id: None,
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
