//! Seeded fuzzing on stable Rust for decsweep's input surfaces (spec files, dataset files, the
//! HTTP API). cargo-fuzz needs nightly; these campaigns run as ordinary `#[test]`s instead:
//!
//! - a [`Campaign`] runs a fixed number of cases (bounded for CI), multiplied by
//!   `DECSWEEP_FUZZ_CASES` (`make fuzz` sets it) and seeded by `DECSWEEP_FUZZ_SEED` (fixed by
//!   default, so CI is reproducible);
//! - case `i` draws from its own ChaCha stream derived from (seed, target, i), so a failing case
//!   replays alone: the campaign prints the seed and case when a case panics, and
//!   `DECSWEEP_FUZZ_ONLY=i` runs just that one;
//! - the generators mutate valid inputs ([`mutate_bytes`], [`mutate_lines`], [`mutate_tokens`],
//!   [`mutate_json`]) as well as making random ones ([`random_bytes`], [`random_json`],
//!   [`instance_of`] for an OpenAPI/JSON schema), with the values that break parsers most
//!   often: boundary numbers, non-UTF-8 bytes, control and wide characters, long strings.
//!
//! [`http`] adds what surrounds an HTTP request: `Host`, `Origin` and `Cookie` headers and query
//! strings.
//!
//! Each campaign prints one summary line (`fuzz <target>: N cases ...`); run with
//! `--nocapture` to see them.

pub mod http;

pub use rand::seq::SliceRandom;
pub use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

/// Multiplies every campaign's case count (`make fuzz` sets it).
pub const CASES_ENV: &str = "DECSWEEP_FUZZ_CASES";
/// Overrides the default seed.
pub const SEED_ENV: &str = "DECSWEEP_FUZZ_SEED";
/// Runs a single case of every campaign (to replay a failure).
pub const ONLY_ENV: &str = "DECSWEEP_FUZZ_ONLY";

const DEFAULT_SEED: u64 = 0x00de_c5ee_9f22;

pub type FuzzRng = ChaCha8Rng;

/// One fuzz target's run: how many cases, from which seed.
pub struct Campaign {
    target: &'static str,
    seed: u64,
    cases: usize,
    only: Option<usize>,
}

impl Campaign {
    /// `base_cases` is the CI count; `DECSWEEP_FUZZ_CASES=k` runs k times as many.
    pub fn new(target: &'static str, base_cases: usize) -> Campaign {
        let factor = env_number(CASES_ENV).unwrap_or(1).max(1) as usize;
        let seed = env_number(SEED_ENV).unwrap_or(DEFAULT_SEED);
        let only = env_number(ONLY_ENV).map(|n| n as usize);
        Campaign { target, seed, cases: base_cases.saturating_mul(factor), only }
    }

    pub fn cases(&self) -> usize {
        self.cases
    }

    /// Runs `case(i, rng)` for every case and returns how many ran. A panic inside names the
    /// target, seed and case before it propagates.
    pub fn run(&self, mut case: impl FnMut(usize, &mut FuzzRng)) -> usize {
        let indices = self.indices();
        for &i in &indices {
            let (mut rng, _guard) = self.case(i);
            case(i, &mut rng);
        }
        indices.len()
    }

    /// The case numbers to run (all of them, or the one `DECSWEEP_FUZZ_ONLY` names), for
    /// campaigns that drive their cases themselves (e.g. in async code) with [`Campaign::case`].
    pub fn indices(&self) -> Vec<usize> {
        match self.only {
            Some(i) => vec![i],
            None => (0..self.cases).collect(),
        }
    }

    /// Case `i`'s stream, and a guard that names the case if the thread panics while it lives.
    pub fn case(&self, i: usize) -> (FuzzRng, CaseGuard) {
        (self.rng(i), CaseGuard { target: self.target, seed: self.seed, case: i })
    }

    /// The stream of case `i`.
    pub fn rng(&self, i: usize) -> FuzzRng {
        let mut h: u64 = self.seed ^ 0x9e37_79b9_7f4a_7c15;
        for b in self.target.bytes().chain((i as u64).to_le_bytes()) {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        ChaCha8Rng::seed_from_u64(h)
    }

    /// Prints the campaign's summary line; `detail` says what the cases came to.
    pub fn report(&self, ran: usize, detail: &str) {
        eprintln!("fuzz {}: {ran} cases (seed {:#x}, {CASES_ENV}×{}) {detail}", self.target, self.seed, self.factor());
    }

    fn factor(&self) -> usize {
        env_number(CASES_ENV).unwrap_or(1).max(1) as usize
    }
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Says which case was running when a test panics, so it can be replayed.
pub struct CaseGuard {
    target: &'static str,
    seed: u64,
    case: usize,
}

impl Drop for CaseGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "fuzz {}: case {} failed; replay it with {SEED_ENV}={:#x} {ONLY_ENV}={}",
                self.target, self.case, self.seed, self.case
            );
        }
    }
}

/// Bytes that most often change how a parser reads what follows.
const SPECIAL_BYTES: &[u8] = b"\0\n\r\t \"'\\[]{}=,.#-+:0123456789eE\x7f\xff\xfe\xc3\xe2\x80";

/// Invalid UTF-8 sequences: a lone continuation byte, a truncated lead, an overlong encoding,
/// a surrogate, bytes that never occur.
pub const INVALID_UTF8: &[&[u8]] =
    &[b"\x80", b"\xc3", b"\xe2\x82", b"\xc0\xaf", b"\xed\xa0\x80", b"\xff", b"\xfe\xfe", b"\xf4\x90\x80\x80"];

/// Strings that stress text handling: empty, whitespace, control characters, combining and
/// wide characters, right-to-left marks, an emoji, a NUL, SQL and path metacharacters, long.
pub fn weird_string(rng: &mut FuzzRng) -> String {
    const WEIRD: &[&str] = &[
        "",
        " ",
        "\t\n",
        "\0",
        "é",
        "e\u{301}",
        "日本語",
        "\u{202e}gnp.exe",
        "🦀",
        "\u{feff}",
        "'; DROP TABLE trials; --",
        "../../etc/passwd",
        "%00",
        "%2F..%2F",
        "{}",
        "null",
        "NaN",
        "-0",
        "1e309",
        "\\u0000",
    ];
    match rng.gen_range(0..4) {
        0 => "x".repeat(rng.gen_range(1000..70_000)),
        1 => (0..rng.gen_range(1..40)).map(|_| rng.gen_range('\u{20}'..='\u{7e}')).collect(),
        2 => (0..rng.gen_range(1..20)).map(|_| random_char(rng)).collect(),
        _ => WEIRD.choose(rng).copied().unwrap_or("").to_string(),
    }
}

fn random_char(rng: &mut FuzzRng) -> char {
    loop {
        let c = match rng.gen_range(0..3) {
            0 => rng.gen_range(0u32..0x80),
            1 => rng.gen_range(0x80u32..0x800),
            _ => rng.gen_range(0x800u32..0x11_0000),
        };
        if let Some(c) = char::from_u32(c) {
            return c;
        }
    }
}

/// Integers at the edges: 0, ±1, the limits of i32/i64/u64, and just past them as text.
pub fn edge_integer(rng: &mut FuzzRng) -> Value {
    const EDGES: &[i64] = &[0, 1, -1, 2, i32::MAX as i64, i32::MIN as i64, i64::MAX, i64::MIN, 1 << 53, -(1 << 53)];
    match rng.gen_range(0..4) {
        0 => Value::from(u64::MAX),
        1 => Value::from(rng.gen::<i64>()),
        _ => Value::from(*EDGES.choose(rng).unwrap_or(&0)),
    }
}

/// Floats at the edges: ±0, subnormal, huge, tiny, and plain values.
pub fn edge_number(rng: &mut FuzzRng) -> Value {
    const EDGES: &[f64] = &[0.0, -0.0, 0.5, -1.5, 1e308, -1e308, f64::MIN_POSITIVE, 5e-324, 1e-300, 123456789.125];
    match rng.gen_range(0..3) {
        0 => serde_json::Number::from_f64(rng.gen_range(-1e6..1e6)).map_or(Value::Null, Value::Number),
        1 => edge_integer(rng),
        _ => serde_json::Number::from_f64(*EDGES.choose(rng).unwrap_or(&0.0)).map_or(Value::Null, Value::Number),
    }
}

/// Random bytes, sometimes long.
pub fn random_bytes(rng: &mut FuzzRng, max_len: usize) -> Vec<u8> {
    let len = if rng.gen_bool(0.1) { rng.gen_range(0..=max_len) } else { rng.gen_range(0..=max_len.min(64)) };
    (0..len).map(|_| if rng.gen_bool(0.3) { *SPECIAL_BYTES.choose(rng).unwrap_or(&0) } else { rng.gen() }).collect()
}

/// 1–4 byte-level edits: flip a bit, overwrite, insert, delete or duplicate a range, splice in
/// invalid UTF-8, truncate.
pub fn mutate_bytes(rng: &mut FuzzRng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.gen_range(1..=4) {
        let len = out.len();
        let at = if len == 0 { 0 } else { rng.gen_range(0..len) };
        match rng.gen_range(0..7) {
            0 if len > 0 => out[at] ^= 1 << rng.gen_range(0..8),
            1 if len > 0 => out[at] = *SPECIAL_BYTES.choose(rng).unwrap_or(&0),
            2 => {
                let extra = random_bytes(rng, 16);
                out.splice(at..at, extra);
            }
            3 if len > 0 => {
                let end = (at + rng.gen_range(1..=16)).min(len);
                out.drain(at..end);
            }
            4 if len > 0 => {
                let end = (at + rng.gen_range(1..=32)).min(len);
                let copy = out[at..end].to_vec();
                let to = rng.gen_range(0..=out.len());
                out.splice(to..to, copy);
            }
            5 => {
                let bad = INVALID_UTF8.choose(rng).copied().unwrap_or(b"\xff");
                out.splice(at..at, bad.iter().copied());
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// 1–3 line-level edits: delete, duplicate, swap or move lines.
pub fn mutate_lines(rng: &mut FuzzRng, input: &str) -> String {
    let mut lines: Vec<String> = input.lines().map(str::to_string).collect();
    for _ in 0..rng.gen_range(1..=3) {
        if lines.is_empty() {
            lines.push(weird_string(rng));
            continue;
        }
        let n = lines.len();
        let (a, b) = (rng.gen_range(0..n), rng.gen_range(0..n));
        match rng.gen_range(0..4) {
            0 => {
                lines.remove(a);
            }
            1 => {
                let copy = lines[a].clone();
                lines.insert(b, copy);
            }
            2 => lines.swap(a, b),
            _ => {
                let line = lines.remove(a);
                lines.insert(b.min(lines.len()), line);
            }
        }
    }
    lines.join("\n")
}

/// 1–3 token-level edits: a word, number or punctuation mark replaced by an edge value, another
/// token of the text, or nothing; or a token repeated. TOML, JSON and the like tokenise
/// similarly enough for this to keep most of the structure while breaking one value.
pub fn mutate_tokens(rng: &mut FuzzRng, input: &str) -> String {
    let mut tokens = tokenize(input);
    if tokens.is_empty() {
        return weird_string(rng);
    }
    for _ in 0..rng.gen_range(1..=3) {
        let at = rng.gen_range(0..tokens.len());
        let replacement = match rng.gen_range(0..6) {
            0 => edge_number_text(rng),
            1 => weird_string(rng),
            2 => tokens.choose(rng).cloned().unwrap_or_default(),
            3 => String::new(),
            4 => format!("{}{}", tokens[at], tokens[at]),
            _ => ["[", "]", "{", "}", "=", ",", "\"", "'", "\n", "[[", "]]", "true", "nan", "inf"]
                .choose(rng)
                .copied()
                .unwrap_or("")
                .to_string(),
        };
        tokens[at] = replacement;
    }
    tokens.concat()
}

fn edge_number_text(rng: &mut FuzzRng) -> String {
    const EDGES: &[&str] = &[
        "0",
        "-1",
        "-0",
        "1e309",
        "-1e309",
        "1e-400",
        "nan",
        "inf",
        "-inf",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775809",
        "18446744073709551616",
        "4294967296",
        "0x7fffffff",
        "1_000",
        "00",
        "1.",
        ".5",
        "1e",
        "1979-05-27T07:32:00Z",
    ];
    match rng.gen_range(0..3) {
        0 => rng.gen::<i64>().to_string(),
        1 => format!("{}", rng.gen_range(-1e9f64..1e9)),
        _ => EDGES.choose(rng).copied().unwrap_or("0").to_string(),
    }
}

/// Splits text into runs of word characters, runs of whitespace, and single other characters;
/// concatenating the tokens gives the text back.
pub fn tokenize(text: &str) -> Vec<String> {
    let class = |c: char| {
        if c.is_alphanumeric() || c == '_' || c == '.' || c == '-' {
            0
        } else if c.is_whitespace() {
            1
        } else {
            2
        }
    };
    let mut tokens: Vec<String> = Vec::new();
    let mut last = None;
    for c in text.chars() {
        let k = class(c);
        match tokens.last_mut() {
            Some(t) if last == Some(k) && k != 2 => t.push(c),
            _ => tokens.push(c.to_string()),
        }
        last = Some(k);
    }
    tokens
}

/// A random JSON value, nested up to `depth`.
pub fn random_json(rng: &mut FuzzRng, depth: usize) -> Value {
    let kinds = if depth == 0 { 5 } else { 7 };
    match rng.gen_range(0..kinds) {
        0 => Value::Null,
        1 => Value::Bool(rng.gen()),
        2 => edge_integer(rng),
        3 => edge_number(rng),
        4 => Value::String(weird_string(rng)),
        5 => Value::Array((0..rng.gen_range(0..5)).map(|_| random_json(rng, depth - 1)).collect()),
        _ => {
            let mut m = Map::new();
            for _ in 0..rng.gen_range(0..5) {
                m.insert(weird_string(rng).chars().take(20).collect(), random_json(rng, depth - 1));
            }
            Value::Object(m)
        }
    }
}

/// A value that fits `schema` (JSON Schema as the OpenAPI document writes it: `$ref` into
/// `components/schemas`, `type` (or a list of types), `enum`, `const`, `oneOf`, `properties`,
/// `required`, `additionalProperties`, `items`), with random contents: the starting point for
/// [`mutate_json`]. Unknown constructs give a random value.
pub fn instance_of(rng: &mut FuzzRng, schema: &Value, components: &Value, depth: usize) -> Value {
    if depth == 0 {
        return random_json(rng, 0);
    }
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or("");
        return match components.get(name) {
            Some(target) => instance_of(rng, target, components, depth - 1),
            None => random_json(rng, 1),
        };
    }
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values.choose(rng).cloned().unwrap_or(Value::Null);
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        return match options.choose(rng) {
            Some(option) => instance_of(rng, option, components, depth - 1),
            None => Value::Null,
        };
    }
    let ty = match schema.get("type") {
        Some(Value::Array(types)) => types.choose(rng).and_then(Value::as_str).unwrap_or("null").to_string(),
        Some(Value::String(t)) => t.clone(),
        _ if schema.get("properties").is_some() => "object".into(),
        _ => return random_json(rng, 2),
    };
    match ty.as_str() {
        "null" => Value::Null,
        "boolean" => Value::Bool(rng.gen()),
        "integer" => match rng.gen_range(0..3) {
            0 => edge_integer(rng),
            _ => Value::from(rng.gen_range(0..100)),
        },
        "number" => edge_number(rng),
        "string" => Value::String(match rng.gen_range(0..3) {
            0 => weird_string(rng),
            _ => (0..rng.gen_range(1..12)).map(|_| rng.gen_range('a'..='z')).collect(),
        }),
        "array" => {
            let items = schema.get("items").cloned().unwrap_or(Value::Null);
            Value::Array((0..rng.gen_range(0..4)).map(|_| instance_of(rng, &items, components, depth - 1)).collect())
        }
        _ => {
            let mut m = Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                let required: Vec<&str> = schema
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                for (key, sub) in props {
                    if required.contains(&key.as_str()) || rng.gen_bool(0.6) {
                        m.insert(key.clone(), instance_of(rng, sub, components, depth - 1));
                    }
                }
            }
            if let Some(extra) = schema.get("additionalProperties").filter(|e| e.is_object()) {
                for _ in 0..rng.gen_range(0..4) {
                    let key: String = (0..rng.gen_range(1..10)).map(|_| rng.gen_range('a'..='z')).collect();
                    m.insert(key, instance_of(rng, extra, components, depth - 1));
                }
            }
            Value::Object(m)
        }
    }
}

/// 1–3 structural edits of a JSON value: a node replaced by a random value of another type,
/// an object key removed or added, an array emptied or grown, a number pushed to an edge.
pub fn mutate_json(rng: &mut FuzzRng, value: &Value) -> Value {
    let mut out = value.clone();
    for _ in 0..rng.gen_range(1..=3) {
        mutate_node(rng, &mut out, 4);
    }
    out
}

fn mutate_node(rng: &mut FuzzRng, node: &mut Value, depth: usize) {
    // Descend into a child most of the time, so edits land at every level.
    if depth > 0 && rng.gen_bool(0.6) {
        match node {
            Value::Object(m) if !m.is_empty() => {
                let keys: Vec<String> = m.keys().cloned().collect();
                if let Some(child) = keys.choose(rng).and_then(|k| m.get_mut(k)) {
                    return mutate_node(rng, child, depth - 1);
                }
            }
            Value::Array(a) if !a.is_empty() => {
                let i = rng.gen_range(0..a.len());
                return mutate_node(rng, &mut a[i], depth - 1);
            }
            _ => {}
        }
    }
    match (rng.gen_range(0..5), &mut *node) {
        (0, Value::Object(m)) if !m.is_empty() => {
            let keys: Vec<String> = m.keys().cloned().collect();
            if let Some(k) = keys.choose(rng) {
                m.remove(k);
            }
        }
        (1, Value::Object(m)) => {
            m.insert(weird_string(rng).chars().take(16).collect(), random_json(rng, 2));
        }
        (2, Value::Array(a)) => {
            if rng.gen_bool(0.5) {
                a.clear();
            } else {
                a.extend((0..rng.gen_range(1..50)).map(|_| random_json(rng, 1)));
            }
        }
        (3, Value::Number(_)) => *node = if rng.gen_bool(0.5) { edge_integer(rng) } else { edge_number(rng) },
        _ => *node = random_json(rng, 2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_replay_from_their_index() {
        let c = Campaign::new("replay", 3);
        let a: Vec<u8> = random_bytes(&mut c.rng(2), 100);
        let b: Vec<u8> = random_bytes(&mut c.rng(2), 100);
        assert_eq!(a, b);
        assert_ne!(c.rng(1).gen::<u64>(), c.rng(2).gen::<u64>());
    }

    #[test]
    fn tokens_concatenate_back_to_the_text() {
        let text = "[study]\nname = \"x\" # é\nseeds = [0, 1]\n";
        assert_eq!(tokenize(text).concat(), text);
        assert!(tokenize(text).contains(&"seeds".to_string()));
    }

    #[test]
    fn instances_follow_the_schema() {
        let components = serde_json::json!({ "Req": { "type": "object", "required": ["worker"], "properties": {
            "worker": { "type": "string" }, "kind": { "enum": ["a", "b"] } } } });
        let schema = serde_json::json!({ "$ref": "#/components/schemas/Req" });
        let c = Campaign::new("schema", 20);
        c.run(|_, rng| {
            let v = instance_of(rng, &schema, &components, 6);
            assert!(v["worker"].is_string(), "{v}");
            assert!(v.get("kind").is_none_or(|k| k == "a" || k == "b"), "{v}");
        });
    }

    #[test]
    fn mutations_change_the_input() {
        let c = Campaign::new("mutations", 50);
        let text = "[study]\nname = \"x\"\nseeds = [0, 1]\n";
        let mut changed = 0;
        c.run(|_, rng| {
            changed += usize::from(mutate_bytes(rng, text.as_bytes()) != text.as_bytes());
            changed += usize::from(mutate_tokens(rng, text) != text);
        });
        assert!(changed > 80, "only {changed} of 100 mutations changed anything");
    }
}
