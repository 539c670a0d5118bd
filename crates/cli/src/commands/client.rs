//! `decsweep submit` and `decsweep status`: a running coordinator's API through
//! [`decsweep_connect::Client`], and the CLI's words for its failures ([`Explain`]).

use std::path::PathBuf;

use clap::Args;
use decsweep_api::wire::{CreateStudy, StudyInfo, TrialInfo};
pub use decsweep_connect::Client;
use decsweep_connect::{ApiCallError, Timeouts};

#[derive(Debug, Args)]
pub struct Connection {
    /// The coordinator's URL.
    #[arg(long, env = "DECSWEEP_COORDINATOR", value_name = "URL", default_value = "http://127.0.0.1:8320")]
    coordinator: String,
    /// --token / --token-file and --ca-cert (crates/connect).
    #[command(flatten)]
    access: decsweep_connect::ClientArgs,
}

impl Connection {
    /// A client of this coordinator with the token and CA given.
    pub fn client(&self) -> anyhow::Result<Client> {
        connect(&self.coordinator, &self.access)
    }
}

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
    /// Also list the study's trials.
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
    let client = args.connection.client()?;
    let mut request = CreateStudy::new(spec, path.display().to_string());
    if let decsweep_search::Dataset::File { written, path: file } = parsed.dataset() {
        if file.is_file() {
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
    println!("study `{}` {verb}: {} trials ({} finished)", info.name, info.counts.total(), info.counts.finished());
    Ok(())
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
    for t in &trials {
        let acc = t.metrics.get("accuracy").map(|a| format!("{a:.4}")).unwrap_or_default();
        let worker = t.worker.as_deref().unwrap_or("");
        let error = t.error.as_deref().unwrap_or("");
        println!(
            "{:>6} {:<9} {:<9} seed {:<4} attempts {} {:<8} {worker} {error}",
            t.id,
            t.pipeline,
            t.status.name(),
            t.seed,
            t.attempts,
            acc
        );
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

/// A client of the coordinator at `url` (http:// or https://) with `access`'s token and CA, and
/// a person's timeouts. An unreadable token or CA file is bad input.
pub fn connect(url: &str, access: &decsweep_connect::ClientArgs) -> anyhow::Result<Client> {
    Client::connect_with(url, access, Timeouts::COMMAND).map_err(|e| crate::exit::BadInput(e.to_string()).into())
}

/// The CLI's words for a failed call: what was asked (`GET studies/x`), then a refused
/// certificate and what to do, the coordinator out of reach, or its answer: a 4xx is bad input
/// (exit 2) in the server's words, anything else a failure naming the status.
pub trait Explain<T> {
    fn explain(self, client: &Client, what: impl FnOnce() -> String) -> anyhow::Result<T>;
}

impl<T> Explain<T> for Result<T, ApiCallError> {
    fn explain(self, client: &Client, what: impl FnOnce() -> String) -> anyhow::Result<T> {
        self.map_err(|e| {
            let what = what();
            if let Some(problem) = e.certificate_problem() {
                return anyhow::anyhow!("{what}: {problem}");
            }
            match e {
                ApiCallError::Transport(source) => anyhow::Error::new(source)
                    .context(format!("{what}: cannot reach the coordinator at {}", client.base())),
                ApiCallError::Decode(source) => {
                    anyhow::Error::new(source).context(format!("{what}: unreadable answer"))
                }
                e if e.is_client_error() => {
                    crate::exit::BadInput(format!("{what}: {}", e.message().unwrap_or_default())).into()
                }
                e => {
                    let status = e.status().and_then(|s| reqwest::StatusCode::from_u16(s).ok());
                    let status = status.map_or_else(|| "?".to_string(), |s| s.to_string());
                    anyhow::anyhow!("{what}: the coordinator answered {status}: {}", e.message().unwrap_or_default())
                }
            }
        })
    }
}
