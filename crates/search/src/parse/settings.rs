//! `[sampler]`, `[objective]`, `[resources]` and `[command]`.

use std::collections::BTreeMap;

use decsweep_api::pack::MAX_PACK;
use toml::de::DeValue;

use crate::command::{CommandSpec, PassMode};
use crate::error::Diagnostics;
use crate::objective::{Direction, Objective};
use crate::pruning::{PruneStage, PrunerKind, PrunerSpec};
use crate::reader::{self, Section, Span};
use crate::spec::{Resources, SamplerKind, SamplerSpec};
use crate::tpe::TpeSettings;

/// `[sampler]` keys that only `kind = "tpe"` reads.
pub(crate) const TPE_KEYS: &[&str] =
    &["n_startup_trials", "n_ei_candidates", "multivariate", "constant_liar", "good_bandwidth_factor"];

/// Every key `[sampler]` may hold.
pub(crate) fn sampler_keys() -> Vec<&'static str> {
    ["kind", "seed", "n_trials"].into_iter().chain(TPE_KEYS.iter().copied()).collect()
}

/// `[pruner]` keys of `kind = "median"` and of `kind = "asha"`.
const MEDIAN_KEYS: &[&str] = &["n_startup_trials", "n_warmup_steps", "interval_steps"];
const ASHA_KEYS: &[&str] = &["min_resource", "reduction_factor", "min_early_stopping_rate"];

/// Every key `[pruner]` may hold.
pub(crate) fn pruner_keys() -> Vec<&'static str> {
    ["kind", "stage"].into_iter().chain(MEDIAN_KEYS.iter().chain(ASHA_KEYS).copied()).collect()
}

/// `[sampler]` and where its parts were written, for checks made once the space is known.
pub(crate) struct Sampler {
    pub spec: SamplerSpec,
    /// The `kind` value, or the table header, or the document start when there is no table.
    pub kind_span: Span,
    pub n_trials_span: Option<Span>,
}

pub(crate) fn sampler(diag: &mut Diagnostics, s: Option<&Section<'_, '_>>) -> Option<Sampler> {
    let default = SamplerSpec { kind: SamplerKind::Grid, seed: 0, n_trials: None, tpe: TpeSettings::default() };
    let Some(s) = s else {
        return Some(Sampler { spec: default, kind_span: 0..0, n_trials_span: None });
    };
    let mut ok = true;
    let mut out = Sampler { spec: default, kind_span: s.span.clone(), n_trials_span: None };
    if let Some(e) = s.get("kind") {
        out.kind_span = e.value.span();
        match reader::word(diag, e.value, &s.field("kind"), SamplerKind::WORDS) {
            Some("random") => out.spec.kind = SamplerKind::Random,
            Some("tpe") => out.spec.kind = SamplerKind::Tpe,
            Some(_) => out.spec.kind = SamplerKind::Grid,
            None => ok = false,
        }
    }
    if let Some(e) = s.get("seed") {
        match reader::unsigned(diag, e.value, &s.field("seed")) {
            Some(seed) => out.spec.seed = seed,
            None => ok = false,
        }
    }
    if let Some(e) = s.get("n_trials") {
        out.n_trials_span = Some(e.value.span());
        match reader::unsigned(diag, e.value, &s.field("n_trials")) {
            Some(0) => {
                diag.error(e.value.span(), format!("expected at least 1 for {}", s.field("n_trials")));
                ok = false;
            }
            Some(n) => out.spec.n_trials = Some(n),
            None => ok = false,
        }
    }
    for key in TPE_KEYS {
        let Some(e) = s.get(key) else { continue };
        if ok && out.spec.kind != SamplerKind::Tpe {
            diag.error(
                e.key_span.clone(),
                format!("`{key}` is an option of the tpe sampler; add kind = \"tpe\" or remove it"),
            );
            ok = false;
            continue;
        }
        let tpe = &mut out.spec.tpe;
        match *key {
            "n_startup_trials" => match reader::unsigned(diag, e.value, &s.field(key)) {
                Some(n) => tpe.n_startup_trials = usize::try_from(n).unwrap_or(usize::MAX),
                None => ok = false,
            },
            "n_ei_candidates" => match reader::unsigned(diag, e.value, &s.field(key)) {
                Some(0) => {
                    diag.error(e.value.span(), format!("expected at least 1 for {}", s.field(key)));
                    ok = false;
                }
                Some(n) if n > 10_000 => {
                    diag.error(e.value.span(), format!("expected at most 10000 for {}, found {n}", s.field(key)));
                    ok = false;
                }
                Some(n) => tpe.n_ei_candidates = n as usize,
                None => ok = false,
            },
            "multivariate" => match reader::boolean(diag, e.value, &s.field(key)) {
                Some(b) => tpe.multivariate = b,
                None => ok = false,
            },
            "good_bandwidth_factor" => match reader::number(diag, e.value, &s.field(key)) {
                Some(f) if f.is_finite() && f > 0.0 && f <= 10.0 => tpe.good_bandwidth_factor = f,
                Some(f) => {
                    diag.error(e.value.span(), format!("expected a number in (0, 10] for {}, found {f}", s.field(key)));
                    ok = false;
                }
                None => ok = false,
            },
            _ => match reader::boolean(diag, e.value, &s.field(key)) {
                Some(b) => tpe.constant_liar = b,
                None => ok = false,
            },
        }
    }
    if ok && matches!(out.spec.kind, SamplerKind::Random | SamplerKind::Tpe) && out.spec.n_trials.is_none() {
        let kind = if out.spec.kind == SamplerKind::Tpe { "tpe" } else { "random" };
        diag.error(
            out.kind_span.clone(),
            format!("the {kind} sampler needs `n_trials` in [sampler]: how many configurations to try"),
        );
        ok = false;
    }
    ok.then_some(out)
}

pub(crate) fn objective(diag: &mut Diagnostics, s: Option<&Section<'_, '_>>) -> Option<Objective> {
    let mut out = Objective::default();
    let Some(s) = s else { return Some(out) };
    let mut ok = true;
    if let Some(e) = s.get("metric") {
        match reader::string(diag, e.value, &s.field("metric")) {
            Some("") => {
                diag.error(e.value.span(), "empty `objective.metric`: expected a metric name such as \"accuracy\"");
                ok = false;
            }
            Some(m) => out.metric = m.to_string(),
            None => ok = false,
        }
    }
    if let Some(e) = s.get("direction") {
        match reader::word(diag, e.value, &s.field("direction"), Direction::WORDS) {
            Some("minimize") => out.direction = Direction::Minimize,
            Some(_) => out.direction = Direction::Maximize,
            None => ok = false,
        }
    }
    ok.then_some(out)
}

pub(crate) fn resources(diag: &mut Diagnostics, s: Option<&Section<'_, '_>>) -> Option<Resources> {
    let mut out = Resources::default();
    let Some(s) = s else { return Some(out) };
    let mut ok = true;
    if let Some(e) = s.get("gpus") {
        match reader::number(diag, e.value, &s.field("gpus")) {
            Some(g) if !(g > 0.0 && g.is_finite()) => {
                diag.error(
                    e.value.span(),
                    format!(
                        "expected gpus > 0 (0.25 = a quarter of one GPU; leave it out for CPU-only trials), found {g}"
                    ),
                );
                ok = false;
            }
            Some(g) if g > 1.0 && g.fract() != 0.0 => {
                diag.error(
                    e.value.span(),
                    format!("expected a share of one GPU (≤ 1) or a whole number of GPUs, found {g}"),
                );
                ok = false;
            }
            Some(g) => out.gpus = Some(g),
            None => ok = false,
        }
    }
    if let Some(e) = s.get("cpus") {
        match reader::number(diag, e.value, &s.field("cpus")) {
            Some(c) if !(c > 0.0 && c.is_finite()) => {
                diag.error(e.value.span(), format!("expected cpus > 0, found {c}"));
                ok = false;
            }
            Some(c) => out.cpus = Some(c),
            None => ok = false,
        }
    }
    if let Some(e) = s.get("checkpoint_every") {
        match reader::number(diag, e.value, &s.field("checkpoint_every")) {
            Some(t) if !(t > 0.0 && t.is_finite()) => {
                diag.error(
                    e.value.span(),
                    format!("expected checkpoint_every > 0 (seconds of training between saved states), found {t}"),
                );
                ok = false;
            }
            Some(t) => out.checkpoint_every = Some(t),
            None => ok = false,
        }
    }
    if let Some(e) = s.get("pack") {
        match reader::integer(diag, e.value, &s.field("pack")) {
            Some(k) if (1..=i64::from(MAX_PACK)).contains(&k) => out.pack = Some(k as u32),
            Some(k) => {
                diag.error(
                    e.value.span(),
                    format!("expected pack in 1..={MAX_PACK} (trials trained together as one model), found {k}"),
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

pub(crate) fn command(diag: &mut Diagnostics, s: &Section<'_, '_>) -> Option<CommandSpec> {
    let mut ok = true;
    let mut program = Vec::new();
    match s.get("program") {
        None => {
            s.missing(diag, "program", "the program and its arguments, e.g. program = [\"python3\", \"train.py\"]");
            ok = false;
        }
        Some(e) => match reader::array(diag, e.value, &s.field("program")) {
            Some(a) if a.is_empty() => {
                diag.error(e.value.span(), "empty `command.program`: expected at least the program to run");
                ok = false;
            }
            Some(a) => {
                for item in a.iter() {
                    match reader::string(diag, item, &s.field("program")) {
                        Some("") => {
                            diag.error(item.span(), "empty argument in `command.program`");
                            ok = false;
                        }
                        Some(arg) => program.push(arg.to_string()),
                        None => ok = false,
                    }
                }
            }
            None => ok = false,
        },
    }
    let mut pass = PassMode::Args;
    if let Some(e) = s.get("pass") {
        match reader::word(diag, e.value, &s.field("pass"), PassMode::WORDS) {
            Some("env") => pass = PassMode::Env,
            Some(_) => {}
            None => ok = false,
        }
    }
    let mut env = BTreeMap::new();
    if let Some(e) = s.get("env") {
        match e.value.get_ref() {
            DeValue::Table(t) => {
                let vars = Section::any_keys("command.env", e.value.span(), t);
                for v in &vars.entries {
                    match reader::string(diag, v.value, &vars.field(v.key)) {
                        Some(val) => {
                            env.insert(v.key.to_string(), val.to_string());
                        }
                        None => ok = false,
                    }
                }
            }
            _ => {
                reader::table(diag, e.value, &s.field("env"));
                ok = false;
            }
        }
    }
    let mut workdir = None;
    if let Some(e) = s.get("workdir") {
        match reader::string(diag, e.value, &s.field("workdir")) {
            Some(w) => workdir = Some(w.to_string()),
            None => ok = false,
        }
    }
    let mut stop_grace_s = crate::command::DEFAULT_STOP_GRACE_S;
    if let Some(e) = s.get("stop_grace") {
        match reader::number(diag, e.value, &s.field("stop_grace")) {
            Some(t) if t > 0.0 && t <= crate::command::MAX_STOP_GRACE_S => stop_grace_s = t,
            Some(t) => {
                let max = crate::command::MAX_STOP_GRACE_S;
                let why = format!(
                    "expected 0 < stop_grace <= {max} (seconds between SIGTERM and SIGKILL for a stopped program), found {t}"
                );
                diag.error(e.value.span(), why);
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then_some(CommandSpec { program, pass, env, workdir, stop_grace_s })
}

/// `[pruner]`; `None` (reported) when it is broken.
pub(crate) fn pruner(diag: &mut Diagnostics, s: &Section<'_, '_>) -> Option<PrunerSpec> {
    let mut ok = true;
    let kind = match s.get("kind") {
        None => {
            s.missing(diag, "kind", "kind = \"median\" or kind = \"asha\"");
            return None;
        }
        Some(e) => reader::word(diag, e.value, &s.field("kind"), PrunerKind::WORDS)?,
    };
    let mut out = if kind == "median" { PrunerKind::median() } else { PrunerKind::asha() };
    let (own, other): (&[&str], &str) = match kind {
        "median" => (MEDIAN_KEYS, "asha"),
        _ => (ASHA_KEYS, "median"),
    };
    for e in &s.entries {
        // `kind` and `stage` are read below; unknown keys were reported when the table was opened.
        if !MEDIAN_KEYS.contains(&e.key) && !ASHA_KEYS.contains(&e.key) {
            continue;
        }
        if !own.contains(&e.key) {
            diag.error(
                e.key_span.clone(),
                format!(
                    "`{}` is a parameter of the {other} pruner, not of kind = \"{kind}\"; the {kind} pruner takes {}",
                    e.key,
                    own.join(", ")
                ),
            );
            ok = false;
            continue;
        }
        let Some(v) = reader::unsigned(diag, e.value, &s.field(e.key)) else {
            ok = false;
            continue;
        };
        let least = match e.key {
            "interval_steps" | "min_resource" => 1,
            "reduction_factor" => 2,
            _ => 0,
        };
        if v < least {
            diag.error(e.value.span(), format!("expected at least {least} for {}, found {v}", s.field(e.key)));
            ok = false;
            continue;
        }
        match (&mut out, e.key) {
            (PrunerKind::Median { n_startup_trials, .. }, "n_startup_trials") => *n_startup_trials = v,
            (PrunerKind::Median { n_warmup_steps, .. }, "n_warmup_steps") => *n_warmup_steps = v,
            (PrunerKind::Median { interval_steps, .. }, _) => *interval_steps = v,
            (PrunerKind::Asha { min_resource, .. }, "min_resource") => *min_resource = v,
            (PrunerKind::Asha { reduction_factor, .. }, "reduction_factor") => *reduction_factor = v,
            (PrunerKind::Asha { min_early_stopping_rate, .. }, _) => *min_early_stopping_rate = v,
        }
    }
    let mut stage = PruneStage::Finetune;
    if let Some(e) = s.get("stage") {
        match reader::word(diag, e.value, &s.field("stage"), PruneStage::WORDS) {
            Some("ae") => stage = PruneStage::Ae,
            Some("dec") => stage = PruneStage::Dec,
            Some(_) => {}
            None => ok = false,
        }
    }
    ok.then_some(PrunerSpec { kind: out, stage })
}
