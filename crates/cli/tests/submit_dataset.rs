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
