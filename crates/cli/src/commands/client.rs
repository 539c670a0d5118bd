//! `decsweep submit` and `decsweep status`: a running coordinator's API, and the HTTP client the
//! CLI uses for it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use decsweep_api::wire::{ApiError, CreateStudy, StudyInfo, TrialCurvePoint, TrialInfo};
use decsweep_report::{CurvePoint, TrialRow};
use serde::de::DeserializeOwned;

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
        Client::connect(&self.coordinator, &self.access)
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
    let info: StudyInfo = client.post("studies", &request)?;
    let verb = if info.created { "created" } else { "already exists" };
    println!("study `{}` {verb}: {} trials ({} finished)", info.name, info.counts.total(), info.counts.finished());
    Ok(())
}

pub fn status(args: StatusArgs) -> anyhow::Result<()> {
    let client = args.connection.client()?;
    let studies: Vec<StudyInfo> = match &args.study {
        Some(name) => vec![client.get(&format!("studies/{name}"))?],
        None => client.get("studies")?,
    };
    let trials: Vec<TrialInfo> = match (&args.study, args.trials) {
        (Some(name), true) => client.get(&format!("studies/{name}/trials"))?,
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

/// Blocking JSON client of `/v1`.
pub struct Client {
    http: reqwest::blocking::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client of the coordinator at `url` (http:// or https://) with `access`'s token and CA.
    /// An unreadable token or CA file is bad input.
    pub fn connect(url: &str, access: &decsweep_connect::ClientArgs) -> anyhow::Result<Client> {
        let bad_input = |e: decsweep_connect::ConnectError| crate::exit::BadInput(e.to_string());
        let token = access.token_for(url).map_err(bad_input)?;
        let http =
            access.build(reqwest::blocking::Client::builder().timeout(Duration::from_secs(60))).map_err(bad_input)?;
        Ok(Client { http, base: format!("{}/v1", url.trim_end_matches('/')), token })
    }

    fn send<T: DeserializeOwned>(&self, req: reqwest::blocking::RequestBuilder, what: &str) -> anyhow::Result<T> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let response = match req.send() {
            Ok(response) => response,
            Err(e) => match decsweep_connect::certificate_problem(&e) {
                Some(problem) => anyhow::bail!("{what}: {problem}"),
                None => {
                    return Err(
                        anyhow::Error::new(e).context(format!("{what}: cannot reach the coordinator at {}", self.base))
                    )
                }
            },
        };
        let status = response.status();
        if status.is_success() {
            return response.json().with_context(|| format!("{what}: unreadable answer"));
        }
        let body = response.text().unwrap_or_default();
        let message = match serde_json::from_str::<ApiError>(&body) {
            Ok(e) if e.details.is_empty() => e.error,
            Ok(e) => format!("{}\n{}", e.error, e.details.join("\n")),
            Err(_) => body,
        };
        if status.is_client_error() {
            Err(crate::exit::BadInput(format!("{what}: {message}")).into())
        } else {
            anyhow::bail!("{what}: the coordinator answered {status}: {message}")
        }
    }

    /// `GET /healthz` (beside `/v1`, no auth).
    pub fn health(&self) -> anyhow::Result<serde_json::Value> {
        let root = self.base.trim_end_matches("/v1");
        Ok(self.http.get(format!("{root}/healthz")).send()?.error_for_status()?.json()?)
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.get(format!("{}/{path}", self.base)), &format!("GET {path}"))
    }

    /// A file's bytes (a dataset), with ten minutes for the download.
    pub fn get_bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let mut req = self.http.get(format!("{}/{path}", self.base)).timeout(Duration::from_secs(600));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let response = req.send().with_context(|| format!("GET {path}"))?.error_for_status()?;
        Ok(response.bytes()?.to_vec())
    }

    /// Whether `GET path` would answer 200 (a HEAD request); `false` on 404.
    pub fn exists(&self, path: &str) -> anyhow::Result<bool> {
        let mut req = self.http.head(format!("{}/{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let response = req.send().with_context(|| format!("HEAD {path}: cannot reach the coordinator"))?;
        match response.status() {
            s if s.is_success() => Ok(true),
            reqwest::StatusCode::NOT_FOUND => Ok(false),
            s => anyhow::bail!("HEAD {path}: the coordinator answered {s}"),
        }
    }

    /// `PUT path` with `body` (a file, streamed), allowed `timeout`.
    pub fn put_body<T: DeserializeOwned>(
        &self,
        path: &str,
        body: reqwest::blocking::Body,
        timeout: Duration,
    ) -> anyhow::Result<T> {
        let req = self
            .http
            .put(format!("{}/{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .timeout(timeout)
            .body(body);
        self.send(req, &format!("PUT {path}"))
    }

    pub fn post<B: serde::Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<T> {
        self.send(self.http.post(format!("{}/{path}", self.base)).json(body), &format!("POST {path}"))
    }

    /// A study's trials and curves in the report crate's terms.
    pub fn report_input(&self, study: &str) -> anyhow::Result<(Vec<TrialRow>, Vec<CurvePoint>)> {
        let infos: Vec<TrialInfo> = self.get(&format!("studies/{study}/trials"))?;
        let mut trials = Vec::with_capacity(infos.len());
        let mut curves = Vec::new();
        for t in infos {
            let points: Vec<TrialCurvePoint> = self.get(&format!("trials/{}/curves", t.id))?;
            // Only the attempt that produced the trial's result.
            let last = points.iter().map(|p| p.attempt).max();
            curves.extend(points.iter().filter(|p| Some(p.attempt) == last).map(|p| CurvePoint {
                trial_id: t.id,
                stage: p.stage.name().to_string(),
                epoch: p.epoch,
                train_loss: p.train_loss.unwrap_or(f64::NAN),
                val_loss: p.val_loss.unwrap_or(f64::NAN),
                val_accuracy: p.val_accuracy.unwrap_or(f64::NAN),
            }));
            trials.push(TrialRow::from(t));
        }
        Ok((trials, curves))
    }
}
