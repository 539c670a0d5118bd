//! `[study]`: name, dataset, pipelines, seeds, retries.

use std::path::Path;

use decsweep_api::{ParamError, SynthKind, CLUSTERED_KNOBS};
use toml::de::DeValue;

use crate::error::Diagnostics;
use crate::reader::{self, Section, Span};
use crate::spec::{Dataset, LoadOptions, PipelineKind, DEFAULT_RETRIES, SYNTHETIC_DEFAULT_N};

pub(crate) const KEYS: &[&str] = &["name", "description", "dataset", "pipelines", "seeds", "retries"];

/// What `[study]` gave; `None` where a value was missing or wrong (already reported).
#[derive(Debug, Default)]
pub(crate) struct Study {
    pub name: Option<String>,
    pub description: Option<String>,
    pub dataset: Option<Dataset>,
    /// Whether `dataset` was written at all (even if invalid): a study of programs only may
    /// leave it out, which is judged once the pipelines are known.
    pub dataset_written: bool,
    /// The pipelines with the span of each; `None` when absent or invalid.
    pub pipelines: Option<Vec<(PipelineKind, Span)>>,
    /// Whether `pipelines` was written at all (even if invalid).
    pub pipelines_written: bool,
    pub seeds: Option<Vec<u64>>,
    pub retries: u32,
}

pub(crate) fn study(diag: &mut Diagnostics, s: &Section<'_, '_>, spec_path: &Path, options: &LoadOptions) -> Study {
    let mut out = Study { retries: DEFAULT_RETRIES, ..Study::default() };
    match s.get("name") {
        Some(e) => out.name = name(diag, e.value, &s.field("name")),
        None => s.missing(diag, "name", "a study name, e.g. name = \"demo\" (it names results/<name>/)"),
    }
    if let Some(e) = s.get("description") {
        out.description = reader::string(diag, e.value, &s.field("description")).map(str::to_string);
    }
    if let Some(e) = s.get("dataset") {
        out.dataset_written = true;
        out.dataset = dataset(diag, e.value, spec_path, options);
    }
    if let Some(e) = s.get("pipelines") {
        out.pipelines_written = true;
        out.pipelines = pipelines(diag, e.value, &s.field("pipelines"));
    }
    match s.get("seeds") {
        Some(e) => out.seeds = seeds(diag, e.value, &s.field("seeds")),
        None => s.missing(diag, "seeds", "a list of seeds run for every configuration, e.g. seeds = [0, 1, 2]"),
    }
    if let Some(e) = s.get("retries") {
        if let Some(n) = reader::unsigned(diag, e.value, &s.field("retries")) {
            match u32::try_from(n) {
                Ok(n) => out.retries = n,
                Err(_) => diag.error(e.value.span(), format!("expected at most {} retries, found {n}", u32::MAX)),
            }
        }
    }
    out
}

/// A study name becomes a directory name under results/, so it is kept to portable characters.
fn name(diag: &mut Diagnostics, v: &reader::Value<'_>, what: &str) -> Option<String> {
    let s = reader::string(diag, v, what)?;
    let portable = s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if s.is_empty() || !portable || s.starts_with('.') {
        diag.error(
            v.span(),
            format!("invalid study name `{s}`: expected letters, digits, `-`, `_` or `.`, not starting with `.` (it names the results folder)"),
        );
        return None;
    }
    Some(s.to_string())
}

fn dataset(diag: &mut Diagnostics, v: &reader::Value<'_>, spec_path: &Path, options: &LoadOptions) -> Option<Dataset> {
    match v.get_ref() {
        DeValue::String(s) => {
            if s.is_empty() {
                diag.error(v.span(), "empty dataset path: expected a file path relative to the spec file");
                return None;
            }
            let base = spec_path.parent().unwrap_or(Path::new(""));
            let path = base.join(s.as_ref());
            // `exists`, not `is_file`: a path that is there but is no dataset (a folder,
            // /dev/null) is the dataset reader's to explain, not "not found".
            if options.check_dataset && !path.exists() {
                diag.error(
                    v.span(),
                    format!(
                        "dataset file `{s}` not found (looked for {}; a relative path is read from the spec file's folder)",
                        path.display()
                    ),
                );
                return None;
            }
            Some(Dataset::File { written: s.to_string(), path })
        }
        DeValue::Table(t) => {
            let s = Section::open(diag, "study.dataset", v.span(), t, &["synthetic"]);
            let Some(e) = s.get("synthetic") else {
                if s.entries.is_empty() {
                    s.missing(diag, "synthetic", "{ synthetic = { seed = 0, n = 2199 } }");
                }
                return None;
            };
            synthetic(diag, e.value)
        }
        other => {
            diag.error(
                v.span(),
                format!(
                    "expected a file path or {{ synthetic = {{ seed = 0 }} }} for `study.dataset`, found {}",
                    reader::type_name(other)
                ),
            );
            None
        }
    }
}

/// `study.dataset.synthetic`: `seed`, `n`, `kind` and the kind's knobs.
fn synthetic(diag: &mut Diagnostics, v: &reader::Value<'_>) -> Option<Dataset> {
    let t = reader::table(diag, v, "`study.dataset.synthetic`")?;
    // Every knob of every kind is a known key, so a knob given to the wrong kind gets a message
    // about the kind rather than "unknown key".
    let mut keys = vec!["seed", "n", "kind"];
    keys.extend(CLUSTERED_KNOBS.iter().map(|k| k.name));
    let syn = Section::open(diag, "study.dataset.synthetic", v.span(), t, &keys);
    let seed = match syn.get("seed") {
        Some(x) => reader::unsigned(diag, x.value, &syn.field("seed"))?,
        None => 0,
    };
    let n = match syn.get("n") {
        Some(x) => match reader::unsigned(diag, x.value, &syn.field("n"))? {
            0 => {
                diag.error(x.value.span(), "expected at least 1 utterance for `study.dataset.synthetic.n`");
                return None;
            }
            n => n,
        },
        None => SYNTHETIC_DEFAULT_N,
    };
    let mut generator = match syn.get("kind") {
        Some(x) => {
            let word = reader::string(diag, x.value, &syn.field("kind"))?;
            match SynthKind::from_word(word) {
                Some(kind) => kind,
                None => {
                    diag.error(
                        x.value.span(),
                        format!(
                            "unknown synthetic kind `{word}` for {}; expected one of: {}",
                            syn.field("kind"),
                            SynthKind::WORDS.join(", ")
                        ),
                    );
                    return None;
                }
            }
        }
        None => SynthKind::Linear,
    };
    let mut ok = true;
    for e in syn.entries.iter().filter(|e| !matches!(e.key, "seed" | "n" | "kind")) {
        let Some(spec) = CLUSTERED_KNOBS.iter().find(|k| k.name == e.key) else {
            continue; // an unknown key, reported by Section::open
        };
        let SynthKind::Clustered(knobs) = &mut generator else {
            diag.error(
                e.key_span.clone(),
                format!(
                    "`{}` is a knob of the clustered generator; add kind = \"clustered\" to {} or remove it",
                    e.key,
                    syn.display()
                ),
            );
            ok = false;
            continue;
        };
        let Some(value) = reader::scalar(diag, e.value, &syn.field(e.key)) else {
            ok = false;
            continue;
        };
        if let Err(err) = knobs.set(spec.name, &value) {
            let why = match err {
                ParamError::OutOfRange { .. } | ParamError::WrongType { .. } => {
                    format!("{}: expected {}, found {value}", syn.field(e.key), spec.domain.describe())
                }
                other => other.to_string(),
            };
            diag.error(e.value.span(), why);
            ok = false;
        }
    }
    ok.then_some(Dataset::Synthetic { seed, n, generator })
}

fn pipelines(diag: &mut Diagnostics, v: &reader::Value<'_>, what: &str) -> Option<Vec<(PipelineKind, Span)>> {
    let array = reader::array(diag, v, what)?;
    if array.is_empty() {
        diag.error(v.span(), format!("expected at least one pipeline in {what}: {}", PipelineKind::WORDS.join(", ")));
        return None;
    }
    let mut out: Vec<(PipelineKind, Span)> = Vec::new();
    let mut ok = true;
    for item in array.iter() {
        let Some(word) = reader::string(diag, item, what) else {
            ok = false;
            continue;
        };
        let Some(kind) = PipelineKind::from_word(word) else {
            diag.error(
                item.span(),
                format!("unknown pipeline `{word}`; expected one of: {}", PipelineKind::WORDS.join(", ")),
            );
            ok = false;
            continue;
        };
        if out.iter().any(|(k, _)| *k == kind) {
            diag.error(item.span(), format!("pipeline `{word}` is listed twice"));
            ok = false;
            continue;
        }
        out.push((kind, item.span()));
    }
    ok.then_some(out)
}

fn seeds(diag: &mut Diagnostics, v: &reader::Value<'_>, what: &str) -> Option<Vec<u64>> {
    let array = reader::array(diag, v, what)?;
    if array.is_empty() {
        diag.error(v.span(), format!("empty {what}: expected at least one seed, e.g. seeds = [0, 1, 2]"));
        return None;
    }
    let mut out = Vec::with_capacity(array.len());
    let mut ok = true;
    for item in array.iter() {
        match reader::unsigned(diag, item, what) {
            Some(seed) if out.contains(&seed) => {
                diag.error(item.span(), format!("seed {seed} is listed twice in {what}"));
                ok = false;
            }
            Some(seed) => out.push(seed),
            None => ok = false,
        }
    }
    ok.then_some(out)
}
