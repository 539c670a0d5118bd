//! `decsweep status STUDY --trials` against a `decsweep serve` coordinator: the trial table's
//! header, the configuration labels the report files use, the swept parameter and the metric
//! named as such. No worker: the test leases and completes a trial through the API itself.

use std::collections::BTreeMap;
use std::process::Command;

use decsweep_api::wire::{CompleteTrial, LeaseRequest};

mod common;

use common::{client, decsweep, free_port, status, submit};

const SPEC: &str = r#"
[study]
name = "listed"
dataset = { synthetic = { seed = 0, n = 40 } }
pipelines = ["baseline", "dec"]
seeds = [0]

[space]
label_fraction = { grid = [0.5, 1.0] }
"#;

#[test]
fn status_trials_prints_a_header_labels_swept_parameters_and_named_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let server = common::serve(&tmp.path().join("c.db"), free_port(), 30);
    let spec = tmp.path().join("listed.toml");
    std::fs::write(&spec, SPEC).unwrap();
    submit(&server.url, &spec);
    let api = client(&server.url);
    let request = LeaseRequest { worker: "w/0".into(), wait_ms: 0, agent: None, pack: None };
    let lease = api.lease(&request).unwrap().expect("a pending trial");
    let metrics = BTreeMap::from([("accuracy".to_string(), 0.75)]);
    api.complete(&lease.lease_id, &CompleteTrial { metrics, manifest: None }).unwrap();

    let o =
        Command::new(decsweep()).args(["status", "listed", "--trials", "--coordinator", &server.url]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // The study's line, the header, one line per trial.
    assert_eq!(lines.len(), 6, "{text}");
    let header: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        header,
        ["id", "config", "label_fraction", "seed", "status", "attempts", "accuracy", "worker", "error"],
        "{text}"
    );
    let (_, trials) = status(&server.url, "listed");
    for t in &trials {
        let line = lines.iter().find(|l| l.split_whitespace().next() == Some(&t.id.to_string())).unwrap();
        let lf = &t.params["label_fraction"];
        assert!(line.contains(&format!("{} lf={lf}", t.pipeline)), "trial {} named by its label: {text}", t.id);
        assert!(!line.contains(&t.config_id), "no hash: {line}");
        if t.id == lease.trial_id {
            assert!(line.contains("completed") && line.contains("0.7500") && line.contains("w/0"), "{line}");
        } else {
            assert!(line.contains("pending"), "{line}");
        }
    }
}
