//! `deploy/slurm/worker-array.sbatch`, unchanged, on a real (one-node, throw-away) SLURM cluster
//! against a `decsweep serve` coordinator: three array tasks share a study, one is `scancel`led
//! mid-trial and gives its trial back, the others finish the study and `--exit-when-idle` ends
//! the array; `sacct` shows each task's state, and every daemon is gone afterwards.
//!
//! Needs root: it installs `slurm-wlm` and `munge` with apt-get when they are missing and runs
//! munged, slurmctld and slurmd (see `slurm_cluster`). It FAILS, never skips, when it cannot.
//! The worker binary must have been built (`cargo build --workspace --bins`; make test does).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use decsweep_api::wire::{TrialInfo, TrialStatus};

mod common;
mod slurm_cluster;

use common::{decsweep, worker_bin};
use slurm_cluster::Cluster;

/// Array tasks, i.e. workers.
const TASKS: u32 = 3;
/// The task that is cancelled while it runs a trial.
const VICTIM: u32 = 1;

/// The coordinator, stopped (SIGTERM, then SIGKILL) when dropped.
struct Coordinator {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Coordinator {
    fn start(db: &Path, token: &str, log: PathBuf) -> Coordinator {
        let out = fs::File::create(&log).unwrap();
        let child = Command::new(decsweep())
            .args(["serve", "--db", db.to_str().unwrap(), "--bind", "127.0.0.1:0"])
            .env("DECSWEEP_TOKEN", token)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut coordinator = Coordinator { child, url: String::new(), log };
        let started = Instant::now();
        // "coordinator listening on http://127.0.0.1:PORT (database …)"
        while coordinator.url.is_empty() {
            let text = fs::read_to_string(&coordinator.log).unwrap_or_default();
            if let Some(rest) = text.split("listening on ").nth(1) {
                coordinator.url = rest.split_whitespace().next().unwrap().to_string();
            }
            if let Some(status) = coordinator.child.try_wait().unwrap() {
                panic!("decsweep serve exited ({status}): {text}");
            }
            assert!(started.elapsed() < Duration::from_secs(30), "decsweep serve did not listen: {text}");
            std::thread::sleep(Duration::from_millis(100));
        }
        coordinator
    }

    /// SIGTERM and wait: the coordinator checkpoints its database on the way out.
    fn stop(&mut self) {
        // SAFETY: signalling our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let started = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("decsweep serve did not stop on SIGTERM within 20 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli(url: &str, token: &str, args: &[&str]) -> std::process::Output {
    Command::new(decsweep())
        .args(args)
        .args(["--coordinator", url])
        .env("DECSWEEP_TOKEN", token)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn trials(url: &str, token: &str) -> Vec<TrialInfo> {
    #[derive(serde::Deserialize)]
    struct Status {
        trials: Vec<TrialInfo>,
    }
    let o = cli(url, token, &["status", "slurm", "--trials", "--json"]);
    assert!(o.status.success(), "decsweep status: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice::<Status>(&o.stdout).unwrap().trials
}

/// A `command` study of 6 trials (3 values × 2 seeds) with no retries, so a trial given back
/// must not use up an attempt. Each trial waits for `gate` to exist, then runs a second and
/// prints its metrics: the test decides when trials may finish, so which task holds which trial
/// while it cancels one is not a matter of timing.
fn write_spec(dir: &Path, gate: &Path) -> PathBuf {
    let spec = r#"
[study]
name = "slurm"
dataset = { synthetic = { seed = 0, n = 20 } }
pipelines = ["command"]
seeds = [0, 1]
retries = 0

[command]
program = ["sh", "-c", "while [ ! -e GATE ]; do sleep 0.2; done; sleep 1; echo \"{\\\"accuracy\\\": $2}\"", "sh"]

[space]
x = { grid = [0.25, 0.5, 0.75] }
"#
    .replace("GATE", gate.to_str().unwrap());
    let path = dir.join("slurm.toml");
    fs::write(&path, spec).unwrap();
    path
}

fn sbatch_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/slurm/worker-array.sbatch")
}

/// (trial id, worker, outcome) of every lease ever granted, in the order granted.
fn leases(db: &Path) -> Vec<(i64, String, Option<String>)> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut stmt = conn.prepare("SELECT trial_id, worker, outcome FROM leases ORDER BY granted_ms, lease_id").unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
    rows.map(Result::unwrap).collect()
}

#[test]
fn the_sbatch_array_shares_a_study_survives_scancel_and_ends_when_the_queue_drains() {
    let install_time = slurm_cluster::ensure_installed();
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();

    let token = format!("slurm-test-token-{}", std::process::id());
    let token_file = tmp.path().join("token");
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&token_file).unwrap();
    f.write_all(token.as_bytes()).unwrap();
    let db = tmp.path().join("coordinator").join("decsweep.db");
    fs::create_dir_all(db.parent().unwrap()).unwrap();
    // Started before the cluster so that, on a failure, the cluster is dropped first: its jobs'
    // workers can still give their trials back and exit on SIGTERM instead of waiting for SIGKILL.
    let mut coordinator = Coordinator::start(&db, &token, tmp.path().join("serve.log"));
    let url = coordinator.url.clone();
    let cluster_started = Instant::now();
    let cluster = Cluster::start(&tmp.path().join("slurm"));
    let cluster_up = cluster_started.elapsed();
    cluster.spare(coordinator.child.id());
    cluster.show_logs_of(tmp.path());

    let gate = tmp.path().join("gate");
    let spec = write_spec(tmp.path(), &gate);
    let o = cli(&url, &token, &["submit", spec.to_str().unwrap()]);
    assert!(o.status.success(), "decsweep submit: {}", String::from_utf8_lossy(&o.stderr));

    // The script as shipped; this cluster's sizes on the command line (they override its
    // #SBATCH lines), the rest in the environment it exports to the tasks.
    let jobs = tmp.path().join("jobs");
    let scratch = tmp.path().join("scratch");
    fs::create_dir_all(&jobs).unwrap();
    cluster.show_logs_of(&jobs);
    fs::create_dir_all(&scratch).unwrap();
    let out = cluster
        .command("sbatch")
        .current_dir(&jobs)
        .arg("--parsable")
        .arg("--export=ALL")
        .arg(format!("--array=0-{}", TASKS - 1))
        .args(["--cpus-per-task=1", "--mem=256M"])
        .arg(format!("--output={}/worker-%A_%a.log", jobs.display()))
        .arg(sbatch_script())
        .env("DECSWEEP_COORDINATOR", &url)
        .env("DECSWEEP_TOKEN_FILE", &token_file)
        .env("DECSWEEP_DEVICE", "cpu")
        .env("DECSWEEP_WORKER_BIN", worker_bin())
        .env("TMPDIR", &scratch)
        .env("RUST_LOG", "info")
        .env_remove("DECSWEEP_TOKEN")
        .env_remove("DECSWEEP_WORK_DIR")
        .env_remove("DECSWEEP_SLOTS")
        .env_remove("DECSWEEP_TORCH_LIB")
        .env_remove("DECSWEEP_HOME")
        .output()
        .unwrap();
    assert!(out.status.success(), "sbatch: {}{}", String::from_utf8_lossy(&out.stderr), cluster.logs());
    // --parsable prints "JOBID" or "JOBID;CLUSTER".
    let job = String::from_utf8_lossy(&out.stdout).trim().split(';').next().unwrap().to_string();
    let worker_name = |task: u32| format!("{}-{job}_{task}", cluster.host);

    // Each task's worker leases one trial and holds it at the gate.
    cluster.wait_until("every array task to be running a trial", Duration::from_secs(120), || {
        let running: BTreeSet<String> = trials(&url, &token)
            .into_iter()
            .filter(|t| t.status == TrialStatus::Running)
            .filter_map(|t| t.worker)
            .collect();
        running == (0..TASKS).map(worker_name).collect()
    });
    let tasks = cluster.queued_tasks(&job);
    assert_eq!(tasks.len(), TASKS as usize, "squeue lists every task: {tasks:?}");
    assert!(tasks.values().all(|(_, state)| state == "RUNNING"), "{tasks:?}");
    let task_job_ids: BTreeMap<u32, String> = tasks.iter().map(|(task, (id, _))| (*task, id.clone())).collect();

    // Cancel one task mid-trial: its worker gets SIGTERM and gives the trial back.
    let victim_trial = trials(&url, &token)
        .into_iter()
        .find(|t| t.worker.as_deref() == Some(worker_name(VICTIM).as_str()) && t.status == TrialStatus::Running)
        .unwrap_or_else(|| panic!("task {VICTIM} holds a trial{}", cluster.logs()));
    cluster.run_ok("scancel", &[&format!("{job}_{VICTIM}")]);
    cluster.wait_until("the cancelled task to end and its trial to be pending", Duration::from_secs(60), || {
        let returned = trials(&url, &token).into_iter().find(|t| t.id == victim_trial.id).unwrap();
        !cluster.queued_tasks(&job).contains_key(&VICTIM) && returned.status == TrialStatus::Pending
    });
    let returned = trials(&url, &token).into_iter().find(|t| t.id == victim_trial.id).unwrap();
    assert_eq!(returned.attempts, 0, "a returned trial has not used an attempt: {returned:#?}");
    let reason = returned.error.as_deref().unwrap_or_default();
    assert!(reason.contains("returned unfinished"), "the trial says why it is pending again: {returned:#?}");
    let victim_scratch = scratch.join(format!("decsweep-{job}-{VICTIM}"));
    assert!(!victim_scratch.exists(), "the cancelled task removed its scratch folder {}", victim_scratch.display());

    // Let the trials finish: the two remaining tasks run the rest, the returned trial included,
    // then find the queue empty and exit, which ends the array.
    fs::write(&gate, "").unwrap();
    cluster
        .wait_until("the array to leave the queue", Duration::from_secs(180), || cluster.queued_tasks(&job).is_empty());

    let done = trials(&url, &token);
    assert_eq!(done.len(), 6, "3 values × 2 seeds: {done:#?}");
    for t in &done {
        assert_eq!(t.status, TrialStatus::Completed, "trial {}: {t:#?}{}", t.id, cluster.logs());
        assert_eq!(t.attempts, 1, "trial {} completed on its first counted attempt: {t:#?}", t.id);
        assert_eq!(t.metrics["accuracy"], t.params["x"].as_f64().unwrap(), "trial {} reported its own result", t.id);
    }
    let finisher = done.iter().find(|t| t.id == victim_trial.id).unwrap().worker.clone().unwrap_or_default();
    let others: BTreeSet<String> = (0..TASKS).filter(|&t| t != VICTIM).map(worker_name).collect();
    assert!(others.contains(&finisher), "another task completed the returned trial, not {finisher}");
    for task in 0..TASKS {
        let dir = scratch.join(format!("decsweep-{job}-{task}"));
        assert!(!dir.exists(), "task {task} removed its scratch folder {}", dir.display());
    }

    // sacct (from the job-completion log): the cancelled task CANCELLED, the others COMPLETED
    // with exit code 0, i.e. their workers exited by themselves when the queue was empty.
    let ids: Vec<&str> = task_job_ids.values().map(String::as_str).collect();
    let mut states = BTreeMap::new();
    cluster.wait_until("sacct to list every task", Duration::from_secs(30), || {
        states = cluster.sacct_states(&ids);
        states.len() == ids.len()
    });
    for (task, id) in &task_job_ids {
        let (state, exit) = &states[id];
        if *task == VICTIM {
            assert_eq!(state, "CANCELLED", "task {task} (job {id}) was cancelled: {states:?}");
        } else {
            assert_eq!((state.as_str(), exit.as_str()), ("COMPLETED", "0:0"), "task {task} (job {id}): {states:?}");
        }
    }

    // The store's lease history: one completed lease per trial, and one more lease, the
    // cancelled task's, that ended `returned` (not expired or failed).
    coordinator.stop();
    let history = leases(&db);
    for t in &done {
        let completed = history.iter().filter(|(id, _, o)| *id == t.id && o.as_deref() == Some("completed")).count();
        assert_eq!(completed, 1, "trial {} completed exactly once: {history:?}", t.id);
    }
    let not_completed: Vec<_> = history.iter().filter(|(_, _, o)| o.as_deref() != Some("completed")).collect();
    assert_eq!(
        not_completed,
        vec![&(victim_trial.id, worker_name(VICTIM), Some("returned".to_string()))],
        "the only other lease is the cancelled task's, returned: {history:?}"
    );

    let mut cluster = cluster;
    let problems = cluster.shut_down();
    assert!(problems.is_empty(), "the cluster shut down cleanly: {problems:#?}");
    assert_eq!(slurm_cluster::descendants(&[]), Vec::new(), "no daemon, job or worker process is left");
    eprintln!(
        "slurm test: install {:.1} s, cluster up in {:.1} s, whole test {:.1} s",
        install_time.as_secs_f64(),
        cluster_up.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
