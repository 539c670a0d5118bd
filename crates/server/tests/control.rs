//! The user's controls over HTTP: cancel, resume, retry, fail and add seeds, on the real router and a
//! real TCP listener, with the answers, status codes, metrics and worker-facing `stop`.

use decsweep_api::wire::{
    ApiError, CancelOutcome, FailedByUser, HeartbeatReply, Lease, ProgressAction, ProgressReply, Resumed, Retried,
    SeedsAdded, StudyInfo, TrialInfo, TrialStatus,
};
use decsweep_coordinator::{Coordinator, CoordinatorOptions};
use decsweep_server::ServeOptions;
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Server {
    base: String,
    coordinator: Coordinator,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let coordinator = Coordinator::open(dir.path().join("c.db"), CoordinatorOptions::default()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let c = decsweep_server::Server::new(coordinator.clone(), ServeOptions::default());
        tokio::spawn(async move {
            c.serve(listener, async move {
                let _ = stopped.await;
            })
            .await
        });
        Server { base, coordinator, http: reqwest::Client::new(), _stop: stop, _dir: dir }
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http.post(format!("{}{path}", self.base)).json(&body).send().await.unwrap()
    }

    /// POSTs and expects `status`, returning the JSON body.
    async fn expect<T: serde::de::DeserializeOwned>(&self, path: &str, body: Value, status: StatusCode) -> T {
        let r = self.post(path, body).await;
        let got = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(got, status, "{path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
    }

    async fn lease(&self) -> Option<Lease> {
        let r = self.post("/v1/lease", json!({ "worker": "w", "wait_ms": 0 })).await;
        match r.status() {
            StatusCode::OK => Some(r.json().await.unwrap()),
            StatusCode::NO_CONTENT => None,
            other => panic!("lease answered {other}"),
        }
    }

    async fn study(&self, name: &str) -> StudyInfo {
        self.coordinator.study(name).await.unwrap()
    }

    async fn trials(&self, name: &str) -> Vec<TrialInfo> {
        self.coordinator.trials(name, None).await.unwrap()
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = self.http.get(format!("{}/metrics", self.base)).send().await.unwrap().text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')).map(|v| v.parse().unwrap()))
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    }
}

fn spec(name: &str, seeds: &str, retries: u32) -> String {
    format!(
        r#"
[study]
name = "{name}"
dataset = {{ synthetic = {{ seed = 1, n = 8 }} }}
pipelines = ["command"]
seeds = {seeds}
retries = {retries}

[command]
program = ["python3", "train.py"]

[space]
x = {{ grid = [1, 2] }}
"#
    )
}

async fn create(s: &Server, text: &str) {
    let r = s.post("/v1/studies", json!({ "spec": text, "spec_path": "t.toml" })).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn cancel_over_http_stops_running_trials_and_refuses_their_results() {
    let s = Server::start().await;
    create(&s, &spec("c", "[0, 1]", 2)).await;
    let running = s.lease().await.unwrap();
    let out: CancelOutcome = s.expect("/v1/studies/c/cancel", json!({}), StatusCode::OK).await;
    assert_eq!(out, CancelOutcome { cancelled: 3, stopping: 1 });
    assert_eq!(s.study("c").await.counts.cancelled, 4);
    assert!(s.trials("c").await.iter().all(|t| t.status == TrialStatus::Cancelled));

    let hb: HeartbeatReply =
        s.expect(&format!("/v1/leases/{}/heartbeat", running.lease_id), json!({}), StatusCode::OK).await;
    assert_eq!(hb.action, ProgressAction::Stop);
    let epoch = json!({ "stage": "finetune", "epoch": 1, "epochs": 3, "train_loss": 0.5, "val_loss": 0.5 });
    let p: ProgressReply = s.expect(&format!("/v1/leases/{}/progress", running.lease_id), epoch, StatusCode::OK).await;
    assert_eq!(p.action, ProgressAction::Stop);
    let late =
        s.post(&format!("/v1/leases/{}/complete", running.lease_id), json!({ "metrics": { "accuracy": 1 } })).await;
    assert_eq!(late.status(), StatusCode::CONFLICT);
    assert_eq!(s.metric("decsweep_completions_total").await, 0.0, "a refused result is not counted");
    assert!(s.lease().await.is_none());

    // Again: zeros. The body may be left out.
    let again = s.http.post(format!("{}/v1/studies/c/cancel", s.base)).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.json::<CancelOutcome>().await.unwrap(), CancelOutcome::default());
    assert_eq!(s.metric("decsweep_cancelled_trials_total").await, 4.0);
    let text = s.http.get(format!("{}/metrics", s.base)).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("decsweep_trials{study=\"c\",status=\"cancelled\"} 4"), "{text}");

    let missing: ApiError = s.expect("/v1/studies/nope/cancel", json!({}), StatusCode::NOT_FOUND).await;
    assert!(missing.error.contains("`nope`"), "{missing:?}");
}

#[tokio::test]
async fn resume_over_http_is_the_way_back_and_the_only_one() {
    let s = Server::start().await;
    create(&s, &spec("r", "[0, 1]", 2)).await;
    let stopped = s.lease().await.unwrap();
    s.expect::<CancelOutcome>("/v1/studies/r/cancel", json!({}), StatusCode::OK).await;

    // Cancelled: new seeds and retries are refused (409), naming the rule and the way out.
    let refused: ApiError = s.expect("/v1/studies/r/seeds", json!({ "seeds": [5] }), StatusCode::CONFLICT).await;
    assert!(
        refused.error.contains("study `r` is cancelled") && refused.error.contains("decsweep resume r"),
        "{refused:?}"
    );
    let body = json!({ "trial_id": stopped.trial_id });
    let refused: ApiError = s.expect("/v1/studies/r/retry", body, StatusCode::CONFLICT).await;
    assert!(refused.error.contains("is cancelled: use `decsweep resume r`"), "{refused:?}");
    // Re-creating the study from the same spec answers its counts, cancelled apart.
    let again = s.post("/v1/studies", json!({ "spec": spec("r", "[0, 1]", 2), "spec_path": "r.toml" })).await;
    assert_eq!(again.status(), StatusCode::OK);
    let info: StudyInfo = again.json().await.unwrap();
    assert_eq!((info.created, info.counts.cancelled, info.counts.completed), (false, 4, 0));

    // The body may be left out, like cancel's.
    let resumed = s.http.post(format!("{}/v1/studies/r/resume", s.base)).send().await.unwrap();
    assert_eq!(resumed.status(), StatusCode::OK);
    assert_eq!(resumed.json::<Resumed>().await.unwrap(), Resumed { resumed: 4, was_cancelled: true });
    assert_eq!(s.study("r").await.counts.pending, 4);
    // The stopped attempt's lease is forgotten: its late calls are refused, never counted.
    let late = format!("/v1/leases/{}/complete", stopped.lease_id);
    assert_eq!(s.post(&late, json!({ "metrics": { "accuracy": 1 } })).await.status(), StatusCode::CONFLICT);
    let mut ran = 0;
    while let Some(l) = s.lease().await {
        s.expect::<Value>(
            &format!("/v1/leases/{}/complete", l.lease_id),
            json!({ "metrics": { "accuracy": 0.5 } }),
            StatusCode::OK,
        )
        .await;
        ran += 1;
    }
    assert_eq!((ran, s.study("r").await.counts.completed), (4, 4));
    let nothing: Resumed = s.expect("/v1/studies/r/resume", json!({}), StatusCode::OK).await;
    assert_eq!(nothing, Resumed::default());
    let missing: ApiError = s.expect("/v1/studies/nope/resume", json!({}), StatusCode::NOT_FOUND).await;
    assert!(missing.error.contains("`nope`"), "{missing:?}");
}

#[tokio::test]
async fn retry_fail_and_add_seeds_over_http() {
    let s = Server::start().await;
    create(&s, &spec("r", "[0]", 0)).await;
    let first = s.lease().await.unwrap();
    let r = s.post(&format!("/v1/leases/{}/fail", first.lease_id), json!({ "reason": "oom", "retryable": true })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let second = s.lease().await.unwrap();

    // fail: the running trial, with a reason; again is `false`; its worker hears `stop`.
    let f: FailedByUser = s
        .expect(&format!("/v1/trials/{}/fail", second.trial_id), json!({ "reason": "looks wrong" }), StatusCode::OK)
        .await;
    assert!(f.failed);
    let f: FailedByUser =
        s.expect(&format!("/v1/trials/{}/fail", second.trial_id), json!({ "reason": null }), StatusCode::OK).await;
    assert!(!f.failed);
    let hb: HeartbeatReply =
        s.expect(&format!("/v1/leases/{}/heartbeat", second.lease_id), json!({}), StatusCode::OK).await;
    assert_eq!(hb.action, ProgressAction::Stop);
    let t = s.coordinator.trial(second.trial_id).await.unwrap();
    assert_eq!((t.status, t.error.as_deref()), (TrialStatus::Failed, Some("looks wrong")));
    let e: ApiError = s.expect("/v1/trials/999/fail", json!({}), StatusCode::NOT_FOUND).await;
    assert!(e.error.contains("999"), "{e:?}");

    // retry: a trial that is not failed is 409, one of another study 404; then all failed ones.
    create(&s, &spec("other", "[0]", 0)).await;
    let other = s.trials("other").await[0].id;
    let e: ApiError = s.expect("/v1/studies/r/retry", json!({ "trial_id": other }), StatusCode::NOT_FOUND).await;
    assert!(e.error.contains(&other.to_string()) && e.error.contains("`r`"), "{e:?}");
    let n: Retried = s.expect("/v1/studies/r/retry", json!({ "trial_id": null }), StatusCode::OK).await;
    assert_eq!(n.retried, 2);
    let pending = s.trials("r").await.into_iter().filter(|t| t.status == TrialStatus::Pending).count();
    assert_eq!(pending, 2);
    let e: ApiError =
        s.expect("/v1/studies/r/retry", json!({ "trial_id": first.trial_id }), StatusCode::CONFLICT).await;
    assert!(e.error.contains("pending"), "{e:?}");
    assert_eq!(s.metric("decsweep_retried_trials_total").await, 2.0);
    assert_eq!(s.metric("decsweep_user_failed_trials_total").await, 1.0);

    // add seeds: both configurations × the new seeds; a seed already there is skipped.
    let out: SeedsAdded = s.expect("/v1/studies/r/seeds", json!({ "seeds": [0, 5, 6] }), StatusCode::OK).await;
    assert_eq!(out, SeedsAdded { added: 4, skipped: vec![0] });
    let trials = s.trials("r").await;
    assert_eq!(trials.len(), 6);
    for seed in [5, 6] {
        let mut xs: Vec<String> =
            trials.iter().filter(|t| t.seed == seed).map(|t| format!("{:?}", t.params["x"])).collect();
        xs.sort();
        assert_eq!(xs.len(), 2, "seed {seed} for both configurations");
        assert!(trials.iter().filter(|t| t.seed == seed).all(|t| t.status == TrialStatus::Pending));
    }
    let e: ApiError = s.expect("/v1/studies/r/seeds", json!({ "seeds": [] }), StatusCode::BAD_REQUEST).await;
    assert!(e.error.contains("seed"), "{e:?}");
    let _: ApiError = s.expect("/v1/studies/zz/seeds", json!({ "seeds": [1] }), StatusCode::NOT_FOUND).await;
    assert_eq!(s.metric("decsweep_seeded_trials_total").await, 4.0);
    // A finished trial cannot be failed.
    let l = s.lease().await.unwrap();
    s.post(&format!("/v1/leases/{}/complete", l.lease_id), json!({ "metrics": { "accuracy": 0.5 } })).await;
    let e: ApiError = s.expect(&format!("/v1/trials/{}/fail", l.trial_id), json!({}), StatusCode::CONFLICT).await;
    assert!(e.error.contains("completed"), "{e:?}");
}
