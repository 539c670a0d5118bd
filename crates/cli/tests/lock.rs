//! One coordinator per database, with real processes: a second `decsweep serve` or `decsweep run`
//! of a database another `serve` holds is refused (exit 2) naming the holder; `report --db`
//! still reads it; a SIGKILLed holder's lock is taken over, by exactly one of two starters.
//!
//! Needs only the `decsweep` binary (no worker: the trials here never run).

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{decsweep, serve_with, status, submit};

/// A study of two `command` trials that no worker ever runs.
fn write_spec(dir: &Path) -> std::path::PathBuf {
    let spec = r#"
[study]
name = "lockme"
dataset = { synthetic = { seed = 0, n = 20 } }
pipelines = ["command"]
seeds = [0]

[command]
program = ["sh", "-c", "echo '{\"accuracy\": 0.5}'"]

[space]
x = { grid = [1, 2] }
"#;
    let path = dir.join("lockme.toml");
    std::fs::write(&path, spec).unwrap();
    path
}

/// `decsweep serve` of `db` on a free loopback port, not waited for.
fn spawn_serve(db: &Path) -> Child {
    Command::new(decsweep())
        .args(["serve", "--db", db.to_str().unwrap(), "--bind", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .env_remove("DECSWEEP_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The child's output once it exits, or `None` if it still runs after `limit` (then it is
/// killed: a coordinator that was not refused serves until stopped).
fn exit_within(mut child: Child, limit: Duration) -> Option<Output> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string()
}

/// The `key=` line of the database's lock file.
fn lock_line(db: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(decsweep_coordinator::lock_path(db)).unwrap();
    text.lines().find_map(|l| l.strip_prefix(&format!("{key}="))).map(str::to_string)
}

fn assert_names_holder(stderr: &str, pid: u32, url: &str) {
    for part in [format!("pid {pid}"), format!("host {}", host_name()), url.to_string(), "decsweep serve".into()] {
        assert!(stderr.contains(&part), "the refusal names {part:?}: {stderr}");
    }
}

#[test]
fn a_second_coordinator_is_refused_naming_the_first_and_readers_still_read() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("c.db");
    let mut first = serve_with(&db, 0, 5, &[]);
    let pid = first.process().id();
    submit(&first.url, &write_spec(tmp.path()));

    // A second `serve` of the same file, on another port.
    let second = exit_within(spawn_serve(&db), Duration::from_secs(30)).expect("the second serve was not refused");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert_names_holder(&stderr, pid, &first.url);
    assert!(stderr.contains("c.db.lock"), "the lock file is named: {stderr}");

    // `decsweep run` of the same file: refused before any worker starts (none exists here).
    let run = Command::new(decsweep())
        .args(["run", tmp.path().join("lockme.toml").to_str().unwrap(), "--workers", "1", "--device", "cpu"])
        .args(["--db", db.to_str().unwrap(), "--out", tmp.path().join("run-out").to_str().unwrap()])
        .env("DECSWEEP_HOME", tmp.path().join("home"))
        .env("DECSWEEP_WORKER", "/bin/true")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run = exit_within(run, Duration::from_secs(30)).expect("the run was not refused");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert_names_holder(&stderr, pid, &first.url);

    // Readers take no lock: `report --db` reads the held database, and changes nothing.
    let out = tmp.path().join("report");
    let report = Command::new(decsweep())
        .args(["report", "lockme", "--db", db.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    let csv = std::fs::read_to_string(out.join("trials.csv")).unwrap();
    assert_eq!(csv.lines().filter(|l| l.contains(",pending,")).count(), 2, "{csv}");
    assert_eq!(lock_line(&db, "pid"), Some(pid.to_string()), "the reader left the holder's lock alone");

    // The first coordinator never noticed.
    let (info, _) = status(&first.url, "lockme");
    assert_eq!((info.counts.pending, info.counts.total()), (2, 2));
    assert!(first.process().try_wait().unwrap().is_none(), "the first coordinator still runs");
}

#[test]
fn a_killed_coordinators_lock_goes_to_exactly_one_successor() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("c.db");
    let mut first = serve_with(&db, 0, 5, &[]);
    submit(&first.url, &write_spec(tmp.path()));
    let dead = first.process().id();
    // SIGKILL: no clean-up runs; the file still names it, but the kernel dropped its lock.
    first.process().kill().unwrap();
    first.process().wait().unwrap();
    assert_eq!(lock_line(&db, "pid"), Some(dead.to_string()));

    // Two successors start at once: one takes over, the other is refused naming the winner.
    let (a, b) = (spawn_serve(&db), spawn_serve(&db));
    let (a_pid, b_pid) = (a.id(), b.id());
    let (a, b) = (exit_within(a, Duration::from_secs(10)), exit_within(b, Duration::from_secs(10)));
    let (refused, winner) = match (&a, &b) {
        (Some(out), None) => (out, b_pid),
        (None, Some(out)) => (out, a_pid),
        _ => panic!("exactly one successor must run: {a:?} {b:?}"),
    };
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("pid {winner}")), "the refusal names the winner {winner}: {stderr}");
    // The winner (now killed by `exit_within`) had taken over: the file named it, not the dead.
    assert!(!stderr.contains(&format!("pid {dead} ")), "{stderr}");

    // Killed as well: the next coordinator starts and serves the study the first created.
    let mut next = serve_with(&db, 0, 5, &[]);
    assert_eq!(lock_line(&db, "pid"), Some(next.process().id().to_string()));
    assert_eq!(lock_line(&db, "address").as_deref(), Some(next.url.as_str()));
    assert_eq!(status(&next.url, "lockme").0.counts.pending, 2);
}
