//! End-to-end sweeps with real worker processes and real (tiny) training: `decsweep run`, a
//! worker killed mid-trial, a coordinator killed mid-study.
//!
//! The worker binary must have been built (`make test` builds every binary first).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use decsweep_api::wire::{TrialInfo, TrialStatus};

mod common;

use common::{agent, decsweep, free_port, metrics_text, serve, status, submit, wait_for, worker_bin, Guard, Server};

/// A small sweep: synthetic data, a tiny network, a few epochs.
fn write_spec(dir: &Path, name: &str, epochs_ft: u32, fractions: &str, seeds: &str) -> PathBuf {
    let spec = format!(
        r#"
[study]
name = "{name}"
dataset = {{ synthetic = {{ seed = 3, n = 240 }} }}
pipelines = ["baseline", "dec"]
seeds = {seeds}
retries = 3

[fixed]
d_model = 16
n_heads = 2
n_layers = 1
ff_dim = 32
latent_dim = 8
batch_size = 64
epochs_ae = 2
epochs_dec = 2
epochs_ft = {epochs_ft}
lr_ft = 1e-3

[space]
label_fraction = {{ grid = {fractions} }}
"#
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, spec).unwrap();
    path
}

fn run_sweep(spec: &Path, results: &Path, home: &Path) -> Output {
    Command::new(decsweep())
        .args(["run", spec.to_str().unwrap(), "--workers", "2", "--threads", "1", "--device", "cpu"])
        .arg("--out")
        .arg(results)
        .env("DECSWEEP_HOME", home)
        .env("DECSWEEP_WORKER", worker_bin())
        .output()
        .unwrap()
}

fn read_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<String> = split_csv(lines.next().unwrap());
    lines.map(|l| header.iter().cloned().zip(split_csv(l)).collect()).collect()
}

/// Enough CSV for these files: quoted fields may hold commas and doubled quotes.
fn split_csv(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().unwrap().push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out
}

fn store_trials(db: &Path, study: &str) -> Vec<TrialInfo> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = decsweep_coordinator::Coordinator::open(db, Default::default()).unwrap();
        c.trials(study, None).await.unwrap()
    })
}

#[test]
fn run_sweeps_with_two_workers_writes_reports_that_match_the_store_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = write_spec(tmp.path(), "e2e", 3, "[0.5, 1.0]", "[0, 1]");
    let results = tmp.path().join("results");
    let home = tmp.path().join("home");
    let o = run_sweep(&spec, &results, &home);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "decsweep run failed:\n{stderr}");
    let wal = std::fs::metadata(results.join("decsweep.db-wal")).map_or(0, |m| m.len());
    assert_eq!(wal, 0, "a finished run leaves its database checkpointed, not a WAL to replay");

    // Every trial completed once, by one of the two workers.
    let trials = store_trials(&results.join("decsweep.db"), "e2e");
    assert_eq!(trials.len(), 2 * 2 * 2);
    assert!(trials.iter().all(|t| t.status == TrialStatus::Completed && t.attempts == 1), "{trials:#?}");
    let workers: std::collections::BTreeSet<_> = trials.iter().filter_map(|t| t.worker.clone()).collect();
    assert_eq!(workers.len(), 2, "both workers took trials: {workers:?}");
    // The AE stage is shared across label fractions of a seed: the second trial reuses it.
    let reuses: f64 = trials.iter().filter(|t| t.pipeline == "dec").map(|t| t.metrics["cache_reuses"]).sum();
    assert!(reuses >= 2.0, "dec trials of one seed share their AE checkpoint (reuses {reuses})");

    // trials.csv: one row per trial, its numbers those of the store.
    let rows = read_csv(&results.join("trials.csv"));
    assert_eq!(rows.len(), trials.len());
    for t in &trials {
        let row = rows.iter().find(|r| r["id"] == t.id.to_string()).expect("a row per trial");
        assert_eq!(row["pipeline"], t.pipeline);
        assert_eq!(row["seed"], t.seed.to_string());
        assert_eq!(row["status"], "completed");
        let acc: f64 = row["accuracy"].parse().unwrap();
        assert_eq!(acc, t.metrics["accuracy"]);
        assert_eq!(row["label_fraction"].parse::<f64>().unwrap(), t.params["label_fraction"].as_f64().unwrap());
    }

    // summary.csv: each group's mean is the mean of its trials' accuracies in the store.
    let summary = read_csv(&results.join("summary.csv"));
    assert_eq!(summary.len(), 4, "2 pipelines × 2 label fractions");
    for g in &summary {
        let members: Vec<&TrialInfo> = trials.iter().filter(|t| t.config_id == g["config_id"]).collect();
        assert_eq!(members.len(), 2, "two seeds per group");
        let mean = members.iter().map(|t| t.metrics["accuracy"]).sum::<f64>() / 2.0;
        let reported: f64 = g["accuracy_mean"].parse().unwrap();
        assert!((reported - mean).abs() < 1e-12, "summary mean {reported} vs store {mean}");
        let ids: Vec<String> = members.iter().map(|t| t.id.to_string()).collect();
        for id in ids {
            assert!(g["trial_ids"].split(';').any(|x| x == id), "summary names trial {id}");
        }
    }

    let table = std::fs::read_to_string(results.join("table.md")).unwrap();
    assert!(table.contains("| dec lf=0.5 |") && table.contains("| baseline lf=1 |"), "rows named by labels: {table}");
    assert!(table.contains("paired"), "{table}");
    let tex = std::fs::read_to_string(results.join("table.tex")).unwrap();
    assert!(tex.contains("\\toprule") && tex.contains("\\bottomrule"));
    let plot = std::fs::read_to_string(results.join("accuracy_vs_label_fraction.svg")).unwrap();
    assert!(plot.starts_with("<svg") || plot.starts_with("<?xml"), "{}", &plot[..60.min(plot.len())]);
    let curves = std::fs::read_dir(&results)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("curves_"))
        .count();
    assert!(curves >= 1);
    // A grid study: parameter importance, but no best-so-far plot (only for adaptive samplers).
    assert!(results.join("importance.csv").exists() && !results.join("search.svg").exists());

    // `decsweep report --out` regenerates the same tables from the database elsewhere.
    let elsewhere = tmp.path().join("elsewhere");
    let o = Command::new(decsweep())
        .args(["report", "e2e", "--db", results.join("decsweep.db").to_str().unwrap(), "--out"])
        .arg(&elsewhere)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for file in ["table.md", "summary.csv", "paired.csv"] {
        let a = std::fs::read_to_string(results.join(file)).unwrap();
        assert_eq!(a, std::fs::read_to_string(elsewhere.join(file)).unwrap(), "{file}");
    }

    // The same command again resumes: nothing runs twice.
    let again = run_sweep(&spec, &results, &home);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(String::from_utf8_lossy(&again.stderr).contains("resuming"));
    let after = store_trials(&results.join("decsweep.db"), "e2e");
    assert!(after.iter().all(|t| t.attempts == 1 && t.status == TrialStatus::Completed));
}

const LONG_BASELINE: &str = r#"
[study]
name = "NAME"
dataset = { synthetic = { seed = 3, n = 240 } }
pipelines = ["baseline"]
seeds = [0]
retries = 3

[fixed]
d_model = 16
n_heads = 2
n_layers = 1
ff_dim = 32
batch_size = 64
epochs_ft = 400
label_fraction = 1.0
"#;

/// One long-ish trial (many classifier epochs), so a kill lands mid-training.
fn long_trial_spec(dir: &Path, name: &str) -> PathBuf {
    let spec = dir.join(format!("{name}.toml"));
    std::fs::write(&spec, LONG_BASELINE.replace("NAME", name)).unwrap();
    spec
}

/// A server with one long trial (lease TTL `ttl_s`) and an agent that has leased it.
fn lease_long_trial(dir: &Path, name: &str, ttl_s: u32) -> (Server, Guard) {
    let spec = long_trial_spec(dir, name);
    let server = serve(&dir.join(format!("{name}.db")), free_port(), ttl_s);
    submit(&server.url, &spec);
    let first = agent(&server.url, &dir.join("home1"));
    wait_for("the trial to be leased", Duration::from_secs(60), || status(&server.url, name).0.counts.running == 1);
    (server, first)
}

#[test]
fn a_worker_killed_mid_trial_loses_nothing_and_the_trial_completes_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, mut first) = lease_long_trial(tmp.path(), "killworker", 2);
    std::thread::sleep(Duration::from_millis(1500));
    first.0.kill().unwrap(); // SIGKILL: no chance to release the lease.
    first.0.wait().unwrap();

    let _second = agent(&server.url, &tmp.path().join("home2"));
    wait_for("the trial to complete", Duration::from_secs(240), || {
        status(&server.url, "killworker").0.counts.completed == 1
    });
    let (info, trials) = status(&server.url, "killworker");
    assert_eq!(info.counts.total(), 1);
    assert_eq!(trials[0].attempts, 2, "re-leased after the first worker's lease expired");
    assert_eq!(trials[0].status, TrialStatus::Completed);
}

#[test]
fn sigterm_releases_the_running_trial_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    // A TTL far longer than the test waits: the trial must come back by release, not expiry.
    let (server, mut first) = lease_long_trial(tmp.path(), "sigterm", 600);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(first.0.id() as libc::pid_t, libc::SIGTERM) };
    let exited = first.0.wait().unwrap();
    assert!(exited.success(), "a worker stopped by SIGTERM exits 0: {exited}");
    let (info, trials) = status(&server.url, "sigterm");
    assert_eq!(info.counts.pending, 1, "returned to the queue: {trials:#?}");
    assert_eq!(trials[0].attempts, 0, "a returned attempt does not count against the retries");
    assert!(trials[0].error.as_deref().unwrap_or("").contains("returned unfinished"), "{trials:#?}");
}

/// End to end: an idle agent stopped just as work arrives leaves nothing running and exits 0.
/// Whether the coordinator grants it the trial in that instant depends on timing; the agent's
/// unit test `a_lease_granted_after_the_stop_signal_is_returned_unrun` pins that case down.
#[test]
fn an_idle_agent_stopped_as_work_arrives_leaves_nothing_running() {
    let tmp = tempfile::tempdir().unwrap();
    // Nothing to do yet: the agent sits in a long poll. A TTL far longer than the test waits.
    let server = serve(&tmp.path().join("race.db"), free_port(), 600);
    let agent = agent(&server.url, &tmp.path().join("home"));
    let polled = || {
        let text = metrics_text(&server.url);
        text.lines().any(|l| l.contains("route=\"/v1/lease\"") && !l.starts_with('#'))
    };
    wait_for("the agent to poll for work", Duration::from_secs(30), polled);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(agent.0.id() as libc::pid_t, libc::SIGTERM) };
    // Work appears while the poll is (most likely) still out: the coordinator grants it to the
    // stopping agent, which must hand it back before it exits.
    submit(&server.url, &long_trial_spec(tmp.path(), "race"));
    let mut agent = agent;
    let exited = agent.0.wait().unwrap();
    assert!(exited.success(), "a worker stopped by SIGTERM exits 0: {exited}");
    let (info, trials) = status(&server.url, "race");
    assert_eq!(info.counts.running, 0, "no lease is left running until its TTL: {trials:#?}");
    assert_eq!((info.counts.pending, trials[0].attempts), (1, 0), "{trials:#?}");
}

#[test]
fn a_coordinator_killed_mid_study_continues_on_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = write_spec(tmp.path(), "killcoord", 30, "[0.5, 1.0]", "[0, 1]");
    let db = tmp.path().join("coord.db");
    let port = free_port();
    let server = serve(&db, port, 5);
    submit(&server.url, &spec);
    let _worker = agent(&server.url, &tmp.path().join("home"));
    wait_for("a first completed trial", Duration::from_secs(120), || {
        status(&server.url, "killcoord").0.counts.completed >= 1
    });
    let before = status(&server.url, "killcoord").1;
    drop(server); // SIGKILL mid-study, with a trial running.
    std::thread::sleep(Duration::from_secs(1));

    let server = serve(&db, port, 5);
    wait_for("the study to finish", Duration::from_secs(300), || {
        let c = status(&server.url, "killcoord").0.counts;
        c.completed + c.failed == c.total()
    });
    let (info, after) = status(&server.url, "killcoord");
    assert_eq!(info.counts.completed, 8, "{after:#?}");
    // Results completed before the crash are the same after it.
    for t in before.iter().filter(|t| t.status == TrialStatus::Completed) {
        let same = after.iter().find(|a| a.id == t.id).unwrap();
        assert_eq!(same.metrics, t.metrics);
        assert_eq!(same.attempts, t.attempts);
    }
}

#[test]
fn a_command_pipeline_runs_any_program_and_collects_its_last_json_line() {
    let tmp = tempfile::tempdir().unwrap();
    // The program gets `--x VALUE --seed N` and prints a JSON line of metrics last.
    let spec = r#"
[study]
name = "cmd"
dataset = { synthetic = { seed = 0, n = 20 } }
pipelines = ["command"]
seeds = [0, 1]

[command]
program = ["sh", "-c", "echo starting; echo \"{\\\"accuracy\\\": $2, \\\"seed_seen\\\": $4}\"", "sh"]

[space]
x = { grid = [0.25, 0.5] }
"#;
    let path = tmp.path().join("cmd.toml");
    std::fs::write(&path, spec).unwrap();
    let results = tmp.path().join("results");
    let o = run_sweep(&path, &results, &tmp.path().join("home"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let trials = store_trials(&results.join("decsweep.db"), "cmd");
    assert_eq!(trials.len(), 4);
    for t in &trials {
        assert_eq!(t.status, TrialStatus::Completed, "{t:#?}");
        assert_eq!(t.metrics["accuracy"], t.params["x"].as_f64().unwrap());
        assert_eq!(t.metrics["seed_seen"], t.seed as f64);
    }
}

#[test]
fn a_device_the_worker_cannot_see_is_refused_before_anything_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = write_spec(tmp.path(), "nodevice", 1, "[1.0]", "[0]");
    let results = tmp.path().join("results");
    let o = Command::new(decsweep())
        .args(["run", spec.to_str().unwrap(), "--device", "cuda:99"])
        .arg("--out")
        .arg(&results)
        .env("DECSWEEP_WORKER", worker_bin())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "bad input exits 2:\n{stderr}");
    assert!(stderr.contains("`--device cuda:99`, but decsweep-worker finds"), "{stderr}");
    assert!(!results.join("decsweep.db").exists(), "no study was created");
}

#[test]
fn ctrl_c_on_run_returns_the_running_trial_to_the_queue() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = long_trial_spec(tmp.path(), "interrupt");
    let results = tmp.path().join("results");
    let home = tmp.path().join("home");
    let child = Command::new(decsweep())
        .args(["run", spec.to_str().unwrap(), "--workers", "1", "--threads", "1", "--device", "cpu"])
        .arg("--out")
        .arg(&results)
        .env("DECSWEEP_HOME", &home)
        .env("DECSWEEP_WORKER", worker_bin())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = Guard(child);
    // The worker has started training once its trial directory exists.
    wait_for("the trial to start", Duration::from_secs(60), || home.join("trials/1-1").exists());
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(first.0.id() as libc::pid_t, libc::SIGINT) };
    let status = first.0.wait().unwrap();
    assert_eq!(status.code(), Some(1), "interrupted is not success");
    let trials = store_trials(&results.join("decsweep.db"), "interrupt");
    assert_eq!(trials.len(), 1);
    assert_eq!((trials[0].status, trials[0].attempts), (TrialStatus::Pending, 0), "returned: {trials:#?}");
    assert!(trials[0].error.as_deref().unwrap_or("").contains("returned unfinished"), "{trials:#?}");
}
