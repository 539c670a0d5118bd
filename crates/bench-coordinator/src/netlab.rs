//! The `--netem` set-up: two network namespaces, each joined to this one by a veth pair, with
//! `decsweep-netem` delaying every packet on their side of the link; the simulated workers run
//! in them as child processes of this binary (`--swarm`). Everything is named after this
//! process's id and removed when the [`Lab`] is dropped, on success or error.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use anyhow::{bail, Context, Result};

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run `ip`: the --netem bench needs iproute2 and root (it makes network namespaces)")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {} (the --netem bench needs root)",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// One namespace: its name, and the address of this namespace's end of its link.
pub struct Host {
    pub ns: String,
    pub gateway: String,
}

pub struct Lab {
    pub hosts: Vec<Host>,
    netem: Vec<(Child, BufReader<ChildStdout>)>,
}

impl Lab {
    /// `n` namespaces, each with `eth0` at `10.213.<i>.2/24` linked to `10.213.<i>.1` here.
    pub fn new(n: usize) -> Result<Lab> {
        let pid = std::process::id();
        let mut lab = Lab { hosts: Vec::new(), netem: Vec::new() };
        for i in 0..n {
            let ns = format!("dsb-{pid}-{i}");
            let here = format!("dsb{pid}h{i}");
            let gateway = format!("10.213.{i}.1");
            // Registered first, so a half-built namespace is removed too.
            lab.hosts.push(Host { ns: ns.clone(), gateway: gateway.clone() });
            ip(&["netns", "add", &ns])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["link", "add", &here, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
            ip(&["addr", "add", &format!("{gateway}/24"), "dev", &here])?;
            ip(&["link", "set", &here, "up"])?;
            ip(&["-n", &ns, "addr", "add", &format!("10.213.{i}.2/24"), "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        }
        Ok(lab)
    }

    /// Delays every packet in and out of each namespace's `eth0` by `delay`.
    pub fn delay_links(&mut self, netem: &Path, delay: &str) -> Result<()> {
        for host in &self.hosts {
            let mut child = Command::new("ip")
                .args(["netns", "exec", &host.ns])
                .arg(netem)
                .args(["--interface", "eth0", "--delay", delay])
                .stdout(Stdio::piped())
                .spawn()
                .with_context(|| format!("starting {} in {}", netem.display(), host.ns))?;
            let mut out = BufReader::new(child.stdout.take().expect("piped"));
            let mut line = String::new();
            out.read_line(&mut line)?;
            self.netem.push((child, out));
            if !line.contains("impairing eth0") {
                bail!("decsweep-netem did not start in {} (said {line:?}; is Debian's iptables installed?)", host.ns);
            }
        }
        Ok(())
    }

    /// Stops the delays (SIGTERM) and returns each one's last line: its packet counts.
    pub fn stop_delays(&mut self) -> Vec<String> {
        let mut counts = Vec::new();
        for (child, out) in &mut self.netem {
            // SAFETY: signalling our own child; `ip netns exec` execs the program.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(out, &mut text);
            let _ = child.wait();
            counts.push(text.lines().last().unwrap_or("no counts").trim_start_matches("decsweep-netem: ").to_string());
        }
        self.netem.clear();
        counts
    }

    /// `ip netns exec NS program args`, stdout piped.
    pub fn spawn_in(&self, host: &Host, program: &Path, args: &[String]) -> Result<Child> {
        Command::new("ip")
            .args(["netns", "exec", &host.ns])
            .arg(program)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} in {}", program.display(), host.ns))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop_delays();
        for host in &self.hosts {
            // Deleting the namespace destroys its veth, and with it this end of the pair.
            let _ = Command::new("ip").args(["netns", "del", &host.ns]).output();
        }
    }
}

/// A sibling binary of this one (`decsweep-netem`), as cargo builds them into one folder.
pub fn sibling(name: &str) -> Result<PathBuf> {
    let me = std::env::current_exe().context("locating this binary")?;
    let path = me.with_file_name(name);
    if !path.exists() {
        bail!("{} is missing: build every binary (`cargo build --release --workspace --bins`)", path.display());
    }
    Ok(path)
}
