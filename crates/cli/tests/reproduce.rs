//! `decsweep reproduce`: a completed trial reruns from its manifest with the same numbers (exit
//! 0); a manifest from another CPU gets that CPU named when the numbers differ, and
//! `--tolerance` passes a small difference and fails a large one; and it says the dataset
//! differs (exit 1) once its file was changed.

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

    // The manifest recorded on another CPU, and the stored accuracy moved a little: as a rerun of a
    // trial from another machine looks here.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let stored: f64 = conn
        .query_row("SELECT json_extract(metrics, '$.accuracy') FROM trials WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    let elsewhere = |shift: f64| {
        conn.execute(
            "UPDATE trials SET
                manifest = json_set(manifest,
                    '$.cpu', json('{\"vendor\": \"AuthenticAMD\", \"model\": \"Test EPYC 0000 (edited)\", \"flags\": [\"zz_only_there\"]}'),
                    '$.libtorch_build.cpu_capability', 'AVX2-edited'),
                metrics = json_set(metrics, '$.accuracy', ?1)
             WHERE id = 1",
            [stored + shift],
        )
        .unwrap();
    };
    let reproduce_with = |extra: &[&str]| {
        Command::new(decsweep())
            .args(["reproduce", "again", "1", "--db", db.to_str().unwrap()])
            .args(extra)
            .env("DECSWEEP_WORKER", worker_bin())
            .output()
            .unwrap()
    };
    elsewhere(0.0004);
    let exact = reproduce_with(&[]);
    let (stdout, stderr) = (String::from_utf8_lossy(&exact.stdout), String::from_utf8_lossy(&exact.stderr));
    assert_eq!(exact.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("| accuracy |") && stdout.contains("DIFFERS"), "{stdout}");
    assert!(
        stderr.contains("recorded on AuthenticAMD Test EPYC 0000 (edited) with zz_only_there (ATen kernels: AVX2-edited); this machine is"),
        "the recorded CPU is named: {stderr}"
    );
    assert!(stderr.contains("different MKL/oneDNN/ATen kernels may be chosen"), "{stderr}");
    assert!(stdout.contains("- cpu: ") && stdout.contains("- libtorch cpu_capability: "), "{stdout}");

    let close = reproduce_with(&["--tolerance", "0.001"]);
    let stdout = String::from_utf8_lossy(&close.stdout);
    assert!(close.status.success(), "0.0004 is within 0.001: {stdout}\n{}", String::from_utf8_lossy(&close.stderr));
    assert!(stdout.contains("reproduced: every metric matches within 0.001 (absolute)"), "{stdout}");
    assert!(stdout.contains("- cpu: "), "the CPU difference is still listed: {stdout}");

    elsewhere(0.05);
    for tolerance in ["0.001", "1%"] {
        let far = reproduce_with(&["--tolerance", tolerance]);
        let (stdout, stderr) = (String::from_utf8_lossy(&far.stdout), String::from_utf8_lossy(&far.stderr));
        assert_eq!(far.status.code(), Some(1), "0.05 is not within {tolerance}: {stdout}\n{stderr}");
        assert!(stderr.contains("not reproduced: some metrics do not match within"), "{stderr}");
        assert!(stderr.contains("recorded on AuthenticAMD Test EPYC 0000 (edited)"), "{stderr}");
    }
    let bad = reproduce_with(&["--tolerance", "lots"]);
    assert_eq!(bad.status.code(), Some(2), "{}", String::from_utf8_lossy(&bad.stderr));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("`lots` is neither"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    drop(conn);

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
