//! The spec fuzzing of `crates/search/tests/fuzz_spec.rs` seen from the command line (issue 12,
//! part 5): a few random, non-UTF-8 and mutated spec files that the parser refuses, given to
//! `decsweep run` and `decsweep submit`. Each must exit 2 with a message naming the file, never
//! panic, and create nothing. (Few cases: each starts a process; the parser campaign runs
//! thousands.)

use std::path::Path;
use std::process::{Command, Output};

use decsweep_fuzz::{mutate_bytes, mutate_lines, mutate_tokens, random_bytes, Campaign, Rng, INVALID_UTF8};
use decsweep_search::{LoadOptions, SweepSpec};

fn decsweep() -> &'static str {
    env!("CARGO_BIN_EXE_decsweep")
}

fn demo_spec() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sweeps/demo.toml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A spec file the parser refuses, from case `rng`.
fn refused_spec(rng: &mut decsweep_fuzz::FuzzRng, base: &str, path: &Path) -> Vec<u8> {
    loop {
        let bytes = match rng.gen_range(0..5) {
            0 => random_bytes(rng, 512),
            1 => {
                let mut b = base.as_bytes().to_vec();
                let at = rng.gen_range(0..=b.len());
                b.splice(at..at, INVALID_UTF8[rng.gen_range(0..INVALID_UTF8.len())].iter().copied());
                b
            }
            2 => mutate_bytes(rng, base.as_bytes()),
            3 => mutate_lines(rng, base).into_bytes(),
            _ => mutate_tokens(rng, base).into_bytes(),
        };
        std::fs::write(path, &bytes).unwrap();
        if SweepSpec::load_with(path, &LoadOptions { check_dataset: false }).is_err() {
            return bytes;
        }
    }
}

/// Exit 2 and the file named (as given, or canonical: parse errors name the canonical path).
fn check_refused(o: &Output, command: &str, paths: [&Path; 2], bytes: &[u8]) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    let shown = String::from_utf8_lossy(bytes).chars().take(300).collect::<String>();
    assert_eq!(o.status.code(), Some(2), "`decsweep {command}` on {shown:?}:\n{stderr}");
    let named = paths.iter().any(|p| stderr.contains(&p.display().to_string()));
    assert!(named, "`decsweep {command}` does not name the file:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn run_and_submit_exit_2_naming_a_fuzzed_spec_file() {
    let tmp = tempfile::tempdir().unwrap();
    let base = demo_spec();
    let campaign = Campaign::new("cli spec files", 24);
    let results = tmp.path().join("results");
    let ran = campaign.run(|i, rng| {
        let path = tmp.path().join(format!("case-{i}.toml"));
        let bytes = refused_spec(rng, &base, &path);
        let canonical = std::fs::canonicalize(&path).unwrap();
        let run = Command::new(decsweep())
            .args(["run", path.to_str().unwrap(), "--results", results.to_str().unwrap(), "--device", "cpu"])
            .output()
            .unwrap();
        check_refused(&run, "run", [&path, &canonical], &bytes);
        // Nothing listens on port 1: the spec must be refused before any request.
        let submit = Command::new(decsweep())
            .args(["submit", path.to_str().unwrap(), "--coordinator", "http://127.0.0.1:1"])
            .env_remove("DECSWEEP_TOKEN")
            .output()
            .unwrap();
        check_refused(&submit, "submit", [&path, &canonical], &bytes);
    });
    campaign.report(ran, "(run and submit each: exit 2, file named)");
    assert!(!results.exists(), "a refused spec creates nothing");
}
