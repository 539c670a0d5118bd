//! Faults, end to end: the networks between hosts (a worker cut off mid-trial for three lease
//! TTLs, the coordinator killed while a worker is cut off, netem delay and loss) and the
//! coordinator's disk (full, then space again; gone read-only after a file-system error, then
//! repaired).
//!
//! Hosts are Linux network namespaces on a bridge (`common/netns.rs`); the disk is a small tmpfs
//! mounted for the test. Needs root and iproute2 (and Debian's iptables for the delay test, installed when missing).
//! Each test FAILS, never skips, when what it needs is missing, saying what. Every namespace,
//! process and mount is removed by a guard, pass or fail. Trials are `sh -c 'sleep …'` command
//! trials: the faults are in the plumbing, not in training. Every wait is on a condition.
//!
//! Each case checks: every trial is in the store and in `trials.csv` exactly once, none failed,
//! and no process crashed (the agents and the coordinator still run and stop cleanly).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use decsweep_api::wire::{StudyInfo, TrialInfo, TrialStatus};

mod common;
#[path = "common/netns.rs"]
mod netns;

use common::{decsweep, ensure_debian_packages, worker_bin};
use netns::{cli_in, http, http_from, wait_exit, wait_for, Lab};

const TOKEN: &str = "faults-test-token";
const PORT: u16 = 8321;

/// A command-pipeline study of `n` trials, each sleeping `sleep` seconds then printing metrics.
fn spec(name: &str, n: usize, sleep: &str) -> String {
    let xs: Vec<String> = (1..=n).map(|i| format!("{}.5", i)).collect();
    format!(
        r#"
[study]
name = "{name}"
dataset = {{ synthetic = {{ seed = 0, n = 20 }} }}
pipelines = ["command"]
seeds = [0]
# Expired leases count attempts; faults must not use them up.
retries = 6

[command]
program = ["sh", "-c", "sleep {sleep}; echo \"{{\\\"accuracy\\\": $2}}\"", "sh"]

[space]
x = {{ grid = [{}] }}
"#,
        xs.join(", ")
    )
}

/// Log text without terminal colour codes.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The number after `key=` in a log line.
fn field(line: &str, key: &str) -> Option<i64> {
    let rest = line.split(&format!(" {key}=")).nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

fn log_lines(path: &Path) -> Vec<String> {
    plain(&fs::read_to_string(path).unwrap_or_default()).lines().map(str::to_string).collect()
}

struct Agent {
    name: String,
    index: usize,
    log: PathBuf,
}

/// A coordinator host (`coord`) and worker hosts on one LAN, the coordinator on its LAN address
/// with a token and a short lease TTL.
struct Cluster {
    lab: Lab,
    tmp: tempfile::TempDir,
    ttl: Duration,
    url: String,
    addr: SocketAddr,
    db: PathBuf,
    server: usize,
    agents: Vec<Agent>,
}

impl Cluster {
    fn new(tag: &str, index: u8, workers: &[&str], ttl_s: u64) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let mut lab = Lab::new(tag, index);
        let mut hosts = vec!["coord"];
        hosts.extend_from_slice(workers);
        let addrs = lab.lan(&hosts);
        let bind = format!("{}:{PORT}", addrs[0]);
        let db = tmp.path().join("coord").join("decsweep.db");
        fs::create_dir_all(db.parent().unwrap()).unwrap();
        let mut cluster = Cluster {
            lab,
            ttl: Duration::from_secs(ttl_s),
            url: format!("http://{bind}"),
            addr: bind.parse().unwrap(),
            db,
            server: 0,
            agents: Vec::new(),
            tmp,
        };
        cluster.start_coordinator();
        for w in workers {
            cluster.start_agent(w);
        }
        cluster
    }

    fn start_coordinator(&mut self) {
        let log = self.tmp.path().join("serve.log");
        let before = log_lines(&log).len();
        let ns = self.lab.ns("coord");
        let ttl = self.ttl.as_secs().to_string();
        let bind = self.addr.to_string();
        let args = ["serve", "--db", self.db.to_str().unwrap(), "--bind", &bind, "--token", TOKEN, "--lease-ttl", &ttl];
        self.server = self.lab.spawn("coordinator", &ns, &decsweep(), &args, &log);
        let server = self.server;
        let url = self.url.clone();
        let start = Instant::now();
        let listening =
            |log: &Path| log_lines(log).iter().skip(before).any(|l| l.contains(&format!("listening on {url}")));
        while !listening(&log) {
            if let Some(s) = self.lab.child(server).try_wait().unwrap() {
                panic!("the coordinator exited ({s}){}", self.lab.logs());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the coordinator did not listen on {url}{}",
                self.lab.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn start_agent(&mut self, name: &str) {
        let work_dir = self.tmp.path().join(name);
        let log = self.tmp.path().join(format!("{name}.log"));
        let ns = self.lab.ns(name);
        let args = [
            "--coordinator",
            &self.url,
            "--token",
            TOKEN,
            "--name",
            name,
            "--slots",
            "1",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--work-dir",
            work_dir.to_str().unwrap(),
        ];
        let index = self.lab.spawn(name, &ns, &worker_bin(), &args, &log);
        wait_for(&format!("agent {name} to start"), Duration::from_secs(30), &self.lab, || {
            log_lines(&log).iter().any(|l| l.contains("agent started"))
        });
        self.agents.push(Agent { name: name.to_string(), index, log });
    }

    fn agent(&self, name: &str) -> &Agent {
        self.agents.iter().find(|a| a.name == name).unwrap()
    }

    fn submit(&self, name: &str, n: usize, sleep: &str) {
        let path = self.tmp.path().join(format!("{name}.toml"));
        fs::write(&path, spec(name, n, sleep)).unwrap();
        let o =
            cli_in(&self.lab.ns("coord"), Some(TOKEN), &["submit", path.to_str().unwrap(), "--coordinator", &self.url]);
        assert!(o.status.success(), "submit: {}{}", String::from_utf8_lossy(&o.stderr), self.lab.logs());
    }

    fn status(&self, study: &str) -> (StudyInfo, Vec<TrialInfo>) {
        #[derive(serde::Deserialize)]
        struct Status {
            studies: Vec<StudyInfo>,
            trials: Vec<TrialInfo>,
        }
        let args = ["status", study, "--trials", "--json", "--coordinator", &self.url];
        let o = cli_in(&self.lab.ns("coord"), Some(TOKEN), &args);
        assert!(o.status.success(), "status: {}{}", String::from_utf8_lossy(&o.stderr), self.lab.logs());
        let s: Status = serde_json::from_slice(&o.stdout).unwrap();
        (s.studies.into_iter().next().unwrap(), s.trials)
    }

    fn wait_finished(&self, study: &str, timeout: Duration) {
        wait_for(&format!("study {study} to finish"), timeout, &self.lab, || {
            let c = self.status(study).0.counts;
            c.total() > 0 && c.finished() == c.total()
        });
    }

    /// Every trial once in the store and in `trials.csv`, all completed, nothing crashed; then
    /// stops every process with SIGTERM and checks each exits 0.
    fn check_and_stop(&mut self, study: &str, n: usize) -> Vec<TrialInfo> {
        let (info, trials) = self.status(study);
        let logs = self.lab.logs();
        assert_eq!(info.counts.total(), n as u64, "{:?}{logs}", info.counts);
        assert_eq!(info.counts.completed, n as u64, "every trial completed, none failed: {:?}{logs}", info.counts);
        let ids: BTreeSet<i64> = trials.iter().map(|t| t.id).collect();
        assert_eq!(ids.len(), n, "each trial in the store once: {trials:#?}");
        assert!(trials.iter().all(|t| t.status == TrialStatus::Completed), "{trials:#?}{logs}");

        let out = self.tmp.path().join("report");
        let args = ["report", study, "--coordinator", &self.url, "--out", out.to_str().unwrap()];
        let o = cli_in(&self.lab.ns("coord"), Some(TOKEN), &args);
        assert!(o.status.success(), "report: {}{logs}", String::from_utf8_lossy(&o.stderr));
        let csv = fs::read_to_string(out.join("trials.csv")).unwrap();
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let (id_col, status_col) =
            (header.iter().position(|h| *h == "id").unwrap(), header.iter().position(|h| *h == "status").unwrap());
        let mut seen = BTreeMap::new();
        for line in lines {
            let cells: Vec<&str> = line.split(',').collect();
            let id: i64 = cells[id_col].parse().unwrap();
            assert_eq!(cells[status_col], "completed", "trials.csv: {line}");
            *seen.entry(id).or_insert(0) += 1;
        }
        assert_eq!(seen.keys().copied().collect::<BTreeSet<_>>(), ids, "trials.csv lists the store's trials:\n{csv}");
        assert!(seen.values().all(|&k| k == 1), "each trial once in trials.csv:\n{csv}");

        // Nothing crashed: every agent and the coordinator still run, and stop cleanly.
        let mut labels: Vec<(String, usize)> = self.agents.iter().map(|a| (a.name.clone(), a.index)).collect();
        labels.push(("coordinator".into(), self.server));
        for (label, index) in labels {
            let child = self.lab.child(index);
            assert!(child.try_wait().unwrap().is_none(), "{label} is still running{logs}");
            // SAFETY: signalling a child this test spawned (`ip netns exec` execs the program).
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let exited = wait_exit(child, Duration::from_secs(30));
            assert!(exited.is_some_and(|s| s.success()), "{label} exits 0 on SIGTERM: {exited:?}{}", self.lab.logs());
        }
        for a in &self.agents {
            let text = log_lines(&a.log).join("\n");
            assert!(!text.contains("panicked"), "agent {} panicked:\n{text}", a.name);
        }
        trials
    }

    /// `(lease_id, trial_id, worker, outcome)` of every lease ever granted, from the database.
    fn leases(&self) -> Vec<(String, i64, String, Option<String>)> {
        let conn = rusqlite::Connection::open_with_flags(&self.db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let mut stmt =
            conn.prepare("SELECT lease_id, trial_id, worker, outcome FROM leases ORDER BY granted_ms").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).unwrap().map(Result::unwrap).collect()
    }
}

/// The first trial `agent` leased after line `from` of its log.
fn leased_trial(lines: &[String], from: usize) -> Option<i64> {
    lines[from.min(lines.len())..].iter().filter(|l| l.contains(" leased")).find_map(|l| field(l, "trial"))
}

#[test]
fn a_worker_cut_off_mid_trial_loses_it_to_another_and_carries_on_after_healing() {
    let mut c = Cluster::new("part", 1, &["hostA", "hostB"], 2);
    let n = 10;
    c.submit("partition", n, "2");
    let a_log = c.agent("hostA").log.clone();
    wait_for("hostA to lease a trial", Duration::from_secs(60), &c.lab, || {
        leased_trial(&log_lines(&a_log), 0).is_some()
    });
    let trial = leased_trial(&log_lines(&a_log), 0).unwrap();

    // Cut hostA off mid-trial for three TTLs at least, and until its trial went to hostB.
    c.lab.set_link("hostA", false);
    let cut = Instant::now();
    wait_for("hostA's trial to be leased again by hostB", Duration::from_secs(60), &c.lab, || {
        c.leases().iter().any(|(_, t, w, _)| *t == trial && w == "hostB")
    });
    wait_for("three lease TTLs", Duration::from_secs(60), &c.lab, || cut.elapsed() >= 3 * c.ttl);
    c.lab.set_link("hostA", true);

    c.wait_finished("partition", Duration::from_secs(120));
    // hostA heard 409 for its late result, then went on to complete other trials.
    wait_for("hostA to report its late result", Duration::from_secs(60), &c.lab, || {
        log_lines(&a_log).iter().any(|l| l.contains("late outcome refused") && field(l, "trial") == Some(trial))
    });
    let lines = log_lines(&a_log);
    let refused = lines.iter().position(|l| l.contains("late outcome refused")).unwrap();
    assert!(lines[refused].contains("409"), "the refusal was a 409: {}", lines[refused]);
    let later: Vec<i64> =
        lines[refused..].iter().filter(|l| l.contains("outcome recorded")).filter_map(|l| field(l, "trial")).collect();

    let leases = c.leases();
    let trials = c.check_and_stop("partition", n);
    let by_id: BTreeMap<i64, &TrialInfo> = trials.iter().map(|t| (t.id, t)).collect();
    let t = by_id[&trial];
    assert_eq!(t.worker.as_deref(), Some("hostB"), "the cut-off trial was completed by hostB: {t:#?}");
    let of_trial: Vec<_> = leases.iter().filter(|l| l.1 == trial).collect();
    assert!(
        of_trial.iter().any(|l| l.2 == "hostA" && l.3.as_deref() == Some("expired")),
        "hostA's lease of trial {trial} expired and stayed so (its late result was not counted): {of_trial:?}"
    );
    assert_eq!(
        of_trial.iter().filter(|l| l.3.as_deref() == Some("completed")).count(),
        1,
        "trial {trial} completed by one lease: {of_trial:?}"
    );
    assert!(!later.is_empty(), "hostA completed trials after healing:\n{}", lines.join("\n"));
    for id in later {
        assert_eq!(by_id[&id].worker.as_deref(), Some("hostA"), "trial {id} after healing: {:#?}", by_id[&id]);
    }
}

#[test]
fn the_coordinator_killed_while_a_worker_is_cut_off_restarts_and_everything_finishes() {
    let mut c = Cluster::new("restart", 2, &["hostA", "hostB"], 2);
    let n = 8;
    c.submit("restart", n, "2");
    let a_log = c.agent("hostA").log.clone();
    wait_for("hostA to lease a trial", Duration::from_secs(60), &c.lab, || {
        leased_trial(&log_lines(&a_log), 0).is_some()
    });

    c.lab.set_link("hostA", false);
    let cut = Instant::now();
    let server = c.server;
    c.lab.child(server).kill().unwrap();
    let killed = wait_exit(c.lab.child(server), Duration::from_secs(10)).expect("the coordinator dies on SIGKILL");
    assert!(!killed.success());
    c.start_coordinator();
    wait_for("three lease TTLs", Duration::from_secs(60), &c.lab, || cut.elapsed() >= 3 * c.ttl);
    c.lab.set_link("hostA", true);

    c.wait_finished("restart", Duration::from_secs(120));
    c.check_and_stop("restart", n);
}

/// 200 ms ± 50 ms each way and 5% loss on every worker's link for the whole sweep, through
/// `decsweep-netem` (the kernel this runs on in CI has no sch_netem). Beside the sweep, each
/// worker host opens 20 fresh connections to `/healthz` one after another: every one takes at
/// least two round trips of at least 300 ms, which shows the delay was in the path, and the
/// links then carry a few hundred packets, so 5% loss drops some of them for certain (none
/// lost in 300 has odds of 2 in 10^7), which the packet counts show.
#[test]
fn a_sweep_finishes_over_links_with_netem_delay_and_loss() {
    let mut c = Cluster::new("netem", 3, &["hostA", "hostB"], 5);
    let mut impairments = Vec::new();
    for host in ["hostA", "hostB"] {
        let log = c.tmp.path().join(format!("netem-{host}.log"));
        let index = c.lab.impair(host, "200ms", "50ms", "5%", &log);
        impairments.push((host, index, log));
    }
    let n = 8;
    c.submit("netem", n, "0.5");
    let probes: Vec<_> = ["hostA", "hostB"]
        .into_iter()
        .map(|host| {
            let (ns, addr) = (c.lab.ns(host), c.addr);
            std::thread::spawn(move || {
                (0..20)
                    .map(|_| {
                        let start = Instant::now();
                        let (code, body) = http_from(&ns, addr, "GET", "/healthz", None, None);
                        assert_eq!(code, 200, "/healthz from {ns}: {body}");
                        start.elapsed()
                    })
                    .min()
                    .unwrap()
            })
        })
        .collect();
    c.wait_finished("netem", Duration::from_secs(300));
    for ((host, index, log), probe) in impairments.into_iter().zip(probes) {
        let fastest = probe.join().expect("the probe requests succeed");
        assert!(
            fastest >= Duration::from_millis(600),
            "{host}: a request took {fastest:?}, under two delayed round trips"
        );
        let (passed, dropped) = c.lab.stop_impairment(index, &log);
        eprintln!("{host}: {passed} packets passed, {dropped} dropped; fastest probe request {fastest:?}");
        assert!(passed > 100 && dropped > 0, "{host}'s link was not impaired: {passed} passed, {dropped} dropped");
    }
    c.check_and_stop("netem", n);
}

/// A tmpfs mounted on a temporary directory, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run `mount`: {e}; the disk-fault test needs util-linux's mount"));
        assert!(
            out.status.success(),
            "mounting a tmpfs on {} failed: {}. The disk-fault test needs root (CAP_SYS_ADMIN)",
            dir.path().display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system with `file` until it refuses another byte.
    fn fill(&self, file: &Path) {
        let mut f = fs::File::create(file).unwrap();
        let chunk = vec![0xa5u8; 64 * 1024];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", file.display()),
            }
        }
        // Then the last partial page.
        while f.write(&[0xa5]).is_ok_and(|n| n == 1) {}
        let _ = f.sync_all();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).output();
    }
}

/// `requests{route, status}` from `/metrics`.
fn request_count(metrics: &str, route: &str, status: u16) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("decsweep_http_requests_total{"))
        .filter(|l| l.contains(&format!("route=\"{route}\"")) && l.contains(&format!("status=\"{status}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// An HTTP call to the coordinator: method, path, body → status code and body.
type Request<'a> = &'a dyn Fn(&str, &str, Option<&str>) -> (u16, String);

/// While the disk refuses writes for `problem` (`full`, `read-only`): `/healthz` reports it,
/// a lease (a write) is answered 503 `storage <problem>: …` while reads keep working, and
/// `decsweep status` (run by `status`) works and says it.
fn check_writes_refused(lab: &Lab, problem: &str, request: Request<'_>, status: impl FnOnce() -> std::process::Output) {
    wait_for(&format!("/healthz to report the disk {problem}"), Duration::from_secs(60), lab, || {
        request("GET", "/healthz", None).1.contains(&format!("\"problem\":\"{problem}\""))
    });
    let words = format!("storage {problem}: ");
    let (_, health) = request("GET", "/healthz", None);
    assert!(health.contains("\"status\":\"degraded\"") && health.contains(&words), "{health}");
    let (code, body) = request("POST", "/v1/lease", Some(r#"{"worker":"probe","wait_ms":0}"#));
    assert_eq!(code, 503, "a lease (a write) on a {problem} disk: {body}");
    let error: decsweep_api::wire::ApiError = serde_json::from_str(&body).unwrap();
    assert!(error.error.starts_with(&words), "{body}");
    let o = status();
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "`decsweep status` works on a {problem} disk: {}", String::from_utf8_lossy(&o.stderr));
    assert!(said.contains(&format!("storage {problem}")), "`decsweep status` says the disk is {problem}:\n{said}");
}

/// The end of a disk-fault test: all `n` trials completed, and every completion the API
/// acknowledged (each agent logs `outcome recorded` after a 200) is among them, once, as the
/// worker that reported it; then nothing crashed: every process still runs and exits 0 on
/// SIGTERM.
fn check_acknowledged_and_stop(
    trials: &[TrialInfo],
    n: usize,
    agents: &[(&str, usize, PathBuf)],
    server: usize,
    lab: &mut Lab,
) {
    assert_eq!(trials.len(), n);
    assert!(trials.iter().all(|t| t.status == TrialStatus::Completed), "{trials:#?}");
    let by_id: BTreeMap<i64, &TrialInfo> = trials.iter().map(|t| (t.id, t)).collect();
    let mut acknowledged = 0;
    for (name, _, log) in agents {
        for line in log_lines(log).iter().filter(|l| l.contains("outcome recorded")) {
            let id = field(line, "trial").unwrap();
            assert_eq!(by_id[&id].worker.as_deref(), Some(*name), "acknowledged {line}");
            acknowledged += 1;
        }
    }
    assert_eq!(acknowledged, n, "each trial acknowledged once");
    for (label, index) in agents.iter().map(|(n, i, _)| (*n, *i)).chain([("coordinator", server)]) {
        let child = lab.child(index);
        assert!(child.try_wait().unwrap().is_none(), "{label} is still running{}", lab.logs());
        // SAFETY: signalling a child this test spawned.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let exited = wait_exit(child, Duration::from_secs(30));
        assert!(exited.is_some_and(|s| s.success()), "{label} exits 0: {exited:?}{}", lab.logs());
    }
}

#[test]
fn a_full_disk_refuses_writes_with_503_and_the_study_finishes_once_space_returns() {
    let disk = Tmpfs::mount("16m");
    let tmp = tempfile::tempdir().unwrap();
    let db = disk.path().join("decsweep.db");
    let mut lab = Lab::new("disk", 4);
    // Loopback is enough here: the fault is the disk. The lab only holds the processes.
    let ns = lab.ns("host");
    lab.add_namespace(&ns);
    let server_log = tmp.path().join("serve.log");
    let bind = format!("127.0.0.1:{PORT}");
    let url = format!("http://{bind}");
    let addr: SocketAddr = bind.parse().unwrap();
    let server = lab.spawn(
        "coordinator",
        &ns,
        &decsweep(),
        &["serve", "--db", db.to_str().unwrap(), "--bind", &bind, "--lease-ttl", "3"],
        &server_log,
    );
    wait_for("the coordinator to listen", Duration::from_secs(30), &lab, || {
        log_lines(&server_log).iter().any(|l| l.contains("listening on"))
    });
    let mut agents = Vec::new();
    for name in ["w1", "w2"] {
        let log = tmp.path().join(format!("{name}.log"));
        let work = tmp.path().join(name);
        let args = ["--coordinator", &url, "--name", name, "--device", "cpu", "--work-dir", work.to_str().unwrap()];
        agents.push((name, lab.spawn(name, &ns, &worker_bin(), &args, &log), log));
    }
    let spec_path = tmp.path().join("disk.toml");
    let n = 16;
    fs::write(&spec_path, spec("disk", n, "0.3")).unwrap();
    let o = cli_in(&ns, None, &["submit", spec_path.to_str().unwrap(), "--coordinator", &url]);
    assert!(o.status.success(), "submit: {}{}", String::from_utf8_lossy(&o.stderr), lab.logs());
    // serve was given no token: it wrote one to this user's runtime file, as decsweep's clients read it.
    let token = decsweep_connect::runtime::token_for_url(&url).expect("serve's runtime token file");
    let in_ns = |method: &str, path: &str, body: Option<&str>| http_from(&ns, addr, method, path, Some(&token), body);
    let completed = || -> u64 {
        let (code, body) = in_ns("GET", "/v1/studies/disk", None);
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<StudyInfo>(&body).unwrap().counts.completed
    };
    wait_for("3 completed trials", Duration::from_secs(60), &lab, || completed() >= 3);

    // The disk fills up mid-study.
    let filler = disk.path().join("filler");
    disk.fill(&filler);
    let filled = Instant::now();
    check_writes_refused(&lab, "full", &in_ns, || cli_in(&ns, None, &["status", "--coordinator", &url]));
    let done_while_full = completed();
    // Workers keep trying, slowly: each logs a few refused requests, and their number stays far
    // below a storm (backoff doubles from 0.2 s to 10 s).
    for (name, _, log) in &agents {
        wait_for(&format!("{name} to retry"), Duration::from_secs(60), &lab, || {
            log_lines(log).iter().filter(|l| l.contains("storage full") && l.contains("WARN")).count() >= 3
        });
    }
    let full_for = filled.elapsed().as_secs_f64();
    let metrics = in_ns("GET", "/metrics", None).1;
    let refused: u64 = ["/v1/lease", "/v1/leases/{lease_id}/complete", "/v1/leases/{lease_id}/heartbeat"]
        .iter()
        .map(|r| request_count(&metrics, r, 503))
        .sum();
    // Per slot: ~log2(10 s / 0.2 s) ≈ 6 quick tries, then one per 5–10 s; a heartbeat every TTL/3.
    let bound = 2.0 * (8.0 + full_for / 5.0 + full_for) + 4.0;
    assert!(
        (refused as f64) <= bound,
        "{refused} requests refused in {full_for:.1} s is a retry storm (bound {bound:.0}):\n{metrics}"
    );

    // Space returns: the study finishes by itself.
    fs::remove_file(&filler).unwrap();
    wait_for("the study to finish after space returned", Duration::from_secs(120), &lab, || completed() == n as u64);
    let (_, health) = in_ns("GET", "/healthz", None);
    assert!(health.contains("\"storage\":\"ok\""), "the fault clears once a write succeeds: {health}");
    assert!(done_while_full <= n as u64);

    // Every completion the API acknowledged (each agent logs `outcome recorded` after a 200)
    // is in the store, as the worker that reported it.
    let (code, body) = in_ns("GET", "/v1/studies/disk/trials", None);
    assert_eq!(code, 200);
    let trials: Vec<TrialInfo> = serde_json::from_str(&body).unwrap();
    check_acknowledged_and_stop(&trials, n, &agents, server, &mut lab);
    let csv_dir = tmp.path().join("report");
    let o = Command::new(decsweep())
        .args(["report", "disk", "--db", db.to_str().unwrap(), "--out", csv_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = fs::read_to_string(csv_dir.join("trials.csv")).unwrap();
    assert_eq!(csv.lines().count(), n + 1, "each trial once in trials.csv:\n{csv}");
    drop(lab);
    drop(disk);
}

/// An ext4 file system in an image file, for the coordinator alone: each start mounts it
/// (`-o loop,errors=remount-ro`) in a mount namespace of the coordinator's own, so that no other
/// process holds a copy of the mount (every `ip netns exec` of the tests running beside this one
/// copies the mounts it sees) and it is gone when the coordinator is. That lets a test break the
/// file system the way disks go read-only in real life, when the kernel meets an error, and then
/// repair it as an operator would: stop, fsck, start again.
struct Ext4 {
    image: PathBuf,
    mountpoint: PathBuf,
    _dir: tempfile::TempDir,
}

impl Ext4 {
    fn run(program: &str, args: &[&str]) -> std::process::Output {
        let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        // e2fsck exits 1 when it fixed something, which is what it is run for.
        let fine = out.status.success() || (program == "e2fsck" && out.status.code() == Some(1));
        assert!(
            fine,
            "`{program} {}` failed ({}): {}. The read-only-disk test needs root and loop devices",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        out
    }

    fn new(size_mb: u64) -> Ext4 {
        let programs = ["mkfs.ext4", "e2fsck", "losetup", "unshare"];
        ensure_debian_packages("the read-only-disk test", &programs, &["e2fsprogs", "mount", "util-linux"]);
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        fs::File::create(&image).unwrap().set_len(size_mb << 20).unwrap();
        Ext4::run("mkfs.ext4", &["-q", "-F", image.to_str().unwrap()]);
        let mountpoint = dir.path().join("mnt");
        fs::create_dir(&mountpoint).unwrap();
        Ext4 { image, mountpoint, _dir: dir }
    }

    /// Where the file system is, as the coordinator sees it.
    fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// `program args` behind `unshare`, in a new mount namespace with the file system mounted.
    fn launch(&self, program: &Path, args: &[&str]) -> (PathBuf, Vec<String>) {
        let script = "mount -o loop,errors=remount-ro \"$0\" \"$1\" && shift && exec \"$@\"";
        let mut words: Vec<String> =
            ["--mount", "--propagation", "private", "sh", "-c", script].map(String::from).to_vec();
        words.extend([&self.image, &self.mountpoint, program].map(|p| p.to_str().unwrap().to_string()));
        words.extend(args.iter().map(|a| a.to_string()));
        (PathBuf::from("unshare"), words)
    }

    /// The loop devices the image is attached to (one while mounted, none after).
    fn loop_devices(&self) -> Vec<String> {
        let out = Ext4::run("losetup", &["-j", self.image.to_str().unwrap()]);
        String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split(':').next()).map(str::to_string).collect()
    }

    /// Makes the kernel meet a file-system error (ext4's `trigger_fs_error`): it aborts the
    /// journal and remounts read-only at once, files already open included.
    fn fail(&self) {
        let devices = self.loop_devices();
        assert_eq!(devices.len(), 1, "the image is mounted once: {devices:?}");
        let knob = Path::new("/sys/fs/ext4").join(Path::new(&devices[0]).file_name().unwrap()).join("trigger_fs_error");
        fs::write(&knob, "decsweep fault test").unwrap_or_else(|e| panic!("{}: {e}", knob.display()));
    }

    /// Once the coordinator is stopped (its namespace, and the mount, gone with it): fsck.
    fn repair(&self) {
        let start = Instant::now();
        while !self.loop_devices().is_empty() {
            assert!(start.elapsed() < Duration::from_secs(20), "the image stays attached: {:?}", self.loop_devices());
            std::thread::sleep(Duration::from_millis(50));
        }
        Ext4::run("e2fsck", &["-f", "-y", self.image.to_str().unwrap()]);
    }
}

/// The kernel remounts the coordinator's file system read-only mid-study (an ext4 error with
/// `errors=remount-ro`). Writes get 503 `storage …` in words, reads and `decsweep status` keep
/// working, workers back off; such a file system only comes back through unmount and fsck,
/// which needs the coordinator stopped: it stops cleanly, and once restarted on the repaired
/// disk the study finishes with every acknowledged completion kept.
#[test]
fn a_disk_gone_read_only_refuses_writes_with_503_and_the_study_finishes_after_repair() {
    let disk = Ext4::new(32);
    let tmp = tempfile::tempdir().unwrap();
    let db = disk.path().join("decsweep.db");
    // Every process on this host's loopback; the lab only holds them.
    let mut lab = Lab::new("rodisk", 5);
    let server_log = tmp.path().join("serve.log");
    let bind = format!("127.0.0.1:{}", common::free_port());
    let url = format!("http://{bind}");
    let addr: SocketAddr = bind.parse().unwrap();
    let serve = ["serve", "--db", db.to_str().unwrap(), "--bind", &bind, "--lease-ttl", "3"];
    let (launcher, launch_args) = disk.launch(&decsweep(), &serve);
    let launch_args: Vec<&str> = launch_args.iter().map(String::as_str).collect();
    let mut server = lab.spawn_here("coordinator", &launcher, &launch_args, &server_log);
    let listening = |lab: &Lab, from: usize| {
        wait_for("the coordinator to listen", Duration::from_secs(30), lab, || {
            log_lines(&server_log)[from..].iter().any(|l| l.contains("listening on"))
        })
    };
    listening(&lab, 0);
    let mut agents = Vec::new();
    for name in ["w1", "w2"] {
        let log = tmp.path().join(format!("{name}.log"));
        let work = tmp.path().join(name);
        let args = ["--coordinator", &url, "--name", name, "--device", "cpu", "--work-dir", work.to_str().unwrap()];
        agents.push((name, lab.spawn_here(name, &worker_bin(), &args, &log), log));
    }
    let spec_path = tmp.path().join("rodisk.toml");
    let n = 12;
    fs::write(&spec_path, spec("rodisk", n, "0.3")).unwrap();
    let cli = |args: &[&str]| Command::new(decsweep()).args(args).env_remove("DECSWEEP_TOKEN").output().unwrap();
    let o = cli(&["submit", spec_path.to_str().unwrap(), "--coordinator", &url]);
    assert!(o.status.success(), "submit: {}{}", String::from_utf8_lossy(&o.stderr), lab.logs());
    let token = decsweep_connect::runtime::token_for_url(&url).expect("serve's runtime token file");
    let in_ns = |method: &str, path: &str, body: Option<&str>| http(addr, method, path, Some(&token), body);
    let completed = || -> u64 {
        let (code, body) = in_ns("GET", "/v1/studies/rodisk", None);
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<StudyInfo>(&body).unwrap().counts.completed
    };
    wait_for("3 completed trials", Duration::from_secs(60), &lab, || completed() >= 3);

    disk.fail();
    // SQLite calls it an I/O error; the errno behind it (EROFS) says what it is.
    check_writes_refused(&lab, "read-only", &in_ns, || cli(&["status", "--coordinator", &url]));
    let done_when_failed = completed();
    for (name, _, log) in &agents {
        wait_for(&format!("{name} to retry"), Duration::from_secs(60), &lab, || {
            log_lines(log).iter().filter(|l| l.contains("storage read-only") && l.contains("WARN")).count() >= 2
        });
    }

    // The operator stops the coordinator, repairs the file system and starts it again; the
    // agents, still retrying, finish the study.
    let child = lab.child(server);
    // SAFETY: signalling a child this test spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let stopped = wait_exit(child, Duration::from_secs(30));
    assert!(
        stopped.is_some_and(|s| s.success()),
        "the coordinator stops cleanly on a read-only disk: {stopped:?}{}",
        lab.logs()
    );
    disk.repair();
    let lines_before = log_lines(&server_log).len();
    server = lab.spawn_here("coordinator", &launcher, &launch_args, &server_log);
    listening(&lab, lines_before);
    wait_for("the study to finish after the repair", Duration::from_secs(120), &lab, || completed() == n as u64);
    assert!(done_when_failed <= n as u64);

    // Every completion the API acknowledged is in the store, as the worker that reported it.
    let (code, body) = in_ns("GET", "/v1/studies/rodisk/trials", None);
    assert_eq!(code, 200);
    let trials: Vec<TrialInfo> = serde_json::from_str(&body).unwrap();
    check_acknowledged_and_stop(&trials, n, &agents, server, &mut lab);
    drop(lab);
    drop(disk);
}

/// Completed trials in a study database, read beside its writer (WAL allows it).
fn completed_in(db: &Path) -> i64 {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    rusqlite::Connection::open_with_flags(db, flags)
        .and_then(|c| c.query_row("SELECT COUNT(*) FROM trials WHERE status = 'completed'", [], |r| r.get(0)))
        .unwrap_or(0)
}

#[test]
fn decsweep_run_says_when_its_disk_is_full_and_finishes_once_space_returns() {
    let disk = Tmpfs::mount("16m");
    let tmp = tempfile::tempdir().unwrap();
    let db = disk.path().join("run.db");
    let spec_path = tmp.path().join("run-disk.toml");
    let n = 12;
    fs::write(&spec_path, spec("run-disk", n, "0.4")).unwrap();
    let stderr_path = tmp.path().join("run.stderr");
    let results = tmp.path().join("results");
    let mut run = Command::new(decsweep())
        .args(["run", spec_path.to_str().unwrap(), "--workers", "2", "--threads", "1", "--device", "cpu"])
        .args(["--lease-ttl", "3", "--db", db.to_str().unwrap(), "--results", results.to_str().unwrap()])
        .env("DECSWEEP_HOME", tmp.path().join("home"))
        .env("DECSWEEP_WORKER", worker_bin())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            // SAFETY: signalling a child this test spawned; SIGINT stops its workers too.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
            if wait_exit(self.0, Duration::from_secs(20)).is_none() {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }
    let guard = Kill(&mut run);
    let said = || plain(&fs::read_to_string(&stderr_path).unwrap_or_default());
    let deadline = Instant::now() + Duration::from_secs(90);
    while completed_in(&db) < 2 {
        assert!(Instant::now() < deadline, "two trials did not complete:\n{}", said());
        std::thread::sleep(Duration::from_millis(100));
    }
    let filler = disk.path().join("filler");
    disk.fill(&filler);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !said().contains("refuses writes (storage full: ") {
        assert!(Instant::now() < deadline, "`decsweep run` did not say its disk is full:\n{}", said());
        std::thread::sleep(Duration::from_millis(100));
    }
    fs::remove_file(&filler).unwrap();
    let status = wait_exit(&mut *guard.0, Duration::from_secs(120));
    let text = said();
    assert!(status.is_some_and(|s| s.success()), "`decsweep run` finishes by itself: {status:?}\n{text}");
    drop(guard);
    assert!(text.contains("takes writes again"), "and says the disk recovered:\n{text}");
    let csv = fs::read_to_string(results.join("trials.csv")).unwrap();
    assert_eq!(csv.lines().count(), n + 1, "each trial once in trials.csv:\n{csv}");
    assert!(csv.lines().skip(1).all(|l| l.contains(",completed,")), "{csv}");
    drop(disk);
}
