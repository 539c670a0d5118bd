//! Parameter names and values: checked against the registry for our pipelines, against the
//! argument/environment rules for the `command` pipeline.

use decsweep_api::params::{spec as registry_entry, valid_names};
use decsweep_api::{ParamSpec, ParamValue, Pipeline};

use crate::command::{valid_param_name, PassMode, RESERVED_NAMES};
use crate::error::Diagnostics;
use crate::reader::{self, Section, Span};
use crate::suggest;

/// How the parameters of one part of the spec are judged.
#[derive(Clone, Debug)]
pub(crate) enum Rules {
    /// Registered names that at least one of these pipelines reads.
    Model(Vec<Pipeline>),
    /// Any name a program can receive.
    Command(PassMode),
    /// The pipelines themselves are in error; judging names against a guess would only add
    /// noise, so only the values' TOML types are checked.
    Unchecked,
}

/// A parameter as written: where its name is, and its checked value.
#[derive(Clone, Debug)]
pub(crate) struct Declared {
    pub name: String,
    pub key_span: Span,
    pub value: ParamValue,
}

impl Rules {
    /// Checks a name. `Ok(Some(entry))`: a registered parameter; `Ok(None)`: a name with no
    /// registry entry to check values against (command, unchecked); `Err`: reported.
    pub(crate) fn name(
        &self,
        diag: &mut Diagnostics,
        name: &str,
        span: &Span,
    ) -> Result<Option<&'static ParamSpec>, ()> {
        match self {
            Rules::Unchecked => Ok(None),
            Rules::Command(pass) => {
                if RESERVED_NAMES.contains(&name) {
                    diag.error(
                        span.clone(),
                        format!("`{name}` is set by decsweep itself (the seed comes from study.seeds); choose another parameter name"),
                    );
                    Err(())
                } else if !valid_param_name(name, *pass) {
                    let allowed = match pass {
                        PassMode::Args => "letters, digits, `_` and `-`, starting with a letter or `_`",
                        PassMode::Env => {
                            "letters, digits and `_`, starting with a letter or `_` (it becomes a variable name)"
                        }
                    };
                    diag.error(
                        span.clone(),
                        format!("parameter name `{name}` cannot be passed to the program: expected {allowed}"),
                    );
                    Err(())
                } else {
                    Ok(None)
                }
            }
            Rules::Model(pipelines) => {
                let Ok(entry) = registry_entry(name) else {
                    diag.error(span.clone(), unknown_parameter(name));
                    return Err(());
                };
                if !pipelines.iter().any(|p| p.reads(entry)) {
                    diag.error(span.clone(), not_read(name, entry, pipelines));
                    return Err(());
                }
                Ok(Some(entry))
            }
        }
    }

    /// Checks one value of a parameter (a fixed value, a grid element, a range end) and returns
    /// it converted to the parameter's type (`alpha = 1` becomes the float 1.0).
    pub(crate) fn value(
        &self,
        diag: &mut Diagnostics,
        entry: Option<&ParamSpec>,
        value: ParamValue,
        span: &Span,
    ) -> Option<ParamValue> {
        match entry {
            None => Some(value),
            Some(entry) => match entry.check(&value) {
                Ok(v) => Some(v),
                Err(e) => {
                    diag.error(span.clone(), e.to_string());
                    None
                }
            },
        }
    }
}

fn unknown_parameter(name: &str) -> String {
    if name == "seed" || name == "seeds" {
        return format!("`{name}` is not a parameter: list seeds in [study] seeds = [...]");
    }
    let names = valid_names();
    let near = suggest::nearest(name, &names);
    if near.is_empty() {
        format!("unknown parameter `{name}`; valid parameters are: {}", names.join(", "))
    } else {
        format!("unknown parameter `{name}`; {}", suggest::hint(name, &names))
    }
}

fn not_read(name: &str, entry: &ParamSpec, pipelines: &[Pipeline]) -> String {
    let names: Vec<&str> = pipelines.iter().map(|p| p.name()).collect();
    let which =
        if names.len() == 1 { format!("pipeline {}", names[0]) } else { format!("pipelines {}", names.join(" or ")) };
    let stages: Vec<&str> = entry.stages.iter().map(|s| s.name()).collect();
    let readers: Vec<&str> = Pipeline::ALL.iter().filter(|p| p.reads(entry)).map(|p| p.name()).collect();
    let reader = match entry.only_in {
        Some(only) => format!("only the {only} pipeline's {} stage reads it", stages.join("/")),
        None => format!("only the {} stage reads it", stages.join("/")),
    };
    format!("`{name}` is not read by {which} ({reader}; pipelines that do: {})", readers.join(", "))
}

/// A table of `name = value` parameters (`[fixed]`, a config's `params`).
pub(crate) fn param_table(diag: &mut Diagnostics, rules: &Rules, section: &Section<'_, '_>) -> Vec<Declared> {
    let mut out = Vec::new();
    for e in &section.entries {
        let Ok(entry) = rules.name(diag, e.key, &e.key_span) else { continue };
        let Some(raw) = reader::scalar(diag, e.value, &section.field(e.key)) else { continue };
        if let Some(value) = rules.value(diag, entry, raw, &e.value.span()) {
            out.push(Declared { name: e.key.to_string(), key_span: e.key_span.clone(), value });
        }
    }
    out
}
