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
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use decsweep_api::wire::{StudyInfo, TrialInfo, TrialStatus};

const TOKEN: &str = "multihost-test-token";
const PORT: u16 = 8320;

mod common;
#[path = "common/netns.rs"]
mod netns;

use common::{decsweep, worker_bin};
use netns::{cli_in, http_from, wait_exit, wait_for, Lab};

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

#[test]
fn a_sweep_runs_across_hosts_on_separate_networks_with_a_token() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let worker = worker_bin();
    let mut lab = Lab::new("mh", 0);
    // The LAN: a bridge in its own namespace, one veth pair per host.
    let addrs = lab.lan(&["coord", "hostA", "hostB"]);
    let coord_ip = addrs[0].clone();
    let (coord, host_a, host_b) = (lab.ns("coord"), lab.ns("hostA"), lab.ns("hostB"));
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
    assert_eq!(
        http_from(&host_b, addr, "GET", "/healthz", None, None).0,
        200,
        "/healthz is reachable across the LAN without a token"
    );
    assert_eq!(
        http_from(&host_b, addr, "GET", "/v1/studies", None, None).0,
        401,
        "the API refuses a request without a token"
    );
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
