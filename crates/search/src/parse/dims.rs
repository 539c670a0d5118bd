//! `[space]`: one dimension per swept parameter.

use decsweep_api::{Domain, ParamSpec, ParamValue};
use toml::de::DeValue;

use super::params::Rules;
use crate::error::Diagnostics;
use crate::reader::{self, Entry, Section, Span, Value};
use crate::space::Dimension;

const KINDS: &[&str] = &["grid", "choice", "uniform", "loguniform", "int"];
const KEYS: &[&str] = &["grid", "choice", "uniform", "loguniform", "int", "step", "log"];

/// A dimension as written.
#[derive(Clone, Debug)]
pub(crate) struct DeclaredDim {
    pub name: String,
    pub key_span: Span,
    /// The `grid = ...` / `uniform = ...` key, where sampler-related problems are reported.
    pub kind_span: Span,
    pub dim: Dimension,
}

/// Reads every dimension of `[space]`; a broken one is reported and left out.
pub(crate) fn space(diag: &mut Diagnostics, rules: &Rules, section: &Section<'_, '_>) -> Vec<DeclaredDim> {
    let mut out = Vec::new();
    for e in &section.entries {
        let Ok(entry) = rules.name(diag, e.key, &e.key_span) else { continue };
        if let Some(d) = dimension(diag, rules, entry, e) {
            out.push(d);
        }
    }
    out
}

fn dimension(
    diag: &mut Diagnostics,
    rules: &Rules,
    entry: Option<&ParamSpec>,
    e: &Entry<'_, '_>,
) -> Option<DeclaredDim> {
    let what = format!("`space.{}`", e.key);
    let DeValue::Table(t) = e.value.get_ref() else {
        diag.error(
            e.value.span(),
            format!(
                "expected a table such as {{ grid = [1, 2] }} or {{ uniform = [0.0, 1.0] }} for {what}, found {}",
                reader::type_name(e.value.get_ref())
            ),
        );
        return None;
    };
    let section = Section::open(diag, format!("space.{}", e.key), e.value.span(), t, KEYS);
    let kinds: Vec<&Entry<'_, '_>> = section.entries.iter().filter(|x| KINDS.contains(&x.key)).collect();
    let kind = match kinds.as_slice() {
        [] => {
            diag.error(e.value.span(), format!("{what} needs one of: {}", KINDS.join(", ")));
            return None;
        }
        [one] => *one,
        [first, second, ..] => {
            diag.error(
                second.key_span.clone(),
                format!("{what} has both `{}` and `{}`; give exactly one", first.key, second.key),
            );
            return None;
        }
    };
    let step = section.get("step");
    let log = section.get("log");
    if kind.key != "int" {
        if let Some(extra) = step.or(log) {
            diag.error(extra.key_span.clone(), format!("`{}` applies only to {{ int = [lo, hi] }}", extra.key));
            return None;
        }
    }
    let what = format!("{what} ({})", kind.key);
    let dim = match kind.key {
        "grid" | "choice" => {
            let values = listed(diag, rules, entry, kind.value, &what)?;
            if kind.key == "grid" {
                Dimension::Grid(values)
            } else {
                Dimension::Choice(values)
            }
        }
        "uniform" | "loguniform" => real_range(diag, rules, entry, kind, &what)?,
        _ => int_range(diag, rules, entry, kind, step, log, &what)?,
    };
    Some(DeclaredDim { name: e.key.to_string(), key_span: e.key_span.clone(), kind_span: kind.key_span.clone(), dim })
}

/// The values of a grid or choice: at least one, each valid, none repeated.
fn listed(
    diag: &mut Diagnostics,
    rules: &Rules,
    entry: Option<&ParamSpec>,
    v: &Value<'_>,
    what: &str,
) -> Option<Vec<ParamValue>> {
    let array = reader::array(diag, v, what)?;
    if array.is_empty() {
        diag.error(v.span(), format!("empty list for {what}: expected at least one value"));
        return None;
    }
    let mut values: Vec<ParamValue> = Vec::with_capacity(array.len());
    let mut ok = true;
    for item in array.iter() {
        let Some(raw) = reader::scalar(diag, item, what) else {
            ok = false;
            continue;
        };
        let Some(value) = rules.value(diag, entry, raw, &item.span()) else {
            ok = false;
            continue;
        };
        if values.contains(&value) {
            diag.error(item.span(), format!("{value} is listed twice in {what}"));
            ok = false;
            continue;
        }
        values.push(value);
    }
    ok.then_some(values)
}

/// The two ends of a range, `[lo, hi]`.
fn ends<'a, 'i>(diag: &mut Diagnostics, v: &'a Value<'i>, what: &str) -> Option<[&'a Value<'i>; 2]> {
    let array = reader::array(diag, v, what)?;
    match array.as_ref() {
        [lo, hi] => Some([lo, hi]),
        other => {
            diag.error(v.span(), format!("expected [lo, hi] for {what}, found {} values", other.len()));
            None
        }
    }
}

/// Word-valued and integer parameters cannot take a real range; say what they take instead.
fn refuse_domain(diag: &mut Diagnostics, entry: Option<&ParamSpec>, kind: &Entry<'_, '_>, integers_ok: bool) -> bool {
    let Some(entry) = entry else { return false };
    let message = match entry.domain {
        Domain::Choice(words) => format!(
            "`{}` takes one of {}; use {{ choice = [...] }} or {{ grid = [...] }}",
            entry.name,
            words.join(", ")
        ),
        Domain::Int { .. } if !integers_ok => {
            format!("`{}` is an integer parameter; use {{ int = [lo, hi] }} instead of {}", entry.name, kind.key)
        }
        _ => return false,
    };
    diag.error(kind.key_span.clone(), message);
    true
}

fn real_range(
    diag: &mut Diagnostics,
    rules: &Rules,
    entry: Option<&ParamSpec>,
    kind: &Entry<'_, '_>,
    what: &str,
) -> Option<Dimension> {
    if refuse_domain(diag, entry, kind, false) {
        return None;
    }
    let [lo_v, hi_v] = ends(diag, kind.value, what)?;
    let lo = reader::number(diag, lo_v, what);
    let hi = reader::number(diag, hi_v, what);
    let (lo, hi) = (lo?, hi?);
    if !lo.is_finite() || !hi.is_finite() {
        diag.error(kind.value.span(), format!("expected finite numbers for {what}"));
        return None;
    }
    if lo >= hi {
        diag.error(kind.value.span(), format!("expected lo < hi for {what}, found [{lo}, {hi}]"));
        return None;
    }
    let log = kind.key == "loguniform";
    if log && lo <= 0.0 {
        diag.error(lo_v.span(), format!("expected lo > 0 for {what}, found {lo}"));
        return None;
    }
    let lo_ok = rules.value(diag, entry, ParamValue::Float(lo), &lo_v.span()).is_some();
    let hi_ok = rules.value(diag, entry, ParamValue::Float(hi), &hi_v.span()).is_some();
    if !(lo_ok && hi_ok) {
        return None;
    }
    Some(if log { Dimension::LogUniform { lo, hi } } else { Dimension::Uniform { lo, hi } })
}

fn int_range(
    diag: &mut Diagnostics,
    rules: &Rules,
    entry: Option<&ParamSpec>,
    kind: &Entry<'_, '_>,
    step: Option<&Entry<'_, '_>>,
    log: Option<&Entry<'_, '_>>,
    what: &str,
) -> Option<Dimension> {
    if refuse_domain(diag, entry, kind, true) {
        return None;
    }
    let [lo_v, hi_v] = ends(diag, kind.value, what)?;
    let lo = reader::integer(diag, lo_v, what);
    let hi = reader::integer(diag, hi_v, what);
    let step_n = match step {
        Some(s) => match reader::integer(diag, s.value, &format!("`step` of {what}"))? {
            n if n >= 1 => Some(n),
            n => {
                diag.error(s.value.span(), format!("expected a step ≥ 1 for {what}, found {n}"));
                return None;
            }
        },
        None => None,
    };
    let log_on = match log {
        Some(l) => reader::boolean(diag, l.value, &format!("`log` of {what}"))?,
        None => false,
    };
    let (lo, hi) = (lo?, hi?);
    if lo >= hi {
        diag.error(kind.value.span(), format!("expected lo < hi for {what}, found [{lo}, {hi}]"));
        return None;
    }
    if log_on {
        if let (Some(s), Some(_)) = (step, step_n) {
            diag.error(s.key_span.clone(), format!("`step` and `log = true` cannot be combined in {what}"));
            return None;
        }
        if lo < 1 {
            diag.error(lo_v.span(), format!("expected lo ≥ 1 for {what} with log = true, found {lo}"));
            return None;
        }
    }
    let step_n = step_n.unwrap_or(1);
    let last = Dimension::int_last(lo, hi, step_n);
    let lo_ok = rules.value(diag, entry, ParamValue::Int(lo), &lo_v.span()).is_some();
    // The largest value the step reaches is what must be valid, reported at `hi`.
    let hi_ok = rules.value(diag, entry, ParamValue::Int(last), &hi_v.span()).is_some();
    if !(lo_ok && hi_ok) {
        return None;
    }
    Some(Dimension::Int { lo, hi, step: step_n, log: log_on })
}
