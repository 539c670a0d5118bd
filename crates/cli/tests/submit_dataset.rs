//! `decsweep submit` with a spec naming a dataset file: the bytes are uploaded (once per
//! content) and the coordinator reads no path the client names (issue 18, finding 1).

use std::path::Path;
use std::process::{Command, Output};

use decsweep_api::wire::StudyInfo;

mod common;

use common::{cli_json, decsweep, serve_with};

fn submit(spec: &Path, url: &str) -> Output {
    Command::new(decsweep()).args(["submit", spec.to_str().unwrap(), "--coordinator", url]).output().unwrap()
}

fn spec(name: &str, dataset: &str) -> String {
    format!("[study]\nname = \"{name}\"\ndataset = \"{dataset}\"\npipelines = [\"baseline\"]\nseeds = [0]\n\n[fixed]\nepochs_ft = 1\n")
}

#[test]
fn submit_uploads_the_dataset_once_and_the_coordinator_reads_no_client_path() {
    let tmp = tempfile::tempdir().unwrap();
    let (client, root) = (tmp.path().join("client"), tmp.path().join("root"));
    std::fs::create_dir_all(client.join("data")).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    let cfg = decsweep_data::SynthConfig { n: 10, seed: 2, ..Default::default() };
    let dataset = client.join("data/mosi.safetensors");
    decsweep_data::save(&decsweep_data::synthesize(&cfg), &dataset).unwrap();
    let sha = decsweep_data::content_hash(&dataset).unwrap();
    let root_arg = root.clone().into_os_string();
    let server = serve_with(&tmp.path().join("c.db"), 0, 30, &["--data-root".as_ref(), root_arg.as_os_str()]);

    // Relative to the spec file, on the submitting machine: uploaded, then used.
    let path = client.join("a.toml");
    std::fs::write(&path, spec("a", "data/mosi.safetensors")).unwrap();
    let o = submit(&path, &server.url);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("uploaded dataset") && stderr.contains("mosi.safetensors"), "{stderr}");
    let status: serde_json::Value = cli_json(&["status", "a", "--json", "--coordinator", &server.url]);
    let study: StudyInfo = serde_json::from_value(status["studies"][0].clone()).unwrap();
    assert_eq!(study.dataset_sha256, sha);

    // The same content again: not sent again.
    let path = client.join("b.toml");
    std::fs::write(&path, spec("b", "data/mosi.safetensors")).unwrap();
    let o = submit(&path, &server.url);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("uploaded dataset"), "the coordinator had it");

    // Not on this machine and not below the coordinator's data root: refused, naming the rule.
    let path = client.join("c.toml");
    std::fs::write(&path, spec("c", "/etc/shadow-of-a-doubt.safetensors")).unwrap();
    let o = submit(&path, &server.url);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--data-root"), "{stderr}");

    // A local file that is not a dataset: refused, naming the file; nothing is stored.
    std::fs::write(client.join("data/notes.safetensors"), b"not a dataset").unwrap();
    let path = client.join("d.toml");
    std::fs::write(&path, spec("d", "data/notes.safetensors")).unwrap();
    let o = submit(&path, &server.url);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("notes.safetensors") && stderr.contains("not a decsweep dataset"), "{stderr}");
    let stored: Vec<_> =
        std::fs::read_dir(tmp.path().join("c.db.data")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(stored.len(), 1, "only the one dataset: {stored:?}");
}

/// The number of trials in a coordinator database (0 when it was never created).
fn trials_in(db: &Path) -> i64 {
    if !db.exists() {
        return 0;
    }
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("SELECT count(*) FROM trials", [], |r| r.get(0)).unwrap()
}

/// A valid dataset file cut short: the header promises tensors the file no longer holds.
fn truncated_dataset(path: &Path) {
    let cfg = decsweep_data::SynthConfig { n: 10, seed: 2, ..Default::default() };
    decsweep_data::save(&decsweep_data::synthesize(&cfg), path).unwrap();
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
}

#[test]
fn a_corrupt_dataset_is_refused_where_the_user_is_before_any_trial_exists() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    truncated_dataset(&tmp.path().join("data/cut.safetensors"));

    // `run`: exit 2 naming the path as the spec wrote it; no database, no trial, no worker.
    let path = tmp.path().join("cut.toml");
    std::fs::write(&path, spec("cut", "data/cut.safetensors")).unwrap();
    let out = tmp.path().join("results");
    let o = Command::new(decsweep())
        .args(["run", path.to_str().unwrap(), "--workers", "1", "--device", "cpu", "--out"])
        .arg(&out)
        .env("DECSWEEP_WORKER", "/nonexistent/decsweep-worker")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("dataset `data/cut.safetensors` of") && stderr.contains("truncated"), "{stderr}");
    assert_eq!(trials_in(&out.join("decsweep.db")), 0);

    // An empty file (here /dev/null) is said to be empty, once.
    std::fs::write(&path, spec("null", "/dev/null")).unwrap();
    let o = Command::new(decsweep()).args(["run", path.to_str().unwrap(), "--out"]).arg(&out).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/dev/null: the file is empty, not a dataset"), "{stderr}");
    assert!(!stderr.contains("too small") && stderr.matches("empty").count() == 1, "{stderr}");

    // `submit`: refused before the coordinator hears of the study; it stores nothing.
    let db = tmp.path().join("c.db");
    let server = serve_with(&db, 0, 30, &[]);
    std::fs::write(&path, spec("cut", "data/cut.safetensors")).unwrap();
    let o = submit(&path, &server.url);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("dataset `data/cut.safetensors` of") && stderr.contains("cut.safetensors"), "{stderr}");
    assert!(!stderr.contains("uploaded"), "{stderr}");
    let status: serde_json::Value = cli_json(&["status", "--json", "--coordinator", &server.url]);
    assert_eq!(status["studies"], serde_json::json!([]), "{status}");
    assert_eq!(trials_in(&db), 0);
}

#[test]
fn a_worker_replaces_a_corrupt_cached_copy_and_names_the_studys_dataset() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    let dataset = tmp.path().join("data/mosi.safetensors");
    let cfg = decsweep_data::SynthConfig { n: 240, seed: 3, ..Default::default() };
    decsweep_data::save(&decsweep_data::synthesize(&cfg), &dataset).unwrap();
    let sha = decsweep_data::content_hash(&dataset).unwrap();
    let server = serve_with(&tmp.path().join("c.db"), 0, 30, &[]);
    let path = tmp.path().join("w.toml");
    std::fs::write(&path, spec("w", "data/mosi.safetensors") + "d_model = 8\nn_heads = 2\nff_dim = 16\n").unwrap();
    let o = submit(&path, &server.url);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // This machine's copy went bad (a disk error, an edit): the worker must not trust it.
    let home = tmp.path().join("home");
    let cached = home.join("datasets").join(format!("{sha}.safetensors"));
    std::fs::create_dir_all(cached.parent().unwrap()).unwrap();
    std::fs::write(&cached, b"749118580988207463 bytes of header, says this text").unwrap();
    let log = tmp.path().join("worker.log");
    let mut worker =
        common::agent_with(&server.url, &home, &["--exit-when-idle"], &[], std::fs::File::create(&log).unwrap());
    let status = worker.0.wait().unwrap();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status}: {log}");
    let (study, trials) = common::status(&server.url, "w");
    assert_eq!(study.counts.completed, 1, "{trials:?}\n{log}");
    assert!(log.contains("the cached copy of the dataset of study `w`"), "{log}");
    assert!(log.contains(&cached.display().to_string()) && log.contains("upload:data/mosi.safetensors"), "{log}");
    assert_eq!(decsweep_data::content_hash(&cached).unwrap(), sha, "the copy was downloaded again");
}
