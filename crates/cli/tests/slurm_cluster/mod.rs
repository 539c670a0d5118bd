//! A throw-away one-node SLURM cluster for `tests/slurm.rs`: `munged`, `slurmctld` and `slurmd`
//! run as children of the test, in the foreground, with every file they use (munge key and
//! socket, slurm.conf, gres.conf, state, spool, logs, the job-completion log) under the test's
//! temp dir and on free ports, so nothing of the host's own SLURM or munge set-up is read or
//! touched.
//!
//! The node is this host under its short name, with 4 CPUs (even on 2 cores:
//! `SlurmdParameters=config_overrides` takes the configured numbers over the hardware's), 2 GiB
//! of schedulable memory and 4 fake GPUs: gres `gpu` backed by character devices made in the temp
//! dir (the same device as /dev/null), which is all slurmd checks. Processes are tracked by
//! `proctrack/linuxproc` and tasks are not bound (`task/none`), so no cgroup set-up is needed.
//! Accounting without slurmdbd (which would need MariaDB): `jobcomp/filetxt` writes a line per
//! finished job and `sacct --completion` reads it.
//!
//! Everything here panics with the reason and the daemons' logs when a step fails: the SLURM
//! test fails, never skips.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{ensure_debian_packages, find_program, is_root};

/// The programs the test runs, from `slurm-wlm` (slurmctld, slurmd, slurm-client) and `munge`.
const PROGRAMS: &[&str] = &["munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sacct", "sinfo"];
/// Debian's packages that provide them.
const PACKAGES: &[&str] = &["slurm-wlm", "munge"];
/// Fake GPUs on the node.
pub const GPUS: u32 = 4;
/// How long `scancel` lets a job's processes end after SIGTERM before SIGKILL.
const KILL_WAIT_S: u32 = 30;

/// Installs `slurm-wlm` and `munge` when a program is missing; returns how long that took.
pub fn ensure_installed() -> Duration {
    ensure_debian_packages("the SLURM test", PROGRAMS, PACKAGES)
}

/// A port that was free a moment ago (the daemons bind it shortly after; another process taking
/// it in between would show up as a daemon failing to start, with the reason in its log).
fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port()
}

struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

pub struct Cluster {
    pub host: String,
    conf: PathBuf,
    pub jobcomp_log: PathBuf,
    /// Started in this order; a RefCell so that waiting (which checks them) can run client
    /// commands through `&self`.
    daemons: RefCell<Vec<Daemon>>,
    log_dirs: RefCell<Vec<PathBuf>>,
    /// Processes the test owns and stops itself (the coordinator): shutdown leaves them alone.
    spared: RefCell<Vec<i32>>,
    shut_down: bool,
}

impl Cluster {
    /// Writes the configuration under `dir` and starts munged, slurmctld and slurmd; returns once
    /// the node is idle and takes jobs.
    pub fn start(dir: &Path) -> Cluster {
        assert!(is_root(), "the SLURM test runs slurmctld and slurmd as root (SlurmUser=root); it does not skip");
        // Daemons that fork away from their parent (slurmstepd, the job scripts under it) become
        // children of this process rather than of init, so shutdown can find and reap anything
        // left behind.
        // SAFETY: prctl with an integer argument.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        assert_eq!(rc, 0, "prctl(PR_SET_CHILD_SUBREAPER): {}", std::io::Error::last_os_error());

        let host = fs::read_to_string("/proc/sys/kernel/hostname").expect("reading the host name");
        let host = host.trim().split('.').next().unwrap_or_default().to_string();
        assert!(!host.is_empty(), "this host has no name; slurmd needs one for its node");
        fs::create_dir_all(dir).unwrap();
        // munged wants its socket's folder searchable by everyone; tempfile makes folders 0700.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
        let sub = |name: &str, mode: u32| {
            let p = dir.join(name);
            fs::create_dir_all(&p).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            p
        };
        let (munge_dir, state, spool, logs, gpus) =
            (sub("munge", 0o755), sub("state", 0o700), sub("spool", 0o755), sub("log", 0o755), sub("gpu", 0o755));
        let mut cluster = Cluster {
            host: host.clone(),
            conf: dir.join("slurm.conf"),
            jobcomp_log: logs.join("jobcomp.txt"),
            daemons: RefCell::new(Vec::new()),
            log_dirs: RefCell::new(Vec::new()),
            spared: RefCell::new(Vec::new()),
            shut_down: false,
        };

        // munge: a fresh key (read by this munged only), its own socket.
        let key = munge_dir.join("munge.key");
        let mut bytes = vec![0u8; 1024];
        fs::File::open("/dev/urandom").unwrap().read_exact(&mut bytes).unwrap();
        fs::OpenOptions::new().write(true).create_new(true).mode(0o400).open(&key).unwrap().write_all(&bytes).unwrap();
        let socket = munge_dir.join("munge.socket");
        let path_arg = |flag: &str, p: &Path| format!("{flag}={}", p.display());
        let munged_args = [
            "--foreground".to_string(),
            path_arg("--socket", &socket),
            path_arg("--key-file", &key),
            path_arg("--pid-file", &munge_dir.join("munged.pid")),
            path_arg("--seed-file", &munge_dir.join("munged.seed")),
            path_arg("--log-file", &logs.join("munged.log")),
        ];
        cluster.spawn("munged", &munged_args, &logs);
        cluster.wait_until("munged to create its socket", Duration::from_secs(20), || socket.exists());

        // Fake GPUs: character devices (1:3, what /dev/null is) named like NVIDIA's.
        for i in 0..GPUS {
            let dev = std::ffi::CString::new(gpus.join(format!("nvidia{i}")).to_str().unwrap()).unwrap();
            // SAFETY: mknod on a NUL-terminated path inside the test's own folder.
            let rc = unsafe { libc::mknod(dev.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
            assert_eq!(rc, 0, "mknod {dev:?}: {}", std::io::Error::last_os_error());
        }
        let (ctld_port, slurmd_port) = loop {
            let (a, b) = (free_port(), free_port());
            if a != b {
                break (a, b);
            }
        };
        let conf = format!(
            "# A one-node cluster written by decsweep's tests/slurm.rs.\n\
             ClusterName=decsweeptest\n\
             SlurmctldHost={host}(127.0.0.1)\n\
             SlurmctldPort={ctld_port}\n\
             SlurmdPort={slurmd_port}\n\
             SlurmUser=root\n\
             SlurmdUser=root\n\
             AuthType=auth/munge\n\
             AuthInfo=socket={socket}\n\
             CredType=cred/munge\n\
             StateSaveLocation={state}\n\
             SlurmdSpoolDir={spool}\n\
             SlurmctldPidFile={logs}/slurmctld.pid\n\
             SlurmdPidFile={logs}/slurmd.pid\n\
             SlurmctldLogFile={logs}/slurmctld.log\n\
             SlurmdLogFile={logs}/slurmd.log\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             MpiDefault=none\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_Core_Memory\n\
             SlurmdParameters=config_overrides\n\
             ReturnToService=2\n\
             SchedulerType=sched/builtin\n\
             KillWait={KILL_WAIT_S}\n\
             AccountingStorageType=accounting_storage/none\n\
             JobAcctGatherType=jobacct_gather/none\n\
             JobCompType=jobcomp/filetxt\n\
             JobCompLoc={jobcomp}\n\
             GresTypes=gpu\n\
             NodeName={host} NodeAddr=127.0.0.1 CPUs=4 RealMemory=2048 Gres=gpu:{GPUS} State=UNKNOWN\n\
             PartitionName=decsweep Nodes={host} Default=YES MaxTime=INFINITE State=UP\n",
            socket = socket.display(),
            state = state.display(),
            spool = spool.display(),
            logs = logs.display(),
            jobcomp = cluster.jobcomp_log.display(),
        );
        fs::write(&cluster.conf, conf).unwrap();
        // slurmd reads gres.conf from slurm.conf's folder.
        let last = GPUS - 1;
        let gres = format!("AutoDetect=off\nNodeName={host} Name=gpu File={}/nvidia[0-{last}]\n", gpus.display());
        fs::write(dir.join("gres.conf"), gres).unwrap();

        let conf_arg = cluster.conf.display().to_string();
        cluster.spawn("slurmctld", &["-D".into(), "-f".into(), conf_arg.clone()], &logs);
        cluster.spawn("slurmd", &["-D".into(), "-f".into(), conf_arg, "-N".into(), host.clone()], &logs);
        cluster.wait_until("the node to be idle", Duration::from_secs(60), || {
            let state = cluster.run_ok("sinfo", &["-h", "-n", &host, "-o", "%T"]);
            let state = state.trim();
            // A node refused at registration (too few CPUs, gres, memory) stays drained: say why.
            if state.contains("drain") || state.contains("inval") {
                let reason = cluster.run_ok("sinfo", &["-h", "-n", &host, "-o", "%E"]);
                panic!("node {host} is {state}: {}{}", reason.trim(), cluster.logs());
            }
            state == "idle"
        });
        cluster
    }

    /// Starts a daemon in the foreground, its output in `logs/NAME.out`.
    fn spawn(&mut self, name: &'static str, args: &[String], logs: &Path) {
        let program = find_program(name).unwrap_or_else(|| panic!("{name} is not installed"));
        let log = logs.join(format!("{name}.out"));
        let out = fs::File::create(&log).unwrap();
        let child = self
            .command_path(&program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        self.daemons.borrow_mut().push(Daemon { name, child, log });
    }

    fn command_path(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("SLURM_CONF", &self.conf);
        cmd
    }

    /// A SLURM client command (sbatch, squeue, …) talking to this cluster.
    pub fn command(&self, name: &str) -> Command {
        let program = find_program(name).unwrap_or_else(|| panic!("{name} is not installed"));
        self.command_path(&program)
    }

    /// Runs a client command and returns its stdout; panics with its stderr when it fails.
    pub fn run_ok(&self, name: &str, args: &[&str]) -> String {
        let out = self.command(name).args(args).output().unwrap_or_else(|e| panic!("running {name}: {e}"));
        assert!(
            out.status.success(),
            "`{name} {}` failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls `done` until it holds; panics after `timeout`, or as soon as a daemon has exited.
    pub fn wait_until(&self, what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            for d in self.daemons.borrow_mut().iter_mut() {
                if let Some(status) = d.child.try_wait().unwrap() {
                    panic!("{} exited ({status}) while waiting for {what}{}", d.name, self.logs());
                }
            }
            assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}{}", self.logs());
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The array tasks of `job` that SLURM still lists (pending, running or completing):
    /// array index → (the task's own job id, state).
    pub fn queued_tasks(&self, job: &str) -> BTreeMap<u32, (String, String)> {
        let out = self.command("squeue").args(["-h", "-r", "-j", job, "-o", "%K %A %T"]).output().unwrap();
        // Once every task is gone for good, squeue may answer "Invalid job id" instead of nothing.
        if !out.status.success() {
            return BTreeMap::new();
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let task = f.next()?.parse().ok()?;
                Some((task, (f.next()?.to_string(), f.next()?.to_string())))
            })
            .collect()
    }

    /// `sacct --completion` for these job ids: job id → (state, exit code). This reads the
    /// jobcomp/filetxt log, which has a line once a job has finished. (SLURM 22.05's reader
    /// warns on stderr about the array fields it does not know; the ids are each task's own.)
    pub fn sacct_states(&self, job_ids: &[&str]) -> BTreeMap<String, (String, String)> {
        let ids = job_ids.join(",");
        let out = self.run_ok("sacct", &["--completion", "-j", &ids, "-o", "JobIDRaw,State,ExitCode", "-P", "-n"]);
        out.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('|').collect();
                (f.len() == 3).then(|| (f[0].to_string(), (f[1].to_string(), f[2].to_string())))
            })
            .collect()
    }

    /// Keeps shutdown from killing `pid`, a child the test stops itself (and whose handle would
    /// otherwise signal a pid already reaped).
    pub fn spare(&self, pid: u32) {
        self.spared.borrow_mut().push(pid as i32);
    }

    /// Adds the `*.log` files of `dir` (job output, the coordinator's log) to failure messages.
    pub fn show_logs_of(&self, dir: &Path) {
        self.log_dirs.borrow_mut().push(dir.to_path_buf());
    }

    /// The tail of every daemon's log and of the logs in `show_logs_of` folders, for failure
    /// messages.
    pub fn logs(&self) -> String {
        let dir = self.conf.parent().unwrap().join("log");
        let mut paths: Vec<PathBuf> =
            ["munged.out", "slurmctld.log", "slurmd.log", "slurmctld.out", "slurmd.out"].map(|n| dir.join(n)).into();
        for dir in self.log_dirs.borrow().iter() {
            let mut logs: Vec<PathBuf> = fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
            logs.retain(|p| p.extension().is_some_and(|e| e == "log"));
            logs.sort();
            paths.extend(logs);
        }
        let mut out = String::new();
        for path in paths {
            let text = fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(12)..].join("\n");
            out.push_str(&format!("\n--- {} (last lines) ---\n{tail}\n", path.display()));
        }
        out
    }

    /// Cancels every job, stops slurmd, slurmctld and munged with SIGTERM (SIGKILL after 20 s),
    /// then kills whatever is still running below this test process. Returns what went wrong:
    /// daemons that needed SIGKILL, processes left behind. Idempotent.
    pub fn shut_down(&mut self) -> Vec<String> {
        if self.shut_down {
            return Vec::new();
        }
        self.shut_down = true;
        let mut problems = Vec::new();
        // Jobs first, while slurmctld and slurmd are up to end them the normal way.
        if let Ok(out) = self.command("squeue").args(["-h", "-o", "%A"]).output() {
            let jobs: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect();
            if !jobs.is_empty() {
                let _ = self.command("scancel").args(&jobs).output();
                let deadline = Instant::now() + Duration::from_secs(u64::from(KILL_WAIT_S) + 30);
                while Instant::now() < deadline {
                    let left = self.command("squeue").args(["-h", "-o", "%A"]).output();
                    if left.map_or(true, |o| o.stdout.is_empty()) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
        }
        for d in self.daemons.get_mut().iter_mut().rev() {
            // SAFETY: signalling a child this cluster spawned and has not reaped.
            unsafe { libc::kill(d.child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match d.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        problems.push(format!(
                            "{} did not stop on SIGTERM within 20 s (log {})",
                            d.name,
                            d.log.display()
                        ));
                        let _ = d.child.kill();
                        let _ = d.child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        for (pid, what) in descendants(&self.spared.borrow()) {
            problems.push(format!("process {pid} ({what}) was still running after the daemons stopped"));
            // SAFETY: killing a process below this test process, then reaping it if it is ours.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
        problems
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for problem in self.shut_down() {
            eprintln!("slurm cluster clean-up: {problem}");
        }
    }
}

/// Every live process below this one (pid, command line), except `spared` ones and theirs;
/// zombies among this process's children (orphans it adopted as subreaper) are reaped instead.
pub fn descendants(spared: &[i32]) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let mut children: BTreeMap<i32, Vec<(i32, char)>> = BTreeMap::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else { continue };
        // "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let Some(ppid) = fields.next().and_then(|p| p.parse::<i32>().ok()) else { continue };
        children.entry(ppid).or_default().push((pid, state));
    }
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    let mut queue = vec![me];
    while let Some(parent) = queue.pop() {
        for &(pid, state) in children.get(&parent).map(Vec::as_slice).unwrap_or_default() {
            if !seen.insert(pid) || spared.contains(&pid) {
                continue;
            }
            if state == 'Z' {
                if parent == me {
                    // SAFETY: reaping a zombie child of this process.
                    unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
                }
                continue;
            }
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ").trim().to_string();
            found.push((pid, cmdline));
            queue.push(pid);
        }
    }
    found
}
