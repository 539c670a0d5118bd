//! `[[configs]]`: explicit configurations, each a pipeline, a label and its own parameters.

use toml::de::DeValue;

use super::params::{param_table, Declared, Rules};
use crate::command::PassMode;
use crate::error::Diagnostics;
use crate::reader::{self, Section, Span, Value};
use crate::spec::PipelineKind;

const KEYS: &[&str] = &["pipeline", "label", "params"];

#[derive(Clone, Debug)]
pub(crate) struct DeclaredConfig {
    pub pipeline: PipelineKind,
    pub pipeline_span: Span,
    pub label: Option<String>,
    pub params: Vec<Declared>,
}

/// Reads every entry; `None` if any is broken (already reported).
pub(crate) fn configs(diag: &mut Diagnostics, v: &Value<'_>, pass: PassMode) -> Option<Vec<DeclaredConfig>> {
    let DeValue::Array(array) = v.get_ref() else {
        diag.error(
            v.span(),
            format!(
                "expected an array of tables for [[configs]], found {}; write [[configs]] (double brackets) above each entry",
                reader::type_name(v.get_ref())
            ),
        );
        return None;
    };
    if array.is_empty() {
        diag.error(v.span(), "empty [[configs]]: expected at least one configuration");
        return None;
    }
    let mut out: Vec<DeclaredConfig> = Vec::new();
    let mut ok = true;
    for (i, item) in array.iter().enumerate() {
        let DeValue::Table(t) = item.get_ref() else {
            diag.error(
                item.span(),
                format!(
                    "expected a table for [[configs]] entry {}, found {}",
                    i + 1,
                    reader::type_name(item.get_ref())
                ),
            );
            ok = false;
            continue;
        };
        let s = Section::open(diag, format!("configs[{}]", i + 1), item.span(), t, KEYS);
        match entry(diag, &s, pass) {
            Some(c) => {
                if repeats(diag, &out, &c, &s) {
                    ok = false;
                }
                out.push(c);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn entry(diag: &mut Diagnostics, s: &Section<'_, '_>, pass: PassMode) -> Option<DeclaredConfig> {
    let Some(p) = s.get("pipeline") else {
        s.missing(diag, "pipeline", &format!("one of: {}", PipelineKind::WORDS.join(", ")));
        return None;
    };
    let word = reader::word(diag, p.value, &s.field("pipeline"), PipelineKind::WORDS)?;
    let pipeline = PipelineKind::from_word(word)?;
    let label = match s.get("label") {
        Some(l) => match reader::string(diag, l.value, &s.field("label"))? {
            "" => {
                diag.error(l.value.span(), format!("empty {}: expected a row name or no label", s.field("label")));
                return None;
            }
            text => Some(text.to_string()),
        },
        None => None,
    };
    let rules = match pipeline {
        PipelineKind::Model(p) => Rules::Model(vec![p]),
        PipelineKind::Command => Rules::Command(pass),
    };
    let mut params = Vec::new();
    if let Some(e) = s.get("params") {
        let t = reader::table(diag, e.value, &s.field("params"))?;
        let section = Section::any_keys(format!("{}.params", s.name), e.value.span(), t);
        let before = section.entries.len();
        params = param_table(diag, &rules, &section);
        if params.len() != before {
            return None;
        }
    }
    Some(DeclaredConfig { pipeline, pipeline_span: p.value.span(), label, params })
}

/// Reports an entry whose label, or whose pipeline and parameters, an earlier entry already has.
fn repeats(diag: &mut Diagnostics, earlier: &[DeclaredConfig], c: &DeclaredConfig, s: &Section<'_, '_>) -> bool {
    let key = |c: &DeclaredConfig| {
        let mut p: Vec<(String, String)> =
            c.params.iter().map(|d| (d.name.clone(), format!("{:?}", d.value))).collect();
        p.sort();
        (c.pipeline, p)
    };
    for (i, other) in earlier.iter().enumerate() {
        if c.label.is_some() && other.label == c.label {
            let span = s.get("label").map_or(s.span.clone(), |l| l.value.span());
            diag.error(
                span,
                format!("label {:?} is already used by [[configs]] entry {}", c.label.as_deref().unwrap_or(""), i + 1),
            );
            return true;
        }
        if key(other) == key(c) {
            diag.error(
                s.span.clone(),
                format!("this [[configs]] entry repeats entry {} (same pipeline and parameters)", i + 1),
            );
            return true;
        }
    }
    false
}
