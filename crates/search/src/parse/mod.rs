//! Spec text → [`SweepSpec`]: parse the spanned TOML, read each table, check what spans tables
//! (pipelines against parameters, sampler against space, the trial count), then expand.

mod checks;
mod configs;
mod dims;
mod params;
mod settings;
mod study;

use std::path::Path;

use toml::de::{DeTable, DeValue};

use self::configs::DeclaredConfig;
use self::dims::DeclaredDim;
use self::params::{param_table, Declared, Rules};
use crate::command::PassMode;
use crate::error::{Diagnostics, LoadError, SpecErrors};
use crate::reader::{Section, Span};
use crate::space::Space;
use crate::spec::{Config, Dataset, LoadOptions, PipelineKind, SweepSpec};
use crate::{expand, suggest};

const TOP_KEYS: &[&str] =
    &["study", "command", "fixed", "space", "configs", "sampler", "pruner", "objective", "resources"];
const COMMAND_KEYS: &[&str] = &["program", "pass", "env", "workdir", "stop_grace"];
const OBJECTIVE_KEYS: &[&str] = &["metric", "direction"];
const RESOURCES_KEYS: &[&str] = &["gpus", "cpus", "checkpoint_every", "pack"];

/// A spec is built only here, where it is checked.
impl SweepSpec {
    /// Reads and validates a spec file, requiring a dataset file to exist.
    pub fn load(path: impl AsRef<Path>) -> Result<SweepSpec, LoadError> {
        SweepSpec::load_with(path, &LoadOptions::default())
    }

    pub fn load_with(path: impl AsRef<Path>, options: &LoadOptions) -> Result<SweepSpec, LoadError> {
        let path = path.as_ref();
        let source =
            std::fs::read_to_string(path).map_err(|source| LoadError::Read { path: path.to_path_buf(), source })?;
        Ok(SweepSpec::from_source(&source, path, options)?)
    }

    /// Validates spec text; `path` names it in messages and anchors a relative dataset path.
    pub fn from_source(source: &str, path: impl AsRef<Path>, options: &LoadOptions) -> Result<SweepSpec, SpecErrors> {
        parse(source, path.as_ref(), options)
    }
}

pub(crate) fn parse(source: &str, path: &Path, options: &LoadOptions) -> Result<SweepSpec, SpecErrors> {
    let mut diag = Diagnostics::default();
    let doc = match DeTable::parse(source) {
        Ok(doc) => doc,
        Err(e) => {
            diag.error(e.span().unwrap_or(0..0), format!("invalid TOML: {}", e.message()));
            return Err(diag.into_errors(path, source));
        }
    };
    let spec = walk(&mut diag, doc.get_ref(), source, path, options);
    match spec {
        Some(spec) if diag.is_empty() => Ok(spec),
        _ => {
            if diag.is_empty() {
                // Every `None` above comes with a report; this only guards against a silent one.
                diag.error(0..0, "invalid sweep spec");
            }
            Err(diag.into_errors(path, source))
        }
    }
}

/// A top-level table: `Ok(None)` when absent, `Err` when present but not a table (reported).
fn section<'a, 'i>(
    diag: &mut Diagnostics,
    top: &Section<'a, 'i>,
    key: &str,
    allowed: Option<&[&str]>,
) -> Result<Option<Section<'a, 'i>>, ()> {
    let Some(e) = top.get(key) else {
        return Ok(None);
    };
    let DeValue::Table(t) = e.value.get_ref() else {
        diag.error(
            e.value.span(),
            format!("expected a table [{key}], found {}", crate::reader::type_name(e.value.get_ref())),
        );
        return Err(());
    };
    Ok(Some(match allowed {
        Some(keys) => Section::open(diag, key, e.value.span(), t, keys),
        None => Section::any_keys(key, e.value.span(), t),
    }))
}

fn walk(
    diag: &mut Diagnostics,
    doc: &DeTable<'_>,
    source: &str,
    path: &Path,
    options: &LoadOptions,
) -> Option<SweepSpec> {
    let top = Section::any_keys("", 0..0, doc);
    for e in &top.entries {
        if TOP_KEYS.contains(&e.key) {
            continue;
        }
        let message = if study::KEYS.contains(&e.key) {
            format!("`{}` belongs in [study]: write it below the [study] header", e.key)
        } else {
            format!("unknown top-level key `{}`; {}", e.key, suggest::hint(e.key, TOP_KEYS))
        };
        diag.error(e.key_span.clone(), message);
    }

    let study_section = section(diag, &top, "study", Some(study::KEYS));
    let mut study = match &study_section {
        Ok(Some(s)) => study::study(diag, s, path, options),
        Ok(None) => {
            diag.error(0..0, "missing [study] table: expected [study] with name, dataset, pipelines and seeds");
            study::Study::default()
        }
        Err(()) => study::Study::default(),
    };

    let command_section = section(diag, &top, "command", Some(COMMAND_KEYS));
    let command = match &command_section {
        Ok(Some(s)) => settings::command(diag, s),
        _ => None,
    };
    let pass = command.as_ref().map_or(PassMode::Args, |c| c.pass);
    let configs = top.get("configs").map(|e| configs::configs(diag, e.value, pass));

    // The pipelines in play, each with where it was named.
    let pipelines: Option<Vec<(PipelineKind, Span)>> = match (&study.pipelines, study.pipelines_written, &configs) {
        (_, true, Some(_)) => {
            let span = match &study_section {
                Ok(Some(s)) => s.get("pipelines").map_or(s.span.clone(), |e| e.key_span.clone()),
                _ => 0..0,
            };
            diag.error(
                span,
                "`study.pipelines` and [[configs]] cannot both be given: each [[configs]] entry names its pipeline",
            );
            None
        }
        (Some(list), _, None) => Some(list.clone()),
        (None, false, None) => {
            if let Ok(Some(s)) = &study_section {
                s.missing(
                    diag,
                    "pipelines",
                    "a list such as pipelines = [\"baseline\", \"dec\"], or [[configs]] entries",
                );
            }
            None
        }
        (_, _, Some(Some(list))) => Some(list.iter().map(|c| (c.pipeline, c.pipeline_span.clone())).collect()),
        _ => None,
    };
    let rules = pipeline_rules(diag, pipelines.as_deref(), &command_section, pass);
    // A study of programs reads no dataset unless it names one; decsweep's pipelines need one.
    let dataset = match (study.dataset.take(), study.dataset_written, &pipelines, &study_section) {
        (Some(d), _, _, _) => Some(d),
        (None, false, Some(list), _) if list.iter().all(|(k, _)| *k == PipelineKind::Command) => Some(Dataset::None),
        (None, false, _, Ok(Some(s))) => {
            s.missing(
                diag,
                "dataset",
                "a dataset file path or { synthetic = { seed = 0 } }, e.g. dataset = \"../data/mosi.safetensors\" (only a study whose pipelines are all \"command\" may leave it out)",
            );
            None
        }
        _ => None,
    };

    let fixed: Vec<Declared> = match section(diag, &top, "fixed", None) {
        Ok(Some(s)) => param_table(diag, &rules, &s),
        _ => Vec::new(),
    };
    let space_section = section(diag, &top, "space", None);
    let space_decl: Vec<DeclaredDim> = match &space_section {
        Ok(Some(s)) => dims::space(diag, &rules, s),
        _ => Vec::new(),
    };
    let config_decl: Option<&Vec<DeclaredConfig>> = configs.as_ref().and_then(|c| c.as_ref());
    checks::overlaps(diag, source, &fixed, &space_decl, config_decl.map_or(&[][..], |c| c.as_slice()));

    let sampler = match section(diag, &top, "sampler", Some(&settings::sampler_keys())) {
        Ok(s) => settings::sampler(diag, s.as_ref()),
        Err(()) => None,
    };
    let pruner_section = section(diag, &top, "pruner", Some(&settings::pruner_keys()));
    let pruner = match &pruner_section {
        Ok(Some(s)) => settings::pruner(diag, s).map(Some),
        Ok(None) => Some(None),
        Err(()) => None,
    };
    if let (Some(Some(p)), Some(list), Ok(Some(s))) = (&pruner, &pipelines, &pruner_section) {
        let stage = p.stage;
        let dec = list.iter().any(|(k, _)| *k == PipelineKind::Model(decsweep_api::Pipeline::Dec));
        if stage != crate::pruning::PruneStage::Finetune && !dec {
            let span = s.get("stage").map_or(s.span.clone(), |e| e.value.span());
            diag.error(
                span,
                format!("pruner stage \"{}\" is a stage of the dec pipeline, which this sweep does not run; use \"finetune\"", stage.name()),
            );
        }
    }
    let objective = match section(diag, &top, "objective", Some(OBJECTIVE_KEYS)) {
        Ok(s) => settings::objective(diag, s.as_ref()),
        Err(()) => None,
    };
    let resources_section = section(diag, &top, "resources", Some(RESOURCES_KEYS));
    let resources = match &resources_section {
        Ok(s) => settings::resources(diag, s.as_ref()),
        Err(()) => None,
    };
    if let (Rules::Command(_), Ok(Some(s))) = (&rules, &resources_section) {
        if let Some(e) = s.get("pack") {
            diag.error(
                e.key_span.clone(),
                "`pack` cannot be set on a command study: a command trial runs its own program, which decsweep cannot train together with others; remove it",
            );
        }
    }

    let space = Space { dims: space_decl.iter().map(|d| (d.name.clone(), d.dim.clone())).collect() };
    let space_sec = match &space_section {
        Ok(Some(s)) => Some(s),
        _ => None,
    };
    let space_span = space_sec.map_or(0..0, |s| s.span.clone());
    let n_configs = pipelines.as_ref().map_or(0, |p| p.len());
    let n_seeds = study.seeds.as_ref().map_or(0, |s| s.len());
    // A dimension that failed to read would make the sampler checks report its absence too.
    let space_complete = space_decl.len() == space_sec.map_or(0, |s| s.entries.len());
    if let (Some(sampler), true) = (&sampler, space_complete) {
        checks::check_sampler(diag, sampler, &space, &space_decl, &space_span, n_configs, n_seeds);
    }
    if !diag.is_empty() {
        return None;
    }

    let configs: Vec<Config> = match config_decl {
        Some(list) => list
            .iter()
            .map(|c| Config {
                pipeline: c.pipeline,
                label: c.label.clone(),
                params: c.params.iter().map(|d| (d.name.clone(), d.value.clone())).collect(),
            })
            .collect(),
        None => {
            pipelines?.into_iter().map(|(pipeline, _)| Config { pipeline, label: None, params: Vec::new() }).collect()
        }
    };
    let mut spec = SweepSpec {
        path: path.to_path_buf(),
        source: source.to_string(),
        name: study.name?,
        description: study.description,
        dataset: dataset?,
        configs,
        fixed: fixed.iter().map(|d| (d.name.clone(), d.value.clone())).collect(),
        space,
        seeds: study.seeds?,
        retries: study.retries,
        sampler: sampler?.spec,
        pruner: pruner?,
        objective: objective?,
        resources: resources?,
        command,
        trials: Vec::new(),
    };
    match expand::expand_all(&spec) {
        Ok(trials) => spec.trials = trials,
        Err(e) => {
            let names = space_decl
                .iter()
                .map(|d| (d.name.as_str(), &d.key_span))
                .chain(
                    config_decl
                        .into_iter()
                        .flatten()
                        .flat_map(|c| c.params.iter().map(|d| (d.name.as_str(), &d.key_span))),
                )
                .chain(fixed.iter().map(|d| (d.name.as_str(), &d.key_span)));
            let span = checks::blamed_span(&e, names).unwrap_or(0..0);
            diag.error(span, format!("invalid configuration: {e}"));
            return None;
        }
    }
    tracing::debug!(study = %spec.name, trials = spec.trials.len(), "sweep spec validated");
    Some(spec)
}

/// Decides how parameter names are judged, reporting pipelines that cannot go together.
fn pipeline_rules(
    diag: &mut Diagnostics,
    pipelines: Option<&[(PipelineKind, Span)]>,
    command_section: &Result<Option<Section<'_, '_>>, ()>,
    pass: PassMode,
) -> Rules {
    let Some(pipelines) = pipelines else {
        return Rules::Unchecked;
    };
    let command = pipelines.iter().find(|(k, _)| *k == PipelineKind::Command);
    let models: Vec<decsweep_api::Pipeline> = pipelines
        .iter()
        .filter_map(|(k, _)| match k {
            PipelineKind::Model(p) => Some(*p),
            PipelineKind::Command => None,
        })
        .collect();
    match (command, models.is_empty()) {
        (Some((_, span)), false) => {
            diag.error(
                span.clone(),
                "the command pipeline cannot be combined with baseline or dec in one study: their parameters differ",
            );
            Rules::Unchecked
        }
        (Some((_, span)), true) => {
            if matches!(command_section, Ok(None)) {
                diag.error(span.clone(), "the command pipeline needs a [command] table with `program`");
            }
            Rules::Command(pass)
        }
        (None, _) => {
            if let Ok(Some(s)) = command_section {
                diag.error(
                    s.span.clone(),
                    "[command] is only used by the command pipeline; add \"command\" to the pipelines or remove the table",
                );
            }
            let mut distinct: Vec<decsweep_api::Pipeline> = Vec::new();
            for p in models {
                if !distinct.contains(&p) {
                    distinct.push(p);
                }
            }
            Rules::Model(distinct)
        }
    }
}

#[cfg(test)]
mod tests;
