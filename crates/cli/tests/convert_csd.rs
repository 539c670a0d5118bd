//! The full path from CMU-MultimodalSDK computational sequences: `tools/convert_mosi.py --format
//! csd` on the fixtures of `tests/csd/make_fixtures.py`, `decsweep data inspect` on the result,
//! then `decsweep run` of a tiny `dec` study on it. The conversion rules themselves are checked in
//! `crates/data/tests/convert_csd.rs`.
//!
//! Needs a python with numpy and h5py (`make venv`) and the worker binary (`make test` builds it).

use std::process::Command;

use decsweep_api::wire::TrialStatus;

mod common;

use common::{decsweep, worker_bin};

#[path = "../../data/tests/support/csd.rs"]
mod csd;

const SPEC: &str = r#"
[study]
name = "sdk"
# Read relative to this file.
dataset = "mosi-sdk.safetensors"
pipelines = ["dec"]
seeds = [0]
retries = 0

[fixed]
split = "dataset"
d_model = 16
n_heads = 2
n_layers = 1
ff_dim = 32
latent_dim = 8
batch_size = 16
epochs_ae = 2
epochs_dec = 2
epochs_ft = 3
label_fraction = 1.0
"#;

#[test]
fn converted_sequences_inspect_and_train_a_dec_study() {
    let py = csd::python();
    let dir = csd::fixtures(&py, "study");
    let data = dir.join("mosi-sdk.safetensors");
    let folds = dir.join("folds.json");
    let run = csd::convert(&py, &dir, &data, &[], &["--folds", folds.to_str().unwrap()]);
    assert!(run.status.success(), "{}", csd::text(&run.stderr));

    // inspect shows the fixture's dims (not the paper's), per-modality lengths and the folds.
    let inspect = Command::new(decsweep()).args(["data", "inspect", "--json"]).arg(&data).output().unwrap();
    assert!(inspect.status.success(), "{}", csd::text(&inspect.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(summary["rows"], 66);
    assert_eq!(summary["dims"], serde_json::json!([3, 2, 4]));
    // Longest rows: 4 words, 20 audio frames, 8 vision frames of a bulk segment.
    assert_eq!(summary["max_length"], serde_json::json!([4, 20, 8]));
    assert_eq!(summary["steps"], serde_json::json!([4, 20, 8]));
    assert_eq!(summary["split"], serde_json::json!([43, 8, 15]));
    assert_eq!(summary["nonfinite_replaced"], 3);
    let line = Command::new(decsweep()).args(["data", "inspect"]).arg(&data).output().unwrap();
    let line = csd::text(&line.stdout);
    assert!(line.contains("66 rows; dims text 3 audio 2 vision 4; steps 4/20/8"), "{line}");
    assert!(line.contains("split 43 train / 8 valid / 15 test"), "{line}");

    // A tiny dec study on it completes, on the file's own split.
    let spec = dir.join("sdk.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let results = dir.join("results");
    let o = Command::new(decsweep())
        .args(["run", spec.to_str().unwrap(), "--workers", "1", "--threads", "1", "--device", "cpu", "--out"])
        .arg(&results)
        .env("DECSWEEP_HOME", dir.join("home"))
        .env("DECSWEEP_WORKER", worker_bin())
        .output()
        .unwrap();
    assert!(o.status.success(), "decsweep run failed:\n{}", csd::text(&o.stderr));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let trials = rt.block_on(async {
        let c = decsweep_coordinator::Coordinator::open(results.join("decsweep.db"), Default::default()).unwrap();
        c.trials("sdk", None).await.unwrap()
    });
    assert_eq!(trials.len(), 1);
    let trial = &trials[0];
    assert_eq!(trial.status, TrialStatus::Completed, "{trial:#?}");
    let accuracy = trial.metrics["test_accuracy"];
    assert!((0.0..=1.0).contains(&accuracy), "test accuracy {accuracy} on the file's 15 test rows");
}
