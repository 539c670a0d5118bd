//! The HTTP API end to end: the real router on a real TCP listener on 127.0.0.1, driven by
//! reqwest.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use decsweep_api::wire::{
    ApiError, HeartbeatReply, Lease, LeasePack, ProgressReply, Recorded, StudyExport, StudyInfo, TrialCurvePoint,
    TrialInfo, TrialJob, TrialStatus,
};
use decsweep_coordinator::{Coordinator, CoordinatorOptions, ManualClock};
use decsweep_server::{openapi, ServeError, ServeOptions};
use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

struct Server {
    base: String,
    coordinator: Coordinator,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<Result<(), ServeError>>>,
    http_server: decsweep_server::Server,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(options: CoordinatorOptions) -> Server {
        Server::start_serving(options, ServeOptions::default()).await
    }

    async fn start_serving(options: CoordinatorOptions, serve: ServeOptions) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let coordinator = Coordinator::open(dir.path().join("sweeps.db"), options).unwrap();
        let http_server = decsweep_server::Server::new(coordinator.clone(), serve);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let c = http_server.clone();
        let served = tokio::spawn(async move {
            c.serve(listener, async move {
                let _ = stopped.await;
            })
            .await
        });
        let http = reqwest::Client::new();
        Server { base, coordinator, http, stop: Some(stop), served: Some(served), http_server, _dir: dir }
    }

    async fn plain() -> Server {
        Server::start(CoordinatorOptions::default()).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.http.post(self.url(path)).json(&body).send().await.unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    async fn create(&self, spec: &str) -> reqwest::Response {
        self.post("/v1/studies", json!({ "spec": spec, "spec_path": "test.toml" })).await
    }

    async fn lease(&self, worker: &str, wait_ms: u64) -> Option<Lease> {
        let r = self.post("/v1/lease", json!({ "worker": worker, "wait_ms": wait_ms })).await;
        match r.status() {
            StatusCode::OK => Some(r.json().await.unwrap()),
            StatusCode::NO_CONTENT => None,
            other => panic!("lease answered {other}: {}", r.text().await.unwrap()),
        }
    }

    async fn complete(&self, lease_id: &str, accuracy: f64) -> reqwest::Response {
        self.post(&format!("/v1/leases/{lease_id}/complete"), json!({ "metrics": { "accuracy": accuracy } })).await
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

/// A spec of `n` command trials over a tiny synthetic dataset.
fn command_spec(name: &str, n: usize, retries: u32) -> String {
    let values: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    format!(
        r#"
[study]
name = "{name}"
dataset = {{ synthetic = {{ seed = 1, n = 8 }} }}
pipelines = ["command"]
seeds = [0]
retries = {retries}

[command]
program = ["python3", "train.py"]

[space]
x = {{ grid = [{}] }}
"#,
        values.join(", ")
    )
}

const MODEL_SPEC: &str = r#"
[study]
name = "tiny"
dataset = { synthetic = { seed = 0, n = 12 } }
pipelines = ["baseline", "dec"]
seeds = [0, 1]

[fixed]
epochs_ft = 2

[space]
label_fraction = { grid = [0.5, 1.0] }
"#;

#[tokio::test]
async fn a_study_is_created_once_from_a_spec() {
    let s = Server::plain().await;
    let r = s.create(MODEL_SPEC).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let info: StudyInfo = r.json().await.unwrap();
    assert!(info.created);
    assert_eq!((info.name.as_str(), info.counts.pending), ("tiny", 8));
    assert_eq!(info.dataset_sha256.len(), 64);

    let again = s.create(MODEL_SPEC).await;
    assert_eq!(again.status(), StatusCode::OK);
    let again: StudyInfo = again.json().await.unwrap();
    assert!(!again.created);
    assert_eq!(again.counts.total(), 8, "no trial inserted twice");

    let changed = s.create(&MODEL_SPEC.replace("epochs_ft = 2", "epochs_ft = 3")).await;
    assert_eq!(changed.status(), StatusCode::CONFLICT);
    let err: ApiError = changed.json().await.unwrap();
    assert!(err.error.contains("different spec"), "{}", err.error);

    let list: Vec<StudyInfo> = s.get("/v1/studies").await.json().await.unwrap();
    assert_eq!(list.len(), 1);
    let one: StudyInfo = s.get("/v1/studies/tiny").await.json().await.unwrap();
    assert_eq!(one.counts.pending, 8);
    assert!(!one.adaptive && !info.adaptive, "a grid study is planned in full");
    let trials: Vec<TrialInfo> = s.get("/v1/studies/tiny/trials").await.json().await.unwrap();
    assert_eq!(trials.len(), 8);
    assert!(trials.iter().all(|t| t.status == TrialStatus::Pending && t.attempts == 0));
    assert!(trials.iter().any(|t| t.pipeline == "dec" && t.params.contains_key("beta")));
    assert!(trials.iter().all(|t| t.pipeline != "baseline" || !t.params.contains_key("beta")));
    let filtered: Vec<TrialInfo> = s.get("/v1/studies/tiny/trials?status=running").await.json().await.unwrap();
    assert!(filtered.is_empty());
    assert_eq!(s.get("/v1/studies/tiny/trials?status=bogus").await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(s.get("/v1/studies/nope").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(s.get("/v1/trials/999").await.status(), StatusCode::NOT_FOUND);
    let bad_id = s.get("/v1/trials/abc").await;
    assert_eq!(bad_id.status(), StatusCode::BAD_REQUEST);
    let _: ApiError = bad_id.json().await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn spec_errors_are_400_with_every_line_and_column() {
    let s = Server::plain().await;
    let r = s
        .post("/v1/studies", json!({ "spec": "[study]\nnmae = \"x\"\nseeds = \"zero\"\n", "spec_path": "bad.toml" }))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let err: ApiError = r.json().await.unwrap();
    assert!(err.details.len() >= 2, "{err:?}");
    assert!(err.details.iter().any(|d| d.starts_with("bad.toml:2:1: ")), "{err:?}");
    assert!(err.details.iter().all(|d| d.starts_with("bad.toml:")), "{err:?}");
    let malformed = s.post("/v1/studies", json!({ "spec": 3 })).await;
    assert_eq!(malformed.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let _: ApiError = malformed.json().await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn lease_heartbeat_progress_complete() {
    let s = Server::plain().await;
    s.create(&command_spec("flow", 2, 2)).await;
    let lease = s.lease("w1", 0).await.expect("a trial");
    assert_eq!((lease.trial_id, lease.attempt, lease.study.as_str()), (1, 1, "flow"));
    let TrialJob::Command { argv, env, .. } = &lease.job else { panic!("not a command job") };
    assert_eq!(argv[..4], ["python3", "train.py", "--x", "0"]);
    assert_eq!(env["DECSWEEP_SEED"], "0");

    let hb: HeartbeatReply =
        s.post(&format!("/v1/leases/{}/heartbeat", lease.lease_id), json!({})).await.json().await.unwrap();
    assert_eq!(hb.ttl_ms, lease.ttl_ms);
    let progress = json!({ "stage": "finetune", "epoch": 1, "epochs": 3, "train_loss": 0.7, "val_loss": 0.69, "val_accuracy": 0.5 });
    let reply: ProgressReply =
        s.post(&format!("/v1/leases/{}/progress", lease.lease_id), progress).await.json().await.unwrap();
    assert_eq!(reply.action, decsweep_api::wire::ProgressAction::Continue);

    let first = s.complete(&lease.lease_id, 0.75).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert!(first.json::<Recorded>().await.unwrap().recorded);
    let repeat = s.complete(&lease.lease_id, 0.10).await;
    assert_eq!(repeat.status(), StatusCode::OK, "completion is idempotent");
    assert!(!repeat.json::<Recorded>().await.unwrap().recorded);

    let trial: TrialInfo = s.get("/v1/trials/1").await.json().await.unwrap();
    assert_eq!((trial.status, trial.attempts, trial.worker.as_deref()), (TrialStatus::Completed, 1, Some("w1")));
    assert_eq!(trial.metrics["accuracy"], 0.75, "the repeat changed nothing");
    let curves: Vec<TrialCurvePoint> = s.get("/v1/trials/1/curves").await.json().await.unwrap();
    assert_eq!(curves.len(), 1);
    assert_eq!((curves[0].epoch, curves[0].val_accuracy), (1, Some(0.5)));

    let unknown = s.complete("0123", 0.5).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let after = s.post(&format!("/v1/leases/{}/heartbeat", lease.lease_id), json!({})).await;
    assert_eq!(after.status(), StatusCode::CONFLICT, "a finished lease cannot be extended");

    let (rows, points) = s.coordinator.report_input("flow").await.unwrap();
    assert_eq!((rows.len(), points.len()), (2, 1));
    assert_eq!(rows[0].status, decsweep_report::TrialStatus::Completed);
    s.stop().await;
}

#[tokio::test]
async fn the_export_pages_through_a_study_as_report_input_reads_it() {
    let s = Server::plain().await;
    s.create(&command_spec("paged", 7, 2)).await;
    s.create(&command_spec("other", 2, 2)).await;
    let progress = |epoch: u32, loss: Option<f64>| json!({ "stage": "finetune", "epoch": epoch, "epochs": 3, "train_loss": loss, "val_loss": 0.5, "val_accuracy": null });
    // Two trials at once, so their points interleave; trial 1 fails once and runs again, and one
    // point of trial 2 has no train loss.
    let first = s.lease("w1", 0).await.unwrap();
    let second = s.lease("w2", 0).await.unwrap();
    for (lease, epoch, loss) in
        [(&first, 1, Some(0.9)), (&second, 1, None), (&first, 2, Some(0.8)), (&second, 2, Some(0.4))]
    {
        let r = s.post(&format!("/v1/leases/{}/progress", lease.lease_id), progress(epoch, loss)).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    s.post(&format!("/v1/leases/{}/fail", first.lease_id), json!({ "reason": "oom", "retryable": true })).await;
    s.complete(&second.lease_id, 0.7).await;
    let again = s.lease("w1", 0).await.unwrap();
    assert_eq!((again.trial_id, again.attempt), (first.trial_id, 2));
    s.post(&format!("/v1/leases/{}/progress", again.lease_id), progress(1, Some(0.3))).await;
    s.complete(&again.lease_id, 0.8).await;

    let mut trials = Vec::new();
    let mut curves = Vec::new();
    let mut path = "/v1/studies/paged/export?limit=3".to_string();
    let mut pages = 0;
    loop {
        let r = s.get(&path).await;
        assert_eq!(r.status(), StatusCode::OK);
        let page: StudyExport = r.json().await.unwrap();
        pages += 1;
        assert!(page.trials.len() <= 3);
        for t in page.trials {
            curves.extend(t.curve.iter().map(|p| decsweep_report::CurvePoint::from_wire(t.trial.id, p)));
            trials.push(decsweep_report::TrialRow::from(t.trial));
        }
        match page.next_after {
            Some(after) => path = format!("/v1/studies/paged/export?limit=3&after={after}"),
            None => break,
        }
    }
    assert_eq!(pages, 3, "7 trials, 3 a page");
    let (rows, points) = s.coordinator.report_input("paged").await.unwrap();
    assert_eq!(trials, rows);
    // Pages hold each trial's points together; within a trial they keep the order recorded,
    // which is all a report reads. Debug text, so NaN compares equal to NaN.
    let mut expected = points.clone();
    expected.sort_by_key(|p| p.trial_id);
    assert_eq!(format!("{curves:?}"), format!("{expected:?}"));
    assert_eq!(curves.iter().filter(|p| p.trial_id == first.trial_id).count(), 1, "only the latest attempt");
    assert!(curves.iter().any(|p| p.train_loss.is_nan()));

    let whole: StudyExport = s.get("/v1/studies/paged/export").await.json().await.unwrap();
    assert_eq!((whole.trials.len(), whole.next_after), (7, None), "the default page holds them all");
    let missing = s.get("/v1/studies/nope/export").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let bad = s.get("/v1/studies/paged/export?after=x").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.json::<ApiError>().await.unwrap().error.contains("after"));
    s.stop().await;
}

#[tokio::test]
async fn a_stale_lease_gets_409_after_expiry_and_re_lease() {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let s = Server::start(CoordinatorOptions {
        lease_ttl: Duration::from_secs(30),
        clock: clock.clone(),
        ..Default::default()
    })
    .await;
    s.create(&command_spec("stale", 1, 2)).await;
    let old = s.lease("w1", 0).await.unwrap();
    clock.advance(Duration::from_secs(31));
    let new = s.lease("w2", 0).await.expect("the expired trial is handed out again");
    assert_eq!((new.trial_id, new.attempt), (old.trial_id, 2));

    let late = s.complete(&old.lease_id, 0.9).await;
    assert_eq!(late.status(), StatusCode::CONFLICT);
    let err: ApiError = late.json().await.unwrap();
    assert!(err.error.contains("leased again"), "{}", err.error);
    let trial: TrialInfo = s.get(&format!("/v1/trials/{}", new.trial_id)).await.json().await.unwrap();
    assert_eq!(trial.status, TrialStatus::Running, "the stale completion changed nothing");

    assert!(s.complete(&new.lease_id, 0.8).await.json::<Recorded>().await.unwrap().recorded);
    assert_eq!(s.complete(&old.lease_id, 0.9).await.status(), StatusCode::CONFLICT);
    let trial: TrialInfo = s.get(&format!("/v1/trials/{}", new.trial_id)).await.json().await.unwrap();
    assert_eq!((trial.status, trial.metrics["accuracy"]), (TrialStatus::Completed, 0.8));
    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("decsweep_completions_total 1\n"), "counted once:\n{metrics}");
    assert!(metrics.contains("decsweep_lease_expirations_total 1\n"), "{metrics}");
    s.stop().await;
}

#[tokio::test]
async fn a_trial_fails_for_good_once_its_retries_are_used() {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let s = Server::start(CoordinatorOptions {
        lease_ttl: Duration::from_secs(10),
        clock: clock.clone(),
        ..Default::default()
    })
    .await;
    s.create(&command_spec("retry", 2, 1)).await;
    // Trial 1: two retryable failures with retries = 1.
    let a = s.lease("w", 0).await.unwrap();
    let r =
        s.post(&format!("/v1/leases/{}/fail", a.lease_id), json!({ "reason": "CUDA OOM", "retryable": true })).await;
    assert!(r.json::<Recorded>().await.unwrap().recorded);
    let b = s.lease("w", 0).await.unwrap();
    assert_eq!((b.trial_id, b.attempt), (a.trial_id, 2));
    s.post(&format!("/v1/leases/{}/fail", b.lease_id), json!({ "reason": "CUDA OOM", "retryable": true })).await;
    let t: TrialInfo = s.get(&format!("/v1/trials/{}", a.trial_id)).await.json().await.unwrap();
    assert_eq!((t.status, t.attempts), (TrialStatus::Failed, 2));
    assert!(t.error.unwrap().contains("CUDA OOM"));

    // Trial 2: two expired leases.
    for attempt in 1..=2 {
        let l = s.lease("w", 0).await.unwrap();
        assert_eq!(l.attempt, attempt);
        clock.advance(Duration::from_secs(11));
    }
    assert_eq!(s.coordinator.expire().await.unwrap(), 1);
    let t: TrialInfo = s.get("/v1/trials/2").await.json().await.unwrap();
    assert_eq!(t.status, TrialStatus::Failed);
    assert!(t.error.unwrap().contains("lease expired after 2 attempts"));
    assert!(s.lease("w", 0).await.is_none());
    s.stop().await;
}

#[tokio::test]
async fn long_polls_wait_then_answer_204_and_wake_for_new_work() {
    let s = Server::plain().await;
    let started = Instant::now();
    assert!(s.lease("idle", 300).await.is_none());
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(290) && waited < Duration::from_secs(3), "{waited:?}");

    let http = s.http.clone();
    let url = s.url("/v1/lease");
    let poll = tokio::spawn(async move {
        let started = Instant::now();
        let r = http.post(url).json(&json!({ "worker": "poller", "wait_ms": 20_000 })).send().await.unwrap();
        (r.status(), started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.create(&command_spec("late", 1, 0)).await.status(), StatusCode::CREATED);
    let (status, took) = poll.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(took < Duration::from_secs(10), "the poll returned when work appeared, after {took:?}");
    s.stop().await;
}

#[tokio::test]
async fn a_configured_token_is_required_on_v1() {
    let serve = ServeOptions { token: Some("s3cret".into()), ..Default::default() };
    let s = Server::start_serving(CoordinatorOptions::default(), serve).await;
    let r = s.get("/v1/studies").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let _: ApiError = r.json().await.unwrap();
    let wrong = s.http.get(s.url("/v1/studies")).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let ok = s.http.get(s.url("/v1/studies")).bearer_auth("s3cret").send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(s.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(s.get("/metrics").await.status(), StatusCode::UNAUTHORIZED, "/metrics needs the token too");
    let metrics = s.http.get(s.url("/metrics")).bearer_auth("s3cret").send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn serve_refuses_a_non_loopback_address_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let c = Coordinator::open(dir.path().join("c.db"), CoordinatorOptions::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let err = decsweep_server::Server::new(c, ServeOptions::default()).serve(listener, async {}).await.unwrap_err();
    assert!(matches!(err, ServeError::InsecureBind { .. }), "{err}");
    assert!(err.to_string().contains("without a bearer token"), "{err}");
}

#[tokio::test]
async fn the_dataset_downloads_with_its_hash() {
    let s = Server::plain().await;
    let info: StudyInfo = s.create(&command_spec("data", 1, 0)).await.json().await.unwrap();
    let lease = s.lease("w", 0).await.unwrap();
    let dataset = lease.dataset.expect("a dataset reference");
    assert_eq!(dataset.sha256, info.dataset_sha256);
    let r = s.get(&format!("/v1/datasets/{}", dataset.sha256)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.content_length(), Some(dataset.bytes));
    let bytes = r.bytes().await.unwrap();
    let hex: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, dataset.sha256);
    assert_eq!(s.get(&format!("/v1/datasets/{}", "0".repeat(64))).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(s.get("/v1/datasets/..%2Fsweeps.db").await.status(), StatusCode::BAD_REQUEST);
    s.stop().await;
}

/// Checks the Prometheus text format line by line: comments are `# HELP name text` or
/// `# TYPE name kind`; samples are `name{label="value",...} number`.
fn check_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap();
            assert!(kind == "HELP" || kind == "TYPE", "bad comment: {line}");
            let name = parts.next().unwrap_or("");
            assert!(!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{line}");
            if kind == "TYPE" {
                assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&parts.next().unwrap_or("")));
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad name: {line}"
        );
        if name_end < series.len() {
            let labels = series[name_end..].strip_prefix('{').and_then(|l| l.strip_suffix('}')).expect(line);
            for pair in labels.split("\",").filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("bad label in {line}"));
                assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{line}");
                assert!(!v.trim_end_matches('"').contains('\n'));
            }
        }
        samples.insert(series.to_string(), value);
    }
    samples
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let s = Server::plain().await;
    s.create(&command_spec("m", 3, 0)).await;
    let l = s.lease("w", 0).await.unwrap();
    s.complete(&l.lease_id, 0.5).await;
    s.lease("w", 0).await.unwrap();
    let r = s.get("/metrics").await;
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let samples = check_prometheus(&r.text().await.unwrap());
    assert_eq!(samples["decsweep_trials{study=\"m\",status=\"pending\"}"], 1.0);
    assert_eq!(samples["decsweep_trials{study=\"m\",status=\"running\"}"], 1.0);
    assert_eq!(samples["decsweep_trials{study=\"m\",status=\"completed\"}"], 1.0);
    assert_eq!(samples["decsweep_leases_granted_total"], 2.0);
    assert_eq!(samples["decsweep_completions_total"], 1.0);
    assert_eq!(samples["decsweep_http_requests_total{method=\"POST\",route=\"/v1/lease\",status=\"200\"}"], 2.0);
    s.stop().await;
}

/// A packing worker's request gets a `LeasePack` of one key; `pack.max` out of range is refused
/// naming the rule; a request without `pack` still gets one plain `Lease`.
#[tokio::test]
async fn a_packing_worker_gets_the_trials_of_one_key_each_on_its_own_lease() {
    let s = Server::plain().await;
    assert_eq!(s.create(MODEL_SPEC).await.status(), StatusCode::CREATED);
    for bad in [0, 65] {
        let r = s.post("/v1/lease", json!({ "worker": "w", "pack": { "max": bad } })).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.text().await.unwrap().contains("`pack.max` must be between 1 and 64"));
    }
    let one = s.lease("solo", 0).await.expect("a trial");
    assert_eq!(one.pack_id, None);
    let mut trained = vec![one.trial_id];
    // Seeds and label fractions may differ inside a pack; the pipeline may not.
    for expected in [3, 4] {
        let r = s.post("/v1/lease", json!({ "worker": "w", "pack": { "max": 8 } })).await;
        assert_eq!(r.status(), StatusCode::OK);
        let pack: LeasePack = r.json().await.unwrap();
        assert_eq!(pack.leases.len(), expected, "{:?}", pack.leases.iter().map(|l| l.trial_id).collect::<Vec<_>>());
        let pipelines: std::collections::BTreeSet<String> = pack
            .leases
            .iter()
            .map(|l| match &l.job {
                TrialJob::Model { pipeline, .. } => pipeline.to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(pipelines.len(), 1, "{pipelines:?}");
        let pack_id = pack.leases[0].pack_id.clone().expect("trained together");
        assert!(pack.leases.iter().all(|l| l.pack_id.as_deref() == Some(pack_id.as_str())));
        for lease in &pack.leases {
            let hb = s.post(&format!("/v1/leases/{}/heartbeat", lease.lease_id), json!({})).await;
            assert_eq!(hb.status(), StatusCode::OK, "each member keeps its own lease alive");
        }
        trained.extend(pack.leases.iter().map(|l| l.trial_id));
    }
    trained.sort();
    assert_eq!(trained, (1..=8).collect::<Vec<i64>>());
    let r = s.post("/v1/lease", json!({ "worker": "w", "pack": {} })).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    s.stop().await;
}

#[tokio::test]
async fn openapi_describes_every_route() {
    let s = Server::plain().await;
    let doc: serde_json::Value = s.get("/v1/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let described = openapi::operations(&doc);
    let routes = s.http_server.routes();
    assert!(routes.len() >= 16, "{routes:?}");
    for (method, path) in &routes {
        assert!(
            described.contains(&(method.to_string(), path.to_string())),
            "{method} {path} is not in the OpenAPI document"
        );
        // And the router really serves it: a concrete request is never answered "no route".
        let concrete = path
            .replace("{name}", "x")
            .replace("{id}", "1")
            .replace("{lease_id}", "l")
            .replace("{sha256}", &"0".repeat(64));
        let r = s.http.request(method.parse().unwrap(), s.url(&concrete)).json(&json!({})).send().await.unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        assert!(
            !(status == StatusCode::NOT_FOUND && body.contains("no route")) && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {status} {body}"
        );
    }
    assert_eq!(described.len(), routes.len(), "the document describes no route the router lacks");
    let missing = s.get("/v2/nothing").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let _: ApiError = missing.json().await.unwrap();
    let wrong_method = s.http.delete(s.url("/v1/studies")).send().await.unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    s.stop().await;
}

#[tokio::test]
async fn shutdown_answers_waiting_lease_requests() {
    let s = Server::plain().await;
    let http = s.http.clone();
    let url = s.url("/v1/lease");
    let poll = tokio::spawn(async move {
        let started = Instant::now();
        let r = http.post(url).json(&json!({ "worker": "p", "wait_ms": 30_000 })).send().await.unwrap();
        (r.status(), started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.stop().await;
    let (status, took) = poll.await.unwrap();
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[tokio::test]
async fn checkpoints_upload_within_the_limit_download_intact_and_go_when_the_trial_ends() {
    let s = Server::start(CoordinatorOptions { max_checkpoint_bytes: 1000, ..Default::default() }).await;
    assert_eq!(s.create(&command_spec("ck", 2, 1)).await.status(), StatusCode::CREATED);
    let lease = s.lease("w", 0).await.unwrap();
    assert_eq!((lease.resume.as_ref(), lease.checkpoint_every_s), (None, 300.0));
    let put = |body: Vec<u8>, sha: String, epoch: u32| {
        let url = s.url(&format!("/v1/leases/{}/checkpoint?stage=dec&epoch={epoch}&sha256={sha}", lease.lease_id));
        let http = s.http.clone();
        async move { http.put(url).body(body).send().await.unwrap() }
    };
    let hex = |b: &[u8]| -> String { Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect() };

    let big = vec![7u8; 1001];
    let r = put(big.clone(), hex(&big), 1).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.json::<ApiError>().await.unwrap().error.contains("limit of 1000 bytes"));
    let truncated = vec![1u8; 10];
    let r = put(truncated[..5].to_vec(), hex(&truncated), 1).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "a body whose hash is not the announced one");
    let get = s.get(&format!("/v1/leases/{}/checkpoint", lease.lease_id)).await;
    assert_eq!(get.status(), StatusCode::NOT_FOUND, "nothing was stored");
    // The trial goes on after a refused upload.
    let hb = s.post(&format!("/v1/leases/{}/heartbeat", lease.lease_id), json!({})).await;
    assert_eq!(hb.status(), StatusCode::OK);

    let state = b"weights, moments, generator states".to_vec();
    let r = put(state.clone(), hex(&state), 3).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let get = s.get(&format!("/v1/leases/{}/checkpoint", lease.lease_id)).await;
    assert_eq!(get.status(), StatusCode::OK);
    assert_eq!(
        (get.headers()["x-decsweep-stage"].to_str().unwrap(), get.headers()["x-decsweep-epoch"].to_str().unwrap()),
        ("dec", "3")
    );
    assert_eq!(get.bytes().await.unwrap().to_vec(), state);
    let file = s.coordinator.data_dir().join("checkpoints").join(format!("{}.ckpt", hex(&state)));
    assert!(file.is_file());

    // Returned: the next lease resumes from it.
    let r = s.post(&format!("/v1/leases/{}/return", lease.lease_id), json!({ "reason": "preempted" })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let next = s.lease("w2", 0).await.unwrap();
    assert_eq!(next.trial_id, lease.trial_id);
    let resume = next.resume.clone().expect("a resume point");
    assert_eq!((resume.sha256.as_str(), resume.bytes, resume.epoch), (hex(&state).as_str(), state.len() as u64, 3));
    let trial: TrialInfo = s.get(&format!("/v1/trials/{}", next.trial_id)).await.json().await.unwrap();
    assert_eq!((trial.resumes, trial.resumed_from.as_deref()), (1, Some("dec:3")));

    // Completed: the state and its file are gone.
    assert_eq!(s.complete(&next.lease_id, 0.9).await.status(), StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(10);
    while file.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!file.exists(), "the file of a finished trial's state is deleted");
    let get = s.get(&format!("/v1/leases/{}/checkpoint", next.lease_id)).await;
    assert_eq!(get.status(), StatusCode::NOT_FOUND);
    s.stop().await;
}
