//! Packed training end to end: `decsweep run --pack K` with real worker processes, a real
//! coordinator on loopback and real (tiny) training. The trials that share a pack key are
//! leased together and trained by one `train-pack` child, each keeping its own lease and
//! result; with dropout 0 each one's numbers are those of its run alone. Bad `--pack` values are
//! refused naming the flag.
//!
//! The worker binary must have been built (`make test` builds every binary first).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use decsweep_api::wire::{TrialInfo, TrialStatus};

mod common;

use common::{decsweep, worker_bin};

/// Two pipelines × two label fractions × two seeds of a tiny model, dropout 0: each pipeline's
/// four trials share one pack key (label fraction and seed may differ inside a pack).
fn write_spec(dir: &Path, name: &str) -> PathBuf {
    let spec = format!(
        r#"
[study]
name = "{name}"
dataset = {{ synthetic = {{ seed = 3, n = 240 }} }}
pipelines = ["baseline", "dec"]
seeds = [0, 1]

[fixed]
d_model = 16
n_heads = 2
n_layers = 1
ff_dim = 32
latent_dim = 8
batch_size = 64
epochs_ae = 2
epochs_dec = 2
epochs_ft = 3
lr_ft = 1e-3
dropout = 0.0

[space]
label_fraction = {{ grid = [0.5, 1.0] }}
"#
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, spec).unwrap();
    path
}

fn run(spec: &Path, out: &Path, home: &Path, extra: &[&str]) -> Output {
    Command::new(decsweep())
        .args(["run", spec.to_str().unwrap(), "--workers", "1", "--threads", "1", "--device", "cpu"])
        .args(extra)
        .arg("--out")
        .arg(out)
        .env("DECSWEEP_HOME", home)
        .env("DECSWEEP_WORKER", worker_bin())
        .output()
        .unwrap()
}

fn store_trials(db: &Path, study: &str) -> Vec<TrialInfo> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = decsweep_coordinator::Coordinator::open(db, Default::default()).unwrap();
        c.trials(study, None).await.unwrap()
    })
}

/// `trials.csv`'s `id → pack` cells.
fn pack_cells(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let (id, pack) = (
        header.iter().position(|h| *h == "id").unwrap(),
        header.iter().position(|h| *h == "pack").expect("a pack column"),
    );
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            (cells[id].to_string(), cells[pack].to_string())
        })
        .collect()
}

#[test]
fn a_packed_run_trains_each_key_together_and_each_trial_as_it_would_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = write_spec(tmp.path(), "packed");
    let home = tmp.path().join("home");

    let packed_out = tmp.path().join("packed");
    let o = run(&spec, &packed_out, &home, &["--pack", "4"]);
    assert!(o.status.success(), "decsweep run --pack 4 failed:\n{}", String::from_utf8_lossy(&o.stderr));
    let packed = store_trials(&packed_out.join("decsweep.db"), "packed");
    assert_eq!(packed.len(), 8);
    assert!(packed.iter().all(|t| t.status == TrialStatus::Completed && t.attempts == 1), "{packed:#?}");
    for t in &packed {
        let mates: Vec<&TrialInfo> = packed.iter().filter(|m| t.pack.contains(&m.id)).collect();
        assert_eq!(mates.len(), 4, "trial {} was trained with its pipeline's four trials: {:?}", t.id, t.pack);
        assert!(mates.iter().all(|m| m.pipeline == t.pipeline && m.pack == t.pack), "{:?}", t.pack);
        let manifest = t.manifest.as_ref().expect("a manifest");
        assert_eq!(manifest["pack"]["trials"], serde_json::json!(t.pack), "the manifest records the pack");
    }
    let cells = pack_cells(&packed_out.join("trials.csv"));
    for t in &packed {
        let expected: Vec<String> = t.pack.iter().map(i64::to_string).collect();
        assert_eq!(cells[&t.id.to_string()], expected.join("+"), "trials.csv names the pack of trial {}", t.id);
    }

    // `decsweep reproduce` reruns a packed trial alone, as a pack of one through the same engine,
    // and gets its numbers within the pack-size bound (libtorch rounds batched products of
    // another K differently).
    let last = packed.iter().rfind(|t| t.pipeline == "dec").unwrap();
    let o = Command::new(decsweep())
        .args(["reproduce", "packed", &last.id.to_string(), "--db"])
        .arg(packed_out.join("decsweep.db"))
        .env("DECSWEEP_WORKER", worker_bin())
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("trained in a pack: as a pack of one"), "{stderr}");
    assert!(
        stdout.contains("reproduced: every metric matches within 0.01% of the stored value")
            && !stdout.contains("DIFFERS"),
        "{stdout}"
    );

    // The same study, one trial per process: the same numbers (dropout 0, so the packed
    // engine's per-member masks play no part).
    let alone_out = tmp.path().join("alone");
    let o = run(&spec, &alone_out, &tmp.path().join("home-alone"), &[]);
    assert!(o.status.success(), "decsweep run failed:\n{}", String::from_utf8_lossy(&o.stderr));
    let alone = store_trials(&alone_out.join("decsweep.db"), "packed");
    assert!(alone.iter().all(|t| t.pack.is_empty()), "no pack unless asked for");
    assert!(pack_cells(&alone_out.join("trials.csv")).values().all(String::is_empty));
    for (p, a) in packed.iter().zip(&alone) {
        assert_eq!((p.id, &p.params), (a.id, &a.params));
        for metric in ["accuracy", "f1_weighted", "f1_macro"] {
            assert_eq!(p.metrics[metric], a.metrics[metric], "trial {} {metric}: packed vs alone", p.id);
        }
        let (pl, al) = (p.metrics["loss"], a.metrics["loss"]);
        assert!((pl - al).abs() <= 1e-4 * al.abs().max(1.0), "trial {} loss: packed {pl} vs alone {al}", p.id);
    }
}

#[test]
fn a_bad_pack_is_refused_naming_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = write_spec(tmp.path(), "bad");
    for bad in ["0", "four", "65"] {
        let o = run(&spec, &tmp.path().join("out"), &tmp.path().join("home"), &["--pack", bad]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "decsweep run --pack {bad}: {stderr}");
        assert!(stderr.contains("--pack"), "names the flag: {stderr}");
        let o =
            Command::new(worker_bin()).args(["--coordinator", "http://127.0.0.1:9", "--pack", bad]).output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "decsweep-worker --pack {bad}: {stderr}");
        assert!(stderr.contains("--pack"), "names the flag: {stderr}");
    }
    assert!(!tmp.path().join("out").join("decsweep.db").exists(), "nothing was started");
}
