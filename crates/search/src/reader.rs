//! Typed reads from the spanned TOML document, each reporting a located problem on failure.
//!
//! The spec is walked by hand rather than through `serde::Deserialize` because serde stops at
//! the first problem and loses the position of most of them; walking the spanned tree lets one
//! pass report every problem with the exact key or value it concerns.

use std::ops::Range;

use decsweep_api::ParamValue;
use toml::de::{DeArray, DeTable, DeValue};
use toml::Spanned;

use crate::error::Diagnostics;
use crate::suggest;

pub(crate) type Span = Range<usize>;
pub(crate) type Value<'i> = Spanned<DeValue<'i>>;

/// A key of a table with the value it holds.
#[derive(Clone)]
pub(crate) struct Entry<'a, 'i> {
    pub key: &'a str,
    pub key_span: Span,
    pub value: &'a Value<'i>,
}

/// A table being read: its dotted name for messages, its header's span, and its entries in
/// source order (the parser stores them sorted by name; sweeps need the order they were written).
pub(crate) struct Section<'a, 'i> {
    pub name: String,
    pub span: Span,
    pub entries: Vec<Entry<'a, 'i>>,
}

impl<'a, 'i> Section<'a, 'i> {
    /// Opens a table and reports every key not in `allowed`.
    pub(crate) fn open(
        diag: &mut Diagnostics,
        name: impl Into<String>,
        span: Span,
        table: &'a DeTable<'i>,
        allowed: &[&str],
    ) -> Self {
        let section = Section::any_keys(name, span, table);
        for e in &section.entries {
            if !allowed.contains(&e.key) {
                diag.error(
                    e.key_span.clone(),
                    format!("unknown key `{}` in {}; {}", e.key, section.display(), suggest::hint(e.key, allowed)),
                );
            }
        }
        section
    }

    /// Opens a table whose keys are free (parameter names), checked by the caller.
    pub(crate) fn any_keys(name: impl Into<String>, span: Span, table: &'a DeTable<'i>) -> Self {
        let mut entries: Vec<Entry<'a, 'i>> =
            table.iter().map(|(k, v)| Entry { key: k.get_ref().as_ref(), key_span: k.span(), value: v }).collect();
        entries.sort_by_key(|e| e.key_span.start);
        Section { name: name.into(), span, entries }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Entry<'a, 'i>> {
        self.entries.iter().find(|e| e.key == key)
    }

    /// `[study]` for top-level tables, `space.lr` style below them.
    pub(crate) fn display(&self) -> String {
        if self.name.contains('.') || self.name.contains('[') {
            format!("`{}`", self.name)
        } else {
            format!("[{}]", self.name)
        }
    }

    /// The dotted name of one of this table's keys, for messages.
    pub(crate) fn field(&self, key: &str) -> String {
        format!("`{}.{}`", self.name, key)
    }

    /// Reports a required key that is absent, at the table's header.
    pub(crate) fn missing(&self, diag: &mut Diagnostics, key: &str, expected: &str) {
        diag.error(self.span.clone(), format!("missing `{key}` in {}: expected {expected}", self.display()));
    }
}

/// "a string", "an integer", ... for messages.
pub(crate) fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn wrong_type(diag: &mut Diagnostics, v: &Value<'_>, what: &str, expected: &str) {
    diag.error(v.span(), format!("expected {expected} for {what}, found {}", type_name(v.get_ref())));
}

pub(crate) fn string<'a>(diag: &mut Diagnostics, v: &'a Value<'_>, what: &str) -> Option<&'a str> {
    match v.get_ref() {
        DeValue::String(s) => Some(s.as_ref()),
        _ => {
            wrong_type(diag, v, what, "a string");
            None
        }
    }
}

/// An integer that fits `i64`; TOML allows hex, octal and binary forms, kept as text by the parser.
fn parse_integer(v: &DeValue<'_>) -> Option<Result<i64, ()>> {
    match v {
        DeValue::Integer(i) => Some(i64::from_str_radix(i.as_str(), i.radix()).map_err(|_| ())),
        _ => None,
    }
}

pub(crate) fn integer(diag: &mut Diagnostics, v: &Value<'_>, what: &str) -> Option<i64> {
    match parse_integer(v.get_ref()) {
        Some(Ok(i)) => Some(i),
        Some(Err(())) => {
            diag.error(v.span(), format!("integer for {what} does not fit in 64 bits"));
            None
        }
        None => {
            wrong_type(diag, v, what, "an integer");
            None
        }
    }
}

/// A non-negative integer, such as a seed or a count.
pub(crate) fn unsigned(diag: &mut Diagnostics, v: &Value<'_>, what: &str) -> Option<u64> {
    let i = integer(diag, v, what)?;
    match u64::try_from(i) {
        Ok(u) => Some(u),
        Err(_) => {
            diag.error(v.span(), format!("expected a non-negative integer for {what}, found {i}"));
            None
        }
    }
}

/// A number: integers are accepted where a float is expected, as people write `gpus = 1`.
pub(crate) fn number(diag: &mut Diagnostics, v: &Value<'_>, what: &str) -> Option<f64> {
    match v.get_ref() {
        DeValue::Float(f) => match f.as_str().parse::<f64>() {
            Ok(x) => Some(x),
            Err(_) => {
                diag.error(v.span(), format!("cannot read `{}` as a number for {what}", f.as_str()));
                None
            }
        },
        DeValue::Integer(_) => integer(diag, v, what).map(|i| i as f64),
        _ => {
            wrong_type(diag, v, what, "a number");
            None
        }
    }
}

pub(crate) fn boolean(diag: &mut Diagnostics, v: &Value<'_>, what: &str) -> Option<bool> {
    match v.get_ref() {
        DeValue::Boolean(b) => Some(*b),
        _ => {
            wrong_type(diag, v, what, "true or false");
            None
        }
    }
}

pub(crate) fn array<'a, 'i>(diag: &mut Diagnostics, v: &'a Value<'i>, what: &str) -> Option<&'a DeArray<'i>> {
    match v.get_ref() {
        DeValue::Array(a) => Some(a),
        _ => {
            wrong_type(diag, v, what, "an array");
            None
        }
    }
}

pub(crate) fn table<'a, 'i>(diag: &mut Diagnostics, v: &'a Value<'i>, what: &str) -> Option<&'a DeTable<'i>> {
    match v.get_ref() {
        DeValue::Table(t) => Some(t),
        _ => {
            wrong_type(diag, v, what, "a table");
            None
        }
    }
}

/// A parameter value: an integer, a float or a string.
pub(crate) fn scalar(diag: &mut Diagnostics, v: &Value<'_>, what: &str) -> Option<ParamValue> {
    match v.get_ref() {
        DeValue::String(s) => Some(ParamValue::Str(s.to_string())),
        DeValue::Integer(_) => integer(diag, v, what).map(ParamValue::Int),
        DeValue::Float(_) => number(diag, v, what).map(ParamValue::Float),
        DeValue::Boolean(b) => {
            // Parameter values travel as numbers or words; a quoted word keeps the intent explicit.
            diag.error(
                v.span(),
                format!("expected a number or a string for {what}, found a boolean (write \"{b}\" to pass the word)"),
            );
            None
        }
        _ => {
            wrong_type(diag, v, what, "a number or a string");
            None
        }
    }
}

/// A string naming one of `words`.
pub(crate) fn word<'w>(diag: &mut Diagnostics, v: &Value<'_>, what: &str, words: &[&'w str]) -> Option<&'w str> {
    let s = string(diag, v, what)?;
    match words.iter().find(|w| **w == s) {
        Some(w) => Some(*w),
        None => {
            diag.error(v.span(), format!("unknown value `{s}` for {what}; expected one of: {}", words.join(", ")));
            None
        }
    }
}
