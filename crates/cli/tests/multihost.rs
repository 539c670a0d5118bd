//! Multi-host sweep: a coordinator and two worker "hosts", each in its own Linux network
//! namespace, joined by veth pairs to a bridge on a private 10.x LAN. The coordinator binds its
//! LAN address with a bearer token; a sweep is submitted from another host; one agent per host
//! pulls trials over the LAN until the study is done.
//!
//! Needs root and iproute2 (`ip netns`, veth, bridge). It FAILS, not skips, when they are
//! missing: CI runs it as root. Every namespace and process it creates is removed by a guard,
//! pass or fail. The worker binary must have been built (`cargo build --workspace --bins`).

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use decsweep_api::wire::{StudyInfo, TrialInfo, TrialStatus};

const TOKEN: &str = "multihost-test-token";
const PORT: u16 = 8320;

mod common;

use common::{decsweep, worker_bin};

/// Runs `ip ARGS`, panicking with a message that says what is needed when it cannot.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run `ip {}`: {e}. The multi-host test needs iproute2's `ip` on PATH and root \
             (it creates network namespaces, veth pairs and a bridge); it does not skip",
            args.join(" ")
        )
    });
    assert!(
        out.status.success(),
        "`ip {}` failed ({}): {}. The multi-host test needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) \
         and kernel support for network namespaces, veth and bridges",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// The simulated hosts. Dropping it kills every process started in them (the ones it spawned,
/// then anything else still inside its namespaces, e.g. a killed agent's trial process) and
/// deletes the namespaces, which destroys their veths and the bridge with them.
struct Lab {
    namespaces: Vec<String>,
    children: Vec<(String, Child)>,
    logs: Vec<PathBuf>,
}

impl Lab {
    /// Creates a namespace, registering it for removal first so a half-built lab is cleaned up.
    fn add_namespace(&mut self, name: &str) {
        self.namespaces.push(name.to_string());
        ip(&["netns", "add", name]);
        ip(&["-n", name, "link", "set", "lo", "up"]);
    }

    /// `ip netns exec NS program args...`, stdout and stderr into `log` (shown when a check fails).
    fn spawn(&mut self, label: &str, ns: &str, program: &Path, args: &[&str], log: &Path) -> usize {
        let file = fs::File::create(log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("DECSWEEP_TOKEN")
            .env_remove("DECSWEEP_COORDINATOR")
            .env_remove("DECSWEEP_HOME")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {label} in {ns}: {e}"));
        self.logs.push(log.to_path_buf());
        self.children.push((label.to_string(), child));
        self.children.len() - 1
    }

    fn child(&mut self, index: usize) -> &mut Child {
        &mut self.children[index].1
    }

    /// The tail of every log, for failure messages.
    fn logs(&self) -> String {
        let mut out = String::new();
        for path in &self.logs {
            let text = fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            out.push_str(&format!("\n--- {} (last lines) ---\n{tail}\n", path.display()));
        }
        out
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in &self.namespaces {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    if let Ok(pid) = pid.parse::<i32>() {
                        // SAFETY: plain syscall on a process living in this test's own namespace.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
        }
        // Let the kernel reap what was just killed before the namespaces go.
        std::thread::sleep(Duration::from_millis(100));
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// `decsweep ARGS` run inside namespace `ns`, with the given token (or none).
fn cli_in(ns: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(decsweep()).args(args);
    cmd.env_remove("DECSWEEP_TOKEN").env_remove("DECSWEEP_COORDINATOR").env("RUST_LOG", "warn");
    if let Some(t) = token {
        cmd.args(["--token", t]);
    }
    cmd.output().unwrap()
}

fn status(ns: &str, url: &str, study: &str, lab: &Lab) -> (StudyInfo, Vec<TrialInfo>) {
    #[derive(serde::Deserialize)]
    struct Status {
        studies: Vec<StudyInfo>,
        trials: Vec<TrialInfo>,
    }
    let o = cli_in(ns, Some(TOKEN), &["status", study, "--trials", "--json", "--coordinator", url]);
    assert!(o.status.success(), "status from {ns}: {}{}", String::from_utf8_lossy(&o.stderr), lab.logs());
    let s: Status = serde_json::from_slice(&o.stdout).unwrap();
    (s.studies.into_iter().next().unwrap(), s.trials)
}

fn wait_for(what: &str, timeout: Duration, lab: &Lab, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}{}", lab.logs());
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A raw HTTP/1.1 GET from inside namespace `ns` (a thread of this process joins it), without
/// any credentials. Returns the status code.
fn http_get_from(ns: &str, addr: SocketAddr, path: &str) -> u16 {
    let ns_file = PathBuf::from("/var/run/netns").join(ns);
    let path = path.to_string();
    std::thread::spawn(move || {
        let f = fs::File::open(&ns_file).unwrap_or_else(|e| panic!("{}: {e}", ns_file.display()));
        // SAFETY: setns on an open namespace file; it moves only this short-lived thread.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns into {}: {}", ns_file.display(), std::io::Error::last_os_error());
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        s.read_to_string(&mut response).unwrap();
        let code = response.split_whitespace().nth(1).unwrap_or_default();
        code.parse().unwrap_or_else(|_| panic!("not an HTTP answer: {response:?}"))
    })
    .join()
    .unwrap()
}

#[test]
fn a_sweep_runs_across_hosts_on_separate_networks_with_a_token() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let worker = worker_bin();
    let pid = std::process::id();
    // A private /24 per test run, derived from the pid (the namespaces see nothing else anyway).
    let net = format!("10.{}.{}", (pid >> 8) & 0xff, pid & 0xff);
    let coord_ip = format!("{net}.1");
    let hosts = [("coord", coord_ip.clone()), ("hostA", format!("{net}.2")), ("hostB", format!("{net}.3"))];
    let ns = |host: &str| format!("dsw-{pid}-{host}");

    let mut lab = Lab { namespaces: Vec::new(), children: Vec::new(), logs: Vec::new() };
    // The LAN: a bridge in its own namespace, one veth pair per host.
    let lan = ns("lan");
    lab.add_namespace(&lan);
    ip(&["-n", &lan, "link", "add", "br0", "type", "bridge"]);
    ip(&["-n", &lan, "link", "set", "br0", "up"]);
    for (host, addr) in &hosts {
        let host_ns = ns(host);
        lab.add_namespace(&host_ns);
        let port = format!("p-{host}");
        ip(&["-n", &lan, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &host_ns]);
        ip(&["-n", &lan, "link", "set", &port, "master", "br0"]);
        ip(&["-n", &lan, "link", "set", &port, "up"]);
        ip(&["-n", &host_ns, "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
        ip(&["-n", &host_ns, "link", "set", "eth0", "up"]);
    }
    let (coord, host_a, host_b) = (ns("coord"), ns("hostA"), ns("hostB"));
    let bind = format!("{coord_ip}:{PORT}");
    let url = format!("http://{bind}");
    let db = tmp.path().join("coord").join("decsweep.db");
    fs::create_dir_all(db.parent().unwrap()).unwrap();

    // Binding a non-loopback address without a token is refused as bad input.
    let insecure = lab.spawn(
        "serve without token",
        &coord,
        &decsweep(),
        &["serve", "--db", db.to_str().unwrap(), "--bind", &bind],
        &tmp.path().join("serve-insecure.log"),
    );
    let refused = wait_exit(lab.child(insecure), Duration::from_secs(20));
    let log = fs::read_to_string(tmp.path().join("serve-insecure.log")).unwrap();
    let refused =
        refused.unwrap_or_else(|| panic!("`decsweep serve --bind {bind}` without a token did not exit: {log}"));
    assert_eq!(refused.code(), Some(2), "serving on {bind} without a token exits 2: {log}");
    assert!(log.contains("without a bearer token"), "the refusal says why: {log}");
    assert!(!db.exists(), "a refused serve creates no database");

    // The coordinator, on its LAN address, with a token.
    let server_log = tmp.path().join("serve.log");
    let server = lab.spawn(
        "coordinator",
        &coord,
        &decsweep(),
        &["serve", "--db", db.to_str().unwrap(), "--bind", &bind, "--token", TOKEN, "--lease-ttl", "10"],
        &server_log,
    );
    let listening = Instant::now();
    while !fs::read_to_string(&server_log).unwrap_or_default().contains(&format!("listening on {url}")) {
        if let Some(s) = lab.child(server).try_wait().unwrap() {
            panic!("the coordinator exited ({s}){}", lab.logs());
        }
        assert!(listening.elapsed() < Duration::from_secs(20), "the coordinator did not listen on {url}{}", lab.logs());
        std::thread::sleep(Duration::from_millis(100));
    }

    // From another host, with no credentials: /healthz is public, the API answers 401.
    let addr: SocketAddr = bind.parse().unwrap();
    assert_eq!(http_get_from(&host_b, addr, "/healthz"), 200, "/healthz is reachable across the LAN without a token");
    assert_eq!(http_get_from(&host_b, addr, "/v1/studies"), 401, "the API refuses a request without a token");
    for token in [None, Some("not-the-token")] {
        let o = cli_in(&host_b, token, &["status", "--coordinator", &url]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "`decsweep status` with token {token:?} exits 2: {stderr}");
        assert!(stderr.contains("bearer token"), "and says the token is missing or wrong: {stderr}");
    }

    // One agent per worker host, each with its own work directory (its own disk, in effect).
    let mut agents = Vec::new();
    for (name, host_ns) in [("hostA", &host_a), ("hostB", &host_b)] {
        let work_dir = tmp.path().join(name);
        let log = tmp.path().join(format!("{name}.log"));
        let args = [
            "--coordinator",
            &url,
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
        let index = lab.spawn(name, host_ns, &worker, &args, &log);
        agents.push((name, index, log));
    }
    for (name, _, log) in &agents {
        wait_for(&format!("agent {name} to start"), Duration::from_secs(20), &lab, || {
            fs::read_to_string(log).unwrap_or_default().contains("agent started")
        });
    }

    // A tiny sweep (4 trials), submitted from a worker host rather than the coordinator's.
    let spec = tmp.path().join("multihost.toml");
    fs::write(
        &spec,
        r#"
[study]
name = "multihost"
dataset = { synthetic = { seed = 5, n = 240 } }
pipelines = ["baseline", "dec"]
seeds = [0, 1]
retries = 2

[fixed]
label_fraction = 0.5
d_model = 16
n_heads = 2
n_layers = 1
ff_dim = 32
latent_dim = 8
batch_size = 64
epochs_ae = 2
epochs_dec = 2
epochs_ft = 20
lr_ft = 1e-3
"#,
    )
    .unwrap();
    let o = cli_in(&host_a, Some(TOKEN), &["submit", spec.to_str().unwrap(), "--coordinator", &url]);
    assert!(o.status.success(), "submit from hostA: {}{}", String::from_utf8_lossy(&o.stderr), lab.logs());

    wait_for("the study to finish", Duration::from_secs(150), &lab, || {
        let c = status(&host_b, &url, "multihost", &lab).0.counts;
        c.total() > 0 && c.finished() == c.total()
    });
    let (info, trials) = status(&host_b, &url, "multihost", &lab);
    let logs = lab.logs();
    assert_eq!(info.counts.total(), 4, "2 pipelines × 2 seeds: {trials:#?}");
    assert_eq!(info.counts.completed, 4, "{:?}{logs}", info.counts);
    let ids: BTreeSet<i64> = trials.iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), 4, "each trial listed once: {trials:#?}");
    for t in &trials {
        assert_eq!(t.status, TrialStatus::Completed, "trial {}: {t:#?}{logs}", t.id);
        assert_eq!(t.attempts, 1, "trial {} ran exactly once (never re-leased): {t:#?}{logs}", t.id);
        assert!(t.metrics.contains_key("accuracy"), "trial {} reported its metrics: {t:#?}", t.id);
    }
    let workers: BTreeSet<&str> = trials.iter().filter_map(|t| t.worker.as_deref()).collect();
    assert_eq!(workers, BTreeSet::from(["hostA", "hostB"]), "both hosts took trials: {trials:#?}{logs}");
    // Each host fetched the dataset over the LAN into its own work directory.
    for (name, _, _) in &agents {
        let datasets = tmp.path().join(name).join("datasets");
        let n = fs::read_dir(&datasets).map(|d| d.count()).unwrap_or(0);
        assert!(n >= 1, "{name} downloaded the dataset into {}", datasets.display());
    }

    // SIGTERM (what systemd, Kubernetes and SLURM send) stops an idle agent cleanly.
    for (name, index, _) in &agents {
        let child = lab.child(*index);
        // SAFETY: signalling a child this test spawned (`ip netns exec` execs the worker itself).
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let exited = wait_exit(child, Duration::from_secs(15));
        assert!(exited.is_some_and(|s| s.success()), "agent {name} exits 0 on SIGTERM: {exited:?}{}", lab.logs());
    }
    eprintln!("multi-host sweep finished in {:.1} s", started.elapsed().as_secs_f64());
}
