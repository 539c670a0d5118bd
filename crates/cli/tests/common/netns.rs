//! Simulated hosts for the multi-host and fault tests: Linux network namespaces joined by veth
//! pairs to a bridge, processes started inside them, and the faults a network can have (a link
//! cut; delay, jitter and loss through `decsweep-netem`). Included with `#[path]` by the tests
//! that need it, since it needs root and iproute2.
//!
//! Every name carries the test process's id and a per-lab tag, so parallel tests and other
//! sessions on the machine never collide; a [`Lab`] removes what it made when dropped, pass or
//! fail.

// Each test that includes this uses a part of it.
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `ip ARGS`, panicking with a message that says what is needed when it cannot.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run `ip {}`: {e}. This test needs iproute2's `ip` on PATH and root (it creates \
             network namespaces, veth pairs and a bridge); it does not skip",
            args.join(" ")
        )
    });
    assert!(
        out.status.success(),
        "`ip {}` failed ({}): {}. This test needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and kernel \
         support for network namespaces, veth and bridges",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// The simulated hosts. Dropping it kills every process started in them (the ones it spawned,
/// then anything else still inside its namespaces, e.g. a killed agent's trial process) and
/// deletes the namespaces, which destroys their veths and the bridge with them.
pub struct Lab {
    pub namespaces: Vec<String>,
    pub children: Vec<(String, Child)>,
    pub logs: Vec<PathBuf>,
    /// `10.A.B`: this lab's /24.
    net: String,
    prefix: String,
}

impl Lab {
    /// An empty lab whose names start `dsw-<pid>-<tag>-` and whose LAN is a /24 derived from
    /// the pid and `index` (distinct per lab of one test process).
    pub fn new(tag: &str, index: u8) -> Lab {
        let pid = std::process::id();
        // 10.X.Y.0/24 with X from the pid and Y mixing the pid with the lab index: the
        // namespaces see no other network, so only labs alive together must differ.
        let net = format!("10.{}.{}", (pid >> 8) & 0xff, (pid as u8).wrapping_add(index.wrapping_mul(37)));
        Lab { namespaces: Vec::new(), children: Vec::new(), logs: Vec::new(), net, prefix: format!("dsw-{pid}-{tag}") }
    }

    /// The namespace name of `host`.
    pub fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    /// Creates a namespace, registering it for removal first so a half-built lab is cleaned up.
    pub fn add_namespace(&mut self, name: &str) {
        self.namespaces.push(name.to_string());
        ip(&["netns", "add", name]);
        ip(&["-n", name, "link", "set", "lo", "up"]);
    }

    /// A LAN: a bridge in its own namespace and one host namespace per name, each with `eth0`
    /// at `10.A.B.(i+1)`. Returns each host's address.
    pub fn lan(&mut self, hosts: &[&str]) -> Vec<String> {
        let lan = self.ns("lan");
        self.add_namespace(&lan);
        ip(&["-n", &lan, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &lan, "link", "set", "br0", "up"]);
        let mut addrs = Vec::new();
        for (i, host) in hosts.iter().enumerate() {
            let host_ns = self.ns(host);
            self.add_namespace(&host_ns);
            let addr = format!("{}.{}", self.net, i + 1);
            let port = format!("p-{host}");
            ip(&["-n", &lan, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &host_ns]);
            ip(&["-n", &lan, "link", "set", &port, "master", "br0"]);
            ip(&["-n", &lan, "link", "set", &port, "up"]);
            ip(&["-n", &host_ns, "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
            ip(&["-n", &host_ns, "link", "set", "eth0", "up"]);
            addrs.push(addr);
        }
        addrs
    }

    /// Cuts `host` off the LAN (its `eth0` down: packets to and from it are lost, connections
    /// from it fail at once) or reconnects it.
    pub fn set_link(&self, host: &str, up: bool) {
        ip(&["-n", &self.ns(host), "link", "set", "eth0", if up { "up" } else { "down" }]);
    }

    /// Delays and drops `host`'s packets in both directions, as `tc qdisc ... netem delay D J
    /// loss L` on its `eth0` and on its bridge port would. The kernels this runs on may lack
    /// sch_netem (the CI machine's has none), so `decsweep-netem` does it instead: iptables sends
    /// the packets to an NFQUEUE and it gives each verdict after its drawn delay, or drops it.
    /// Returns the netem process, for [`Lab::stop_impairment`]; it logs to `log`.
    pub fn impair(&mut self, host: &str, delay: &str, jitter: &str, loss: &str, log: &Path) -> usize {
        crate::common::ensure_debian_packages("the network-fault test", &["iptables"], &["iptables"]);
        let netem = crate::common::decsweep().with_file_name("decsweep-netem");
        assert!(netem.exists(), "{} is missing: build every binary first (make test does)", netem.display());
        let ns = self.ns(host);
        let args = ["--interface", "eth0", "--delay", delay, "--jitter", jitter, "--loss", loss];
        let index = self.spawn(&format!("netem on {host}"), &ns, &netem, &args, log);
        let start = Instant::now();
        while !fs::read_to_string(log).unwrap_or_default().contains("impairing eth0") {
            if let Ok(Some(status)) = self.child(index).try_wait() {
                panic!("decsweep-netem in {ns} exited ({status}) before impairing eth0:{}", self.logs());
            }
            assert!(start.elapsed() < Duration::from_secs(30), "decsweep-netem in {ns} did not start{}", self.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
        index
    }

    /// Stops an impairment (SIGTERM: its rules go, held packets pass) and returns how many of
    /// the link's packets it passed and dropped.
    pub fn stop_impairment(&mut self, index: usize, log: &Path) -> (u64, u64) {
        let pid = self.child(index).id() as i32;
        // SAFETY: plain syscall to a child of this process. `ip netns exec` execs the program,
        // so the pid is decsweep-netem's own.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let status = wait_exit(self.child(index), Duration::from_secs(10)).expect("decsweep-netem stops on SIGTERM");
        assert!(status.success(), "decsweep-netem failed ({status}){}", self.logs());
        let text = fs::read_to_string(log).unwrap_or_default();
        let counts = text.lines().find_map(|l| {
            let rest = l.strip_prefix("decsweep-netem: passed ")?;
            let (passed, dropped) = rest.split_once(" packets, dropped ")?;
            Some((passed.parse().ok()?, dropped.trim().parse().ok()?))
        });
        counts.unwrap_or_else(|| panic!("no packet counts in {}:\n{text}", log.display()))
    }

    /// `ip netns exec NS program args...`, stdout and stderr into `log` (shown when a check fails).
    pub fn spawn(&mut self, label: &str, ns: &str, program: &Path, args: &[&str], log: &Path) -> usize {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).arg(program).args(args);
        self.spawn_command(&format!("{label} in {ns}"), cmd, log)
    }

    /// `program args...` in this process's own network namespace, on its loopback, for a test
    /// whose fault is not in the network.
    pub fn spawn_here(&mut self, label: &str, program: &Path, args: &[&str], log: &Path) -> usize {
        let mut cmd = Command::new(program);
        cmd.args(args);
        self.spawn_command(label, cmd, log)
    }

    fn spawn_command(&mut self, label: &str, mut cmd: Command, log: &Path) -> usize {
        let file = fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let child = cmd
            .env("RUST_LOG", "info")
            .env_remove("DECSWEEP_TOKEN")
            .env_remove("DECSWEEP_COORDINATOR")
            .env_remove("DECSWEEP_HOME")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {label}: {e}"));
        if !self.logs.iter().any(|l| l == log) {
            self.logs.push(log.to_path_buf());
        }
        self.children.push((label.to_string(), child));
        self.children.len() - 1
    }

    pub fn child(&mut self, index: usize) -> &mut Child {
        &mut self.children[index].1
    }

    /// The tail of every log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for path in &self.logs {
            let text = fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(25)..].join("\n");
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
pub fn cli_in(ns: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(crate::common::decsweep()).args(args);
    cmd.env_remove("DECSWEEP_TOKEN").env_remove("DECSWEEP_COORDINATOR").env("RUST_LOG", "warn");
    if let Some(t) = token {
        cmd.args(["--token", t]);
    }
    cmd.output().unwrap()
}

/// Waits for `done`, polling; fails with every log after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, lab: &Lab, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}{}", lab.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
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

/// A raw HTTP/1.1 request from inside namespace `ns` (a thread of this process joins it), with
/// an optional bearer token and JSON body. Returns the status code and the body.
pub fn http_from(
    ns: &str,
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let ns_file = PathBuf::from("/var/run/netns").join(ns);
    let (method, path) = (method.to_string(), path.to_string());
    let (token, body) = (token.map(str::to_string), body.map(str::to_string));
    std::thread::spawn(move || {
        let f = fs::File::open(&ns_file).unwrap_or_else(|e| panic!("{}: {e}", ns_file.display()));
        // SAFETY: setns on an open namespace file; it moves only this short-lived thread.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns into {}: {}", ns_file.display(), std::io::Error::last_os_error());
        http(addr, &method, &path, token.as_deref(), body.as_deref())
    })
    .join()
    .unwrap()
}

/// A raw HTTP/1.1 request from this thread's network namespace; see [`http_from`].
pub fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let body = body.unwrap_or("");
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let code = response.split_whitespace().nth(1).unwrap_or_default();
    let code = code.parse().unwrap_or_else(|_| panic!("not an HTTP answer: {response:?}"));
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}
