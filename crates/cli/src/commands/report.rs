//! `decsweep report STUDY`: regenerate `results/<study>/` from the store at any time.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use decsweep_coordinator::Coordinator;
use decsweep_report::{write_all_with, CurvePoint, ReportOptions, StudyReport, TrialRow};

use super::connection::{Client, Explain};
use super::source::Source;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The study's name (its `[study] name`).
    #[arg(value_name = "STUDY")]
    study: String,
    #[command(flatten)]
    source: super::source::StudySource,
    /// Output directory, the same option as `decsweep run --out`. Default: results/<study>.
    // Hidden alias: `decsweep run` called this `--results`, so either spelling works on both.
    #[arg(long, value_name = "DIR", alias = "results")]
    out: Option<PathBuf>,
}

pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("results").join(&args.study));
    let files = match args.source.open()? {
        Source::Db(db) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let coordinator = Coordinator::open_reader(db)?;
                write_reports(&coordinator, &args.study, &out).await
            })?
        }
        Source::Coordinator(client) => {
            let info = client.study(&args.study).explain(&client, || format!("GET studies/{}", args.study))?;
            let (trials, curves) = report_input(&client, &args.study)?;
            let options = report_options(&info);
            write_all_with(&StudyReport { study: &args.study, trials: &trials, curves: &curves }, &out, &options)
                .with_context(|| format!("writing reports to {}", out.display()))?
        }
    };
    for f in files {
        println!("{}", f.display());
    }
    Ok(())
}

/// A study's trials and curves in the report crate's terms, read from a coordinator a page of
/// trials at a time (`GET /v1/studies/{name}/export`): what [`Coordinator::report_input`]
/// gives, each trial's points together.
fn report_input(client: &Client, study: &str) -> anyhow::Result<(Vec<TrialRow>, Vec<CurvePoint>)> {
    let exported = client.export(study).explain(client, || format!("GET studies/{study}/export"))?;
    let mut trials = Vec::with_capacity(exported.len());
    let mut curves = Vec::new();
    for t in exported {
        curves.extend(t.curve.iter().map(|p| CurvePoint::from_wire(t.trial.id, p)));
        trials.push(TrialRow::from(t.trial));
    }
    Ok((trials, curves))
}

/// Writes every report of `study` from the coordinator's store into `dir`.
pub async fn write_reports(coordinator: &Coordinator, study: &str, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let info = coordinator.study(study).await.map_err(super::coordinator_error)?;
    let (trials, curves) = coordinator.report_input(study).await.map_err(super::coordinator_error)?;
    let options = report_options(&info);
    write_all_with(&StudyReport { study, trials: &trials, curves: &curves }, dir, &options)
        .with_context(|| format!("writing reports to {}", dir.display()))
}

/// What a report needs to know about its study: the objective, and whether an adaptive sampler
/// proposed the configurations (only then is `search.svg` written).
fn report_options(info: &decsweep_api::wire::StudyInfo) -> ReportOptions {
    ReportOptions::default().with_objective(info.objective_metric.clone(), info.maximize).with_adaptive(info.adaptive)
}
