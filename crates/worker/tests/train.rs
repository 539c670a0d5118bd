//! End-to-end tests of `decsweep-worker train` on synthetic CMU-MOSI, real training at tiny sizes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use decsweep_data::{synthesize, SynthConfig};
use serde_json::Value;

/// A small model that trains in seconds on one core.
const SMALL: &[&str] = &["d_model=32", "n_heads=2", "n_layers=1", "ff_dim=64", "latent_dim=16", "batch_size=64"];

fn synthetic_dataset() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        // Under cargo's scratch space for tests, one directory rewritten by every run: the
        // dataset is large (the default synthetic one is 177 MB) and a per-process directory
        // in /tmp was never removed.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("decsweep-worker-tests");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("synth-seed0.safetensors");
        decsweep_data::save(&synthesize(&SynthConfig { seed: 0, ..Default::default() }), &path).unwrap();
        path
    })
}

fn worker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_decsweep-worker"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("decsweep-worker runs")
}

fn train(data: &Path, pipeline: &str, seed: u64, sets: &[&str], out: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<String> = vec![
        "train".into(),
        "--data".into(),
        data.display().to_string(),
        "--pipeline".into(),
        pipeline.into(),
        "--seed".into(),
        seed.to_string(),
        "--out".into(),
        out.display().to_string(),
        "--device".into(),
        "cpu".into(),
        "--threads".into(),
        "1".into(),
    ];
    for s in SMALL.iter().chain(sets) {
        args.push("--set".into());
        args.push(s.to_string());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    worker(&refs)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn metrics(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap()
}

#[test]
fn baseline_learns_synthetic_sentiment_well_above_chance() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("baseline");
    let o = train(synthetic_dataset(), "baseline", 0, &["epochs_ft=25", "lr_ft=1e-3", "label_fraction=1.0"], &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = metrics(&out);
    let acc = m["accuracy"].as_f64().unwrap();
    // The share of the majority class among the validation labels: what a constant guess gets.
    let curves = std::fs::read_to_string(out.join("curves.csv")).unwrap();
    assert_eq!(curves.lines().count(), 1 + 25);
    assert!(acc > 0.65, "validation accuracy {acc} is not clearly above chance\n{}", stderr(&o));
    assert!(m["test"]["accuracy"].as_f64().unwrap() > 0.65, "test accuracy {}", m["test"]);
    assert!(acc < 0.999, "synthetic sentiment should not be trivially separable: {acc}");
}

#[test]
fn dec_pipeline_writes_every_output() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("dec");
    let sets = ["epochs_ae=3", "epochs_dec=2", "epochs_ft=4", "gamma=0.01"];
    let o = train(synthetic_dataset(), "dec", 1, &sets, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("[ae") && err.contains("[dec") && err.contains("[finetune"),
        "a progress line per epoch:\n{err}"
    );

    let m = metrics(&out);
    for key in ["accuracy", "f1_weighted", "f1_macro", "loss", "time_ae_s", "time_dec_s", "time_finetune_s", "wall_s"] {
        assert!(m[key].as_f64().is_some_and(f64::is_finite), "metrics.json lacks a finite `{key}`: {m}");
    }
    assert!(m["param_count"].as_i64().unwrap() > 0);
    assert_eq!(m["device"], "cpu");
    assert_eq!(m["pipeline"], "dec");
    assert_eq!(m["params"]["gamma"], 0.01);
    assert!(m["test"]["accuracy"].as_f64().is_some());
    for key in ["dec_head_accuracy", "dec_head_test_accuracy"] {
        let x = m[key].as_f64().unwrap_or_else(|| panic!("a dec trial reports its DEC head's `{key}`: {m}"));
        assert!((0.0..=1.0).contains(&x), "{key} = {x}");
    }
    assert!(m.get("pseudo_rows").is_none(), "pseudo-labels are off by default: {m}");

    let curves = std::fs::read_to_string(out.join("curves.csv")).unwrap();
    let rows: Vec<Vec<&str>> = curves.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(curves.lines().next().unwrap(), "stage,epoch,train_loss,val_loss,val_accuracy");
    let count = |stage: &str| rows.iter().filter(|r| r[0] == stage).count();
    assert_eq!((count("ae"), count("dec"), count("finetune")), (3, 2, 4));
    // The DEC head read out of the stage's checkpoint scores what its last epoch did.
    let last_dec = rows.iter().rfind(|r| r[0] == "dec").unwrap();
    let last_dec_accuracy: f64 = last_dec[4].parse().unwrap();
    assert!((m["dec_head_accuracy"].as_f64().unwrap() - last_dec_accuracy).abs() < 1e-6, "{last_dec:?} vs {m}");
    for r in &rows {
        assert!(r[2].parse::<f64>().unwrap().is_finite() && r[3].parse::<f64>().unwrap().is_finite(), "{r:?}");
        // AE has no accuracy; DEC's comes from its clusters, the classifier's from its logits.
        assert_eq!(r[4].is_empty(), r[0] == "ae", "{r:?}");
    }
    let ckpt = tch::Tensor::read_safetensors(out.join("classifier.safetensors")).unwrap();
    assert!(ckpt.iter().any(|(n, _)| n == "head.fc0.weight"));
    assert!(ckpt.iter().any(|(n, _)| n == "encoders.text.layers.0.self_attn.in_proj_weight"));
}

#[test]
fn same_seed_same_result_and_cache_reuses_stages() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let cache_arg = ["--cache", cache.to_str().unwrap()];
    let sets = ["epochs_ae=2", "epochs_dec=2", "epochs_ft=3", "label_fraction=0.4"];
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let oa = train(synthetic_dataset(), "dec", 7, &sets, &a, &cache_arg);
    assert!(oa.status.success(), "{}", stderr(&oa));
    let ob = train(synthetic_dataset(), "dec", 7, &sets, &b, &cache_arg);
    assert!(ob.status.success(), "{}", stderr(&ob));
    let (ma, mb) = (metrics(&a), metrics(&b));
    assert_eq!(ma["cache_reuses"], 0);
    assert_eq!(mb["cache_reuses"], 2, "AE and DEC stages come from the cache");
    for key in ["accuracy", "loss", "f1_macro"] {
        assert_eq!(ma[key], mb[key], "a cached stage gives the same result as a trained one ({key})");
    }
    // Another label fraction shares the AE stage but not the DEC stage.
    let c = tmp.path().join("c");
    let oc = train(
        synthetic_dataset(),
        "dec",
        7,
        &["epochs_ae=2", "epochs_dec=2", "epochs_ft=3", "label_fraction=0.2"],
        &c,
        &cache_arg,
    );
    assert!(oc.status.success(), "{}", stderr(&oc));
    assert_eq!(metrics(&c)["cache_reuses"], 1);

    // Without the cache, the same seed reproduces the same curves exactly.
    let d = tmp.path().join("d");
    let od = train(synthetic_dataset(), "dec", 7, &sets, &d, &[]);
    assert!(od.status.success(), "{}", stderr(&od));
    assert_eq!(
        std::fs::read_to_string(a.join("curves.csv")).unwrap(),
        std::fs::read_to_string(d.join("curves.csv")).unwrap()
    );
}

#[test]
fn pseudo_labels_change_fine_tuning_and_only_the_dec_pipeline_takes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let cache_arg = ["--cache", cache.to_str().unwrap()];
    let sets = ["epochs_ae=2", "epochs_dec=2", "epochs_ft=3", "label_fraction=0.2", "n_clusters=4"];
    let run = |name: &str, extra: &[&str]| {
        let out = tmp.path().join(name);
        let all: Vec<&str> = sets.iter().chain(extra).copied().collect();
        let o = train(synthetic_dataset(), "dec", 3, &all, &out, &cache_arg);
        assert!(o.status.success(), "{}", stderr(&o));
        (metrics(&out), std::fs::read_to_string(out.join("curves.csv")).unwrap())
    };
    let (off, off_curves) = run("off", &[]);
    // τ at 1/K or below: every unlabeled row of a cluster with a labeled majority is taken.
    let (on, on_curves) = run("on", &["pseudo_threshold=0.25", "pseudo_weight=0.5"]);
    assert_eq!(on["cache_reuses"], 2, "pseudo-labels come from the cached DEC stage: {on}");
    let rows = on["pseudo_rows"].as_i64().expect("pseudo_rows reported");
    let unlabeled = on["split"]["train_unlabeled"].as_i64().unwrap();
    assert!(rows > 0 && rows <= unlabeled, "{rows} pseudo-labeled rows of {unlabeled} unlabeled");
    assert!((0.0..=1.0).contains(&on["pseudo_accuracy"].as_f64().unwrap()));
    // The cached DEC stage reads out as the one trained on the spot.
    assert_eq!(on["dec_head_accuracy"], off["dec_head_accuracy"]);
    assert_eq!(on["dec_head_test_accuracy"], off["dec_head_test_accuracy"]);
    let stage_rows = |curves: &str, stage: &str| -> Vec<String> {
        curves.lines().filter(|l| l.starts_with(stage)).map(str::to_string).collect()
    };
    assert_ne!(
        stage_rows(&on_curves, "finetune,"),
        stage_rows(&off_curves, "finetune,"),
        "pseudo-labeled rows change the classifier's training"
    );
    // The same τ again: the same pseudo-labels and the same training, bit for bit.
    let (_, again_curves) = run("again", &["pseudo_threshold=0.25", "pseudo_weight=0.5"]);
    assert_eq!(again_curves, on_curves);
    // τ = 1 is never reached by a soft assignment of 4 clusters short of exactly one-hot.
    let (strict, _) = run("strict", &["pseudo_threshold=1"]);
    assert!(strict["pseudo_rows"].as_i64().unwrap() < rows);

    // The baseline has no DEC stage to take pseudo-labels from: refused, naming the parameter.
    let o = train(synthetic_dataset(), "baseline", 0, &["pseudo_threshold=0.5"], &tmp.path().join("b"), &[]);
    assert_bad_input(&o, &["pseudo_threshold", "baseline", "dec pipeline only"]);
}

/// Overwrites one element of a tensor in a safetensors file, bypassing the writer's validation.
fn overwrite_f32(path: &Path, tensor: &str, index: usize, value: f32) {
    let mut bytes = std::fs::read(path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let start = header[tensor]["data_offsets"][0].as_u64().unwrap() as usize;
    let at = 8 + header_len + start + 4 * index;
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

fn assert_bad_input(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "expected exit 2, stderr:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr should mention `{n}`:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_input_exits_2_with_a_message_naming_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let data = synthetic_dataset();

    let o = train(data, "baseline", 0, &["learning_rate=0.1"], &out, &[]);
    assert_bad_input(&o, &["learning_rate", "lr_ft", "label_fraction"]);

    let o = train(data, "baseline", 0, &["label_fraction=0"], &out, &[]);
    assert_bad_input(&o, &["label_fraction"]);
    let o = train(data, "baseline", 0, &["label_fraction=1.5"], &out, &[]);
    assert_bad_input(&o, &["label_fraction"]);

    let o = train(data, "transformer", 0, &[], &out, &[]);
    assert_bad_input(&o, &["transformer", "baseline", "dec"]);

    let missing = tmp.path().join("nope.safetensors");
    let o = train(&missing, "baseline", 0, &[], &out, &[]);
    assert_bad_input(&o, &["nope.safetensors"]);

    let bytes = std::fs::read(data).unwrap();
    let truncated = tmp.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let o = train(&truncated, "baseline", 0, &[], &out, &[]);
    assert_bad_input(&o, &["truncated.safetensors"]);

    // Non-finite features are refused, naming the tensor.
    let nan = tmp.path().join("nan.safetensors");
    decsweep_data::save(&synthesize(&SynthConfig { n: 60, seed: 1, ..Default::default() }), &nan).unwrap();
    overwrite_f32(&nan, "audio", 17, f32::NAN);
    let o = train(&nan, "baseline", 0, &[], &out, &[]);
    assert_bad_input(&o, &["nan.safetensors", "audio"]);

    // Every sentiment score exactly 0 and zero_label=drop: nothing left to learn from.
    let zeros = tmp.path().join("zeros.safetensors");
    decsweep_data::save(&synthesize(&SynthConfig { n: 30, seed: 2, ..Default::default() }), &zeros).unwrap();
    for i in 0..30 {
        overwrite_f32(&zeros, "label", i, 0.0);
    }
    let o = train(&zeros, "baseline", 0, &["zero_label=drop"], &out, &[]);
    assert_bad_input(&o, &["zeros.safetensors", "label"]);
}

#[test]
fn divergence_stops_the_trial_with_its_stage_and_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("diverge");
    // An absurd learning rate blows the AE's reconstruction up within a few epochs.
    let o =
        train(synthetic_dataset(), "dec", 0, &["epochs_ae=20", "lr_ae=1e12", "epochs_dec=1", "epochs_ft=1"], &out, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("diverged in stage ae at epoch"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
