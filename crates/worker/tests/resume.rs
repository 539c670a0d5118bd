//! `decsweep-worker train --checkpoint`: a trial interrupted by SIGTERM (or killed after a
//! periodic checkpoint) and resumed by another process, in another work directory, gives the
//! same metrics.json and curves.csv as a run that never stopped, bit for bit. Bad checkpoint
//! files are discarded and the trial starts from scratch.
//!
//! Interruptions are real signals at chosen epochs: the trial runs in supervised mode, and when
//! it reports the chosen epoch the test sends SIGTERM, waits until the trial says it noticed,
//! and only then answers `continue`, so the epoch the trial stops after is deterministic.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use decsweep_data::{synthesize, SynthConfig};
use serde_json::Value;

/// A small model on a small dataset: each epoch takes a fraction of a second on one core.
const SMALL: &[&str] =
    &["seq_len=12", "d_model=16", "n_heads=2", "n_layers=1", "ff_dim=32", "latent_dim=8", "batch_size=32"];
/// Exit status of an interrupted trial whose state is saved.
const INTERRUPTED: i32 = 75;
/// Generous: the machine running the tests may be loaded.
const PATIENCE: Duration = Duration::from_secs(300);

fn dataset() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        // Under cargo's scratch space for tests, one directory rewritten by every run: the
        // dataset is large (the default synthetic one is 177 MB) and a per-process directory
        // in /tmp was never removed.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("decsweep-resume-tests");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("synth.safetensors");
        let config = SynthConfig { n: 360, seed: 5, max_len: 12, min_len: 3, ..Default::default() };
        decsweep_data::save(&synthesize(&config), &path).unwrap();
        path
    })
}

/// A trial: pipeline, seed and parameters.
struct Trial {
    pipeline: &'static str,
    seed: u64,
    sets: Vec<&'static str>,
}

impl Trial {
    fn command(&self, out: &Path, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_decsweep-worker"));
        cmd.args(["train", "--data"]).arg(dataset());
        cmd.args(["--pipeline", self.pipeline, "--seed", &self.seed.to_string(), "--device", "cpu", "--threads", "1"]);
        cmd.arg("--out").arg(out);
        for s in SMALL.iter().chain(&self.sets) {
            cmd.args(["--set", s]);
        }
        cmd.args(extra).env("RUST_LOG", "info");
        cmd
    }

    /// Runs to the end without supervision.
    fn run(&self, out: &Path, extra: &[&str]) -> Output {
        self.command(out, extra).output().expect("decsweep-worker runs")
    }

    /// Runs supervised with `--checkpoint`; calls `at_epoch` on every epoch line before
    /// answering it and `at_checkpoint` on every checkpoint line.
    fn supervise(
        &self,
        out: &Path,
        checkpoint: &Path,
        extra: &[&str],
        mut at_epoch: impl FnMut(&Value, &mut Child, &mpsc::Receiver<String>),
        mut at_checkpoint: impl FnMut(&Value, &mut Child),
    ) -> Supervised {
        let mut args = vec!["--supervised", "--checkpoint", checkpoint.to_str().unwrap()];
        args.extend(extra);
        let mut child = self
            .command(out, &args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("decsweep-worker starts");
        let (tx, stderr_lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let stderr_reader = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                all.push_str(&line);
                all.push('\n');
                let _ = tx.send(line);
            }
            all
        });
        let mut stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (mut epochs, mut checkpoints) = (Vec::new(), Vec::new());
        for line in stdout.lines().map_while(Result::ok) {
            let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            if value["event"] == "checkpoint" {
                checkpoints.push((value["stage"].as_str().unwrap().to_string(), value["epoch"].as_u64().unwrap()));
                at_checkpoint(&value, &mut child);
                continue;
            }
            epochs.push((value["stage"].as_str().unwrap().to_string(), value["epoch"].as_u64().unwrap()));
            at_epoch(&value, &mut child, &stderr_lines);
            if writeln!(stdin, "continue").and_then(|_| stdin.flush()).is_err() {
                break;
            }
        }
        drop(stdin);
        let status = child.wait().unwrap();
        let stderr = stderr_reader.join().unwrap();
        Supervised { status, epochs, checkpoints, stderr }
    }

    /// Supervised run that gets SIGTERM when it reports epoch `epoch` of `stage`.
    fn interrupt_at(&self, out: &Path, checkpoint: &Path, stage: &str, epoch: u64) -> Supervised {
        self.supervise(
            out,
            checkpoint,
            &[],
            |value, child, stderr| {
                if value["stage"] == stage && value["epoch"] == epoch {
                    signal(child, "-TERM");
                    wait_for_line(stderr, "SIGTERM:");
                }
            },
            |_, _| {},
        )
    }
}

struct Supervised {
    status: ExitStatus,
    /// (stage, epoch) of every epoch line, in order.
    epochs: Vec<(String, u64)>,
    checkpoints: Vec<(String, u64)>,
    stderr: String,
}

fn signal(child: &Child, which: &str) {
    let ok = Command::new("kill").args([which, &child.id().to_string()]).status().expect("kill runs").success();
    assert!(ok, "kill {which} failed");
}

fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str) {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return,
            Ok(_) => {}
            Err(e) => panic!("the trial never printed `{needle}`: {e}"),
        }
    }
}

fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// metrics.json without what legitimately differs between runs: wall times and resume counts.
fn comparable_metrics(dir: &Path) -> Value {
    let mut m = read_json(&dir.join("metrics.json"));
    let obj = m.as_object_mut().unwrap();
    for key in ["wall_s", "time_ae_s", "time_dec_s", "time_finetune_s", "resumes", "resumed_from"] {
        obj.remove(key);
    }
    for stage in obj.get_mut("stages").and_then(Value::as_array_mut).into_iter().flatten() {
        stage.as_object_mut().unwrap().remove("wall_s");
    }
    m
}

fn assert_same_results(dir: &Path, reference: &Path) {
    let (got, want) = (comparable_metrics(dir), comparable_metrics(reference));
    for (key, value) in want.as_object().unwrap() {
        assert_eq!(&got[key], value, "metrics.json `{key}` differs from the uninterrupted run");
    }
    assert_eq!(got, want);
    let curves = |d: &Path| std::fs::read_to_string(d.join("curves.csv")).unwrap();
    assert_eq!(curves(dir), curves(reference), "curves.csv differs from the uninterrupted run");
}

/// Copies the state file to a new place, as if another machine had received it.
fn hand_over(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    std::fs::remove_file(from).unwrap();
}

fn dec_trial() -> Trial {
    // p_update = 2 with an interruption after DEC's first epoch: the resumed epoch 2 must use
    // the target distribution computed before the interruption. With DEC pseudo-labels, so a
    // fine-tuning resumed on another machine must take them (and the DEC head's accuracy) from
    // the state file: its DEC stage is not run again there.
    Trial {
        pipeline: "dec",
        seed: 3,
        sets: vec![
            "epochs_ae=3",
            "epochs_dec=3",
            "epochs_ft=4",
            "p_update=2",
            "label_fraction=0.5",
            "dropout=0.2",
            "pseudo_threshold=0.2",
            "pseudo_weight=0.5",
        ],
    }
}

#[test]
fn dec_trial_interrupted_in_every_stage_resumes_bit_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let trial = dec_trial();
    let reference = tmp.path().join("reference");
    let o = trial.run(&reference, &[]);
    assert!(o.status.success(), "{}", stderr_of(&o));

    // Each attempt runs in its own work directory with its own copy of the state file.
    let stops = [("ae", 2), ("dec", 1), ("finetune", 2)];
    let mut previous_stop: Option<(&str, u64)> = None;
    for (attempt, (stage, epoch)) in stops.into_iter().enumerate() {
        let work = tmp.path().join(format!("attempt-{attempt}"));
        std::fs::create_dir_all(&work).unwrap();
        let checkpoint = work.join("trial.ckpt");
        if attempt > 0 {
            hand_over(&tmp.path().join(format!("attempt-{}", attempt - 1)).join("trial.ckpt"), &checkpoint);
        }
        let run = trial.interrupt_at(&work.join("out"), &checkpoint, stage, epoch);
        assert_eq!(run.status.code(), Some(INTERRUPTED), "attempt {attempt}:\n{}", run.stderr);
        assert_eq!(run.checkpoints, vec![(stage.to_string(), epoch)], "one checkpoint, at the SIGTERM epoch");
        assert_eq!(run.epochs.last(), Some(&(stage.to_string(), epoch)), "no epoch after the interrupted one");
        let error = read_json(&work.join("out/error.json"));
        assert_eq!(error["kind"], "interrupted", "{error}");
        if let Some((s, e)) = previous_stop {
            assert!(run.stderr.contains(&format!("resuming after epoch {e} of stage {s}")), "{}", run.stderr);
            let first = &run.epochs[0];
            let expected_first = if s == "ae" && e == 3 { ("dec".to_string(), 1) } else { (s.to_string(), e + 1) };
            assert_eq!(first, &expected_first, "a resumed trial goes on after the saved epoch");
        }
        previous_stop = Some((stage, epoch));
    }

    // The last attempt runs to the end, unsupervised, in yet another directory.
    let last = tmp.path().join("attempt-final");
    std::fs::create_dir_all(&last).unwrap();
    let checkpoint = last.join("trial.ckpt");
    hand_over(&tmp.path().join(format!("attempt-{}", stops.len() - 1)).join("trial.ckpt"), &checkpoint);
    let o = trial.run(&last.join("out"), &["--checkpoint", checkpoint.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_same_results(&last.join("out"), &reference);
    let m = read_json(&last.join("out/metrics.json"));
    assert_eq!(m["resumes"], 3);
    assert_eq!(m["resumed_from"], serde_json::json!({ "stage": "finetune", "epoch": 2 }));
    assert!(!checkpoint.exists(), "a completed trial deletes its state file");
    let r = read_json(&reference.join("metrics.json"));
    assert_eq!((r["resumes"].clone(), r["resumed_from"].clone()), (Value::from(0), Value::Null));
    assert!(r["pseudo_rows"].as_i64().is_some_and(|n| n > 0), "the trial trains on pseudo-labels: {r}");
    assert!(r["dec_head_accuracy"].as_f64().is_some(), "{r}");
}

#[test]
fn baseline_trial_resumes_and_bad_checkpoints_start_from_scratch() {
    let tmp = tempfile::tempdir().unwrap();
    let trial = Trial { pipeline: "baseline", seed: 1, sets: vec!["epochs_ft=5", "label_fraction=0.6"] };
    let reference = tmp.path().join("reference");
    let o = trial.run(&reference, &[]);
    assert!(o.status.success(), "{}", stderr_of(&o));

    let checkpoint = tmp.path().join("a.ckpt");
    let run = trial.interrupt_at(&tmp.path().join("a"), &checkpoint, "finetune", 3);
    assert_eq!(run.status.code(), Some(INTERRUPTED), "{}", run.stderr);
    let saved = std::fs::read(&checkpoint).unwrap();

    // Resumed by another process in another directory.
    let b = tmp.path().join("b");
    let o = trial.run(&b, &["--checkpoint", checkpoint.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_same_results(&b, &reference);
    assert_eq!(read_json(&b.join("metrics.json"))["resumes"], 1);

    // Corrupt, truncated and foreign files: logged, discarded, and the trial runs from scratch
    // to the same result.
    let mut flipped = saved.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    let other_seed = {
        let other = Trial { pipeline: "baseline", seed: 2, sets: trial.sets.clone() };
        let path = tmp.path().join("other.ckpt");
        let run = other.interrupt_at(&tmp.path().join("other"), &path, "finetune", 1);
        assert_eq!(run.status.code(), Some(INTERRUPTED), "{}", run.stderr);
        std::fs::read(&path).unwrap()
    };
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("corrupt", flipped, "content hash mismatch"),
        ("truncated", saved[..saved.len() - 100].to_vec(), "content hash mismatch"),
        ("not a checkpoint", b"not a checkpoint at all".to_vec(), "not a decsweep trial checkpoint"),
        ("another trial's", other_seed, "belongs to another trial"),
    ];
    for (what, bytes, message) in cases {
        let dir = tmp.path().join(what.replace(' ', "-"));
        let path = tmp.path().join(format!("{}.ckpt", what.replace(' ', "-")));
        std::fs::write(&path, bytes).unwrap();
        let o = trial.run(&dir, &["--checkpoint", path.to_str().unwrap()]);
        let err = stderr_of(&o);
        assert!(o.status.success(), "a {what} checkpoint must not fail the trial:\n{err}");
        assert!(err.contains("discarding the trial checkpoint") && err.contains(message), "{what}:\n{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert_same_results(&dir, &reference);
        assert_eq!(read_json(&dir.join("metrics.json"))["resumes"], 0, "{what}");
    }
}

#[test]
fn a_periodic_checkpoint_survives_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let trial = dec_trial();
    let reference = tmp.path().join("reference");
    let o = trial.run(&reference, &[]);
    assert!(o.status.success(), "{}", stderr_of(&o));

    // Every epoch is due for a checkpoint; the trial is killed, without a chance to save, right
    // after the one of DEC's second epoch (it cannot save another before its next answer).
    let checkpoint = tmp.path().join("trial.ckpt");
    let run = trial.supervise(
        &tmp.path().join("killed"),
        &checkpoint,
        &["--checkpoint-every", "0"],
        |_, _, _| {},
        |value, child| {
            if value["stage"] == "dec" && value["epoch"] == 2 {
                signal(child, "-KILL");
            }
        },
    );
    assert_eq!(run.status.code(), None, "killed by a signal:\n{}", run.stderr);
    let every_epoch: Vec<(String, u64)> =
        [("ae", 1), ("ae", 2), ("ae", 3), ("dec", 1), ("dec", 2)].iter().map(|(s, e)| (s.to_string(), *e)).collect();
    assert_eq!(run.checkpoints, every_epoch, "a checkpoint at every epoch with --checkpoint-every 0");

    let resumed = tmp.path().join("resumed");
    let o = trial.run(&resumed, &["--checkpoint", checkpoint.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(stderr_of(&o).contains("resuming after epoch 2 of stage dec"), "{}", stderr_of(&o));
    assert_same_results(&resumed, &reference);
}

#[test]
fn without_a_due_checkpoint_nothing_is_saved_until_sigterm() {
    // The default interval (300 s) is far longer than this trial: the only save is SIGTERM's.
    let tmp = tempfile::tempdir().unwrap();
    let trial = Trial { pipeline: "baseline", seed: 4, sets: vec!["epochs_ft=4"] };
    let checkpoint = tmp.path().join("t.ckpt");
    let mut seen_before_sigterm = Vec::new();
    let path = checkpoint.clone();
    let run = trial.supervise(
        &tmp.path().join("out"),
        &checkpoint,
        &[],
        |value, child, stderr| {
            seen_before_sigterm.push(path.exists());
            if value["epoch"] == 3 {
                signal(child, "-TERM");
                wait_for_line(stderr, "SIGTERM:");
            }
        },
        |_, _| {},
    );
    assert_eq!(run.status.code(), Some(INTERRUPTED), "{}", run.stderr);
    assert_eq!(seen_before_sigterm, vec![false; 3]);
    assert_eq!(run.checkpoints, vec![("finetune".to_string(), 3)]);
}
