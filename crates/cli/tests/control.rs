//! `decsweep cancel`, `resume`, `retry`, `fail` and `add-seeds` end to end: a `decsweep serve`
//! coordinator, two real worker agents running `command` trials (shell scripts that sleep), and
//! the CLI.
//!
//! The worker binary must have been built (`make test` builds every binary first).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use decsweep_api::wire::{TrialInfo, TrialStatus};

mod common;

use common::{agent, decsweep, free_port, metrics_text, status, wait_for, worker_bin, Server};

/// `decsweep serve` on a free loopback port with a short lease TTL (heartbeats every second).
fn serve(db: &Path) -> (Server, String) {
    let server = common::serve(db, free_port(), 3);
    let url = server.url.clone();
    (server, url)
}

fn cli(args: &[&str], url: &str) -> Output {
    Command::new(decsweep()).args(args).args(["--coordinator", url]).output().unwrap()
}

fn cli_ok(args: &[&str], url: &str) -> String {
    let o = cli(args, url);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// A study of `command` trials running `script` with `--x X --seed N` as `$1..$4`.
fn submit(dir: &Path, url: &str, name: &str, seeds: &str, script: &str) {
    let spec = format!(
        r#"
[study]
name = "{name}"
dataset = {{ synthetic = {{ seed = 0, n = 20 }} }}
pipelines = ["command"]
seeds = {seeds}
retries = 0

[command]
program = ["sh", "-c", '''{script}''', "sh"]

[space]
x = {{ grid = [1, 2] }}
"#
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, spec).unwrap();
    cli_ok(&["submit", path.to_str().unwrap()], url);
}

/// The pids a script appended to `file`, one a line.
fn pids(file: &Path) -> Vec<i32> {
    std::fs::read_to_string(file).unwrap_or_default().lines().map(|l| l.trim().parse().unwrap()).collect()
}

/// Whether process `pid` has ended (gone, or a zombie nobody has reaped yet).
fn ended(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// Samples of `/metrics` whose name (with labels) starts with `prefix`, summed.
fn metric(url: &str, prefix: &str) -> f64 {
    let text = metrics_text(url);
    text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

fn read_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(str::to_string).collect();
    // The columns read here hold no commas or quotes.
    lines.map(|l| header.iter().cloned().zip(l.split(',').map(str::to_string)).collect()).collect()
}

#[test]
fn cancel_stops_running_command_trials_and_leaves_the_workers_idle() {
    let tmp = tempfile::tempdir().unwrap();
    let pid_file = tmp.path().join("pids");
    // x = 1 finishes at once; x = 2 sleeps (in a child of the shell, which must be stopped too).
    let script = format!(
        r#"if [ "$2" = 2 ]; then sleep 600 & echo $! >> {}; wait; fi; echo "{{\"accuracy\": 0.$4}}""#,
        pid_file.display()
    );
    let (_server, url) = serve(&tmp.path().join("c.db"));
    submit(tmp.path(), &url, "cancelme", "[0, 1, 2]", &script);
    let mut workers = [agent(&url, &tmp.path().join("h1")), agent(&url, &tmp.path().join("h2"))];
    wait_for("three quick trials done and two long ones running", Duration::from_secs(120), || {
        let c = status(&url, "cancelme").0.counts;
        (c.completed, c.running, c.pending) == (3, 2, 1) && pids(&pid_file).len() == 2
    });
    let leases_before = metric(&url, "decsweep_leases_granted_total");
    let idle_polls =
        |url: &str| metric(url, "decsweep_http_requests_total{method=\"POST\",route=\"/v1/lease\",status=\"204\"}");
    let polls_before = idle_polls(&url);

    let out = cli_ok(&["cancel", "cancelme"], &url);
    assert!(out.contains("1 pending trial(s) cancelled, 2 running trial(s) cancelled"), "{out}");

    // The workers stop their programs (and the programs' children) within a few heartbeats.
    for pid in pids(&pid_file) {
        wait_for(&format!("the long trial's sleep {pid} to be stopped"), Duration::from_secs(30), || ended(pid));
    }
    let (info, trials) = status(&url, "cancelme");
    assert_eq!((info.counts.completed, info.counts.cancelled, info.counts.total()), (3, 3, 6), "{trials:#?}");
    assert!(trials.iter().all(|t| matches!(t.status, TrialStatus::Completed | TrialStatus::Cancelled)));
    // Idle: alive, polling for work, leasing nothing.
    wait_for("both workers to poll for work again", Duration::from_secs(30), || idle_polls(&url) >= polls_before + 2.0);
    for w in &mut workers {
        assert!(w.0.try_wait().unwrap().is_none(), "the worker process is still running");
    }
    assert_eq!(metric(&url, "decsweep_leases_granted_total"), leases_before, "nothing leased after the cancel");
    assert_eq!(status(&url, "cancelme").0.counts.running, 0);
    let text = cli_ok(&["status", "cancelme"], &url);
    assert!(text.contains("3 cancelled"), "{text}");

    // The report lists the cancelled trials and summarises only the completed ones.
    let out_dir = tmp.path().join("report");
    let o = Command::new(decsweep())
        .args(["report", "cancelme", "--coordinator", &url, "--out", out_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = read_csv(&out_dir.join("trials.csv"));
    assert_eq!(rows.len(), 6);
    for t in &trials {
        let row = rows.iter().find(|r| r["id"] == t.id.to_string()).expect("a row per trial");
        assert_eq!(row["status"], t.status.name());
    }
    assert_eq!(rows.iter().filter(|r| r["status"] == "cancelled").count(), 3);
    let summary = read_csv(&out_dir.join("summary.csv"));
    let long = summary.iter().find(|g| g["x"] == "2").expect("the x = 2 configuration");
    assert_eq!((long["n_cancelled"].as_str(), long["accuracy_n"].as_str()), ("3", "0"), "{long:?}");
    let quick = summary.iter().find(|g| g["x"] == "1").unwrap();
    assert_eq!(quick["accuracy_n"], "3");
}

#[test]
fn fail_retry_and_add_seeds_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let (pid_file, marker) = (tmp.path().join("pids"), tmp.path().join("failed-once"));
    // x = 1, seed 0 fails the first time only; x = 2, seed 0 runs until stopped; every other
    // trial reports accuracy 0.<seed>.
    let script = format!(
        r#"case "$2,$4" in
  1,0) test -f {m} || {{ touch {m}; echo boom >&2; exit 3; }} ;;
  2,0) sleep 600 & echo $! >> {p}; wait ;;
esac
echo "{{\"accuracy\": 0.$4}}""#,
        m = marker.display(),
        p = pid_file.display()
    );
    let (_server, url) = serve(&tmp.path().join("c.db"));
    submit(tmp.path(), &url, "steer", "[0]", &script);
    let _workers = [agent(&url, &tmp.path().join("h1")), agent(&url, &tmp.path().join("h2"))];
    wait_for("one trial failed and one running", Duration::from_secs(120), || {
        let c = status(&url, "steer").0.counts;
        (c.failed, c.running) == (1, 1) && pids(&pid_file).len() == 1
    });
    let trials = status(&url, "steer").1;
    let flaky = trials.iter().find(|t| t.status == TrialStatus::Failed).unwrap().id.to_string();
    let stuck = trials.iter().find(|t| t.status == TrialStatus::Running).unwrap().id.to_string();

    // fail: the running trial is stopped by its worker and keeps the reason.
    let out = cli_ok(&["fail", &stuck, "--reason", "stuck, stopping it"], &url);
    assert!(out.contains("marked failed"), "{out}");
    let sleeper = pids(&pid_file)[0];
    wait_for("the stuck trial's program to be stopped", Duration::from_secs(30), || ended(sleeper));
    let t = status(&url, "steer").1.into_iter().find(|t| t.id.to_string() == stuck).unwrap();
    assert_eq!((t.status, t.error.as_deref()), (TrialStatus::Failed, Some("stuck, stopping it")));
    assert!(cli_ok(&["fail", &stuck], &url).contains("already failed"));

    // retry one trial: it runs again (and passes now), its attempts counting on.
    assert!(cli_ok(&["retry", "steer", "--trial", &flaky], &url).contains("1 failed trial(s) back in the queue"));
    wait_for("the retried trial to complete", Duration::from_secs(60), || {
        status(&url, "steer").0.counts.completed == 1
    });
    let t = status(&url, "steer").1.into_iter().find(|t| t.id.to_string() == flaky).unwrap();
    assert_eq!((t.status, t.attempts), (TrialStatus::Completed, 2));
    let again = cli(&["retry", "steer", "--trial", &flaky], &url);
    assert_eq!(again.status.code(), Some(2), "retrying a completed trial is bad input");
    assert!(String::from_utf8_lossy(&again.stderr).contains("completed"), "{again:?}");

    // add seeds: both configurations × seed 7; seed 0 is already there.
    let out = cli_ok(&["add-seeds", "steer", "0", "7"], &url);
    assert!(out.contains("2 trial(s) added") && out.contains("already has: 0"), "{out}");
    wait_for("the new seed's trials to complete", Duration::from_secs(60), || {
        status(&url, "steer").0.counts.completed == 3
    });
    let sevens: Vec<TrialInfo> = status(&url, "steer").1.into_iter().filter(|t| t.seed == 7).collect();
    assert_eq!(sevens.len(), 2);
    assert!(sevens.iter().all(|t| t.metrics["accuracy"] == 0.7), "{sevens:#?}");

    // Unknown names and ids are bad input (exit 2), named in the message.
    for (args, named) in [
        (&["cancel", "nope"][..], "`nope`"),
        (&["add-seeds", "nope", "1"][..], "`nope`"),
        (&["fail", "9999"][..], "9999"),
        (&["retry", "steer", "--trial", "9999"][..], "9999"),
    ] {
        let o = cli(args, &url);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
    let help = Command::new(decsweep()).args(["cancel", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("Cancel a study") && help.contains("--coordinator"), "{help}");
}

#[test]
fn resume_after_cancel_runs_the_cancelled_trials_to_completion() {
    let tmp = tempfile::tempdir().unwrap();
    let (gate, pid_file) = (tmp.path().join("open"), tmp.path().join("pids"));
    // Every trial waits for the gate, so the cancel finds one running and the rest pending.
    let script = format!(
        r#"echo $$ >> {p}; while [ ! -f {g} ]; do sleep 0.2; done; echo "{{\"accuracy\": 0.$4}}""#,
        p = pid_file.display(),
        g = gate.display()
    );
    let (_server, url) = serve(&tmp.path().join("c.db"));
    submit(tmp.path(), &url, "again", "[0, 1]", &script);
    let _worker = agent(&url, &tmp.path().join("h1"));
    wait_for("one trial running", Duration::from_secs(120), || {
        status(&url, "again").0.counts.running == 1 && pids(&pid_file).len() == 1
    });
    let out = cli_ok(&["cancel", "again"], &url);
    assert!(out.contains("3 pending trial(s) cancelled, 1 running trial(s) cancelled"), "{out}");
    let stopped = pids(&pid_file)[0];
    wait_for("the cancelled trial's program to be stopped", Duration::from_secs(30), || ended(stopped));

    // Submitting the spec again counts the cancelled trials as cancelled, not finished.
    let out = cli_ok(&["submit", tmp.path().join("again.toml").to_str().unwrap()], &url);
    assert!(out.contains("already exists: 4 trials (0 finished, 4 cancelled)"), "{out}");
    assert!(out.contains("`decsweep resume again`"), "{out}");

    // A cancelled study takes no new seeds and no retry; each refusal (exit 2) says to resume.
    let cancelled_id = status(&url, "again").1[0].id.to_string();
    for (args, says) in [
        (&["add-seeds", "again", "7"][..], "study `again` is cancelled, so it takes no new seeds; resume it first"),
        (&["retry", "again"][..], "study `again` is cancelled, so it takes no retries; resume it first"),
        (&["retry", "again", "--trial", &cancelled_id][..], "is cancelled: use `decsweep resume again`"),
    ] {
        let o = cli(args, &url);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    assert_eq!(status(&url, "again").0.counts.total(), 4, "nothing was added");

    std::fs::write(&gate, "").unwrap();
    let out = cli_ok(&["resume", "again"], &url);
    assert!(out.contains("study `again` resumed: 4 cancelled trial(s) back in the queue"), "{out}");
    wait_for("the resumed trials to complete", Duration::from_secs(120), || {
        status(&url, "again").0.counts.completed == 4
    });
    let (info, trials) = status(&url, "again");
    assert_eq!((info.counts.cancelled, info.counts.total()), (0, 4));
    let attempts: Vec<u32> = trials.iter().map(|t| t.attempts).collect();
    assert_eq!(attempts.iter().filter(|a| **a == 2).count(), 1, "the stopped trial ran again: {attempts:?}");
    assert!(trials.iter().all(|t| t.error.is_none()), "{trials:#?}");
    assert!(cli_ok(&["resume", "again"], &url).contains("was not cancelled; nothing changed"));
    assert!(cli_ok(&["add-seeds", "again", "7"], &url).contains("2 trial(s) added"));
}

/// `decsweep run` prints the dashboard's URL first, and logs only warnings unless `-v`.
#[test]
fn run_prints_the_dashboard_url_first_and_is_quiet_unless_verbose() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = r#"
[study]
name = "quiet"
dataset = { synthetic = { seed = 0, n = 20 } }
pipelines = ["command"]
seeds = [0]

[command]
program = ["sh", "-c", "echo \"{\\\"accuracy\\\": $2}\"", "sh"]

[space]
x = { grid = [0.25, 0.5] }
"#;
    let path = tmp.path().join("quiet.toml");
    std::fs::write(&path, spec).unwrap();
    let run = |extra: &[&str], results: &str| {
        let o = Command::new(decsweep())
            .args(["run", path.to_str().unwrap(), "--workers", "1", "--device", "cpu", "--results"])
            .arg(tmp.path().join(results))
            .args(extra)
            .env_remove("RUST_LOG")
            .env("DECSWEEP_HOME", tmp.path().join("home"))
            .env("DECSWEEP_WORKER", worker_bin())
            .output()
            .unwrap();
        let stderr = String::from_utf8(o.stderr).unwrap();
        assert!(o.status.success(), "{stderr}");
        stderr
    };
    let quiet = run(&[], "a");
    let first = quiet.lines().next().unwrap_or_default();
    // The URL carries the run's token once (`/?token=...`), which logs the browser in.
    let port = first
        .strip_prefix("dashboard: http://127.0.0.1:")
        .and_then(|rest| rest.split_once("/?token="))
        .map(|(port, _)| port);
    assert!(port.is_some_and(|p| p.parse::<u16>().is_ok()), "first line: {first:?}\n{quiet}");
    assert!(!quiet.contains(" INFO "), "info lines (schema migration etc.) are not shown by default:\n{quiet}");
    let verbose = run(&["-v"], "b");
    assert!(verbose.lines().next().unwrap_or_default().starts_with("dashboard: "), "{verbose}");
    assert!(verbose.contains(" INFO ") && verbose.contains("migrated database schema"), "{verbose}");
}
