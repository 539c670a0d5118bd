//! `make gpu-check` (tools/gpu-check.sh) on CPU with tiny settings, so the script that measures
//! a GPU machine cannot rot unseen: every step runs (the parity test aside, which `make test`
//! runs itself) and its figures land in the one file the script writes.
//!
//! Needs `DECSWEEP_PYTHON` at a python with torch (as the parity tests do; the Makefile sets it)
//! and the debug binaries (`make test` builds every binary first).

use std::path::Path;
use std::process::Command;

mod common;

#[test]
fn the_gpu_check_script_runs_every_step_on_cpu_and_writes_one_file() {
    let python = std::env::var("DECSWEEP_PYTHON").unwrap_or_else(|_| "python3".into());
    let torch = Command::new(&python)
        .args(["-c", "import os, torch; print(os.path.dirname(torch.__file__))"])
        .output()
        .unwrap_or_else(|e| panic!("{python} cannot be run ({e}); point DECSWEEP_PYTHON at the venv's python"));
    assert!(torch.status.success(), "{python} cannot import torch: {}", String::from_utf8_lossy(&torch.stderr));
    let torch = String::from_utf8(torch.stdout).unwrap().trim().to_string();

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("gpu-check.txt");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = common::worker_bin().parent().unwrap().to_path_buf();
    let o = Command::new("bash")
        .arg(root.join("tools/gpu-check.sh"))
        .env("DECSWEEP_TORCH", &torch)
        .env("DECSWEEP_PYTHON", &python)
        .env("GPU_CHECK_DEVICE", "cpu")
        .env("GPU_CHECK_TINY", "1")
        .env("GPU_CHECK_PARITY", "skip")
        .env("GPU_CHECK_BIN", &bin)
        .env("GPU_CHECK_OUT", &out)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(o.status.success(), "gpu-check failed ({}):\n{text}\n{}", o.status, String::from_utf8_lossy(&o.stderr));
    for needle in [
        "device: cpu",
        "## info",
        "## bench-train",
        "## paper-trial",
        "wall_s ",
        "## bench-pack",
        "## pack-run",
        "8/8 trials completed; packs: ",
        "failed steps: 0",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from the figures:\n{text}");
    }
    assert!(!text.contains("packs: none"), "the --pack run trained packs:\n{text}");

    // Bad settings are refused before anything runs, naming the variable.
    let o = Command::new("bash")
        .arg(root.join("tools/gpu-check.sh"))
        .env("DECSWEEP_TORCH", &torch)
        .env("GPU_CHECK_DEVICE", "tpu")
        .env("GPU_CHECK_OUT", tmp.path().join("never.txt"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(100));
    assert!(String::from_utf8_lossy(&o.stderr).contains("GPU_CHECK_DEVICE must be cuda, cuda:K or cpu"));
    let o = Command::new("bash").arg(root.join("tools/gpu-check.sh")).env_remove("DECSWEEP_TORCH").output().unwrap();
    assert_eq!(o.status.code(), Some(100));
    assert!(String::from_utf8_lossy(&o.stderr).contains("DECSWEEP_TORCH must name the torch directory"));
}
