//! Checks that span tables: one place per parameter, the sampler against the space, the size of
//! the sweep.

use super::configs::DeclaredConfig;
use super::dims::DeclaredDim;
use super::params::Declared;
use super::settings;
use crate::error::{line_column, Diagnostics};
use crate::expand::PlanError;
use crate::reader::Span;
use crate::sampler::GridSampler;
use crate::space::Space;
use crate::spec::{SamplerKind, MAX_TRIALS};

/// A parameter may be set in one place only: `[fixed]`, `[space]` or a `[[configs]]` entry.
pub(super) fn overlaps(
    diag: &mut Diagnostics,
    source: &str,
    fixed: &[Declared],
    space: &[DeclaredDim],
    configs: &[DeclaredConfig],
) {
    let line = |span: &Span| line_column(source, span.start).0;
    for d in space {
        if let Some(f) = fixed.iter().find(|f| f.name == d.name) {
            diag.error(
                d.key_span.clone(),
                format!(
                    "`{}` is set in [fixed] (line {}) and swept in [space]; set it in one place",
                    d.name,
                    line(&f.key_span)
                ),
            );
        }
    }
    for (i, c) in configs.iter().enumerate() {
        for p in &c.params {
            let other = fixed
                .iter()
                .find(|f| f.name == p.name)
                .map(|f| ("[fixed]", &f.key_span))
                .or_else(|| space.iter().find(|d| d.name == p.name).map(|d| ("[space]", &d.key_span)));
            if let Some((place, span)) = other {
                diag.error(
                    p.key_span.clone(),
                    format!(
                        "`{}` is set in {place} (line {}) and in [[configs]] entry {}; set it in one place",
                        p.name,
                        line(span),
                        i + 1
                    ),
                );
            }
        }
    }
}

/// Checks the sampler against the space, and the size of the whole sweep.
pub(super) fn check_sampler(
    diag: &mut Diagnostics,
    sampler: &settings::Sampler,
    space: &Space,
    decl: &[DeclaredDim],
    space_span: &Span,
    n_configs: usize,
    n_seeds: usize,
) {
    let points: Option<u64> = match sampler.spec.kind {
        SamplerKind::Grid => {
            let mut ok = true;
            for d in decl.iter().filter(|d| d.dim.values().is_none()) {
                diag.error(
                    d.kind_span.clone(),
                    format!(
                        "the grid sampler cannot enumerate `space.{}` ({}); use {{ grid = [...] }} or {{ choice = [...] }}, or [sampler] kind = \"random\"",
                        d.name,
                        d.dim.kind()
                    ),
                );
                ok = false;
            }
            if !ok {
                return;
            }
            let size = GridSampler::new(space).ok().map(|g| g.len() as u64);
            if let (Some(n), Some(span)) = (sampler.spec.n_trials, &sampler.n_trials_span) {
                if Some(n) != size {
                    let size = size.map_or("more than can be counted".to_string(), |s| s.to_string());
                    diag.error(
                        span.clone(),
                        format!("n_trials = {n} but the grid has {size} points; remove n_trials or make it {size}"),
                    );
                    return;
                }
            }
            size
        }
        SamplerKind::Random => {
            if space.sampled().is_empty() {
                diag.error(
                    sampler.kind_span.clone(),
                    "the random sampler has nothing to draw: [space] has no choice, uniform, loguniform or int dimension",
                );
                return;
            }
            let crossed = GridSampler::new(&space.grid_only()).ok().map(|g| g.len() as u64);
            crossed.and_then(|c| sampler.spec.n_trials.and_then(|n| n.checked_mul(c)))
        }
        SamplerKind::Tpe => {
            // One point is one configuration, whose objective (mean over seeds) TPE learns from:
            // a grid dimension or a second configuration would give a point several values.
            let mut ok = true;
            for d in decl.iter().filter(|d| matches!(d.dim, crate::space::Dimension::Grid(_))) {
                diag.error(
                    d.kind_span.clone(),
                    format!(
                        "the tpe sampler learns one objective per point, so it cannot cross `space.{}` as a grid; use {{ choice = [...] }} to let it choose, or one study per grid value",
                        d.name
                    ),
                );
                ok = false;
            }
            if n_configs > 1 {
                diag.error(
                    sampler.kind_span.clone(),
                    format!("the tpe sampler optimises one configuration, but this sweep has {n_configs} (pipelines or [[configs]] entries); run one study per pipeline"),
                );
                ok = false;
            }
            if ok && space.sampled().is_empty() {
                diag.error(
                    sampler.kind_span.clone(),
                    "the tpe sampler has nothing to choose: [space] has no choice, uniform, loguniform or int dimension",
                );
                ok = false;
            }
            if !ok {
                return;
            }
            sampler.spec.n_trials
        }
    };
    let total = points.and_then(|p| p.checked_mul(n_configs as u64)).and_then(|p| p.checked_mul(n_seeds as u64));
    if total.is_none_or(|t| t > MAX_TRIALS as u64) {
        let span = match sampler.spec.kind {
            SamplerKind::Random | SamplerKind::Tpe => sampler.n_trials_span.clone().unwrap_or(space_span.clone()),
            SamplerKind::Grid => space_span.clone(),
        };
        let count = total.map_or("more than can be counted".to_string(), |t| t.to_string());
        diag.error(
            span,
            format!("the sweep expands to {count} trials (points × configurations × seeds); at most {MAX_TRIALS} are allowed"),
        );
    }
}

/// Where a plan error is the user's: the declaration (of `declared`, name → key span) of the
/// parameter its reason names first. Only the reason is searched: a [`PlanError::Param`] also
/// names the point it happened at (`pipeline dec with label_fraction=0.05: d_model (18) must be
/// divisible by n_heads (4)`), and the grid that produced the point is not what is wrong.
pub(super) fn blamed_span<'a>(
    error: &PlanError,
    declared: impl IntoIterator<Item = (&'a str, &'a Span)>,
) -> Option<Span> {
    let reason = match error {
        PlanError::Param { source, .. } => source.to_string(),
        other => other.to_string(),
    };
    declared
        .into_iter()
        .filter_map(|(name, span)| first_mention(&reason, name).map(|at| (at, span)))
        .min_by_key(|(at, _)| *at)
        .map(|(_, span)| span.clone())
}

/// Where `message` first names parameter `name` as a whole word.
fn first_mention(message: &str, name: &str) -> Option<usize> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    message.match_indices(name).map(|(i, _)| i).find(|&i| {
        let before = message[..i].chars().next_back();
        let after = message[i + name.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}
