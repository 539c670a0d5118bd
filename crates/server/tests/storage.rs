//! The database turning read-only under a running coordinator, over HTTP: writes answer 503 in
//! words, reads go on, `/healthz` says what is wrong, and writes come back once the disk does.
//! (A real file system cannot be remounted read-only while the coordinator holds its files
//! open for writing, so SQLite's own `query_only` stands in: it answers every write
//! SQLITE_READONLY.)

use decsweep_api::wire::{ApiError, CreateStudy};
use decsweep_coordinator::{Coordinator, CoordinatorOptions};
use decsweep_server::{ServeOptions, Server};

const SPEC: &str = r#"[study]
name = "a"
dataset = { synthetic = { seed = 1, n = 8 } }
pipelines = ["command"]
seeds = [0, 1]

[command]
program = ["true"]

[space]
x = { grid = [1, 2] }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_answers_writes_503_in_words_while_reads_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let c = Coordinator::open(dir.path().join("c.db"), CoordinatorOptions::default()).unwrap();
    c.create_study(CreateStudy::new(SPEC, "a.toml")).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let served = Server::new(c.clone(), ServeOptions::default());
    let server = tokio::spawn(async move { served.serve(listener, std::future::pending()).await });
    let http = reqwest::Client::new();
    let lease = || http.post(format!("{base}/v1/lease")).json(&serde_json::json!({"worker": "w", "wait_ms": 0})).send();
    let health = || async {
        http.get(format!("{base}/healthz")).send().await.unwrap().json::<serde_json::Value>().await.unwrap()
    };
    assert_eq!(health().await["storage"], "ok");

    c.refuse_writes_for_tests(true).await.unwrap();
    let refused = lease().await.unwrap();
    assert_eq!(refused.status(), 503);
    let body: ApiError = refused.json().await.unwrap();
    assert!(body.error.starts_with("storage read-only: "), "{body:?}");
    let studies = http.get(format!("{base}/v1/studies")).send().await.unwrap();
    assert_eq!(studies.status(), 200, "reads go on");
    let h = health().await;
    assert_eq!(h["status"], "degraded");
    assert_eq!(h["storage"]["problem"], "read-only", "{h}");
    assert!(h["storage"]["error"].as_str().unwrap().starts_with("storage read-only: "), "{h}");

    c.refuse_writes_for_tests(false).await.unwrap();
    let granted = lease().await.unwrap();
    assert_eq!(granted.status(), 200, "the same coordinator writes again once it may");
    assert_eq!(health().await["storage"], "ok");
    server.abort();
}
