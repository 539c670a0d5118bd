//! Fuzzing the sweep spec parser (issue 12, part 5): random bytes, files that are not UTF-8,
//! and the specs in `sweeps/` (plus a `command` and a random-sampler spec) mutated byte-, line-
//! and token-wise. Every file either loads or is an error whose every problem names the file at
//! a line and column inside it; nothing panics. Case counts: see `decsweep_fuzz::Campaign`
//! (`DECSWEEP_FUZZ_CASES` multiplies them; `make fuzz`).

use std::path::{Path, PathBuf};

use decsweep_fuzz::{
    mutate_bytes, mutate_lines, mutate_tokens, random_bytes, Campaign, FuzzRng, Rng, SliceRandom, INVALID_UTF8,
};
use decsweep_search::{LoadError, LoadOptions, SweepSpec};

/// Specs that load, to mutate: every file in sweeps/ and two that reach other parts of the
/// parser (the `command` pipeline, the random sampler, explicit configs).
fn corpus() -> Vec<String> {
    let sweeps = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sweeps");
    let mut specs: Vec<String> = std::fs::read_dir(&sweeps)
        .unwrap_or_else(|e| panic!("{}: {e}", sweeps.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect();
    assert!(specs.len() >= 4, "sweeps/ should hold the example specs");
    specs.push(
        r#"[study]
name = "cmd"
dataset = { synthetic = { seed = 0, n = 20 } }
pipelines = ["command"]
seeds = [0, 1, 2]
retries = 0

[command]
program = ["python3", "train.py"]
pass = "env"
env = { OMP_NUM_THREADS = "1" }

[sampler]
kind = "random"
n_trials = 5
seed = 7

[space]
lr = { loguniform = [1e-5, 1e-1] }
layers = { int = [1, 4] }
act = { choice = ["relu", "gelu"] }

[objective]
metric = "loss"
direction = "minimize"
"#
        .to_string(),
    );
    specs.push(
        r#"[study]
name = "configs"
dataset = "data/x.safetensors"
seeds = [0]

[[configs]]
label = "a"
pipeline = "dec"
params = { label_fraction = 1.0, alpha = 0.5 }

[[configs]]
label = "b"
pipeline = "baseline"

[pruner]
kind = "asha"
"#
        .to_string(),
    );
    specs
}

/// Mutation kinds, named in the summary.
const KINDS: [&str; 6] = ["random bytes", "not UTF-8", "bytes", "lines", "tokens", "lines+tokens"];

fn make_case(rng: &mut FuzzRng, corpus: &[String]) -> (usize, Vec<u8>) {
    let base = corpus.choose(rng).unwrap();
    let kind = rng.gen_range(0..KINDS.len());
    let bytes = match kind {
        0 => random_bytes(rng, 4096),
        1 => {
            let mut b = base.as_bytes().to_vec();
            let at = rng.gen_range(0..=b.len());
            b.splice(at..at, INVALID_UTF8.choose(rng).unwrap().iter().copied());
            b
        }
        2 => mutate_bytes(rng, base.as_bytes()),
        3 => mutate_lines(rng, base).into_bytes(),
        4 => mutate_tokens(rng, base).into_bytes(),
        _ => {
            let lines = mutate_lines(rng, base);
            mutate_tokens(rng, &lines).into_bytes()
        }
    };
    (kind, bytes)
}

/// Loads one file and checks the contract; returns whether it loaded.
fn check(path: &Path, bytes: &[u8], options: &LoadOptions) -> bool {
    let shown = path.display().to_string();
    match SweepSpec::load_with(path, options) {
        Ok(spec) => {
            assert!(std::str::from_utf8(bytes).is_ok(), "{shown}: a file that is not UTF-8 loaded");
            assert!(!spec.name().is_empty());
            true
        }
        Err(e @ LoadError::Read { .. }) => {
            assert!(e.to_string().starts_with(&shown), "the error does not name the file: {e}");
            false
        }
        Err(LoadError::Invalid(errors)) => {
            assert!(!errors.is_empty(), "{shown}: an error without problems");
            let lines = String::from_utf8_lossy(bytes).lines().count().max(1);
            for e in &errors {
                assert_eq!(e.path, path, "a problem names another file: {e}");
                assert!(e.to_string().starts_with(&shown), "{e}");
                assert!(e.line >= 1 && e.line <= lines + 1, "{e}: line outside the file's {lines} lines");
                assert!(e.column >= 1, "{e}");
                assert!(!e.message.trim().is_empty(), "{shown}: a problem without a message");
            }
            false
        }
    }
}

#[test]
fn spec_files_never_panic_and_every_error_names_the_file() {
    let corpus = corpus();
    let dir = tempfile::tempdir().unwrap();
    let campaign = Campaign::new("spec files", 10_000);
    let mut by_kind = [(0usize, 0usize); KINDS.len()];
    let ran = campaign.run(|i, rng| {
        let (kind, bytes) = make_case(rng, &corpus);
        let path: PathBuf = dir.path().join(format!("case-{i}.toml"));
        std::fs::write(&path, &bytes).unwrap();
        // Half the cases also require the dataset file, as `decsweep run` does.
        let options = LoadOptions { check_dataset: rng.gen_bool(0.5) };
        let loaded = check(&path, &bytes, &options);
        by_kind[kind].0 += 1;
        by_kind[kind].1 += usize::from(loaded);
        std::fs::remove_file(&path).unwrap();
    });
    let detail: Vec<String> = KINDS.iter().zip(by_kind).map(|(k, (n, ok))| format!("{k} {n} ({ok} loaded)")).collect();
    campaign.report(ran, &format!("[{}]", detail.join(", ")));
    // The mutations must leave some specs valid, or they only ever test the first check.
    let loaded: usize = by_kind.iter().map(|(_, ok)| ok).sum();
    let refused = ran - loaded;
    assert!(loaded * 50 >= ran && refused * 2 >= ran, "{loaded} loaded, {refused} refused of {ran}");
}

#[test]
fn the_example_specs_load_unmutated() {
    // The corpus is only worth mutating if it is valid to begin with.
    let dir = tempfile::tempdir().unwrap();
    for (i, spec) in corpus().iter().enumerate() {
        let path = dir.path().join(format!("spec-{i}.toml"));
        std::fs::write(&path, spec).unwrap();
        let result = SweepSpec::load_with(&path, &LoadOptions { check_dataset: false });
        assert!(result.is_ok(), "{}", result.err().map(|e| e.to_string()).unwrap_or_default());
    }
}
