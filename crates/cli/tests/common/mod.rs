//! Helpers shared by the end-to-end tests that drive the built binaries.

#![allow(dead_code)] // Each test binary uses its own share of the helpers.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use decsweep_api::wire::{StudyInfo, TrialInfo};

/// Where `name` is: on PATH, or in the sbin folders a non-login root shell may lack on PATH.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn apt_get(args: &[&str], packages: &[&str]) -> std::process::Output {
    Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run apt-get ({e}); install {} by hand", packages.join(" ")))
}

/// Installs Debian's `packages` when one of `programs` is missing (`apt-get update` first only
/// when the install fails, e.g. on stale package lists), or fails `test` saying why: tests that
/// need a system program install it, never skip. Returns how long that took, zero when nothing
/// was missing.
pub fn ensure_debian_packages(test: &str, programs: &[&str], packages: &[&str]) -> Duration {
    let missing: Vec<&str> = programs.iter().copied().filter(|p| find_program(p).is_none()).collect();
    if missing.is_empty() {
        return Duration::ZERO;
    }
    assert!(
        is_root(),
        "{test} needs {} (missing: {}) and root to install it with apt-get; it does not skip. Run it \
         as root (CI does), or install it: apt-get install {}",
        packages.join(" and "),
        missing.join(", "),
        packages.join(" ")
    );
    let started = Instant::now();
    // Wait for a concurrent apt/dpkg (another test installing its package) instead of failing.
    let install: Vec<&str> = ["install", "-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=300"]
        .into_iter()
        .chain(packages.iter().copied())
        .collect();
    let mut out = apt_get(&install, packages);
    if !out.status.success() {
        let update = apt_get(&["update", "-q", "-o", "DPkg::Lock::Timeout=300"], packages);
        assert!(
            update.status.success(),
            "`apt-get install {}` failed and so did `apt-get update`: {}",
            packages.join(" "),
            String::from_utf8_lossy(&update.stderr)
        );
        out = apt_get(&install, packages);
    }
    assert!(
        out.status.success(),
        "`apt-get install {}` failed ({}): {}{}",
        packages.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let still: Vec<&str> = programs.iter().copied().filter(|p| find_program(p).is_none()).collect();
    assert!(still.is_empty(), "after installing {}, still missing: {}", packages.join(" "), still.join(", "));
    started.elapsed()
}

pub fn decsweep() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_decsweep"))
}

pub fn worker_bin() -> PathBuf {
    let path = decsweep().with_file_name("decsweep-worker");
    assert!(
        path.exists(),
        "{} is missing: build every binary first (`cargo build --workspace --bins`; make test does)",
        path.display()
    );
    path
}

/// A child process killed when the test ends, pass or fail: a leftover server would hold the
/// test harness's output pipe open and hang `cargo test`.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `decsweep serve` on a given port, its URL read from its first line.
pub struct Server {
    _child: Guard,
    pub url: String,
}

impl Server {
    /// The `decsweep serve` process (to read its pid, or kill it).
    pub fn process(&mut self) -> &mut Child {
        &mut self._child.0
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn serve(db: &Path, port: u16, ttl_s: u32) -> Server {
    serve_with(db, port, ttl_s, &[])
}

/// `decsweep serve` with more options (TLS, a token file); port 0 lets it pick one. The URL is
/// the one it prints, so it says `https://` when it serves TLS.
pub fn serve_with(db: &Path, port: u16, ttl_s: u32, extra: &[&std::ffi::OsStr]) -> Server {
    let bind = format!("127.0.0.1:{port}");
    let mut child = Command::new(decsweep())
        .args(["serve", "--db", db.to_str().unwrap(), "--bind", &bind, "--lease-ttl", &ttl_s.to_string()])
        .args(extra)
        .env("RUST_LOG", "warn")
        .env_remove("DECSWEEP_TOKEN")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Warnings (a token file others can read, plain HTTP) may come before the line we want.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let url = loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("decsweep serve did not start listening: {seen}");
        }
        seen.push_str(&line);
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap_or_default().to_string();
        }
    };
    // Keep reading (and dropping) its stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    Server { _child: Guard(child), url }
}

pub fn agent(url: &str, home: &Path) -> Guard {
    agent_with(url, home, &[], &[], Stdio::null())
}

/// An agent with more options and environment variables (`RUST_LOG` is `warn` unless `env` sets
/// it), its stderr to `log`.
pub fn agent_with(url: &str, home: &Path, extra: &[&str], env: &[(&str, &str)], log: impl Into<Stdio>) -> Guard {
    let child = Command::new(worker_bin())
        .args(["--coordinator", url, "--threads", "1", "--device", "cpu"])
        .args(extra)
        .env("DECSWEEP_HOME", home)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Guard(child)
}

pub fn cli_json<T: serde::de::DeserializeOwned>(args: &[&str]) -> T {
    let o = Command::new(decsweep()).args(args).output().unwrap();
    assert!(o.status.success(), "{:?}: {}", args, String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

pub fn status(url: &str, study: &str) -> (StudyInfo, Vec<TrialInfo>) {
    #[derive(serde::Deserialize)]
    struct Status {
        studies: Vec<StudyInfo>,
        trials: Vec<TrialInfo>,
    }
    let s: Status = cli_json(&["status", study, "--trials", "--json", "--coordinator", url]);
    (s.studies.into_iter().next().unwrap(), s.trials)
}

pub fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn submit(url: &str, spec: &Path) {
    let o = Command::new(decsweep()).args(["submit", spec.to_str().unwrap(), "--coordinator", url]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// decsweep's own client of a loopback coordinator started without a token: `serve` made one
/// and wrote it to this user's runtime file, where the client finds it.
pub fn client(url: &str) -> decsweep_connect::Client {
    assert!(decsweep_connect::runtime::token_for_url(url).is_some(), "no runtime token file for {url}");
    decsweep_connect::Client::connect(url, &decsweep_connect::ClientArgs::default()).unwrap()
}

/// `GET /metrics` of a loopback coordinator started without a token.
pub fn metrics_text(url: &str) -> String {
    client(url).metrics().unwrap_or_else(|e| panic!("GET {url}/metrics: {e}"))
}
