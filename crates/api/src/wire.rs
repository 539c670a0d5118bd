//! JSON bodies of the coordinator's HTTP API (`/v1/...`), shared by the coordinator, the worker
//! agent and the CLI. Endpoints are listed in `crates/coordinator` (and its OpenAPI document).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{ParamValue, Params, Pipeline, Stage};

/// Path prefix of every versioned endpoint.
pub const API_PREFIX: &str = "/v1";

pub use crate::lifecycle::{LeaseOutcome, TrialStatus};

/// `POST /v1/studies`: create a study from a sweep spec, or return the existing one when a study
/// of that name was created from the same spec text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreateStudy {
    /// The spec's TOML text.
    pub spec: String,
    /// Where the spec file lives: errors name it. In-process (`decsweep run`) relative dataset
    /// paths are resolved against it; over HTTP a dataset file is named by `dataset_sha256`, or
    /// read below the coordinator's `serve --data-root` only.
    pub spec_path: String,
    /// The dataset the spec's `dataset` file names, uploaded beforehand with
    /// `PUT /v1/datasets/{sha256}` (what `decsweep submit` does). Absent for synthetic
    /// datasets and from older clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_sha256: Option<String>,
}

impl CreateStudy {
    /// A request for a spec whose dataset (if it names a file) is read where the spec lies.
    pub fn new(spec: impl Into<String>, spec_path: impl Into<String>) -> Self {
        CreateStudy { spec: spec.into(), spec_path: spec_path.into(), dataset_sha256: None }
    }
}

/// The answer of `PUT /v1/datasets/{sha256}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetStored {
    pub sha256: String,
    pub bytes: u64,
    /// `false`: the coordinator already had it (the body was not needed).
    pub created: bool,
}

/// Counts of a study's trials by status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    pub pending: u64,
    pub running: u64,
    pub completed: u64,
    pub failed: u64,
    pub pruned: u64,
    /// Absent in answers of coordinators older than the `cancelled` status: 0.
    #[serde(default)]
    pub cancelled: u64,
}

impl StatusCounts {
    pub fn total(&self) -> u64 {
        self.pending + self.running + self.finished()
    }

    /// Trials that will not run again (every terminal status).
    pub fn finished(&self) -> u64 {
        self.completed + self.failed + self.pruned + self.cancelled
    }

    /// Adds `n` trials of `status`.
    pub fn add(&mut self, status: TrialStatus, n: u64) {
        match status {
            TrialStatus::Pending => self.pending += n,
            TrialStatus::Running => self.running += n,
            TrialStatus::Completed => self.completed += n,
            TrialStatus::Failed => self.failed += n,
            TrialStatus::Pruned => self.pruned += n,
            TrialStatus::Cancelled => self.cancelled += n,
        }
    }
}

/// A study as listed by `GET /v1/studies` and `GET /v1/studies/{name}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudyInfo {
    pub name: String,
    pub created_at: String,
    pub dataset_sha256: String,
    pub counts: StatusCounts,
    /// Whether `POST /v1/studies` created it now (false: it already existed with this spec).
    #[serde(default)]
    pub created: bool,
    /// Adaptive studies (TPE) only: the trials the study will have once its sampler has proposed
    /// all `n_trials` points (`n_trials` × trials per point). `counts` grow towards it as points
    /// are sampled; a sampler that stops early leaves it unreached, so "done" is still every
    /// trial finished with none pending. `None`: every trial exists from creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned: Option<u64>,
    /// Whether an adaptive sampler (TPE) proposes the study's configurations one by one from
    /// the results so far; false for grid and random studies, planned in full at creation.
    /// Reports draw the best-so-far plot only for adaptive studies.
    #[serde(default)]
    pub adaptive: bool,
    /// The metric the study optimises and whether larger is better (from the spec's
    /// `[objective]`), so reports and progress know which way is best.
    #[serde(default = "default_objective_metric")]
    pub objective_metric: String,
    #[serde(default = "default_true")]
    pub maximize: bool,
}

fn default_objective_metric() -> String {
    "accuracy".into()
}

fn default_true() -> bool {
    true
}

/// A trial as listed by `GET /v1/studies/{name}/trials` and `GET /v1/trials/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialInfo {
    pub id: i64,
    pub study: String,
    /// `baseline`, `dec` or `command`.
    pub pipeline: String,
    /// The parameters the pipeline reads.
    pub params: BTreeMap<String, ParamValue>,
    pub seed: u64,
    pub config_id: String,
    pub label: Option<String>,
    pub status: TrialStatus,
    pub attempts: u32,
    pub worker: Option<String>,
    pub error: Option<String>,
    pub metrics: BTreeMap<String, f64>,
    /// Leases that resumed the trial from a checkpoint (0: it never resumed).
    #[serde(default)]
    pub resumes: u32,
    /// Where the last resume started: `stage:epoch` (e.g. `finetune:12`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<String>,
    /// The trials trained together in the trial's latest lease (packed training), this one
    /// included, in id order; empty when it trained alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pack: Vec<i64>,
    /// A completed trial's manifest (see `CompleteTrial::manifest`), when its worker sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<serde_json::Value>,
}

/// `POST /v1/lease`: ask for a trial. The call waits up to `wait_ms` for one to become
/// available (long polling); `204 No Content` means none did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaseRequest {
    /// A name unique to the worker process (host, pid, slot).
    pub worker: String,
    #[serde(default)]
    pub wait_ms: u64,
    /// The worker process asking (one process runs several slots, each leasing under its own
    /// `worker` name), for the dashboard's list of workers. Optional: older workers send none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentInfo>,
    /// Present: the worker trains packs, and the answer is a [`LeasePack`] of up to
    /// [`PackAsk::max`] trials of one pack key. Absent (older workers): the answer is one
    /// [`Lease`], as before packs existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack: Option<PackAsk>,
}

/// How many trials a packing worker takes in one lease answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackAsk {
    /// The worker's `--pack`: at most this many (capped at [`MAX_PACK`](crate::pack::MAX_PACK)).
    /// `None`: as many as the first trial's study allows (`[resources] pack`, else 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

/// `200` answer to a lease request that carried [`LeaseRequest::pack`]: one or more leases whose
/// trials share a pack key ([`crate::PackKey`]). Each lease lives on its own: its heartbeats,
/// progress and outcome name only its trial.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeasePack {
    pub leases: Vec<Lease>,
}

/// Who a worker process is: sent with every lease request so the coordinator can list workers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// The process's name (its slots lease as `name/slot` when it has several).
    pub name: String,
    /// The machine's host name.
    #[serde(default)]
    pub host: String,
    /// Trials the process runs at once.
    #[serde(default)]
    pub slots: u32,
    /// The device its trials run on (`cpu`, `cuda:0`, ...; slots may differ, listed with `,`).
    #[serde(default)]
    pub device: String,
}

/// What a leased trial runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TrialJob {
    /// One of decsweep's pipelines.
    Model { pipeline: Pipeline, params: Params },
    /// An external program: run `argv` with `env` added in `workdir`; its last stdout line is a
    /// JSON object of metrics. When stopped it gets SIGTERM, then SIGKILL `stop_grace_s` later.
    Command {
        argv: Vec<String>,
        env: BTreeMap<String, String>,
        workdir: Option<String>,
        #[serde(default = "default_stop_grace_s")]
        stop_grace_s: f64,
    },
}

/// What a job stored before `stop_grace` existed gets (the grace it had then).
fn default_stop_grace_s() -> f64 {
    3.0
}

/// The dataset a trial reads, fetched from `GET /v1/datasets/{sha256}` and verified.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetRef {
    pub sha256: String,
    pub bytes: u64,
    /// Where the study's dataset came from, as the user would know it: `file:/abs/path`,
    /// `upload:<the spec's path>` or `synthetic:…`. Errors about the worker's copy name it.
    /// Absent from older coordinators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// `200` answer to a lease request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// Identifies this attempt; every later call about the trial names it.
    pub lease_id: String,
    pub trial_id: i64,
    pub study: String,
    pub job: TrialJob,
    pub seed: u64,
    pub attempt: u32,
    pub dataset: Option<DatasetRef>,
    /// The lease expires this long after the last heartbeat.
    pub ttl_ms: u64,
    /// The trial's latest saved state, left by an earlier lease (preempted, returned, expired):
    /// the worker fetches it from `GET /v1/leases/{lease_id}/checkpoint` and resumes from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<CheckpointInfo>,
    /// Seconds of training between the states the worker saves and uploads
    /// (`PUT /v1/leases/{lease_id}/checkpoint`): the spec's `[resources] checkpoint_every`.
    #[serde(default = "default_checkpoint_every_s")]
    pub checkpoint_every_s: f64,
    /// Names the pack when this trial is trained together with others (every lease of one
    /// [`LeasePack`] of two or more carries the same id); absent when it trains alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack_id: Option<String>,
}

fn default_checkpoint_every_s() -> f64 {
    300.0
}

/// A trial's stored checkpoint: its content hash and size, and how far the trial had got.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    pub sha256: String,
    pub bytes: u64,
    /// The stage in progress when the state was saved, and the epochs of it done.
    pub stage: Stage,
    pub epoch: u32,
}

/// Query of `PUT /v1/leases/{lease_id}/checkpoint`, whose body is the state file itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointUpload {
    pub stage: Stage,
    pub epoch: u32,
    /// SHA-256 of the body, checked by the coordinator (a truncated upload is refused).
    pub sha256: String,
}

/// `POST /v1/leases/{lease_id}/heartbeat` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    pub ttl_ms: u64,
    /// `stop` once the user cancelled or failed the trial, so a trial between epochs (or a
    /// command that reports none) stops within a heartbeat; `prune` is never sent here.
    /// Absent (older coordinators): `continue`.
    #[serde(default)]
    pub action: ProgressAction,
}

/// `POST /v1/leases/{lease_id}/progress`: one epoch of one stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochProgress {
    pub stage: Stage,
    pub epoch: u32,
    pub epochs: u32,
    /// A loss that is not finite (diverged, or not reported by a program) travels as `null` or
    /// is left out, and reads back as NaN; the coordinator stores no value for it.
    #[serde(default = "nan", deserialize_with = "nan_when_null")]
    pub train_loss: f64,
    #[serde(default = "nan", deserialize_with = "nan_when_null")]
    pub val_loss: f64,
    pub val_accuracy: Option<f64>,
}

fn nan() -> f64 {
    f64::NAN
}

fn nan_when_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// One element of `GET /v1/trials/{id}/curves`: an epoch of one stage of one attempt, as the
/// worker reported it with `progress`. Losses are `None` where the worker sent a non-finite value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialCurvePoint {
    pub attempt: u32,
    pub stage: Stage,
    pub epoch: u32,
    pub epochs: u32,
    pub train_loss: Option<f64>,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
}

/// What the coordinator wants the worker to do after an epoch (or a heartbeat).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgressAction {
    #[default]
    Continue,
    /// Stop the trial and report it pruned.
    Prune,
    /// Stop the trial now and report nothing: the user cancelled or failed it, and the
    /// coordinator has already recorded how it ended (the lease's later calls get 409).
    Stop,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProgressReply {
    pub action: ProgressAction,
}

/// `POST /v1/leases/{lease_id}/complete`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompleteTrial {
    pub metrics: BTreeMap<String, f64>,
    /// What the result was computed with (build, libtorch, device, threads, dataset, parameters,
    /// seed, determinism), for `decsweep reproduce`; the coordinator adds the spec's SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<serde_json::Value>,
}

/// `POST /v1/leases/{lease_id}/fail`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailTrial {
    pub reason: String,
    /// False when trying again cannot help (e.g. the parameters are invalid): the trial fails
    /// for good instead of going back to the queue.
    pub retryable: bool,
}

/// `POST /v1/leases/{lease_id}/return`: the worker is stopping (SIGTERM, Ctrl-C) and gives the
/// trial back unfinished. Unlike a failure it does not use up one of the trial's retries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReturnTrial {
    pub reason: String,
}

/// `POST /v1/workers/goodbye`: a worker process ending cleanly (a stop signal, or
/// `--exit-when-idle` finding no work) says so, and the dashboard lists it as stopped rather
/// than as quiet. A process that vanishes without it stays listed as idle, then quiet. The
/// answer is [`Recorded`]: `false` when no worker of that name was ever seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerGoodbye {
    /// The process's name, as in its lease requests' [`AgentInfo::name`].
    pub name: String,
}

/// `POST /v1/leases/{lease_id}/prune`: the worker stopped the trial after a `prune` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PruneTrial {
    pub stage: Stage,
    pub epoch: u32,
    pub metrics: BTreeMap<String, f64>,
}

/// Answer to complete / fail / prune: whether this call changed the trial. A repeated call for
/// the same lease answers `recorded: false` with status 200 (idempotent); a call for a lease
/// that has been replaced answers 409.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    pub recorded: bool,
}

/// `POST /v1/studies/{name}/cancel` answer (the body is `{}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelOutcome {
    /// Pending trials now `cancelled`.
    pub cancelled: u64,
    /// Running trials now `cancelled` whose workers are told to stop (`ProgressAction::Stop`).
    pub stopping: u64,
}

/// `POST /v1/studies/{name}/resume` answer (the body is `{}`): the way back from a cancel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resumed {
    /// Cancelled trials now pending again.
    pub resumed: u64,
    /// Whether the study was cancelled (false: nothing changed).
    pub was_cancelled: bool,
}

/// `POST /v1/studies/{name}/retry`: every failed trial of the study, or only `trial_id`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryTrials {
    #[serde(default)]
    pub trial_id: Option<i64>,
}

/// `POST /v1/studies/{name}/retry` answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retried {
    /// Failed trials now pending again.
    pub retried: u64,
}

/// `POST /v1/trials/{id}/fail`: mark a pending or running trial failed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailByUser {
    /// Stored as the trial's error; default "failed by user".
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /v1/trials/{id}/fail` answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedByUser {
    /// False when the trial had already failed (nothing changed).
    pub failed: bool,
}

/// `POST /v1/studies/{name}/seeds`: every configuration of the study × these seeds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddSeeds {
    pub seeds: Vec<u64>,
}

/// `POST /v1/studies/{name}/seeds` answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedsAdded {
    /// New pending trials.
    pub added: u64,
    /// Requested seeds the study already had; nothing was added for them.
    #[serde(default)]
    pub skipped: Vec<u64>,
}

/// `GET /v1/studies/{name}/export?after=&limit=`: one page of a study's trials in id order,
/// each with the curve of the attempt whose result is stored, so a report needs a few requests
/// rather than one per trial.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StudyExport {
    pub trials: Vec<ExportedTrial>,
    /// The `after` of the next page; `None` on the last page.
    #[serde(default)]
    pub next_after: Option<i64>,
}

/// One trial of a [`StudyExport`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExportedTrial {
    pub trial: TrialInfo,
    /// The points of its latest attempt (`trial.attempts`), in the order recorded.
    pub curve: Vec<TrialCurvePoint>,
}

/// Body of every 4xx/5xx answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
    /// Individual problems, e.g. every error in a spec as `path:line:col: message`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

/// The numbers of a trial's `metrics.json` as flat columns (what a worker reports with
/// `complete`, and what `decsweep reproduce` compares): top-level numbers as they are (but the seed,
/// which the trial already carries, and `resumes`, which the coordinator counts itself), the
/// test split's as `test_<name>`.
pub fn flatten_metrics(m: &serde_json::Value) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Some(obj) = m.as_object() else { return out };
    for (key, value) in obj.iter().filter(|(k, _)| !matches!(k.as_str(), "seed" | "resumes")) {
        if let Some(x) = value.as_f64() {
            out.insert(key.clone(), x);
        }
    }
    if let Some(test) = obj.get("test").and_then(|t| t.as_object()) {
        for (key, value) in test {
            if let Some(x) = value.as_f64() {
                out.insert(format!("test_{key}"), x);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_round_trips_through_json() {
        let lease = Lease {
            lease_id: "l-1".into(),
            trial_id: 3,
            study: "demo".into(),
            job: TrialJob::Model { pipeline: Pipeline::Dec, params: Params::default() },
            seed: 4,
            attempt: 1,
            dataset: Some(DatasetRef { sha256: "ab".into(), bytes: 10, source: Some("file:/d.safetensors".into()) }),
            ttl_ms: 30_000,
            resume: Some(CheckpointInfo { sha256: "cd".into(), bytes: 7, stage: Stage::Dec, epoch: 2 }),
            checkpoint_every_s: 60.0,
            pack_id: None,
        };
        let text = serde_json::to_string(&lease).unwrap();
        assert!(text.contains(r#""kind":"model""#) && text.contains(r#""pipeline":"dec""#), "{text}");
        assert!(!text.contains("pack_id"), "a lone trial's lease reads as before packs: {text}");
        assert_eq!(serde_json::from_str::<Lease>(&text).unwrap(), lease);
        let packed = Lease { pack_id: Some("p-1".into()), ..lease };
        let answer = LeasePack { leases: vec![packed.clone(), packed] };
        let text = serde_json::to_string(&answer).unwrap();
        assert_eq!(serde_json::from_str::<LeasePack>(&text).unwrap(), answer);
    }

    /// Older workers send no `pack` and older coordinators ignore it: both read each other.
    #[test]
    fn lease_requests_with_and_without_pack() {
        let old: LeaseRequest = serde_json::from_str(r#"{"worker":"w","wait_ms":5}"#).unwrap();
        assert_eq!(old.pack, None);
        assert!(!serde_json::to_string(&old).unwrap().contains("pack"));
        let ask = LeaseRequest { pack: Some(PackAsk { max: Some(8) }), ..old.clone() };
        let text = serde_json::to_string(&ask).unwrap();
        assert!(text.contains(r#""pack":{"max":8}"#), "{text}");
        assert_eq!(serde_json::from_str::<LeaseRequest>(&text).unwrap(), ask);
        let study_default: LeaseRequest = serde_json::from_str(r#"{"worker":"w","pack":{}}"#).unwrap();
        assert_eq!(study_default.pack, Some(PackAsk { max: None }));
    }

    #[test]
    fn metrics_flatten_with_test_prefix() {
        let m = serde_json::json!({
            "status": "completed", "accuracy": 0.75, "param_count": 10, "seed": 3, "resumes": 1,
            "test": { "accuracy": 0.7, "n": 5 }, "params": { "lr_ft": 0.1 }, "device": "cpu"
        });
        let flat = flatten_metrics(&m);
        assert_eq!(flat.get("accuracy"), Some(&0.75));
        assert_eq!(flat.get("param_count"), Some(&10.0));
        assert_eq!(flat.get("test_accuracy"), Some(&0.7));
        assert!(!flat.contains_key("lr_ft") && !flat.contains_key("device") && !flat.contains_key("seed"));
        assert!(!flat.contains_key("resumes"), "the coordinator counts resumes itself");
    }

    #[test]
    fn a_loss_left_out_or_null_reads_as_nan() {
        let p: EpochProgress =
            serde_json::from_str(r#"{"stage":"finetune","epoch":2,"epochs":0,"val_loss":null,"val_accuracy":0.5}"#)
                .unwrap();
        assert!(p.train_loss.is_nan() && p.val_loss.is_nan());
        let back: EpochProgress = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert!(back.val_loss.is_nan() && back.val_accuracy == Some(0.5));
    }

    #[test]
    fn statuses_parse_from_their_names() {
        for s in TrialStatus::ALL {
            assert_eq!(s.name().parse::<TrialStatus>().unwrap(), s);
        }
        assert!(TrialStatus::Pruned.is_terminal() && !TrialStatus::Running.is_terminal());
        assert!(TrialStatus::Cancelled.is_terminal());
        assert!("done".parse::<TrialStatus>().unwrap_err().contains("cancelled"));
    }

    #[test]
    fn lease_outcomes_parse_and_serialise_as_their_names() {
        for o in LeaseOutcome::ALL {
            assert_eq!(o.name().parse::<LeaseOutcome>().unwrap(), o);
            assert_eq!(serde_json::to_string(&o).unwrap(), format!("\"{}\"", o.name()));
        }
        assert!("done".parse::<LeaseOutcome>().unwrap_err().contains("failed_by_user"));
    }

    #[test]
    fn cancelled_trials_count_as_finished() {
        let mut c = StatusCounts::default();
        for s in TrialStatus::ALL {
            c.add(s, 1);
        }
        assert_eq!((c.total(), c.finished(), c.cancelled), (6, 4, 1));
        // An older coordinator's answer has no `cancelled`.
        let old: StatusCounts =
            serde_json::from_str(r#"{"pending":1,"running":0,"completed":2,"failed":0,"pruned":0}"#).unwrap();
        assert_eq!((old.cancelled, old.total()), (0, 3));
    }

    #[test]
    fn heartbeats_and_progress_carry_the_stop_action() {
        let old: HeartbeatReply = serde_json::from_str(r#"{"ttl_ms":5}"#).unwrap();
        assert_eq!(old.action, ProgressAction::Continue, "older coordinators say nothing: go on");
        let stop = serde_json::to_string(&HeartbeatReply { ttl_ms: 5, action: ProgressAction::Stop }).unwrap();
        assert!(stop.contains(r#""action":"stop""#), "{stop}");
        let p: ProgressReply = serde_json::from_str(r#"{"action":"stop"}"#).unwrap();
        assert_eq!(p.action, ProgressAction::Stop);
    }
}
