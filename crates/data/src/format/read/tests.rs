//! Every way a file can be wrong gets its own error naming the file and the tensor.

use std::collections::HashMap;
use std::path::PathBuf;

use safetensors::tensor::TensorView;
use safetensors::Dtype;

use super::*;
use crate::dataset::tests::tiny;
use crate::format::save;

/// A tensor to write: dtype, shape, little-endian bytes.
type Raw = (Dtype, Vec<usize>, Vec<u8>);

fn f32s(shape: &[usize], values: impl IntoIterator<Item = f32>) -> Raw {
    (Dtype::F32, shape.to_vec(), values.into_iter().flat_map(f32::to_le_bytes).collect())
}

fn ints32(values: &[i32]) -> Raw {
    (Dtype::I32, vec![values.len()], values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// A valid file's tensors: 3 rows, T = 2, aligned lengths as I32, no split.
fn valid() -> HashMap<String, Raw> {
    let mut t = HashMap::new();
    t.insert("text".into(), f32s(&[3, 2, 2], (0..12).map(|v| v as f32)));
    t.insert("audio".into(), f32s(&[3, 2, 1], (0..6).map(|v| v as f32)));
    t.insert("vision".into(), f32s(&[3, 2, 3], (0..18).map(|v| v as f32)));
    t.insert("lengths".into(), ints32(&[1, 2, 2]));
    t.insert("label".into(), f32s(&[3], [-1.0, 0.0, 2.5]));
    t
}

fn meta(n: usize) -> HashMap<String, String> {
    let m = Metadata { ids: (0..n).map(|i| format!("r{i}")).collect(), ..Metadata::default() };
    HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("meta".to_string(), serde_json::to_string(&m).unwrap()),
    ])
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("decsweep-data-read-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, tensors: &HashMap<String, Raw>, header: Option<HashMap<String, String>>) -> PathBuf {
        let views: Vec<(String, TensorView<'_>)> = tensors
            .iter()
            .map(|(k, (dtype, shape, bytes))| (k.clone(), TensorView::new(*dtype, shape.clone(), bytes).unwrap()))
            .collect();
        let path = self.0.join("x.safetensors");
        std::fs::write(&path, safetensors::serialize(views, header).unwrap()).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn load_with(name: &str, edit: impl FnOnce(&mut HashMap<String, Raw>)) -> Result<Dataset, DataError> {
    let s = Scratch::new(name);
    let mut t = valid();
    edit(&mut t);
    load(&s.write(&t, Some(meta(3))))
}

#[test]
fn a_valid_file_with_i32_lengths_and_an_unknown_tensor_loads() {
    let ds = load_with("valid", |t| {
        t.insert("extra_stuff".into(), f32s(&[1], [1.0]));
        t.insert("split".into(), (Dtype::I64, vec![3], [0i64, 1, 2].iter().flat_map(|v| v.to_le_bytes()).collect()));
    })
    .unwrap();
    assert_eq!(ds.lengths, [vec![1, 2, 2], vec![1, 2, 2], vec![1, 2, 2]]);
    assert_eq!(ds.split, Some(vec![0, 1, 2]));
    assert_eq!(ds.modalities[2].step(1, 1), &[9.0, 10.0, 11.0]);
    assert_eq!(ds.meta.ids, ["r0", "r1", "r2"]);
}

#[test]
fn per_modality_lengths_override_the_shared_ones() {
    let ds = load_with("override", |t| {
        t.insert("audio_lengths".into(), (Dtype::U8, vec![3], vec![2, 1, 1]));
    })
    .unwrap();
    assert_eq!(ds.lengths[1], vec![2, 1, 1]);
    assert_eq!(ds.lengths[0], vec![1, 2, 2]);
}

#[test]
fn missing_file_and_not_safetensors() {
    let s = Scratch::new("garbage");
    let missing = s.0.join("none.safetensors");
    assert!(matches!(load(&missing), Err(DataError::NotFound { .. })));
    let garbage = s.0.join("garbage.safetensors");
    std::fs::write(&garbage, b"hello").unwrap();
    let e = load(&garbage).unwrap_err();
    assert!(matches!(e, DataError::TooShort { bytes: 5, .. }), "{e}");
    assert!(e.to_string().contains("garbage.safetensors: the file has only 5 bytes, not a dataset"), "{e}");

    // Empty files, /dev/null among them, say so once and plainly.
    let empty = s.0.join("empty.safetensors");
    std::fs::write(&empty, b"").unwrap();
    for path in [empty.as_path(), std::path::Path::new("/dev/null")] {
        let e = load(path).unwrap_err();
        assert!(matches!(e, DataError::TooShort { bytes: 0, .. }), "{e}");
        let text = e.to_string();
        assert!(text.starts_with(&format!("{}: the file is empty, not a dataset", path.display())), "{text}");
        assert!(!text.contains("too small") && std::error::Error::source(&e).is_none(), "{text}");
    }

    // Long enough for a header length, but text: the length it claims is named.
    std::fs::write(&garbage, b"hello, this is not a dataset").unwrap();
    let e = load(&garbage).unwrap_err();
    assert!(matches!(e, DataError::BadHeader { .. }) && e.to_string().contains("-byte header"), "{e}");

    // Truncated: a valid file missing its last bytes.
    let good = s.0.join("good.safetensors");
    save(&tiny(), &good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&good, &bytes[..bytes.len() - 3]).unwrap();
    // The header check names the tensor whose data the truncation cut off.
    let e = load(&good).unwrap_err();
    assert!(matches!(e, DataError::BadTensorHeader { .. }), "{e}");
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[test]
fn missing_tensors_are_named() {
    for name in ["text", "audio", "vision", "label", "lengths"] {
        let e = load_with(&format!("missing-{name}"), |t| {
            t.remove(name);
        })
        .unwrap_err();
        match &e {
            DataError::MissingTensor { tensor, .. } => assert_eq!(tensor, name),
            other => panic!("{name}: {other}"),
        }
        assert!(e.to_string().contains("x.safetensors"), "{e}");
    }
}

#[test]
fn wrong_dtypes_say_expected_and_got() {
    let e = load_with("dtype-text", |t| {
        t.insert("text".into(), (Dtype::F64, vec![3, 2, 2], vec![0; 96]));
    })
    .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("`text`") && text.contains("F64") && text.contains("expected F32"), "{text}");
    let e = load_with("dtype-lengths", |t| {
        t.insert("lengths".into(), f32s(&[3], [1.0, 1.0, 1.0]));
    })
    .unwrap_err();
    assert!(matches!(e, DataError::WrongDtype { ref tensor, .. } if tensor == "lengths"), "{e}");
}

#[test]
fn wrong_shapes_and_row_counts_say_which() {
    let e = load_with("rank", |t| {
        t.insert("audio".into(), f32s(&[3, 2], (0..6).map(|v| v as f32)));
    })
    .unwrap_err();
    assert!(matches!(e, DataError::WrongShape { ref tensor, .. } if tensor == "audio"), "{e}");
    let e = load_with("rows", |t| {
        t.insert("vision".into(), f32s(&[2, 2, 3], (0..12).map(|v| v as f32)));
    })
    .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("`vision` has 2 rows but `text` has 3"), "{text}");
    let e = load_with("label-rows", |t| {
        t.insert("label".into(), f32s(&[4], [0.0; 4]));
    })
    .unwrap_err();
    assert!(matches!(e, DataError::RowCountMismatch { ref tensor, got: 4, .. } if tensor == "label"), "{e}");
    let e = load_with("label-rank", |t| {
        t.insert("label".into(), f32s(&[3, 1], [0.0; 3]));
    })
    .unwrap_err();
    assert!(matches!(e, DataError::WrongShape { ref tensor, .. } if tensor == "label"), "{e}");
}

#[test]
fn bad_values_name_tensor_and_position() {
    let e = load_with("nan", |t| {
        let mut v: Vec<f32> = (0..18).map(|v| v as f32).collect();
        v[17] = f32::INFINITY; // row 2 · 6 + step 1 · 3 + feature 2
        t.insert("vision".into(), f32s(&[3, 2, 3], v));
    })
    .unwrap_err();
    assert!(e.to_string().contains("`vision` holds inf at [row 2, step 1, feature 2]"), "{e}");

    let e = load_with("label", |t| {
        t.insert("label".into(), f32s(&[3], [0.0, -3.5, 1.0]));
    })
    .unwrap_err();
    assert!(matches!(e, DataError::BadLabel { row: 1, .. }), "{e}");
    let e = load_with("label-nan", |t| {
        t.insert("label".into(), f32s(&[3], [0.0, 0.0, f32::NAN]));
    })
    .unwrap_err();
    assert!(matches!(e, DataError::BadLabel { row: 2, .. }), "{e}");

    let e = load_with("len0", |t| {
        t.insert("lengths".into(), ints32(&[1, 0, 2]));
    })
    .unwrap_err();
    assert!(matches!(e, DataError::BadLength { row: 1, value: 0, .. }), "{e}");
    let e = load_with("len-big", |t| {
        t.insert("vision_lengths".into(), ints32(&[1, 2, 3]));
    })
    .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("`vision_lengths` row 2 is 3") && text.contains("1..=2"), "{text}");
    let e = load_with("len-neg", |t| {
        t.insert("lengths".into(), ints32(&[1, -4, 2]));
    })
    .unwrap_err();
    assert!(matches!(e, DataError::BadLength { value: -4, .. }), "{e}");

    let e = load_with("split", |t| {
        t.insert("split".into(), (Dtype::U8, vec![3], vec![0, 3, 1]));
    })
    .unwrap_err();
    assert!(matches!(e, DataError::BadSplit { row: 1, value: 3, .. }), "{e}");
}

#[test]
fn header_metadata_is_checked() {
    let s = Scratch::new("meta");
    let e = load(&s.write(&valid(), Some(meta(2)))).unwrap_err();
    assert!(matches!(e, DataError::IdCount { ids: 2, n: 3, .. }), "{e}");

    let mut wrong = meta(3);
    wrong.insert("format".into(), "other/2".into());
    let e = load(&s.write(&valid(), Some(wrong))).unwrap_err();
    assert!(e.to_string().contains("`format`") && e.to_string().contains("other/2"), "{e}");

    let mut garbled = meta(3);
    garbled.insert("meta".into(), "{not json".into());
    assert!(matches!(load(&s.write(&valid(), Some(garbled))), Err(DataError::BadMetadata { .. })));

    // Files from other safetensors tools (no metadata) load, with row numbers as ids.
    let ds = load(&s.write(&valid(), None)).unwrap();
    assert_eq!(ds.meta.ids, ["0", "1", "2"]);
}
