//! Preemption end to end: `decsweep serve`, real agents, real training. A `dec` trial whose
//! worker is stopped (SIGTERM: saves at the epoch boundary, uploads, returns the trial) or killed
//! (SIGKILL: nothing saved; the lease expires) resumes on another worker, with another work
//! directory, from the checkpoint the coordinator stored, and ends with the same metrics and the
//! same curve as the same trial run without interruption.
//!
//! (`crates/worker/tests/resume.rs` interrupts a trial in every stage at the process level; this
//! test adds the coordinator's half: upload, storage, the next lease's resume point, the curve
//! kept across attempts, and the `resumes` / `resumed_from` columns.)

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use decsweep_api::wire::{TrialCurvePoint, TrialInfo, TrialStatus};

mod common;

use common::{agent, free_port, metrics_text, serve, status, submit, wait_for, Server};

/// One `dec` trial, long enough in every stage that a signal lands mid-trial, saving its state
/// at every epoch (`checkpoint_every` is a floor, and every epoch takes longer).
fn spec(dir: &Path, name: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
[study]
name = "{name}"
dataset = {{ synthetic = {{ seed = 3, n = 240 }} }}
pipelines = ["dec"]
seeds = [4]
retries = 3

[fixed]
d_model = 16
n_heads = 2
n_layers = 1
ff_dim = 32
latent_dim = 8
batch_size = 64
epochs_ae = 12
epochs_dec = 6
epochs_ft = 30
lr_ft = 1e-3
label_fraction = 0.5

[resources]
checkpoint_every = 0.001
"#
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn only_trial(server: &Server, study: &str) -> TrialInfo {
    let (_, mut trials) = status(&server.url, study);
    assert_eq!(trials.len(), 1, "{trials:#?}");
    trials.remove(0)
}

fn curve(server: &Server, trial: i64) -> Vec<TrialCurvePoint> {
    common::client(&server.url).curves(trial).unwrap()
}

/// The final attempt's points, as (stage, epoch, train loss, val loss, val accuracy) bits.
fn final_curve(server: &Server, trial: &TrialInfo) -> Vec<(String, u32, u64, u64, Option<u64>)> {
    curve(server, trial.id)
        .into_iter()
        .filter(|p| p.attempt == trial.attempts)
        .map(|p| {
            (
                p.stage.name().to_string(),
                p.epoch,
                p.train_loss.unwrap_or(f64::NAN).to_bits(),
                p.val_loss.unwrap_or(f64::NAN).to_bits(),
                p.val_accuracy.map(f64::to_bits),
            )
        })
        .collect()
}

/// The metrics that depend on the training alone (not on timing or the stage cache).
fn results(trial: &TrialInfo) -> BTreeMap<String, u64> {
    trial
        .metrics
        .iter()
        .filter(|(k, _)| !(k.starts_with("time_") || *k == "wall_s" || *k == "cache_reuses"))
        .map(|(k, v)| (k.clone(), v.to_bits()))
        .collect()
}

fn checkpoints_stored(server: &Server) -> u64 {
    let text = metrics_text(&server.url);
    text.lines().find_map(|l| l.strip_prefix("decsweep_checkpoints_total ")).map_or(0, |v| v.trim().parse().unwrap())
}

/// Waits until the study's trial has recorded at least `epoch` epochs of `stage`.
fn wait_until_at(server: &Server, study: &str, stage: &str, epoch: u32) {
    wait_for(&format!("{study}'s trial to reach {stage} epoch {epoch}"), Duration::from_secs(240), || {
        let trial = only_trial(server, study);
        curve(server, trial.id).iter().any(|p| p.stage.name() == stage && p.epoch >= epoch)
    });
}

fn wait_until_completed(server: &Server, study: &str) -> TrialInfo {
    wait_for(&format!("{study}'s trial to complete"), Duration::from_secs(300), || {
        only_trial(server, study).status.is_terminal()
    });
    let trial = only_trial(server, study);
    assert_eq!(trial.status, TrialStatus::Completed, "{trial:#?}");
    trial
}

#[test]
fn a_preempted_or_killed_trial_resumes_elsewhere_with_an_uninterrupted_runs_results() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server = serve(&dir.join("preempt.db"), free_port(), 2);

    // The reference: the same trial, never interrupted.
    submit(&server.url, &spec(dir, "reference"));
    let reference = {
        let _worker = agent(&server.url, &dir.join("home-ref"));
        wait_until_completed(&server, "reference")
    };
    assert_eq!((reference.resumes, reference.resumed_from.as_deref()), (0, None));

    // SIGTERM during DEC: the worker saves at the end of the epoch, uploads, returns the trial.
    submit(&server.url, &spec(dir, "sigterm"));
    let mut first = agent(&server.url, &dir.join("home-a"));
    wait_until_at(&server, "sigterm", "dec", 2);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(first.0.id() as libc::pid_t, libc::SIGTERM) };
    assert!(first.0.wait().unwrap().success(), "a worker stopped by SIGTERM exits 0");
    let returned = only_trial(&server, "sigterm");
    assert_eq!((returned.status, returned.attempts), (TrialStatus::Pending, 0), "{returned:#?}");
    let _second = agent(&server.url, &dir.join("home-b"));
    let resumed = wait_until_completed(&server, "sigterm");
    assert_eq!(resumed.resumes, 1, "{resumed:#?}");
    let from = resumed.resumed_from.clone().unwrap();
    assert!(from.starts_with("dec:") || from.starts_with("finetune:"), "resumed where it stopped: {from}");
    assert_eq!(results(&resumed), results(&reference), "the resumed trial's metrics are the uninterrupted run's");
    assert_eq!(final_curve(&server, &resumed), final_curve(&server, &reference), "and so is its curve");

    // SIGKILL in fine-tuning, after a periodic checkpoint was stored: nothing saved at the kill,
    // the lease expires, the next worker resumes from the last stored state.
    drop(_second);
    submit(&server.url, &spec(dir, "sigkill"));
    let stored_before = checkpoints_stored(&server);
    let mut doomed = agent(&server.url, &dir.join("home-c"));
    wait_until_at(&server, "sigkill", "finetune", 3);
    wait_for("a checkpoint to be stored", Duration::from_secs(60), || checkpoints_stored(&server) > stored_before);
    doomed.0.kill().unwrap();
    doomed.0.wait().unwrap();
    let _third = agent(&server.url, &dir.join("home-d"));
    let killed = wait_until_completed(&server, "sigkill");
    assert_eq!((killed.attempts, killed.resumes), (2, 1), "{killed:#?}");
    assert!(killed.resumed_from.as_deref().unwrap().starts_with("finetune:"), "{killed:#?}");
    assert_eq!(results(&killed), results(&reference));
    assert_eq!(final_curve(&server, &killed), final_curve(&server, &reference));
}
