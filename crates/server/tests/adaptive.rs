//! Adaptive (TPE) studies and spec pruners through the real HTTP API, with simulated workers.

use std::collections::BTreeMap;

use decsweep_api::wire::{Lease, ProgressReply, StudyInfo, TrialInfo, TrialJob, TrialStatus};
use decsweep_api::ParamValue;
use decsweep_coordinator::{Coordinator, CoordinatorOptions};
use decsweep_search::{LoadOptions, Observation, SweepSpec};
use decsweep_server::{ServeError, ServeOptions};
use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::oneshot;

struct Server {
    base: String,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<Result<(), ServeError>>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        Server::with(CoordinatorOptions::default()).await
    }

    async fn with(options: CoordinatorOptions) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let coordinator = Coordinator::open(dir.path().join("sweeps.db"), options).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = decsweep_server::Server::new(coordinator, ServeOptions::default());
        let served = tokio::spawn(async move {
            server
                .serve(listener, async move {
                    let _ = stopped.await;
                })
                .await
        });
        Server { base, http: reqwest::Client::new(), stop: Some(stop), served: Some(served), _dir: dir }
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.http.post(format!("{}{path}", self.base)).json(&body).send().await.unwrap()
    }

    async fn create(&self, spec: &str) -> StudyInfo {
        let r = self.post("/v1/studies", json!({ "spec": spec, "spec_path": "test.toml" })).await;
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
        r.json().await.unwrap()
    }

    async fn lease(&self, worker: &str) -> Option<Lease> {
        let r = self.post("/v1/lease", json!({ "worker": worker, "wait_ms": 0 })).await;
        match r.status() {
            StatusCode::OK => Some(r.json().await.unwrap()),
            StatusCode::NO_CONTENT => None,
            other => panic!("lease answered {other}: {}", r.text().await.unwrap()),
        }
    }

    async fn complete(&self, lease: &Lease, metrics: serde_json::Value) {
        let r = self.post(&format!("/v1/leases/{}/complete", lease.lease_id), json!({ "metrics": metrics })).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    }

    async fn trials(&self, study: &str) -> Vec<TrialInfo> {
        self.http.get(format!("{}/v1/studies/{study}/trials", self.base)).send().await.unwrap().json().await.unwrap()
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            served.await.unwrap().unwrap();
        }
    }
}

const TPE_SPEC: &str = r#"
[study]
name = "tpe"
dataset = { synthetic = { seed = 1, n = 8 } }
pipelines = ["command"]
seeds = [0, 1]

[command]
program = ["python3", "f.py"]

[space]
x = { uniform = [0.0, 1.0] }

[sampler]
kind = "tpe"
seed = 7
n_trials = 12

[objective]
metric = "score"
direction = "maximize"
"#;

/// The `--x` a command trial is run with.
fn x_of(lease: &Lease) -> f64 {
    let TrialJob::Command { argv, .. } = &lease.job else { panic!("not a command job") };
    let at = argv.iter().position(|a| a == "--x").expect("--x");
    argv[at + 1].parse().unwrap()
}

/// What the simulated worker reports: seeds differ, so the sampler must see their mean.
fn score(x: f64, seed: u64) -> f64 {
    -(x - 0.3) * (x - 0.3) + 0.01 * seed as f64
}

async fn finish(s: &Server, lease: &Lease) {
    s.complete(lease, json!({ "score": score(x_of(lease), lease.seed) })).await;
}

fn x_param(t: &TrialInfo) -> f64 {
    match t.params["x"] {
        ParamValue::Float(x) => x,
        ref other => panic!("x = {other:?}"),
    }
}

/// Runs the TPE study to the end; returns its trials.
async fn drive() -> Vec<TrialInfo> {
    let s = Server::start().await;
    let info = s.create(TPE_SPEC).await;
    assert_eq!((info.counts.total(), info.counts.pending), (2, 2), "one point, one trial per seed, at creation");
    assert_eq!(info.planned, Some(24), "12 points × 2 seeds");
    assert!(info.adaptive, "reports draw search.svg from this");

    // Three workers lease before anything completes: the third gets a second point.
    let a0 = s.lease("w1").await.unwrap();
    let a1 = s.lease("w2").await.unwrap();
    let b0 = s.lease("w3").await.unwrap();
    assert_eq!(x_of(&a0), x_of(&a1), "the seeds of one point");
    assert_ne!((a0.seed, x_of(&a0)), (a1.seed, x_of(&b0)));
    assert_ne!(x_of(&a0), x_of(&b0), "concurrently pending configurations are different points");
    let running = s.trials("tpe").await;
    assert_eq!(running.len(), 4, "point B's second seed is queued, nothing else");
    finish(&s, &a0).await;
    finish(&s, &a1).await;
    assert_eq!(s.trials("tpe").await.len(), 4, "no new point while B's seed 1 is pending");
    finish(&s, &b0).await;
    // From here one worker, strictly in turn: each point is asked with every earlier one finished.
    let mut n = 3;
    while let Some(l) = s.lease("w1").await {
        finish(&s, &l).await;
        n += 1;
        assert!(n <= 24, "more trials than n_trials × seeds");
    }
    let trials = s.trials("tpe").await;
    s.stop().await;
    trials
}

#[tokio::test]
async fn a_tpe_study_samples_points_as_results_come_in() {
    let trials = drive().await;
    assert_eq!(trials.len(), 24);
    assert!(trials.iter().all(|t| t.status == TrialStatus::Completed));
    // Twelve points, each run for both seeds.
    let mut by_config: BTreeMap<String, Vec<&TrialInfo>> = BTreeMap::new();
    for t in &trials {
        by_config.entry(t.config_id.clone()).or_default().push(t);
    }
    assert_eq!(by_config.len(), 12);
    assert!(by_config.values().all(|ts| ts.len() == 2 && ts[0].seed != ts[1].seed));

    // Same results in the same order: the same points.
    let again = drive().await;
    let xs = |ts: &[TrialInfo]| ts.iter().map(x_param).collect::<Vec<_>>();
    assert_eq!(xs(&trials), xs(&again), "deterministic for a sampler seed");

    // The last point is what the spec's sampler proposes given the seed means of the first eleven.
    let spec = SweepSpec::from_source(TPE_SPEC, "test.toml", &LoadOptions { check_dataset: false }).unwrap();
    let mut points: Vec<(i64, f64, f64)> = by_config
        .values()
        .map(|ts| {
            let mean = ts.iter().map(|t| t.metrics["score"]).sum::<f64>() / ts.len() as f64;
            (ts.iter().map(|t| t.id).min().unwrap(), x_param(ts[0]), mean)
        })
        .collect();
    points.sort_by_key(|p| p.0);
    let history: Vec<Observation> = points[..11]
        .iter()
        .map(|(_, x, mean)| Observation {
            point: BTreeMap::from([("x".into(), ParamValue::Float(*x))]),
            value: Some(*mean),
            pruned_at: None,
        })
        .collect();
    let expected = spec.sampler().ask(&history, &[]).unwrap();
    assert_eq!(expected["x"], ParamValue::Float(points[11].1), "the sampler saw the means over seeds");
}

const PRUNED_SPEC: &str = r#"
[study]
name = "pruned"
dataset = { synthetic = { seed = 1, n = 8 } }
pipelines = ["command"]
seeds = [0]

[command]
program = ["python3", "f.py"]

[space]
x = { grid = [1, 2, 3] }

[pruner]
kind = "median"
n_startup_trials = 1
"#;

async fn report(s: &Server, lease: &Lease, epoch: u32, acc: f64) -> decsweep_api::wire::ProgressAction {
    let body = json!({ "stage": "finetune", "epoch": epoch, "epochs": 2, "train_loss": 1.0, "val_loss": 1.0 - acc, "val_accuracy": acc });
    let r: ProgressReply = s.post(&format!("/v1/leases/{}/progress", lease.lease_id), body).await.json().await.unwrap();
    r.action
}

#[tokio::test]
async fn a_spec_pruner_prunes_and_the_pruned_trial_keeps_its_last_metric() {
    let s = Server::start().await;
    s.create(PRUNED_SPEC).await;
    use decsweep_api::wire::ProgressAction::{Continue, Prune};
    let first = s.lease("w").await.unwrap();
    assert_eq!(report(&s, &first, 1, 0.6).await, Continue, "no trial finished the stage yet");
    assert_eq!(report(&s, &first, 2, 0.7).await, Continue);
    s.complete(&first, json!({ "accuracy": 0.7 })).await;
    let good = s.lease("w").await.unwrap();
    assert_eq!(report(&s, &good, 1, 0.65).await, Continue, "0.65 ≥ the median 0.6");
    let bad = s.lease("w").await.unwrap();
    assert_eq!(report(&s, &bad, 1, 0.5).await, Prune, "0.5 < the median 0.6");
    let r = s
        .post(&format!("/v1/leases/{}/prune", bad.lease_id), json!({ "stage": "finetune", "epoch": 1, "metrics": {} }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let pruned = s.trials("pruned").await.into_iter().find(|t| t.id == bad.trial_id).unwrap();
    assert_eq!(pruned.status, TrialStatus::Pruned);
    assert_eq!(pruned.metrics["accuracy"], 0.5);
    assert_eq!(pruned.metrics["loss"], 0.5);
    assert_eq!(pruned.metrics["pruned_epoch"], 1.0);
    assert_eq!(pruned.metrics["pruned_stage"], 3.0);
    s.stop().await;
}

#[tokio::test]
async fn the_global_pruner_can_override_the_specs() {
    let options = CoordinatorOptions { pruner_override: true, ..Default::default() };
    let s = Server::with(options).await;
    s.create(PRUNED_SPEC).await;
    use decsweep_api::wire::ProgressAction::Continue;
    let first = s.lease("w").await.unwrap();
    assert_eq!(report(&s, &first, 1, 0.6).await, Continue);
    assert_eq!(report(&s, &first, 2, 0.7).await, Continue);
    s.complete(&first, json!({ "accuracy": 0.7 })).await;
    let bad = s.lease("w").await.unwrap();
    assert_eq!(report(&s, &bad, 1, 0.1).await, Continue, "the spec's median pruner is overridden by NoPruner");
    s.stop().await;
}
