//! `decsweep reproduce`: a completed trial reruns from its manifest with the same numbers (exit
//! 0), and says the dataset differs (exit 1) once its file was changed.

use std::process::Command;

mod common;

use common::{decsweep, worker_bin};

const SPEC: &str = r#"
[study]
name = "again"
dataset = { synthetic = { seed = 3, n = 240 } }
pipelines = ["dec"]
seeds = [5]
retries = 0

[fixed]
d_model = 16
n_heads = 2
n_layers = 1
ff_dim = 32
latent_dim = 8
batch_size = 64
epochs_ae = 3
epochs_dec = 2
epochs_ft = 5
label_fraction = 0.5
"#;

#[test]
fn a_completed_trial_reproduces_and_a_changed_dataset_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("again.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let out = tmp.path().join("out");
    let run = Command::new(decsweep())
        .args(["run", spec.to_str().unwrap(), "--workers", "1", "--threads", "1", "--device", "cpu", "--out"])
        .arg(&out)
        .env("DECSWEEP_HOME", tmp.path().join("home"))
        .env("DECSWEEP_WORKER", worker_bin())
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let db = out.join("decsweep.db");
    let reproduce = || {
        Command::new(decsweep())
            .args(["reproduce", "again", "1", "--db", db.to_str().unwrap()])
            .env("DECSWEEP_WORKER", worker_bin())
            .output()
            .unwrap()
    };
    let same = reproduce();
    let stdout = String::from_utf8_lossy(&same.stdout);
    assert!(same.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&same.stderr));
    assert!(stdout.contains("| accuracy |") && stdout.contains("| test_accuracy |"), "{stdout}");
    assert!(!stdout.contains("DIFFERS"), "{stdout}");
    assert!(stdout.contains("reproduced: every metric matches exactly (CPU)"), "{stdout}");
    assert!(stdout.contains("environment: as recorded"), "{stdout}");

    // Another dataset of the same shape where the study's file was.
    let data_dir = out.join("decsweep.db.data");
    let file = std::fs::read_dir(&data_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .expect("the study's dataset file");
    let synth = Command::new(decsweep())
        .args(["data", "synth", "--seed", "4", "--n", "240", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(synth.status.success(), "{}", String::from_utf8_lossy(&synth.stderr));
    let changed = reproduce();
    let stdout = String::from_utf8_lossy(&changed.stdout);
    let stderr = String::from_utf8_lossy(&changed.stderr);
    assert_eq!(changed.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("dataset differs"), "{stdout}");
    assert!(stderr.contains("not reproduced: the dataset differs"), "{stderr}");
}
