//! Helpers shared by the end-to-end tests that drive the built binaries.

use std::path::PathBuf;

pub fn decsweep() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_decsweep"))
}

pub fn worker_bin() -> PathBuf {
    let path = decsweep().with_file_name("decsweep-worker");
    assert!(
        path.exists(),
        "{} is missing: build every binary first (`cargo build --workspace --bins`; make test does)",
        path.display()
    );
    path
}
