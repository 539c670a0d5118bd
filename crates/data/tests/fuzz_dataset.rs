//! Fuzzing the dataset reader (issue 12, part 5): a small valid dataset file mutated in its
//! bytes, its header's JSON (structure and tokens), its header length, and with headers that
//! claim huge shapes. `decsweep_data::load` must either load the file or return an error naming
//! the file (and the tensor, where one tensor's entry was made to lie), never panic, and never
//! allocate in proportion to what the header claims: a counting allocator checks that no single
//! allocation during a load exceeds a small multiple of the file's size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use decsweep_data::{load, save, synthesize, DataError, SynthConfig};
use decsweep_fuzz::{edge_integer, mutate_bytes, mutate_json, mutate_tokens, Campaign, FuzzRng, Rng, SliceRandom};
use serde_json::{Map, Value};

/// Records the largest single allocation while armed.
struct Largest;

static ARMED: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) == 1 {
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) == 1 {
            LARGEST.fetch_max(new_size, Ordering::Relaxed);
        }
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

/// The largest single allocation `f` made (other test threads may add to it; they only make it
/// larger, so a pass is still a pass).
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.store(0, Ordering::Relaxed);
    ARMED.store(1, Ordering::Relaxed);
    let out = f();
    ARMED.store(0, Ordering::Relaxed);
    (out, LARGEST.load(Ordering::Relaxed))
}

/// A tiny valid dataset file: 12 rows, 4 steps, 3/2/2 features, lengths, labels, a split.
fn valid_file(dir: &Path) -> Vec<u8> {
    let ds = synthesize(&SynthConfig { n: 12, seed: 5, dims: [3, 2, 2], max_len: 4, min_len: 1 });
    let path = dir.join("valid.safetensors");
    save(&ds, &path).unwrap();
    load(&path).expect("the unmutated file loads");
    std::fs::read(&path).unwrap()
}

/// The header's JSON and the data section.
fn split_file(bytes: &[u8]) -> (Map<String, Value>, &[u8]) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (header, &bytes[8 + n..])
}

fn join_file(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

const KINDS: [&str; 6] = ["bytes", "header json", "header tokens", "huge shape", "header length", "offsets"];

/// A mutated file, its kind, and the tensor whose entry was made to lie (if one was).
fn make_case(rng: &mut FuzzRng, valid: &[u8]) -> (usize, Vec<u8>, Option<String>) {
    let (header, data) = split_file(valid);
    let tensors: Vec<String> = header.keys().filter(|k| *k != "__metadata__").cloned().collect();
    let kind = rng.gen_range(0..KINDS.len());
    match kind {
        0 => (kind, mutate_bytes(rng, valid), None),
        1 => {
            let mutated = mutate_json(rng, &Value::Object(header));
            (kind, join_file(mutated.to_string().as_bytes(), data), None)
        }
        2 => {
            let text = Value::Object(header).to_string();
            (kind, join_file(mutate_tokens(rng, &text).as_bytes(), data), None)
        }
        3 => {
            let name = tensors.choose(rng).unwrap().clone();
            let mut header = header;
            let dims = rng.gen_range(1..5);
            let shape: Vec<Value> = (0..dims)
                .map(|_| match rng.gen_range(0..3) {
                    0 => Value::from(1u64 << rng.gen_range(20..64)),
                    1 => Value::from(u64::MAX),
                    _ => Value::from(rng.gen_range(1u64..100_000)),
                })
                .collect();
            header[&name]["shape"] = Value::Array(shape);
            if rng.gen_bool(0.5) {
                // Offsets that agree with the claim, so only the file's size can refute it.
                let start = header[&name]["data_offsets"][0].as_u64().unwrap();
                header[&name]["data_offsets"][1] =
                    Value::from(start.saturating_add(rng.gen_range(1u64 << 32..u64::MAX / 2)));
            }
            let text = Value::Object(header).to_string();
            (kind, join_file(text.as_bytes(), data), Some(name))
        }
        4 => {
            let mut out = valid.to_vec();
            let claim: u64 = match rng.gen_range(0..4) {
                0 => u64::MAX,
                1 => rng.gen_range(0..16),
                2 => (valid.len() as u64).saturating_add(rng.gen_range(0..1 << 20)),
                _ => rng.gen_range(0..valid.len() as u64),
            };
            out[..8].copy_from_slice(&claim.to_le_bytes());
            (kind, out, None)
        }
        _ => {
            let name = tensors.choose(rng).unwrap().clone();
            let mut header = header;
            let which = rng.gen_range(0..2);
            header[&name]["data_offsets"][which] = edge_integer(rng);
            let text = Value::Object(header).to_string();
            (kind, join_file(text.as_bytes(), data), Some(name))
        }
    }
}

#[test]
fn dataset_files_never_panic_and_errors_name_the_file_and_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let valid = valid_file(dir.path());
    let campaign = Campaign::new("dataset files", 12_000);
    let mut by_kind = [(0usize, 0usize); KINDS.len()];
    let mut largest_seen = 0usize;
    let ran = campaign.run(|i, rng| {
        let (kind, bytes, lying) = make_case(rng, &valid);
        let path = dir.path().join(format!("case-{i}.safetensors"));
        std::fs::write(&path, &bytes).unwrap();
        let (result, largest) = largest_allocation(|| load(&path));
        by_kind[kind].0 += 1;
        // Reading the file allocates its size; everything after is bounded by what it holds.
        let bound = 8 * bytes.len() + (1 << 20);
        assert!(largest <= bound, "{KINDS:?}[{kind}]: a {largest}-byte allocation for a {}-byte file", bytes.len());
        largest_seen = largest_seen.max(largest);
        match result {
            Ok(_) => by_kind[kind].1 += 1,
            Err(e) => {
                let text = e.to_string();
                assert!(text.starts_with(&path.display().to_string()), "the error does not name the file: {text}");
                if let Some(name) = lying.filter(|_| kind == 3) {
                    assert!(text.contains(&format!("`{name}`")), "a huge shape of `{name}`: {text}");
                    assert!(matches!(e, DataError::BadTensorHeader { .. }), "{text}");
                }
            }
        }
        std::fs::remove_file(&path).unwrap();
    });
    let detail: Vec<String> = KINDS.iter().zip(by_kind).map(|(k, (n, ok))| format!("{k} {n} ({ok} loaded)")).collect();
    campaign.report(ran, &format!("[{}], largest allocation {largest_seen} bytes", detail.join(", ")));
    assert!(by_kind.iter().all(|(n, _)| *n > 0 || ran < 100), "every kind ran: {by_kind:?}");
}
