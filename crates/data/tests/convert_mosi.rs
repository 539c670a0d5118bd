//! tools/convert_mosi.py end to end: small pickles in exactly the MMSA and MulT schemas (see the
//! script's docstring for where each key comes from) are converted, then read back with
//! `decsweep_data::load`.
//!
//! Needs a python with numpy: $DECSWEEP_PYTHON (the Makefile points it at .venv), else the
//! workspace's .venv, else `python3`. Without one the test fails: the converter would otherwise
//! ship untested.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use decsweep_data::{load, Dataset};

/// Writes the fixture pickles into argv[1]. Row `g` (0..11 over train, valid, test) of modality
/// `m` has `length(g, m)` valid steps holding `value(g, k, j, m)`; MMSA keeps them at the front,
/// MulT pads at the front. Audio gets a -inf in every split and vision a NaN in the test split.
const FIXTURES: &str = r#"
import pickle, sys
import numpy as np

out = sys.argv[1]
SPLITS = [("train", 6), ("valid", 2), ("test", 3)]
DIMS = [4, 3, 2]
NAMES = ["text", "audio", "vision"]
LABELS = [-3.0, -1.2, 0.0, 0.4, 1.8, 3.0, -0.6, 2.2, -2.4, 1.0, 0.6]

def value(g, k, j, m):
    return 1.0 + g * 1000 + k * 10 + j + m * 0.25

def length(g, m, t, aligned):
    return 1 + (g * 5 + (0 if aligned else m * 3)) % t

def make(fmt, aligned, steps=None):
    # `steps` given: MMSA's unaligned CMU-MOSI shape, each split's first row full length.
    full = steps is not None
    steps = steps or ([8, 8, 8] if aligned else [8, 10, 12])
    data, g0 = {}, 0
    for split, n in SPLITS:
        part = {}
        if full:
            lens = [[steps[m] - 7 * i for i in range(n)] for m in range(3)]
        else:
            lens = [[length(g0 + i, m, steps[m], aligned) for i in range(n)] for m in range(3)]
        for m in range(3):
            x = np.zeros((n, steps[m], DIMS[m]), np.float32)
            for i in range(n):
                L = lens[m][i]
                start = steps[m] - L if fmt == "mult" else 0
                for k in range(L):
                    for j in range(DIMS[m]):
                        x[i, start + k, j] = value(g0 + i, k, j, m)
            part[NAMES[m]] = x
        # Row 1's first valid audio step, feature 1: -inf, as in the released files.
        first = steps[1] - lens[1][1] if fmt == "mult" else 0
        part["audio"][1, first, 1] = -np.inf
        if split == "test":
            first = steps[2] - lens[2][0] if fmt == "mult" else 0
            part["vision"][0, first, 0] = np.nan
        labels = np.array(LABELS[g0:g0 + n], np.float32)
        if fmt == "mmsa":
            part["regression_labels"] = labels
            part["id"] = ["vid%d$_$%d" % (g0 + i, g0 + i) for i in range(n)]
            part["raw_text"] = ["words %d" % (g0 + i) for i in range(n)]
            bert = np.zeros((n, 3, steps[0]), np.int64)
            for i in range(n):
                bert[i, 0, :lens[0][i]] = 101 + i
                bert[i, 1, :lens[0][i]] = 1
            part["text_bert"] = bert
            if not aligned:
                part["audio_lengths"] = np.array(lens[1])
                part["vision_lengths"] = list(lens[2])
        else:
            part["labels"] = labels.reshape(n, 1, 1)
            part["id"] = np.array([[b"vid%d" % (g0 + i), b"%d" % (g0 + i), b"%d" % (g0 + i + 1)] for i in range(n)])
        data[split] = part
        g0 += n
    return data

for name, fmt, aligned in [("aligned_50.pkl", "mmsa", True), ("unaligned_50.pkl", "mmsa", False),
                           ("mosi_data.pkl", "mult", True), ("mosi_data_noalign.pkl", "mult", False)]:
    with open(out + "/" + name, "wb") as f:
        pickle.dump(make(fmt, aligned), f, protocol=4)

with open(out + "/unaligned_long.pkl", "wb") as f:
    pickle.dump(make("mmsa", False, [50, 375, 500]), f, protocol=4)

broken = make("mmsa", True)
del broken["valid"]["audio"]
with open(out + "/missing_audio.pkl", "wb") as f:
    pickle.dump(broken, f, protocol=4)
with open(out + "/not_a_pickle.pkl", "wb") as f:
    f.write(b"certainly not a pickle")
"#;

const LABELS: [f32; 11] = [-3.0, -1.2, 0.0, 0.4, 1.8, 3.0, -0.6, 2.2, -2.4, 1.0, 0.6];
const DIMS: [usize; 3] = [4, 3, 2];

fn value(g: usize, k: usize, j: usize, m: usize) -> f32 {
    1.0 + (g * 1000 + k * 10 + j) as f32 + m as f32 * 0.25
}

fn length(g: usize, m: usize, t: usize, aligned: bool) -> usize {
    1 + (g * 5 + if aligned { 0 } else { m * 3 }) % t
}

/// A python that can import numpy, or a failure saying how to get one.
fn python() -> String {
    let has_numpy =
        |py: &str| Command::new(py).args(["-c", "import numpy"]).output().map(|o| o.status.success()).unwrap_or(false);
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let mut tried = Vec::new();
    let candidates = std::env::var("DECSWEEP_PYTHON")
        .ok()
        .into_iter()
        .chain([venv.to_string_lossy().into_owned(), "python3".to_string()]);
    for py in candidates {
        if has_numpy(&py) {
            return py;
        }
        tried.push(py);
    }
    panic!(
        "tools/convert_mosi.py needs python3 with numpy and none was found (tried {tried:?}). \
         Run `make venv` (creates .venv with numpy) or set DECSWEEP_PYTHON to a python with numpy."
    );
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("convert-mosi-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn converter() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/convert_mosi.py")
}

fn convert(py: &str, input: &Path, out: &Path, format: &str) -> Output {
    Command::new(py)
        .arg(converter())
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(["--format", format])
        .output()
        .expect("run the converter")
}

fn fixtures(py: &str, dir: &Path) {
    let script = dir.join("make_fixtures.py");
    std::fs::write(&script, FIXTURES).unwrap();
    let out = Command::new(py).arg(&script).arg(dir).output().unwrap();
    assert!(out.status.success(), "fixture script failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Checks one converted file against the fixture's formulas.
fn check(ds: &Dataset, mult: bool, aligned: bool) {
    let steps = if aligned { [8, 8, 8] } else { [8, 10, 12] };
    assert_eq!(ds.n(), 11);
    assert_eq!(ds.split.as_deref(), Some(&[0u8, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2][..]));
    assert_eq!(ds.labels, LABELS);
    assert_eq!(ds.meta.nonfinite_replaced, 4, "three -inf in audio and one NaN in vision");
    assert_eq!(ds.lengths_aligned(), aligned);
    let id = if mult { "vid7_7_8" } else { "vid7$_$7" };
    assert_eq!(ds.meta.ids[7], id);
    assert_eq!(ds.meta.extra["input_format"], if mult { "mult" } else { "mmsa" });
    for m in 0..3 {
        let f = &ds.modalities[m];
        assert_eq!((f.t, f.d), (steps[m], DIMS[m]), "modality {m}");
        for g in 0..11 {
            let len = length(g, m, steps[m], aligned);
            assert_eq!(ds.lengths[m][g] as usize, len, "modality {m} row {g}");
            for k in 0..steps[m] {
                for j in 0..DIMS[m] {
                    let got = f.step(g, k)[j];
                    // Rows 1, 7 and 9 are each split's row 1 (the -inf); row 8 is test row 0 (NaN).
                    let replaced = (m == 1 && [1, 7, 9].contains(&g) && k == 0 && j == 1)
                        || (m == 2 && g == 8 && k == 0 && j == 0);
                    let want = if k >= len || replaced { 0.0 } else { value(g, k, j, m) };
                    assert_eq!(got, want, "modality {m} row {g} step {k} feature {j} (mult {mult}, aligned {aligned})");
                }
            }
        }
    }
}

#[test]
fn converts_mmsa_and_mult_pickles() {
    let py = python();
    let dir = scratch("ok");
    fixtures(&py, &dir);
    for (name, mult, aligned) in [
        ("aligned_50.pkl", false, true),
        ("unaligned_50.pkl", false, false),
        ("mosi_data.pkl", true, true),
        ("mosi_data_noalign.pkl", true, false),
    ] {
        let out = dir.join(name.replace(".pkl", ".safetensors"));
        let run = convert(&py, &dir.join(name), &out, "auto");
        assert!(run.status.success(), "{name}: {}", String::from_utf8_lossy(&run.stderr));
        let ds = load(&out).unwrap_or_else(|e| panic!("{name}: {e}"));
        check(&ds, mult, aligned);
        if mult {
            let padding = &ds.meta.extra["padding"]["audio"];
            assert!(padding["front"].as_u64().unwrap() > 0, "MulT rows are front-padded: {padding}");
        }
    }
}

#[test]
fn unaligned_files_far_past_seq_len_warn_what_each_time_pool_does() {
    let py = python();
    let dir = scratch("long");
    fixtures(&py, &dir);
    // MMSA's unaligned shape: text 50, audio 375, vision 500 steps.
    let out = dir.join("long.safetensors");
    let run = convert(&py, &dir.join("unaligned_long.pkl"), &out, "auto");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("warning: lengths run far past seq_len = 30"), "{stderr}");
    assert!(stderr.contains("audio up to 375 steps") && stderr.contains("vision up to 500 steps"), "{stderr}");
    assert!(!stderr.contains("text up to"), "50 text steps are within 2 x 30: {stderr}");
    assert!(stderr.contains("time_pool = truncate") && stderr.contains("time_pool = resample"), "{stderr}");
    let ds = load(&out).unwrap();
    assert_eq!(ds.lengths[1][0], 375, "the file keeps every step; pooling happens in the data stage");
    assert_eq!(ds.lengths[2][0], 500);

    // --seq-len moves the threshold; the small fixtures say nothing.
    let run = Command::new(&py)
        .arg(converter())
        .arg(dir.join("unaligned_long.pkl"))
        .arg("--out")
        .arg(&out)
        .args(["--seq-len", "250"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(!stderr.contains("warning"), "500 ≤ 2 x 250: {stderr}");
    let run = convert(&py, &dir.join("unaligned_50.pkl"), &out, "auto");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!stderr.contains("far past"), "{stderr}");
}

/// MMSA publishes the SHA-256 of its feature files (tools/published_checksums.py says where);
/// MulT publishes none.
const MMSA_MOSI_ALIGNED: &str = "d3994fd25681f9c7ad6e9c6596a6fe9b4beb85ff7d478ba978b124139002e5f9";
const MMSA_MOSEI_ALIGNED: &str = "45eccfb748a87c80ecab9bfac29582e7b1466bf6605ff29d3b338a75120bf791";

#[test]
fn files_named_like_published_ones_are_checked_against_the_published_sha256() {
    let py = python();
    let dir = scratch("published");
    fixtures(&py, &dir);
    let out = dir.join("x.safetensors");

    // The fixture named like MMSA's aligned_50.pkl is not it: a warning shows both hashes.
    let run = convert(&py, &dir.join("aligned_50.pkl"), &out, "auto");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let ours = decsweep_data::content_hash(&dir.join("aligned_50.pkl")).unwrap();
    assert!(stderr.contains("warning: ") && stderr.contains("named like a published file"), "{stderr}");
    assert!(stderr.contains(&format!("its sha256 is {ours}")), "{stderr}");
    assert!(
        stderr.contains(&format!("MMSA's MOSI/Processed/aligned_50.pkl has sha256 {MMSA_MOSI_ALIGNED}")),
        "{stderr}"
    );
    assert!(stderr.contains(MMSA_MOSEI_ALIGNED), "MOSEI's file has the same name: {stderr}");
    let ds = load(&out).unwrap();
    assert_eq!(ds.meta.extra["input_sha256"], ours.as_str());
    assert!(ds.meta.extra.get("recognised_as").is_none());

    // No published name, nothing to say.
    let run = convert(&py, &dir.join("mosi_data.pkl"), &out, "auto");
    assert!(!String::from_utf8_lossy(&run.stderr).contains("published"), "MulT publishes no checksum");

    // A file whose bytes are a published one is named, whatever it is called: the lookup, with a
    // table that lists this fixture's hash (the real files are far too large to ship).
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools");
    let code = format!(
        "import sys; sys.path.insert(0, {tools:?}); import published_checksums as p; \
         t = dict(p.PUBLISHED); t[{ours:?}] = ('MMSA', 'MOSI/Processed/aligned_50.pkl'); \
         print(p.recognise('renamed.pkl', {ours:?}, t)); print(p.recognise('renamed.pkl', {ours:?})); \
         print(p.recognise('x/aligned_50.pkl', {MMSA_MOSI_ALIGNED:?}))",
        tools = tools.to_str().unwrap()
    );
    let o = Command::new(&py).args(["-c", &code]).output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("('known', \"renamed.pkl is MMSA's published MOSI/Processed/aligned_50.pkl"),
        "{stdout}"
    );
    assert_eq!(lines[1], "(None, None)", "not published, not named like a published file");
    assert!(
        lines[2].starts_with("('known', \"x/aligned_50.pkl is MMSA's published MOSI/Processed/aligned_50.pkl"),
        "{stdout}"
    );
}

#[test]
fn bad_inputs_exit_2_naming_file_and_key() {
    let py = python();
    let dir = scratch("bad");
    fixtures(&py, &dir);
    let out = dir.join("x.safetensors");

    let run = convert(&py, &dir.join("missing_audio.pkl"), &out, "auto");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("missing_audio.pkl") && stderr.contains("'valid'") && stderr.contains("'audio'"),
        "{stderr}"
    );

    let run = convert(&py, &dir.join("not_a_pickle.pkl"), &out, "auto");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not_a_pickle.pkl"), "{stderr}");

    let run = convert(&py, &dir.join("nope.pkl"), &out, "auto");
    assert_eq!(run.status.code(), Some(2));

    // The wrong schema forced by --format names the key it missed.
    let run = convert(&py, &dir.join("mosi_data.pkl"), &out, "mmsa");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("'regression_labels'"), "{stderr}");
    assert!(!out.exists(), "no output after a failure");
}
