//! `decsweep submit` and `decsweep status`: a running coordinator's API through
//! [`decsweep_connect::Client`] (see [`super::connection`]).

use std::path::PathBuf;

use clap::Args;
use decsweep_api::wire::{CreateStudy, StatusCounts, StudyInfo, TrialInfo};

use super::connection::{Connection, Explain};

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Sweep spec (TOML). A dataset file it names is read here (relative to this file) and
    /// uploaded; one not on this machine must lie below the coordinator's `serve --data-root`.
    #[arg(value_name = "SPEC")]
    spec: PathBuf,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A study to show; all studies when omitted.
    #[arg(value_name = "STUDY")]
    study: Option<String>,
    /// Also list the study's trials: a table of each trial's configuration label (as in the
    /// report files and the dashboard), the swept parameters, seed, state, the objective metric
    /// (and accuracy), worker and the first line of any error.
    #[arg(long, requires = "study")]
    trials: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

pub fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    let (path, spec) = super::read_spec(&args.spec)?;
    // Checked here too, so a bad spec is reported (exit 2) even when the coordinator is out of
    // reach; its dataset path is the coordinator's to resolve.
    let options = decsweep_search::LoadOptions { check_dataset: false };
    let parsed = decsweep_search::SweepSpec::from_source(&spec, &path, &options)
        .map_err(|e| crate::exit::BadInput(e.to_string()))?;
    // A dataset file on this machine is checked before the coordinator hears of the study, so
    // a broken file is named as the user wrote it, not after an upload, and no study is made.
    let local_file = match parsed.dataset() {
        decsweep_search::Dataset::File { path: file, .. } => file.exists(),
        _ => false,
    };
    if local_file {
        super::check_dataset(&parsed)?;
    }
    let client = args.connection.client()?;
    let mut request = CreateStudy::new(spec, path.display().to_string());
    if let decsweep_search::Dataset::File { written, path: file } = parsed.dataset() {
        if local_file {
            request.dataset_sha256 = Some(super::upload::dataset(&client, file)?);
        } else {
            eprintln!(
                "dataset `{written}` is not on this machine ({}): the coordinator reads it below its --data-root",
                file.display()
            );
        }
    }
    let info = client.create_study(&request).explain(&client, || "POST studies".into())?;
    let verb = if info.created { "created" } else { "already exists" };
    let (name, counts) = (&info.name, &info.counts);
    println!("study `{name}` {verb}: {} trials ({})", counts.total(), done_phrase(counts));
    if counts.cancelled > 0 {
        println!("the study was cancelled; `decsweep resume {name}` puts its cancelled trials back in the queue");
    }
    Ok(())
}

/// How far a study is, for `submit` and `run` on an existing study: cancelled trials are counted
/// apart from finished ones (they did not run, and `resume` brings them back).
pub(crate) fn done_phrase(c: &StatusCounts) -> String {
    let finished = c.completed + c.failed + c.pruned;
    match c.cancelled {
        0 => format!("{finished} finished"),
        n => format!("{finished} finished, {n} cancelled"),
    }
}

pub fn status(args: StatusArgs) -> anyhow::Result<()> {
    let client = args.connection.client()?;
    let studies: Vec<StudyInfo> = match &args.study {
        Some(name) => vec![client.study(name).explain(&client, || format!("GET studies/{name}"))?],
        None => client.studies().explain(&client, || "GET studies".into())?,
    };
    let trials: Vec<TrialInfo> = match (&args.study, args.trials) {
        (Some(name), true) => client.trials(name, None).explain(&client, || format!("GET studies/{name}/trials"))?,
        _ => Vec::new(),
    };
    // The disk's state, in words, when something is wrong with it (`/healthz`; a coordinator
    // too old to say is taken as fine).
    let storage = client.health().ok().map(|h| h["storage"].clone()).filter(|s| s.is_object());
    if args.json {
        let storage = storage.unwrap_or_else(|| "ok".into());
        println!("{}", serde_json::json!({ "studies": studies, "trials": trials, "storage": storage }));
        return Ok(());
    }
    if let Some(fault) = &storage {
        println!("{}", storage_warning(fault));
    }
    for s in &studies {
        let c = &s.counts;
        println!(
            "{:<24} {:>5} trials: {} completed, {} running, {} pending, {} failed, {} pruned, {} cancelled",
            s.name,
            c.total(),
            c.completed,
            c.running,
            c.pending,
            c.failed,
            c.pruned,
            c.cancelled
        );
    }
    if let Some(study) = studies.first() {
        print!("{}", super::trial_table::render(study, &trials));
    }
    Ok(())
}

/// One line for a storage fault as `/healthz` reports it.
pub fn storage_warning(fault: &serde_json::Value) -> String {
    let state = match fault["problem"].as_str() {
        Some("full") => "is full",
        Some("read-only") => "is read-only",
        _ => "fails with I/O errors",
    };
    format!(
        "WARNING: the coordinator's disk {state} since {} ({} writes refused): {}. Results are not \
         being recorded; workers retry until it is fixed.",
        fault["since"].as_str().unwrap_or("?"),
        fault["refused_writes"],
        fault["error"].as_str().unwrap_or("")
    )
}
