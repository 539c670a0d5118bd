//! `decsweep report --coordinator` reads a study through the bulk export
//! (`GET /v1/studies/{name}/export`) with only the read token, and writes the very files
//! `decsweep report --db` writes from the same database.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

mod common;

use common::{agent_with, decsweep, serve_with, wait_for};

const TOKEN: &str = "report-remote-full-token-0123456789";
const READ_TOKEN: &str = "report-remote-read-token-0123456789";

/// A programs-only study whose trials report three steps (curves) and then their accuracy.
const SPEC: &str = r#"
[study]
name = "remote"
pipelines = ["command"]
seeds = [0, 1]

[command]
program = ["sh", "-c", 'for s in 1 2 3; do echo "{\"decsweep\": \"report\", \"step\": $s, \"steps\": 3, \"train_loss\": $s.5, \"val_loss\": 1.$s}"; done; echo "{\"accuracy\": $2}"', "sh"]

[space]
x = { grid = [0.25, 0.5, 0.75] }
"#;

fn secret(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{text}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.to_str().unwrap().to_string()
}

fn cli(args: &[&str], token: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(decsweep());
    cmd.args(args).env_remove("DECSWEEP_TOKEN").env_remove("DECSWEEP_TOKEN_FILE");
    if let Some(t) = token {
        cmd.env("DECSWEEP_TOKEN", t);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    o
}

/// Every file of `dir` by name.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect()
}

#[test]
fn report_from_a_coordinator_writes_what_report_from_its_database_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("remote.db");
    let token_file = secret(dir, "token", TOKEN);
    let read_file = secret(dir, "read-token", READ_TOKEN);
    let extra = ["--token-file", &token_file, "--read-token-file", &read_file].map(std::ffi::OsStr::new);
    let server = serve_with(&db, 0, 5, &extra);
    let spec = dir.join("remote.toml");
    std::fs::write(&spec, SPEC).unwrap();
    cli(&["submit", spec.to_str().unwrap(), "--coordinator", &server.url], Some(TOKEN));
    let _worker =
        agent_with(&server.url, &dir.join("home"), &["--token-file", &token_file], &[], std::process::Stdio::null());
    let client = decsweep_connect::Client::new(&server.url, Some(READ_TOKEN.into())).unwrap();
    wait_for("the study to finish", Duration::from_secs(120), || {
        let c = client.study("remote").unwrap().counts;
        c.completed == 6
    });

    let remote = dir.join("from-coordinator");
    let args = ["report", "remote", "--coordinator", &server.url, "--out", remote.to_str().unwrap()];
    cli(&args, Some(READ_TOKEN));
    drop(server);
    let local = dir.join("from-db");
    cli(&["report", "remote", "--db", db.to_str().unwrap(), "--out", local.to_str().unwrap()], None);

    let (remote, local) = (files(&remote), files(&local));
    assert_eq!(remote.keys().collect::<Vec<_>>(), local.keys().collect::<Vec<_>>());
    assert!(remote.keys().any(|f| f.starts_with("curves_")), "the trials' curves are plotted: {:?}", remote.keys());
    for (name, bytes) in &remote {
        assert!(
            bytes == &local[name],
            "{name} differs:\n{}\n---\n{}",
            String::from_utf8_lossy(bytes),
            String::from_utf8_lossy(&local[name])
        );
    }
}
