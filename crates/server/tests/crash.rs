//! A coordinator killed with SIGKILL mid-study and restarted on the same database carries on:
//! running leases stay valid, pending trials stay pending, completed results are kept.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use decsweep_api::wire::{Lease, Recorded, StudyInfo, TrialInfo, TrialStatus};
use decsweep_coordinator::{Coordinator, CoordinatorOptions, ManualClock};
use decsweep_server::{ServeOptions, Server};
use reqwest::StatusCode;
use serde_json::json;

const CHILD_ENV: &str = "DECSWEEP_CRASH_CHILD_DB";
const SPEC: &str = r#"
[study]
name = "crash"
dataset = { synthetic = { seed = 2, n = 8 } }
pipelines = ["command"]
seeds = [0]
[command]
program = ["true"]
[space]
x = { grid = [1, 2, 3] }
"#;

/// The child process: serves the coordinator until it is killed. Runs only when re-executed
/// by `a_killed_coordinator_restarts_with_nothing_lost`.
#[test]
#[ignore = "helper process of the crash test"]
fn crash_child_server() {
    let Some(db) = std::env::var_os(CHILD_ENV) else { return };
    let db = PathBuf::from(db);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let options = CoordinatorOptions { lease_ttl: Duration::from_secs(5), ..Default::default() };
        let c = Server::new(Coordinator::open(&db, options).unwrap(), ServeOptions::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port_file = db.with_extension("port");
        let tmp = db.with_extension("port.tmp");
        std::fs::write(&tmp, listener.local_addr().unwrap().port().to_string()).unwrap();
        std::fs::rename(&tmp, &port_file).unwrap();
        c.serve(listener, std::future::pending()).await.unwrap();
    });
}

/// Kills the child coordinator when dropped, so a failing test leaves no server behind.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_child(db: &Path) -> (ChildGuard, String) {
    let exe = std::env::current_exe().unwrap();
    let child = ChildGuard(
        Command::new(exe)
            .args(["--ignored", "--exact", "crash_child_server", "--nocapture"])
            .env(CHILD_ENV, db)
            // The child's own test-harness lines would read like this run's results.
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let port_file = db.with_extension("port");
    let started = Instant::now();
    loop {
        if let Ok(port) = std::fs::read_to_string(&port_file) {
            return (child, format!("http://127.0.0.1:{port}"));
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the child coordinator did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_killed_coordinator_restarts_with_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sweeps.db");
    let (mut child, base) = spawn_child(&db);
    let http = reqwest::Client::new();
    let post = |path: String, body: serde_json::Value| {
        let http = http.clone();
        async move { http.post(path).json(&body).send().await.unwrap() }
    };

    let created = post(format!("{base}/v1/studies"), json!({ "spec": SPEC, "spec_path": "crash.toml" })).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let lease = |worker: &str| post(format!("{base}/v1/lease"), json!({ "worker": worker }));
    let a: Lease = lease("wa").await.json().await.unwrap();
    let b: Lease = lease("wb").await.json().await.unwrap();
    let done =
        post(format!("{base}/v1/leases/{}/complete", a.lease_id), json!({ "metrics": { "accuracy": 0.9 } })).await;
    assert!(done.json::<Recorded>().await.unwrap().recorded);

    // While the child serves it, the database is its alone: this process is refused, told who.
    match Coordinator::open(&db, CoordinatorOptions::default()) {
        Err(decsweep_coordinator::Error::Locked { holder: Some(h), .. }) => assert_eq!(h.pid, child.0.id()),
        other => panic!("a second coordinator of a served database: {other:?}"),
    }

    // SIGKILL: no shutdown, no checkpoint, no unlocking; the kernel drops the lock with the process.
    child.0.kill().unwrap();
    child.0.wait().unwrap();

    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let clock = Arc::new(ManualClock::new(now_ms));
    let options = CoordinatorOptions { lease_ttl: Duration::from_secs(5), clock: clock.clone(), ..Default::default() };
    let c = Coordinator::open(&db, options).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = Server::new(c.clone(), ServeOptions::default());
    tokio::spawn(async move { server.serve(listener, std::future::pending()).await });

    let info: StudyInfo = http.get(format!("{base}/v1/studies/crash")).send().await.unwrap().json().await.unwrap();
    assert_eq!((info.counts.completed, info.counts.running, info.counts.pending), (1, 1, 1));
    // Worker B heartbeats against the new process and finishes.
    let hb = post(format!("{base}/v1/leases/{}/heartbeat", b.lease_id), json!({})).await;
    assert_eq!(hb.status(), StatusCode::OK);
    let done =
        post(format!("{base}/v1/leases/{}/complete", b.lease_id), json!({ "metrics": { "accuracy": 0.8 } })).await;
    assert!(done.json::<Recorded>().await.unwrap().recorded);
    // Worker A retries its completion (it never saw the answer, say): not counted twice.
    let again =
        post(format!("{base}/v1/leases/{}/complete", a.lease_id), json!({ "metrics": { "accuracy": 0.1 } })).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert!(!again.json::<Recorded>().await.unwrap().recorded);

    // The pending trial is still there; lease it and let the lease expire after the restart.
    let c3: Lease = lease_at(&http, &base, "wc").await;
    assert_eq!(c3.attempt, 1);
    clock.advance(Duration::from_secs(6));
    assert_eq!(c.expire().await.unwrap(), 1);
    let t: TrialInfo =
        http.get(format!("{base}/v1/trials/{}", c3.trial_id)).send().await.unwrap().json().await.unwrap();
    assert_eq!(t.status, TrialStatus::Pending);

    let trials: Vec<TrialInfo> =
        http.get(format!("{base}/v1/studies/crash/trials")).send().await.unwrap().json().await.unwrap();
    let acc: Vec<Option<f64>> = trials.iter().map(|t| t.metrics.get("accuracy").copied()).collect();
    assert_eq!(acc, [Some(0.9), Some(0.8), None]);
}

async fn lease_at(http: &reqwest::Client, base: &str, worker: &str) -> Lease {
    http.post(format!("{base}/v1/lease")).json(&json!({ "worker": worker })).send().await.unwrap().json().await.unwrap()
}
