//! Shared by the dashboard's integration tests: a coordinator with the dashboard on a free
//! loopback port, a fake worker speaking the HTTP API, and (for browser tests) Chromium driven
//! over WebDriver by fantoccini.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use decsweep_api::wire::Lease;
use decsweep_coordinator::{Coordinator, CoordinatorOptions};
use decsweep_server::ServeOptions;
use serde_json::json;
use tokio::sync::oneshot;

pub mod browser;

/// A coordinator serving `/v1` and the dashboard, over a database in a temporary directory.
pub struct Server {
    pub base: String,
    pub coordinator: Coordinator,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    pub async fn start(options: CoordinatorOptions) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sweeps.db");
        Server::serve(Coordinator::open(db, options).unwrap(), ServeOptions::default(), dir).await
    }

    /// A fresh coordinator served with `serve`'s tokens and limits.
    pub async fn start_serving(serve: ServeOptions) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let coordinator = Coordinator::open(dir.path().join("sweeps.db"), CoordinatorOptions::default()).unwrap();
        Server::serve(coordinator, serve, dir).await
    }

    /// Serves an existing database (the temporary directory of the server is then unused).
    pub async fn start_at(db: &std::path::Path, options: CoordinatorOptions) -> Server {
        Server::serve(Coordinator::open(db, options).unwrap(), ServeOptions::default(), tempfile::tempdir().unwrap())
            .await
    }

    async fn serve(coordinator: Coordinator, serve: ServeOptions, dir: tempfile::TempDir) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let c = decsweep_server::Server::new(coordinator.clone(), serve);
        let dashboard = decsweep_dashboard::router(c.clone());
        let served = tokio::spawn(async move {
            c.serve_with(listener, dashboard, None, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Server { base, coordinator, http: reqwest::Client::new(), stop: Some(stop), served: Some(served), _dir: dir }
    }

    pub async fn open() -> Server {
        Server::start(CoordinatorOptions::default()).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A POST to `/v1` with the bearer token `token` (if any).
    pub async fn post(&self, path: &str, token: Option<&str>, body: serde_json::Value) -> reqwest::Response {
        let mut req = self.http.post(self.url(path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    pub async fn create(&self, spec: &str, token: Option<&str>) {
        let r = self.post("/v1/studies", token, json!({ "spec": spec, "spec_path": "test.toml" })).await;
        assert!(r.status().is_success(), "creating the study: {}", r.text().await.unwrap());
    }

    /// A fake worker named `worker` of process `agent` leases a trial.
    pub async fn lease(&self, worker: &str, agent: &str, token: Option<&str>) -> Lease {
        let body = json!({
            "worker": worker, "wait_ms": 0,
            "agent": { "name": agent, "host": format!("{agent}-host"), "slots": 1, "device": "cpu" }
        });
        let r = self.post("/v1/lease", token, body).await;
        assert_eq!(r.status(), 200, "lease: {}", r.text().await.unwrap());
        r.json().await.unwrap()
    }

    pub async fn complete(&self, lease: &Lease, metrics: serde_json::Value, token: Option<&str>) {
        let r =
            self.post(&format!("/v1/leases/{}/complete", lease.lease_id), token, json!({ "metrics": metrics })).await;
        assert_eq!(r.status(), 200, "complete: {}", r.text().await.unwrap());
    }

    pub async fn fail(&self, lease: &Lease, token: Option<&str>) {
        let body = json!({ "reason": "boom <b>bad</b>", "retryable": false });
        let r = self.post(&format!("/v1/leases/{}/fail", lease.lease_id), token, body).await;
        assert_eq!(r.status(), 200, "fail: {}", r.text().await.unwrap());
    }

    pub async fn epoch(&self, lease: &Lease, epoch: u32, token: Option<&str>) {
        let body = json!({
            "stage": "finetune", "epoch": epoch, "epochs": 10,
            "train_loss": 1.0 / f64::from(epoch), "val_loss": 1.2 / f64::from(epoch), "val_accuracy": 0.5 + 0.01 * f64::from(epoch)
        });
        let r = self.post(&format!("/v1/leases/{}/progress", lease.lease_id), token, body).await;
        assert_eq!(r.status(), 200, "progress: {}", r.text().await.unwrap());
    }

    pub async fn stop(mut self) {
        self.coordinator.begin_shutdown();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            served.await.unwrap();
        }
    }
}

/// A spec of `n` command trials (one seed each, `x` swept over a grid).
pub fn command_spec(name: &str, n: usize) -> String {
    let values: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    format!(
        r#"
[study]
name = "{name}"
dataset = {{ synthetic = {{ seed = 1, n = 8 }} }}
pipelines = ["command"]
seeds = [0]
retries = 0

[command]
program = ["python3", "train.py"]

[space]
x = {{ grid = [{}] }}
"#,
        values.join(", ")
    )
}

/// Polls `check` until it returns `Some`, failing with `what` after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The workspace's `target/` (or `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// A process killed when dropped.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn spawn_quiet(cmd: &mut Command) -> std::io::Result<Reaped> {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().map(Reaped)
}
