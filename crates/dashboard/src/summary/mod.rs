//! The study page's second half: the seed-grouped summary, the paired dec-vs-baseline
//! comparisons and the plots.
//!
//! Nothing statistical is computed here: the fragment renders the study's
//! [`decsweep_report::StudyModel`] (summaries with their interval methods, paired comparisons
//! with Holm-adjusted p-values, importance), the very model `summary.csv`, `paired.csv` and
//! `table.md` are written from, so the page and the report files always agree. The plots
//! `accuracy_vs_label_fraction.svg` and `search.svg` are shown as the reports draw them.
//!
//! This needs every trial of the study, so it is a separate request made after the page is
//! shown, cached until the study's counts change (and refreshed at most every few seconds while
//! trials run). The tables ([`TABLES_ID`]) also travel in the study's live updates when the
//! page shows an older version of them (see `live.rs`), so a finished trial and the summary that
//! counts it appear together.

mod plots;
mod tables;

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use decsweep_coordinator::Coordinator;
use decsweep_report::{ReportOptions, StudyReport, TrialRow};
use maud::{html, PreEscaped};

use crate::error::PageError;

/// While trials run, a cached fragment is redrawn at most this often.
const REFRESH: Duration = Duration::from_secs(3);
/// Trials drawn in the intermediate-values plot (the latest ones that reported epochs).
const MAX_CURVE_TRIALS: u64 = 100;

/// The element whose contents are the summary and paired tables: what live updates replace.
pub(crate) const TABLES_ID: &str = "summary-tables";

/// A rendered fragment.
pub(crate) struct Fragment {
    /// Names the study's counts the tables were computed at; the page sends it back with its
    /// live polls (`summary=`), and gets new tables when it differs.
    pub version: String,
    /// The summary and paired tables: the contents of [`TABLES_ID`].
    pub tables: String,
    /// The plots below them.
    pub plots: String,
}

impl Fragment {
    /// The whole fragment, as `/studies/{name}/summary` answers it.
    pub(crate) fn html(&self) -> String {
        html! {
            div id=(TABLES_ID) { (PreEscaped(&self.tables)) }
            (PreEscaped(&self.plots))
        }
        .into_string()
    }
}

/// A rendered fragment: the counts it was drawn at, when, and the fragment.
type Entry = (String, Instant, Arc<Fragment>);

/// Rendered fragments by study.
#[derive(Default)]
pub(crate) struct Cache {
    entries: Mutex<HashMap<String, Entry>>,
}

/// The fragment for `study`, from the cache when still current.
pub(crate) async fn fragment(c: &Coordinator, cache: &Cache, study: &str) -> Result<Arc<Fragment>, PageError> {
    let info = c.study(study).await?;
    let key = format!("{:?}", info.counts);
    let running = info.counts.running > 0;
    if let Some((k, at, fragment)) = cache.entries.lock().unwrap_or_else(|p| p.into_inner()).get(study) {
        if *k == key && (!running || at.elapsed() < REFRESH) {
            return Ok(fragment.clone());
        }
    }
    let columns = c.study_columns(study).await?;
    let trials: Vec<TrialRow> = c.trials(study, None).await?.into_iter().map(TrialRow::from).collect();
    let epochs = c.epoch_values(study, MAX_CURVE_TRIALS).await?;
    let config_of: HashMap<i64, (String, String)> =
        trials.iter().map(|t| (t.id, (t.pipeline.clone(), t.config_id.clone()))).collect();
    let name = study.to_string();
    let options = ReportOptions::default().with_objective(info.objective_metric.clone(), info.maximize);
    let version = version_of(&key);
    let fragment = tokio::task::spawn_blocking(move || -> Result<Fragment, PageError> {
        let report = StudyReport { study: &name, trials: &trials, curves: &[] };
        let (model, files) = decsweep_report::render_with_model(&report, &options).map_err(internal)?;
        let (metric, maximize) = options.objective();
        Ok(Fragment {
            version: version.clone(),
            tables: tables::render(&model, metric, &version).into_string(),
            plots: plots::render(&model, &files, &columns, (metric, maximize), &epochs, &config_of).into_string(),
        })
    })
    .await
    .map_err(internal)??;
    let fragment = Arc::new(fragment);
    cache
        .entries
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(study.to_string(), (key, Instant::now(), fragment.clone()));
    Ok(fragment)
}

fn internal(e: impl std::fmt::Display) -> PageError {
    PageError { status: axum::http::StatusCode::INTERNAL_SERVER_ERROR, message: e.to_string() }
}

/// A short name for the counts a fragment was drawn at.
fn version_of(key: &str) -> String {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    format!("{:016x}", h.finish())
}
