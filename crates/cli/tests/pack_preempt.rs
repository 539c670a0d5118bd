//! A pack preempted end to end: `decsweep serve`, a real `decsweep-worker --pack 4`, real
//! training. SIGTERM mid-DEC makes the worker save every member's state at the epoch boundary,
//! upload it and give every lease back at once (not by expiry: the lease lives 120 s here), and
//! exit 0; a second worker in another work directory leases the three trials again as a pack,
//! resumes each from its own stored state and completes it with the numbers of a pack that was
//! never interrupted (metrics exactly, losses within the pack-mates bound of
//! `crates/model/tests/packed.rs`).
//!
//! The worker binary must have been built (`make test` builds every binary first).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use decsweep_api::wire::{TrialInfo, TrialStatus};

mod common;

use common::{agent_with, free_port, serve, status, submit, wait_for, Server};

/// Three seeds of one `dec` configuration (one pack key), long enough in DEC for a signal to land
/// mid-stage, saving every member's state at every epoch.
fn spec(dir: &Path, name: &str) -> PathBuf {
    let text = format!(
        r#"
[study]
name = "{name}"
dataset = {{ synthetic = {{ seed = 3, n = 240 }} }}
pipelines = ["dec"]
seeds = [0, 1, 2]
retries = 3

[fixed]
d_model = 16
n_heads = 2
n_layers = 1
ff_dim = 32
latent_dim = 8
batch_size = 64
epochs_ae = 6
epochs_dec = 12
epochs_ft = 8
lr_ft = 1e-3
label_fraction = 0.5
dropout = 0.0

[resources]
checkpoint_every = 0.001
"#
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn packed_worker(server: &Server, home: &Path) -> common::Guard {
    agent_with(&server.url, home, &["--pack", "4"], &[], Stdio::null())
}

fn trials(server: &Server, study: &str) -> Vec<TrialInfo> {
    let (_, mut trials) = status(&server.url, study);
    trials.sort_by_key(|t| t.seed);
    trials
}

fn wait_until_completed(server: &Server, study: &str, within: Duration) -> Vec<TrialInfo> {
    wait_for(&format!("{study}'s trials to end"), within, || {
        trials(server, study).iter().all(|t| t.status.is_terminal())
    });
    let done = trials(server, study);
    assert!(done.iter().all(|t| t.status == TrialStatus::Completed), "{done:#?}");
    done
}

#[test]
fn a_preempted_pack_gives_every_lease_back_and_each_member_resumes_to_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server = serve(&dir.join("pack-preempt.db"), free_port(), 120);

    // The reference: the same three trials as one pack, never interrupted.
    submit(&server.url, &spec(dir, "reference"));
    let reference = {
        let _worker = packed_worker(&server, &dir.join("home-ref"));
        wait_until_completed(&server, "reference", Duration::from_secs(300))
    };
    assert!(reference.iter().all(|t| t.pack.len() == 3 && t.resumes == 0), "{reference:#?}");

    // SIGTERM once every member is into DEC.
    submit(&server.url, &spec(dir, "preempted"));
    let mut first = packed_worker(&server, &dir.join("home-a"));
    wait_for("the pack to reach DEC epoch 2", Duration::from_secs(240), || {
        let client = common::client(&server.url);
        trials(&server, "preempted")
            .iter()
            .all(|t| client.curves(t.id).unwrap().iter().any(|p| p.stage.name() == "dec" && p.epoch >= 2))
    });
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(first.0.id() as libc::pid_t, libc::SIGTERM) };
    let signalled = Instant::now();
    assert!(first.0.wait().unwrap().success(), "a packed worker stopped by SIGTERM exits 0");
    let returned = trials(&server, "preempted");
    assert!(
        returned.iter().all(|t| (t.status, t.attempts) == (TrialStatus::Pending, 0)),
        "every lease is given back, none left to expire, and a preemption is no failed attempt: {returned:#?}"
    );
    assert!(signalled.elapsed() < Duration::from_secs(60), "the worker stopped within a minute of SIGTERM");

    // Another worker, another work directory: the three trials again as a pack, each from its
    // own stored state.
    let resumed = {
        let _worker = packed_worker(&server, &dir.join("home-b"));
        wait_until_completed(&server, "preempted", Duration::from_secs(300))
    };
    for (r, full) in resumed.iter().zip(&reference) {
        assert_eq!((r.attempts, r.resumes), (1, 1), "{r:#?}");
        let from = r.resumed_from.as_deref().unwrap_or_default();
        assert!(from.starts_with("dec:"), "trial {} resumed from its DEC state, not {from:?}", r.id);
        assert_eq!(r.pack.len(), 3, "trial {} trained in a pack again: {:?}", r.id, r.pack);
        for metric in ["accuracy", "f1_weighted", "f1_macro", "dec_head_accuracy"] {
            assert_eq!(r.metrics[metric], full.metrics[metric], "trial {} {metric}: resumed vs uninterrupted", r.id);
        }
        let (rl, fl) = (r.metrics["loss"], full.metrics["loss"]);
        assert!((rl - fl).abs() <= 1e-4 * fl.abs().max(1.0), "trial {} loss: resumed {rl} vs uninterrupted {fl}", r.id);
    }
}
