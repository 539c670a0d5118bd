//! Options shared between commands: `decsweep run` and `decsweep report` name their output
//! folder the same way (`--out`), and `run`'s old spelling `--results` still works, hidden.

use std::path::Path;
use std::process::{Command, Output};

fn decsweep(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_decsweep")).args(args).current_dir(dir).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn run_and_report_both_document_out_and_hide_the_old_spelling() {
    let tmp = tempfile::tempdir().unwrap();
    for command in ["run", "report"] {
        let o = decsweep(&[command, "--help"], tmp.path());
        assert!(o.status.success());
        let help = stdout(&o);
        assert!(help.contains("--out <DIR>"), "{command} --help:\n{help}");
        assert!(!help.contains("--results"), "the alias stays hidden in {command} --help:\n{help}");
    }
}

#[test]
fn the_old_results_spelling_is_still_the_output_folder() {
    let tmp = tempfile::tempdir().unwrap();
    // A spec that fails to parse: with either spelling the complaint is about the spec (exit 2,
    // file and line), never about an unknown option, and no output folder is made.
    let spec = tmp.path().join("spec.toml");
    std::fs::write(&spec, "[study]\nname = 1\n").unwrap();
    for option in ["--out", "--results"] {
        let o = decsweep(&["run", spec.to_str().unwrap(), option, "out"], tmp.path());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{option}: {err}");
        assert!(err.contains("spec.toml:2:"), "{option}: {err}");
        assert!(!err.contains("unexpected argument"), "{option}: {err}");
        assert!(!tmp.path().join("out").exists());
    }
    // `report` takes both spellings too; a missing database is reported as such.
    for option in ["--out", "--results"] {
        let o = decsweep(&["report", "s", "--db", "missing.db", option, "out"], tmp.path());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{option}: {err}");
        assert!(err.contains("missing.db: no such database"), "{option}: {err}");
    }
    // Given twice (old and new), clap refuses rather than silently picking one.
    let o = decsweep(&["report", "s", "--db", "x.db", "--out", "a", "--results", "b"], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot be used multiple times"));
}

#[test]
fn a_coordinator_url_without_a_scheme_is_bad_input_with_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, url) in [
        (vec!["status", "--coordinator", "127.0.0.1:8320"], "127.0.0.1:8320"),
        (vec!["status", "--coordinator", "localhost:8320"], "localhost:8320"),
        (vec!["cancel", "s", "--coordinator", "10.0.0.5:8320"], "10.0.0.5:8320"),
    ] {
        let o = decsweep(&args, tmp.path());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: bad input, not an unreachable coordinator: {err}");
        assert!(
            err.contains(&format!("`{url}` has no http:// or https:// scheme; did you mean http://{url}?")),
            "{err}"
        );
    }
}
