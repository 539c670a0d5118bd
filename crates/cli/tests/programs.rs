//! Programs as trials, end to end: Python scripts using `tools/decsweep_trial.py`, run by a real
//! agent from a `decsweep serve` coordinator, in studies that name no dataset.
//!
//! - a program reporting 20 steps is pruned by the median pruner, receives SIGTERM and is
//!   recorded as pruned at its step;
//! - a program keeping a counter in `DECSWEEP_CHECKPOINT_DIR` is stopped mid-run (its worker gets
//!   SIGTERM) and finishes on its next attempt, on another worker, without starting over;
//! - a program that says when its state is complete (`checkpoint_saved()`) has it uploaded then,
//!   so even a worker SIGKILLed without a word loses no more than the last step;
//! - malformed report lines are warned about and do not fail the trial.

use std::path::{Path, PathBuf};
use std::time::Duration;

use decsweep_api::wire::TrialStatus;

mod common;

use common::{agent, free_port, serve, status, submit, wait_for};

fn tools_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools")
}

/// A script that imports the helper from the repository's `tools/`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    let text = format!(
        "import json, os, sys, time\nsys.path.insert(0, {tools:?})\nimport decsweep_trial as dt\n{body}",
        tools = tools_dir().display().to_string()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A programs-only study (no dataset); `retries` counts expired leases too.
fn write_spec(dir: &Path, name: &str, program: &Path, retries: u32, rest: &str) -> PathBuf {
    let text = format!(
        "[study]\nname = \"{name}\"\npipelines = [\"command\"]\nseeds = [0]\nretries = {retries}\n\n\
         [command]\nprogram = [\"python3\", {program:?}]\n\n{rest}",
        program = program.display().to_string()
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_reporting_program_is_pruned_by_the_median_pruner_and_gets_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let marks = dir.join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    // Its quality is its validation accuracy at every step; the last (and worst) configuration
    // is pruned as soon as the three before it have finished. A malformed line on the way.
    let program = script(
        dir,
        "steps.py",
        &format!(
            r#"q = dt.params()["quality"]
print('{{"decsweep": "report", "step": "one"}}', flush=True)
for step in range(1, 21):
    dt.report(step, steps=20, val_accuracy=q, val_loss=1 - q)
    time.sleep(0.05)
    if dt.should_prune():
        open(os.path.join({marks:?}, "sigterm-%s" % q), "w").write(str(step))
        sys.exit(0)
dt.finish(accuracy=q)
"#,
            marks = marks.display().to_string()
        ),
    );
    let spec = write_spec(
        dir,
        "pruned",
        &program,
        0,
        "[space]\nquality = { grid = [0.9, 0.8, 0.7, 0.1] }\n\n[pruner]\nkind = \"median\"\nn_startup_trials = 3\n",
    );
    let server = serve(&dir.join("programs.db"), free_port(), 30);
    submit(&server.url, &spec);
    let _worker = agent(&server.url, &dir.join("home"));
    wait_for("every trial to end", Duration::from_secs(120), || {
        status(&server.url, "pruned").1.iter().all(|t| t.status.is_terminal())
    });
    let (_, trials) = status(&server.url, "pruned");
    let by_quality = |q: &str| trials.iter().find(|t| t.params["quality"].to_string() == q).unwrap();
    for q in ["0.9", "0.8", "0.7"] {
        let t = by_quality(q);
        assert_eq!(t.status, TrialStatus::Completed, "{t:#?}");
        assert_eq!(t.metrics["accuracy"].to_string(), q, "the last line is the result");
    }
    let worst = by_quality("0.1");
    assert_eq!(worst.status, TrialStatus::Pruned, "{worst:#?}");
    let step = worst.metrics["pruned_epoch"];
    assert!((1.0..20.0).contains(&step), "pruned at its step, before the end: {worst:#?}");
    assert_eq!(worst.metrics["accuracy"], 0.1, "its last reported value stands as its accuracy");
    let mark = std::fs::read_to_string(marks.join("sigterm-0.1")).expect("the pruned program saw SIGTERM");
    let seen: f64 = mark.parse().unwrap();
    assert!(seen >= step, "it stopped at or after the step it was pruned at ({seen} vs {step})");
    assert!(marks.read_dir().unwrap().count() == 1, "no other program was stopped");
}

/// A program that counts to 30, one step every 0.1 s, keeping the count in its checkpoint
/// directory (written atomically) and reporting each step; it finishes with where this attempt
/// started and how many steps it ran. With `announce` it says after every save that its state is
/// complete (`checkpoint_saved()`).
fn counter(dir: &Path, announce: bool) -> PathBuf {
    let body = format!(
        r#"state = os.path.join(dt.checkpoint_dir(), "count.json")
start = json.load(open(state))["count"] if os.path.exists(state) else 0
count = start
while count < 30:
    time.sleep(0.1)
    count += 1
    tmp = state + ".tmp"
    json.dump({{"count": count}}, open(tmp, "w"))
    os.replace(tmp, state)
    if {announce}:
        dt.checkpoint_saved()
    dt.report(count, steps=30, val_accuracy=count / 30)
    if dt.should_prune():
        sys.exit(0)
dt.finish(started_at=start, ran=count - start, count=count)
"#,
        announce = if announce { "True" } else { "False" }
    );
    script(dir, "counter.py", &body)
}

/// Starts the study in a first agent and returns it once trial 1 has reported step 10.
fn first_agent_past_step_10(server: &common::Server, dir: &Path, spec: &Path) -> common::Guard {
    submit(&server.url, spec);
    let first = agent(&server.url, &dir.join("home-1"));
    wait_for("the counter to pass 10", Duration::from_secs(60), || {
        let points = common::client(&server.url).curves(1).unwrap();
        points.iter().any(|p| p.epoch >= 10)
    });
    first
}

/// Runs the study's one trial to its end in a second agent; checks it went on from step 10 or
/// later of the first attempt, without starting over, and returns it.
fn second_attempt_resumes(server: &common::Server, dir: &Path, study: &str) -> decsweep_api::wire::TrialInfo {
    let _second = agent(&server.url, &dir.join("home-2"));
    wait_for("the counter to finish", Duration::from_secs(60), || status(&server.url, study).1[0].status.is_terminal());
    let t = status(&server.url, study).1.remove(0);
    assert_eq!(t.status, TrialStatus::Completed, "{t:#?}");
    assert_eq!(t.metrics["count"], 30.0);
    let started_at = t.metrics["started_at"];
    assert!(started_at >= 10.0, "the second attempt went on from the saved count: {t:#?}");
    assert_eq!(t.metrics["ran"], 30.0 - started_at, "and did not start over");
    assert_eq!(t.resumes, 1, "{t:#?}");
    t
}

#[test]
fn a_program_stopped_mid_run_resumes_from_its_checkpoint_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let spec = write_spec(dir, "counter", &counter(dir, false), 0, "[resources]\ncheckpoint_every = 0.2\n");
    let server = serve(&dir.join("counter.db"), free_port(), 30);
    let mut first = first_agent_past_step_10(&server, dir, &spec);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(first.0.id() as libc::pid_t, libc::SIGTERM) };
    assert!(first.0.wait().unwrap().success());
    let (_, trials) = status(&server.url, "counter");
    assert_eq!((trials[0].status, trials[0].attempts), (TrialStatus::Pending, 0), "{trials:#?}");
    second_attempt_resumes(&server, dir, "counter");
}

#[test]
fn a_program_that_announces_its_checkpoints_resumes_after_its_worker_is_sigkilled() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The clock (an hour) never uploads and a SIGKILLed worker cannot: only the announcements
    // can carry the count to the next attempt.
    let spec = write_spec(dir, "announcer", &counter(dir, true), 1, "[resources]\ncheckpoint_every = 3600\n");
    let server = serve(&dir.join("announcer.db"), free_port(), 2);
    let mut first = first_agent_past_step_10(&server, dir, &spec);
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    // Its program dies at its next line, on the closed pipe; the lease expires after its TTL.
    second_attempt_resumes(&server, dir, "announcer");
}
