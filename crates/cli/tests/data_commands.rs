//! Runs the built `decsweep` binary the way a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn decsweep(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_decsweep")).args(args).output().expect("run decsweep")
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn synth_then_inspect_agree() {
    let dir = scratch("synth");
    let file = dir.join("nested/mosi.safetensors");
    let file_arg = file.to_str().unwrap();
    let out = decsweep(&["data", "synth", "--out", file_arg, "--seed", "3", "--n", "300"]);
    assert!(out.status.success(), "synth failed: {}", text(&out.stderr));
    let synth_line = text(&out.stdout);
    assert!(synth_line.contains("300 rows; dims text 300 audio 74 vision 47"), "{synth_line}");
    assert!(synth_line.contains("split ") && synth_line.contains("sha256 "), "{synth_line}");

    let out = decsweep(&["data", "inspect", file_arg]);
    assert!(out.status.success(), "inspect failed: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), synth_line, "inspect prints the same summary");

    let out = decsweep(&["--log-format", "json", "data", "inspect", "--json", file_arg]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["rows"], 300);
    assert_eq!(v["dims"], serde_json::json!([300, 74, 47]));
    let split = v["split"].as_array().unwrap();
    assert_eq!(split.iter().map(|x| x.as_u64().unwrap()).sum::<u64>(), 300);
    assert_eq!(v["sha256"].as_str().unwrap().len(), 64);
    assert!(synth_line.contains(v["sha256"].as_str().unwrap()));

    // Same seed, same bytes; JSON log lines on stderr when asked.
    let again = dir.join("again.safetensors");
    let out = decsweep(&[
        "--log-format",
        "json",
        "data",
        "synth",
        "--out",
        again.to_str().unwrap(),
        "--seed",
        "3",
        "--n",
        "300",
    ]);
    assert!(out.status.success());
    assert_eq!(std::fs::read(&file).unwrap(), std::fs::read(&again).unwrap());
    let stderr = text(&out.stderr);
    let log: serde_json::Value = serde_json::from_str(stderr.lines().next().expect("a log line"))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stderr}"));
    assert_eq!(log["level"], "INFO");
    assert_eq!(log["fields"]["message"], "wrote synthetic dataset");
}

#[test]
fn missing_and_invalid_files_exit_2_naming_the_path() {
    let dir = scratch("bad");
    let missing = dir.join("nope.safetensors");
    let out = decsweep(&["data", "inspect", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("nope.safetensors"), "{}", text(&out.stderr));

    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"this is not a safetensors file at all").unwrap();
    let out = decsweep(&["data", "inspect", garbage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("garbage.safetensors"), "{}", text(&out.stderr));
}

#[test]
fn truncated_file_exits_2() {
    let dir = scratch("truncated");
    let file = dir.join("t.safetensors");
    let out = decsweep(&["data", "synth", "--out", file.to_str().unwrap(), "--seed", "0", "--n", "20"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 100]).unwrap();
    let out = decsweep(&["data", "inspect", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    // The header is intact, so the error names the first tensor whose data the file lacks.
    assert!(stderr.contains("t.safetensors") && stderr.contains("truncated?"), "{stderr}");
}

#[test]
fn usage_errors_exit_2_and_help_documents_commands() {
    assert_eq!(decsweep(&["data", "synth", "--seed", "1"]).status.code(), Some(2), "--out is required");
    assert_eq!(decsweep(&["data", "synth", "--out", "x", "--seed", "1", "--n", "0"]).status.code(), Some(2));
    assert_eq!(decsweep(&["--log-format", "xml", "data", "inspect", "f"]).status.code(), Some(2));
    let help = decsweep(&["data", "synth", "--help"]);
    assert!(help.status.success());
    let help = text(&help.stdout);
    assert!(help.contains("--seed") && help.contains("synthetic CMU-MOSI"), "{help}");
}

#[test]
fn synth_clustered_with_knobs() {
    let dir = scratch("clustered");
    let file = dir.join("c.safetensors");
    let f = file.to_str().unwrap();
    let args = ["data", "synth", "--kind", "clustered", "--out", f, "--seed", "2", "--n", "200", "--separation", "4"];
    let out = decsweep(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    assert!(line.contains("200 rows; dims text 300 audio 74 vision 47"), "{line}");
    let ds = decsweep_data::load(&file).unwrap();
    assert!(ds.meta.source.contains("clustered") && ds.meta.source.contains("separation=4"), "{}", ds.meta.source);

    // The same flags give the same bytes; another knob value other bytes; the default kind
    // is still the linear generator.
    let again = dir.join("again.safetensors");
    let mut args2 = args;
    args2[5] = again.to_str().unwrap();
    assert!(decsweep(&args2).status.success());
    assert_eq!(std::fs::read(&file).unwrap(), std::fs::read(&again).unwrap());
    args2[11] = "5";
    assert!(decsweep(&args2).status.success());
    assert_ne!(std::fs::read(&file).unwrap(), std::fs::read(&again).unwrap());
    let linear = dir.join("linear.safetensors");
    assert!(decsweep(&["data", "synth", "--out", linear.to_str().unwrap(), "--seed", "2", "--n", "200"])
        .status
        .success());
    assert!(decsweep_data::load(&linear).unwrap().meta.source.starts_with("decsweep synthetic CMU-MOSI"));

    // A knob without the kind, or out of range, is bad input naming the flag.
    let out = decsweep(&["data", "synth", "--out", f, "--seed", "2", "--separation", "3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--separation is a knob of the clustered generator"), "{}", text(&out.stderr));
    let out = decsweep(&["data", "synth", "--kind", "clustered", "--out", f, "--seed", "2", "--share-text", "1.5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--share-text") && text(&out.stderr).contains("[0, 1]"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(decsweep(&["data", "synth", "--kind", "spiral", "--out", f, "--seed", "2"]).status.code(), Some(2));
}

#[test]
fn inspect_warns_about_rows_far_past_seq_len() {
    let dir = scratch("long");
    let file = dir.join("long.safetensors");
    let cfg = decsweep_data::SynthConfig { n: 20, seed: 0, dims: [3, 2, 2], max_len: 400, min_len: 300 };
    decsweep_data::save(&decsweep_data::synthesize(&cfg), &file).unwrap();
    let out = decsweep(&["data", "inspect", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("far past seq_len = 30") && stderr.contains("time_pool = resample"), "{stderr}");
    // Against a seq_len the rows fit in, nothing to say.
    let out = decsweep(&["data", "inspect", "--seq-len", "200", file.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(!text(&out.stderr).contains("far past"), "{}", text(&out.stderr));
}
