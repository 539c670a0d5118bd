//! Running `tools/convert_mosi.py --format csd` on the fixtures of `tests/csd/make_fixtures.py`.
//! Shared by `crates/data/tests/convert_csd.rs` (the conversion rules) and
//! `crates/cli/tests/convert_csd.rs` (inspect and a study on the result), which includes this
//! file by path.

#![allow(dead_code)] // Each test binary uses its own share of the helpers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (both crates sit at `crates/<name>`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A python that can import numpy and h5py: $DECSWEEP_PYTHON (the Makefile and
/// `.cargo/config.toml` point it at .venv), else the workspace's .venv, else `python3`; or a
/// failure saying how to get one. The converter must not ship untested, so there is no skip.
pub fn python() -> String {
    let usable = |py: &str| {
        Command::new(py).args(["-c", "import numpy, h5py"]).output().map(|o| o.status.success()).unwrap_or(false)
    };
    let venv = repo().join(".venv/bin/python");
    let mut tried = Vec::new();
    let candidates = std::env::var("DECSWEEP_PYTHON")
        .ok()
        .into_iter()
        .chain([venv.to_string_lossy().into_owned(), "python3".to_string()]);
    for py in candidates {
        if usable(&py) {
            return py;
        }
        tried.push(py);
    }
    panic!(
        "tools/convert_mosi.py --format csd needs python3 with numpy and h5py and none was found (tried \
         {tried:?}). Run `make venv` (installs the pinned h5py into .venv) or set DECSWEEP_PYTHON."
    );
}

/// A fresh folder under the test's target tmp dir holding every fixture.
pub fn fixtures(py: &str, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("convert-csd-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(py).arg(repo().join("tests/csd/make_fixtures.py")).arg(&dir).output().unwrap();
    assert!(out.status.success(), "fixture writer failed: {}", String::from_utf8_lossy(&out.stderr));
    dir
}

/// The converter on the fixture files of `dir` (`text.csd`, `audio.csd`, `vision.csd`,
/// `labels.csd`, each replaceable through `swap`: (role, file name)), plus `extra` arguments.
pub fn convert(py: &str, dir: &Path, out: &Path, swap: &[(&str, &str)], extra: &[&str]) -> Output {
    let mut cmd = Command::new(py);
    cmd.arg(repo().join("tools/convert_mosi.py")).args(["--format", "csd"]);
    for role in ["text", "audio", "vision", "labels"] {
        let default = format!("{role}.csd");
        let file = swap.iter().find(|(r, _)| *r == role).map_or(default.as_str(), |(_, f)| *f);
        cmd.arg(format!("--{role}")).arg(dir.join(file));
    }
    cmd.arg("--out").arg(out).args(extra).output().expect("run the converter")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
