//! `tools/convert_mosi.py --format csd` end to end: CMU-MultimodalSDK computational sequences
//! written in the SDK's layout by `tests/csd/make_fixtures.py` (its docstring describes every
//! video, interval and value used below) are converted and read back with `decsweep_data::load`.
//! The expected rows are written out by hand from the fixture's intervals, not recomputed.
//!
//! Needs a python with numpy and h5py (`make venv`); without one the tests fail.

use std::collections::BTreeMap;
use std::path::Path;

use decsweep_data::{content_hash, load, Dataset};

#[path = "support/csd.rs"]
mod csd;

use csd::{convert, fixtures, python, text};

const DIMS: [usize; 3] = [3, 2, 4];
const BULK: usize = 16;

/// A fixture row's value: video number `v`, row `r` (fractional for a mean of consecutive rows),
/// column `j`, modality `m` (vision is negated).
fn value(v: f64, r: f64, j: usize, m: usize) -> f32 {
    let x = v * 1000.0 + 10.0 * r + j as f64;
    (if m == 2 { -x } else { x }) as f32
}

fn number(video: &str) -> f64 {
    match video {
        "vidA" => 100.0,
        "vidB" => 101.0,
        bulk => bulk[1..].parse().unwrap(),
    }
}

/// Replaced non-finite values: (video, modality, source row, column).
const NONFINITE: [(&str, usize, usize, usize); 3] = [("vidA", 1, 3, 0), ("vidA", 2, 2, 1), ("vidB", 1, 5, 1)];

fn source(video: &str, m: usize, r: usize, j: usize) -> f32 {
    if NONFINITE.contains(&(video, m, r, j)) {
        0.0
    } else {
        value(number(video), r as f64, j, m)
    }
}

/// Source rows of each modality in a segment without alignment (midpoint in [start, end)).
fn own_rows(video: &str, k: usize) -> [Vec<usize>; 3] {
    let r = |a: usize, b: usize| (a..b).collect::<Vec<_>>();
    match (video, k) {
        // [0, 2): words 0-2 (the third, [1.2, 2.4), by its midpoint 1.8); audio frame 6
        // [1.8, 2.1) by its midpoint 1.95; vision midpoints 0, .5, 1, 1.5.
        ("vidA", 0) => [r(0, 3), r(0, 7), r(0, 4)],
        // [2, 5): vision frame 4's midpoint is exactly 2.0: start is inclusive.
        ("vidA", 1) => [r(3, 6), r(7, 17), r(4, 10)],
        // [5, 6): vision frame 12's midpoint 6.0 is excluded; audio frame 20 (6.15) too.
        ("vidA", 2) => [r(6, 7), r(17, 20), r(10, 12)],
        ("vidB", 0) => [r(0, 3), r(0, 6), r(0, 3)],
        ("vidB", 1) => [r(3, 6), r(6, 12), r(3, 6)],
        ("vidB", 2) => [vec![], vec![], vec![]],
        (_, s) => [r(4 * s, 4 * s + 4), r(20 * s, 20 * s + 20), r(8 * s, 8 * s + 8)],
    }
}

fn label(video: &str, k: usize) -> f32 {
    match (video, k) {
        ("vidA", _) => [1.5, 0.0, -2.0][k],
        ("vidB", _) => [0.0, 2.5, -1.0][k],
        (v, s) => (((4 * number(v) as usize + s) % 13) as f32 - 6.0) / 2.0,
    }
}

fn bulk(v: usize) -> String {
    format!("v{v:02}")
}

/// Every segment the fixture's four files share: (video, k).
fn segments(without: &[&str]) -> Vec<(String, usize)> {
    let mut all: Vec<(String, usize)> = (0..BULK).flat_map(|v| (0..4).map(move |s| (bulk(v), s))).collect();
    all.extend((0..3).map(|k| ("vidA".to_string(), k)));
    all.extend((0..3).map(|k| ("vidB".to_string(), k)));
    all.retain(|(v, _)| !without.contains(&v.as_str()));
    all
}

/// Row index of each id, after checking the ids are exactly the expected segments.
fn rows_by_id(ds: &Dataset, expected: &[(String, usize)]) -> BTreeMap<String, usize> {
    let by_id: BTreeMap<String, usize> = ds.meta.ids.iter().enumerate().map(|(i, id)| (id.clone(), i)).collect();
    let mut want: Vec<String> = expected.iter().map(|(v, k)| format!("{v}[{k}]")).collect();
    want.sort();
    assert_eq!(by_id.len(), ds.n(), "ids are unique");
    assert_eq!(by_id.keys().cloned().collect::<Vec<_>>(), want);
    by_id
}

fn steps(ds: &Dataset, row: usize, m: usize) -> Vec<Vec<f32>> {
    (0..ds.lengths[m][row] as usize).map(|s| ds.modalities[m].step(row, s).to_vec()).collect()
}

/// Each row's steps past its length are zero, as the format requires.
fn padding_is_zero(ds: &Dataset) {
    for (m, f) in ds.modalities.iter().enumerate() {
        for row in 0..ds.n() {
            for s in ds.lengths[m][row] as usize..f.t {
                assert!(f.step(row, s).iter().all(|&x| x == 0.0), "modality {m} row {row} step {s}");
            }
        }
    }
}

fn video_of(id: &str) -> &str {
    &id[..id.find('[').unwrap()]
}

fn splits_by_video(ds: &Dataset) -> BTreeMap<String, u8> {
    let split = ds.split.as_ref().expect("a split");
    let mut by_video = BTreeMap::new();
    for (row, id) in ds.meta.ids.iter().enumerate() {
        let previous = by_video.insert(video_of(id).to_string(), split[row]);
        assert!(previous.is_none_or(|p| p == split[row]), "{id}: a video's segments are all in one split");
    }
    by_video
}

#[test]
fn unaligned_rows_are_each_modalitys_rows_by_midpoint_and_the_split_is_by_video() {
    let py = python();
    let dir = fixtures(&py, "unaligned");
    let out = dir.join("mosi.safetensors");
    let run = convert(&py, &dir, &out, &[], &[]);
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert!(run.status.success(), "{stderr}");
    let ds = load(&out).unwrap();

    let expected = segments(&["vidM"]);
    let rows = rows_by_id(&ds, &expected);
    assert_eq!(ds.n(), 70);
    assert!(!ds.lengths_aligned(), "each modality keeps its own number of rows");
    assert_eq!(ds.modalities.each_ref().map(|f| f.d), DIMS);
    for (video, k) in &expected {
        let row = rows[&format!("{video}[{k}]")];
        assert_eq!(ds.labels[row], label(video, *k), "{video}[{k}]");
        for (m, source_rows) in own_rows(video, *k).iter().enumerate() {
            let want: Vec<Vec<f32>> = if source_rows.is_empty() {
                vec![vec![0.0; DIMS[m]]] // No row: one zero step.
            } else {
                source_rows.iter().map(|&r| (0..DIMS[m]).map(|j| source(video, m, r, j)).collect()).collect()
            };
            assert_eq!(steps(&ds, row, m), want, "{video}[{k}] modality {m}");
        }
    }
    padding_is_zero(&ds);
    assert_eq!(ds.labels.iter().filter(|&&y| y == 0.0).count(), 2 + 5, "vidA[1], vidB[0] and five bulk zeros");

    // Non-finite values in used rows only: not vidA's audio frame 20 (in no segment) nor the
    // dropped vidM's text.
    assert_eq!(ds.meta.nonfinite_replaced, 3);
    let extra = &ds.meta.extra;
    assert_eq!(extra["nonfinite_by_modality"], serde_json::json!({"text": 0, "audio": 2, "vision": 1}));
    assert_eq!(extra["empty_segments"], serde_json::json!({"text": 1, "audio": 1, "vision": 1}));
    assert!(stdout.contains("3 non-finite values replaced by 0 (text 0, audio 2, vision 1)"), "{stdout}");
    assert!(stdout.contains("segments with no row (one zero step): text 1, audio 1, vision 1"), "{stdout}");

    // vidM lacks vision: named with the file, its two segments dropped, the rest kept.
    assert!(stderr.contains("vision.csd: has no vision for 1 video(s) of the label file: vidM"), "{stderr}");
    assert!(stderr.contains("dropped 2 segment(s) of 1 video(s)"), "{stderr}");
    assert_eq!(extra["videos_missing"], serde_json::json!({"vidM": ["vision"]}));
    assert_eq!(extra["dropped_segments"], 2);

    // No --folds: whole videos, seeded, every split used, and said not to be the standard one.
    let by_video = splits_by_video(&ds);
    assert_eq!(by_video.len(), 18);
    for s in 0..3u8 {
        assert!(by_video.values().any(|&x| x == s), "split {s} has a video");
    }
    assert!(stderr.contains("NOT the standard CMU-MOSI split"), "{stderr}");
    assert_eq!(extra["split"]["source"], "random by video");
    assert_eq!(extra["split"]["standard"], false);
    let split = ds.split.as_ref().unwrap();
    assert!(split.windows(2).all(|w| w[0] <= w[1]), "rows are ordered train, valid, test");

    // Metadata: each input's name, SHA-256, root and the SDK metadata; the alignment.
    for (role, root) in
        [("text", "glove_vectors"), ("audio", "COVAREP"), ("vision", "FACET_4.2"), ("labels", "Opinion Segment Labels")]
    {
        let input = &extra["inputs"][role];
        let file = format!("{role}.csd");
        assert_eq!(input["file"], file.as_str());
        assert_eq!(input["sha256"], content_hash(&dir.join(&file)).unwrap().as_str());
        assert_eq!(input["root"], root);
        assert_eq!(input["metadata"]["root name"], root);
        assert_eq!(input["metadata"]["dataset name"], "decsweep csd fixture");
    }
    assert_eq!(extra["alignment"]["mode"], "none");
    assert_eq!(extra["input_format"], "csd");
    assert_eq!(ds.meta.feature_names.as_ref().unwrap()["audio"], serde_json::json!(["COVAREP_0", "COVAREP_1"]));

    // The same seed gives the same bytes; another seed another split of the same rows.
    let again = dir.join("again.safetensors");
    assert!(convert(&py, &dir, &again, &[], &["--seed", "0"]).status.success());
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
    assert!(convert(&py, &dir, &again, &[], &["--seed", "7"]).status.success());
    let other = load(&again).unwrap();
    assert_eq!(other.n(), 70);
    assert_ne!(splits_by_video(&other), by_video, "seed 7 deals the videos differently");
}

/// Source rows whose midpoint lies in each word of a segment, per modality (audio, vision), as
/// fractional mean rows; `None` where a word has none.
fn word_means(video: &str, k: usize) -> Vec<[Option<Vec<f32>>; 2]> {
    let mean = |m: usize, rows: &[usize]| -> Option<Vec<f32>> {
        if rows.is_empty() {
            return None;
        }
        Some(
            (0..DIMS[m])
                .map(|j| (rows.iter().map(|&r| source(video, m, r, j) as f64).sum::<f64>() / rows.len() as f64) as f32)
                .collect(),
        )
    };
    let words: Vec<([usize; 2], [usize; 2])> = match (video, k) {
        // vidA's words and the frames whose midpoints fall in them (fixture docstring):
        // audio midpoints .15 + .3k, vision midpoints .5k.
        ("vidA", 0) => vec![([0, 2], [0, 1]), ([2, 4], [1, 3]), ([4, 8], [3, 5])],
        // Word [2.6, 2.9): audio frame 9 (2.85) only, no vision frame.
        ("vidA", 1) => vec![([9, 10], [0, 0]), ([10, 13], [6, 8]), ([13, 17], [8, 11])],
        ("vidA", 2) => vec![([17, 19], [11, 12])],
        ("vidB", 2) => vec![],
        ("vidB", s) => (3 * s..3 * s + 3).map(|w| ([2 * w, 2 * w + 2], [w, w + 1])).collect(),
        (_, s) => (4 * s..4 * s + 4).map(|w| ([5 * w, 5 * w + 5], [2 * w, 2 * w + 2])).collect(),
    };
    words
        .into_iter()
        .map(|(a, b)| [mean(1, &(a[0]..a[1]).collect::<Vec<_>>()), mean(2, &(b[0]..b[1]).collect::<Vec<_>>())])
        .collect()
}

#[test]
fn word_aligned_rows_have_one_step_per_word_with_audio_and_vision_averaged_and_folds_split() {
    let py = python();
    let dir = fixtures(&py, "aligned");
    let out = dir.join("mosi-aligned.safetensors");
    let folds = dir.join("folds.json");
    let run = convert(&py, &dir, &out, &[], &["--word-aligned", "--folds", folds.to_str().unwrap()]);
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert!(run.status.success(), "{stderr}");
    let ds = load(&out).unwrap();

    // v15 is in no fold: left out with a warning; vidM as before.
    let expected = segments(&["vidM", "v15"]);
    let rows = rows_by_id(&ds, &expected);
    assert!(
        stderr.contains("folds.json: 1 video(s) with segments are in no fold and left out (4 segments): v15"),
        "{stderr}"
    );
    assert!(!stderr.contains("NOT the standard"), "{stderr}");
    assert!(ds.lengths_aligned(), "one step per word in every modality");
    for (video, k) in &expected {
        let row = rows[&format!("{video}[{k}]")];
        assert_eq!(ds.labels[row], label(video, *k), "{video}[{k}]");
        let words = own_rows(video, *k)[0].clone();
        let means = word_means(video, *k);
        assert_eq!(words.len(), means.len(), "{video}[{k}]: the fixture's words");
        if words.is_empty() {
            for (m, &d) in DIMS.iter().enumerate() {
                assert_eq!(steps(&ds, row, m), vec![vec![0.0; d]], "{video}[{k}] has no word: one zero step");
            }
            continue;
        }
        let text_want: Vec<Vec<f32>> =
            words.iter().map(|&r| (0..3).map(|j| source(video, 0, r, j)).collect()).collect();
        assert_eq!(steps(&ds, row, 0), text_want, "{video}[{k}] text");
        for (i, [audio, vision]) in means.into_iter().enumerate() {
            for (m, want) in [(1, audio), (2, vision)] {
                let want = want.unwrap_or_else(|| vec![0.0; DIMS[m]]);
                assert_eq!(steps(&ds, row, m)[i], want, "{video}[{k}] word {i} modality {m}");
            }
        }
    }
    padding_is_zero(&ds);
    // Spot checks of the means with a replaced value: vidA's second word holds audio frames 2
    // and 3 (NaN in column 0), vision frames 1 and 2 (+inf in column 1).
    let a0 = rows["vidA[0]"];
    assert_eq!(ds.modalities[1].step(a0, 1), &[50010.0, 100026.0]);
    assert_eq!(ds.modalities[2].step(a0, 1)[1], -50005.5);

    let extra = &ds.meta.extra;
    assert_eq!(extra["alignment"]["mode"], "word");
    assert_eq!(extra["word_steps"], 7 + 6 + 15 * 16);
    assert_eq!(extra["empty_word_steps"], serde_json::json!({"audio": 0, "vision": 1}));
    assert_eq!(extra["segments_without_words"], 1);
    assert_eq!(ds.meta.nonfinite_replaced, 3);
    assert!(
        stdout.contains("253 word steps") && stdout.contains("zero steps where a word has none: audio 0, vision 1"),
        "{stdout}"
    );

    // The folds, exactly: train v00-v09 and vidA, valid v10-v11, test v12-v14 and vidB.
    let fold = |v: usize| match v {
        0..=9 => 0,
        10 | 11 => 1,
        _ => 2,
    };
    let mut want: BTreeMap<String, u8> = (0..15).map(|v| (bulk(v), fold(v))).collect();
    want.insert("vidA".into(), 0);
    want.insert("vidB".into(), 2);
    assert_eq!(splits_by_video(&ds), want);
    assert_eq!(extra["split"]["source"], "folds");
    assert_eq!(extra["split"]["folds_sha256"], content_hash(&folds).unwrap().as_str());
    assert!(
        stdout.contains("split 43 train / 8 valid / 15 test segments (11/2/4 videos; folds from folds.json)"),
        "{stdout}"
    );
}

fn fails_naming(py: &str, dir: &Path, swap: &[(&str, &str)], extra: &[&str], needles: &[&str]) {
    let out = dir.join("refused.safetensors");
    let run = convert(py, dir, &out, swap, extra);
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{swap:?} {extra:?}: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{swap:?} {extra:?}: expected {needle:?} in: {stderr}");
    }
    assert!(!out.exists(), "no output after a refusal");
}

#[test]
fn bad_folds_exit_2_naming_the_video() {
    let py = python();
    let dir = fixtures(&py, "folds");
    let arg = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let twice = arg("folds_twice.json");
    fails_naming(&py, &dir, &[], &["--folds", &twice], &["folds_twice.json", "video v02", "'train'", "'test'"]);
    let unknown = arg("folds_unknown.json");
    fails_naming(&py, &dir, &[], &["--folds", &unknown], &["fold 'valid' names video nosuch", "not in the label file"]);
    let missing = arg("folds_missing.json");
    fails_naming(
        &py,
        &dir,
        &[],
        &["--folds", &missing],
        &["names video vidM", "missing from the vision file", "vision.csd"],
    );
    std::fs::write(dir.join("folds_list.json"), "[\"v00\"]").unwrap();
    let list = arg("folds_list.json");
    fails_naming(&py, &dir, &[], &["--folds", &list], &["folds_list.json", r#"expected {"train""#]);
}

#[test]
fn bad_sequences_exit_2_naming_the_file_and_what_was_expected() {
    let py = python();
    let dir = fixtures(&py, "bad");
    fails_naming(&py, &dir, &[("audio", "not_hdf5.csd")], &[], &["not_hdf5.csd: not an HDF5 file", "audio"]);
    fails_naming(&py, &dir, &[("audio", "no_data.csd")], &[], &["no_data.csd: has no `data` group under `COVAREP`"]);
    fails_naming(
        &py,
        &dir,
        &[("text", "widths.csd")],
        &[],
        &["widths.csd: video v03 has 4 features per row, but video extra has 3"],
    );
    fails_naming(
        &py,
        &dir,
        &[("labels", "labels_2col.csd")],
        &[],
        &["labels_2col.csd: the labels have 2 columns", "[n x 1]"],
    );
    fails_naming(&py, &dir, &[("vision", "nope.csd")], &[], &["nope.csd: no such file"]);
    // A label file given as a feature file is fine (one column); a feature file as labels is not.
    fails_naming(&py, &dir, &[("labels", "audio.csd")], &[], &["audio.csd: the labels have 2 columns"]);

    // Usage: every sequence is required, none of them goes with a pickle.
    let out = dir.join("x.safetensors");
    let converter = csd::repo().join("tools/convert_mosi.py");
    let run = |args: &[&str]| std::process::Command::new(&py).arg(&converter).args(args).output().unwrap();
    let o = run(&["--format", "csd", "--text", "t.csd", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--format csd needs --audio, --vision, --labels"), "{}", text(&o.stderr));
    let o = run(&["x.pkl", "--text", "t.csd", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--text: only with --format csd"), "{}", text(&o.stderr));
}
