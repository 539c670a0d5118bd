//! Malformed sweep specs: `decsweep run` and `decsweep submit` exit 2 with the file, line and
//! column of the problem, before anything is created or any worker started.

use std::path::Path;
use std::process::Command;

const GOOD: &str = r#"[study]
name = "bad"
dataset = { synthetic = { seed = 0, n = 100 } }
pipelines = ["baseline", "dec"]
seeds = [0, 1]

[fixed]
epochs_ft = 3

[space]
label_fraction = { grid = [0.5, 1.0] }
"#;

/// (what is wrong, the spec, the `line:col` expected in the message, a word the message holds).
fn cases() -> Vec<(&'static str, String, &'static str, &'static str)> {
    let swap = |from: &str, to: &str| {
        assert!(GOOD.contains(from), "{from}");
        GOOD.replacen(from, to, 1)
    };
    vec![
        ("unknown top-level key", format!("{GOOD}\n[sampeler]\nkind = \"grid\"\n"), ":13:", "sampeler"),
        ("unknown study key", swap("seeds = [0, 1]", "seeds = [0, 1]\nowner = \"me\""), ":6:1", "owner"),
        ("wrong type", swap("epochs_ft = 3", "epochs_ft = \"three\""), ":8:", "epochs_ft"),
        ("empty grid", swap("{ grid = [0.5, 1.0] }", "{ grid = [] }"), ":11:", "grid"),
        ("empty choice", swap("{ grid = [0.5, 1.0] }", "{ choice = [] }"), ":11:", "choice"),
        ("out of range", swap("{ grid = [0.5, 1.0] }", "{ grid = [0.5, 1.5] }"), ":11:", "label_fraction"),
        (
            "uniform lo >= hi",
            swap("label_fraction = { grid = [0.5, 1.0] }", "lr_ft = { uniform = [0.1, 0.01] }"),
            ":11:",
            "lr_ft",
        ),
        (
            "loguniform lo <= 0",
            swap("label_fraction = { grid = [0.5, 1.0] }", "lr_ft = { loguniform = [0.0, 0.1] }"),
            ":11:",
            "loguniform",
        ),
        (
            "int with fractions",
            swap("label_fraction = { grid = [0.5, 1.0] }", "epochs_ae = { int = [1.5, 4] }"),
            ":11:",
            "epochs_ae",
        ),
        ("unknown parameter", swap("epochs_ft = 3", "learning_rate = 3"), ":8:1", "learning_rate"),
        (
            "parameter the pipelines do not read",
            swap("pipelines = [\"baseline\", \"dec\"]", "pipelines = [\"baseline\"]").replace("label_fraction", "beta"),
            ":11:1",
            "beta",
        ),
        ("fixed and searched", swap("epochs_ft = 3", "label_fraction = 0.4"), ":", "label_fraction"),
        ("no study name", swap("name = \"bad\"\n", ""), ":1:1", "name"),
        ("unknown pipeline", swap("\"baseline\", \"dec\"", "\"baseline\", \"transformer\""), ":4:", "transformer"),
        ("empty seeds", swap("seeds = [0, 1]", "seeds = []"), ":5:", "seeds"),
        ("duplicate seeds", swap("seeds = [0, 1]", "seeds = [0, 0]"), ":5:", "seed"),
        ("negative retries", swap("seeds = [0, 1]", "seeds = [0, 1]\nretries = -1"), ":6:", "retries"),
        ("TOML syntax", swap("epochs_ft = 3", "epochs_ft = = 3"), ":8:", ""),
        (
            "missing dataset file",
            swap("{ synthetic = { seed = 0, n = 100 } }", "\"no/such/file.safetensors\""),
            ":3:",
            "no/such/file.safetensors",
        ),
    ]
}

fn decsweep(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_decsweep")).args(args).current_dir(dir).output().unwrap()
}

#[test]
fn every_malformed_spec_exits_2_naming_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (what, text, at, word) in cases() {
        let path = tmp.path().join("spec.toml");
        std::fs::write(&path, &text).unwrap();
        let o = decsweep(&["run", path.to_str().unwrap(), "--out", "out"], tmp.path());
        let err = String::from_utf8_lossy(&o.stderr);
        let located = err.contains(&format!("spec.toml{at}"));
        if o.status.code() != Some(2) || !located || !err.contains(word) || err.contains("panicked") {
            failures
                .push(format!("{what}: exit {:?}, expected `spec.toml{at}` and `{word}` in:\n{err}", o.status.code()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(!tmp.path().join("out").join("decsweep.db").exists(), "nothing is created for a bad spec");
}

#[test]
fn the_good_spec_of_these_cases_is_valid() {
    // Guards the cases above: each must fail because of its one change, not the base.
    let spec = decsweep_search::SweepSpec::from_source(GOOD, "good.toml", &Default::default());
    assert!(spec.is_ok(), "{:?}", spec.err().map(|e| e.to_string()));
}
