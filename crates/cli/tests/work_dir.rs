//! The workers' folder: `decsweep run --work-dir` (and `$DECSWEEP_HOME`, named in its help) puts
//! what the workers fetch and make there, and `decsweep cache du|clean` measures and clears it.

use std::path::Path;
use std::process::{Command, Output};

mod common;

use common::{decsweep, worker_bin};

fn cli(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(decsweep());
    cmd.args(args).env_remove("DECSWEEP_HOME");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn run_help_names_the_work_dir_its_variable_and_the_cache_command() {
    let o = cli(&["run", "--help"], &[]);
    let help = text(&o.stdout);
    assert!(o.status.success(), "{help}");
    for needle in ["--work-dir <DIR>", "DECSWEEP_HOME", "~/.cache/decsweep", "decsweep cache du"] {
        assert!(help.contains(needle), "run --help lacks {needle:?}:\n{help}");
    }
}

/// What `cache du --json` says of each part: (files, bytes).
fn du(dir: &Path) -> serde_json::Value {
    let o = cli(&["cache", "du", "--json", "--work-dir", dir.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn run_puts_the_workers_files_in_its_work_dir_and_cache_du_and_clean_see_and_clear_them() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let spec = tmp.path().join("tiny.toml");
    std::fs::write(
        &spec,
        "[study]\nname = \"tiny\"\ndataset = { synthetic = { seed = 3, n = 240 } }\npipelines = [\"dec\"]\nseeds = [0]\n\n\
         [fixed]\nd_model = 8\nn_heads = 2\nn_layers = 1\nff_dim = 16\nlatent_dim = 4\nbatch_size = 16\n\
         epochs_ae = 1\nepochs_dec = 1\nepochs_ft = 1\n",
    )
    .unwrap();
    let (work, home) = (tmp.path().join("work"), tmp.path().join("home"));
    let out = tmp.path().join("out");
    // The flag and the variable both given: --work-dir wins.
    let o = Command::new(decsweep())
        .args(["run", spec.to_str().unwrap(), "--workers", "1", "--threads", "1", "--device", "cpu", "--out"])
        .arg(&out)
        .arg("--work-dir")
        .arg(&work)
        .env("DECSWEEP_HOME", &home)
        .env("DECSWEEP_WORKER", worker_bin())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!home.exists(), "the workers used DECSWEEP_HOME although --work-dir was given");

    let used = du(&work);
    for part in ["datasets", "stages", "trials"] {
        assert!(used["parts"][part]["files"].as_u64().unwrap() > 0, "{part} is empty: {used}");
    }
    let total = used["total"]["bytes"].as_u64().unwrap();
    let parts: u64 = used["parts"].as_object().unwrap().values().map(|p| p["bytes"].as_u64().unwrap()).sum();
    assert_eq!(total, parts, "{used}");
    let table = cli(&["cache", "du"], &[("DECSWEEP_HOME", &work)]);
    let table = text(&table.stdout);
    assert!(table.starts_with(&work.display().to_string()) && table.contains("stages"), "{table}");

    // --only clears that part and nothing else, keeping the folder for a running worker.
    let o = cli(&["cache", "clean", "--only", "stages", "--work-dir", work.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("freed"), "{}", text(&o.stdout));
    let after = du(&work);
    assert_eq!(after["parts"]["stages"]["files"], 0, "{after}");
    assert!(work.join("stages").is_dir());
    assert_eq!(after["parts"]["datasets"], used["parts"]["datasets"], "{after}");

    // Without --only: everything; a folder that does not exist is nothing to clear.
    let o = cli(&["cache", "clean"], &[("DECSWEEP_HOME", &work)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(du(&work)["total"]["files"], 0);
    let o = cli(&["cache", "clean", "--work-dir", tmp.path().join("none").to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = cli(&["cache", "clean", "--only", "everything"], &[("DECSWEEP_HOME", &work)]);
    assert_eq!(o.status.code(), Some(2), "an unknown part is bad input: {}", text(&o.stderr));
}
