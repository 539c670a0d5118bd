//! A hostile client on loopback against the data paths of the coordinator (issue 18, findings
//! 1, 4 and 6): it may not make the coordinator read its host's files, store a file that is not
//! a dataset, hold the writer with a huge request, or leave checkpoint files on its disk.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use decsweep_api::wire::{DatasetStored, Lease, StudyInfo};
use decsweep_coordinator::{Coordinator, CoordinatorOptions, ManualClock};
use decsweep_server::ServeOptions;
use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

struct Server {
    base: String,
    coordinator: Coordinator,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
    dir: tempfile::TempDir,
}

impl Server {
    async fn start(dir: tempfile::TempDir, options: CoordinatorOptions) -> Server {
        let coordinator = Coordinator::open(dir.path().join("sweeps.db"), options).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let c = decsweep_server::Server::new(coordinator.clone(), ServeOptions::default());
        let served = tokio::spawn(async move {
            c.serve(listener, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap()
        });
        Server { base, coordinator, http: reqwest::Client::new(), stop: Some(stop), served: Some(served), dir }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn data_dir(&self) -> &Path {
        self.coordinator.data_dir()
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.http.post(self.url(path)).json(&body).send().await.unwrap()
    }

    async fn put(&self, path: &str, body: Vec<u8>) -> reqwest::Response {
        self.http.put(self.url(path)).body(body).send().await.unwrap()
    }

    async fn stop(mut self) -> tempfile::TempDir {
        self.coordinator.begin_shutdown();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            served.await.unwrap();
        }
        self.dir
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Every file below `dir`, recursively, as paths relative to it.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// A model study over the dataset file `dataset`.
fn file_spec(name: &str, dataset: &str) -> String {
    format!(
        r#"
[study]
name = "{name}"
dataset = "{dataset}"
pipelines = ["baseline"]
seeds = [0]

[fixed]
epochs_ft = 1
"#
    )
}

/// A study of `n` command configurations and one seed.
fn command_spec(name: &str, n: usize) -> String {
    let values: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    format!(
        "[study]\nname = \"{name}\"\npipelines = [\"command\"]\nseeds = [0]\nretries = 2\n\n[command]\nprogram = [\"true\"]\n\n[space]\nx = {{ grid = [{}] }}\n",
        values.join(", ")
    )
}

fn write_dataset(path: &Path) -> Vec<u8> {
    let cfg = decsweep_data::SynthConfig { n: 10, seed: 4, ..Default::default() };
    decsweep_data::save(&decsweep_data::synthesize(&cfg), path).unwrap();
    std::fs::read(path).unwrap()
}

/// The error message of a refusal, with its status.
async fn refusal(r: reqwest::Response) -> (StatusCode, String) {
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap();
    (status, body["error"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn a_spec_naming_a_file_of_the_coordinators_host_reads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    // A real dataset just outside the root, and a symlink in the root leading to it.
    let outside = dir.path().join("outside.safetensors");
    let outside_bytes = write_dataset(&outside);
    std::os::unix::fs::symlink(&outside, root.join("link.safetensors")).unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, b"root:x:0:0:root:/root:/bin/sh\n").unwrap();

    for data_root in [None, Some(root.clone())] {
        let s =
            Server::start(tempfile::tempdir().unwrap(), CoordinatorOptions { data_root, ..Default::default() }).await;
        let mut messages = Vec::new();
        let named = [
            "/etc/passwd".to_string(),
            secret.display().to_string(),
            outside.display().to_string(),
            "link.safetensors".to_string(),
            "../outside.safetensors".to_string(),
            "/no/such/file.safetensors".to_string(),
        ];
        for (i, path) in named.iter().enumerate() {
            let spec = file_spec(&format!("steal{i}"), path);
            let r = s.post("/v1/studies", json!({ "spec": spec, "spec_path": root.join("spec.toml") })).await;
            let (status, message) = refusal(r).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {message}");
            assert!(
                message.contains("decsweep submit") && message.contains("--data-root"),
                "names the rule: {message}"
            );
            messages.push(message.replace(path.as_str(), "PATH"));
        }
        messages.dedup();
        assert_eq!(messages.len(), 1, "a missing file and one outside get the same answer: {messages:?}");
        assert_eq!(files_below(s.data_dir()), Vec::<PathBuf>::new(), "nothing was copied");
        for bytes in [&outside_bytes[..], b"root:x:0:0:root:/root:/bin/sh\n"] {
            let r = s.http.get(s.url(&format!("/v1/datasets/{}", sha256_hex(bytes)))).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::NOT_FOUND);
        }
        s.stop().await;
    }
}

#[tokio::test]
async fn only_datasets_are_stored_whether_uploaded_or_read_below_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("notes.safetensors"), b"{\"not\": \"a dataset\"}").unwrap();
    let good = write_dataset(&root.join("mosi.safetensors"));
    let s = Server::start(
        tempfile::tempdir().unwrap(),
        CoordinatorOptions { data_root: Some(root.clone()), ..Default::default() },
    )
    .await;

    // Below the root but not a dataset: refused, nothing stored.
    let r = s
        .post("/v1/studies", json!({ "spec": file_spec("notes", "notes.safetensors"), "spec_path": "spec.toml" }))
        .await;
    let (status, message) = refusal(r).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{message}");
    assert!(message.starts_with("not a decsweep dataset file: "), "{message}");
    assert_eq!(files_below(s.data_dir()), Vec::<PathBuf>::new());

    // Uploads: not a dataset, a body that is not the hash named, a path that is not a hash.
    let junk = b"MZ\x90\x00 definitely not safetensors".to_vec();
    let (status, message) = refusal(s.put(&format!("/v1/datasets/{}", sha256_hex(&junk)), junk.clone()).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{message}");
    assert!(message.starts_with("not a decsweep dataset file: the upload"), "{message}");
    let (status, message) = refusal(s.put(&format!("/v1/datasets/{}", "0".repeat(64)), good.clone()).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{message}");
    assert!(message.contains("not the 0000"), "{message}");
    let (status, _) = refusal(s.put("/v1/datasets/..%2Fsweeps.db", good.clone()).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(files_below(s.data_dir()), Vec::<PathBuf>::new(), "no upload left a file");

    // A dataset: stored once, then a study uses it and it is served.
    let sha = sha256_hex(&good);
    let r = s.put(&format!("/v1/datasets/{sha}"), good.clone()).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let again: DatasetStored = s.put(&format!("/v1/datasets/{sha}"), Vec::new()).await.json().await.unwrap();
    assert_eq!(again, DatasetStored { sha256: sha.clone(), bytes: good.len() as u64, created: false });
    let head = s.http.head(s.url(&format!("/v1/datasets/{sha}"))).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK, "an upload is there before a study uses it");
    let spec = file_spec("uploaded", "/anywhere/on/the/client/mosi.safetensors");
    let r = s.post("/v1/studies", json!({ "spec": spec, "spec_path": "x.toml", "dataset_sha256": sha })).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let info: StudyInfo = r.json().await.unwrap();
    assert_eq!(info.dataset_sha256, sha);
    let served = s.http.get(s.url(&format!("/v1/datasets/{sha}"))).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(served.to_vec(), good);
    // And a file below the root is read (and validated) too.
    let r = s
        .post("/v1/studies", json!({ "spec": file_spec("rooted", "mosi.safetensors"), "spec_path": "spec.toml" }))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    s.stop().await;
}

#[tokio::test]
async fn a_quarter_million_seeds_are_refused_at_once_naming_the_limit() {
    let s = Server::start(tempfile::tempdir().unwrap(), CoordinatorOptions::default()).await;
    assert_eq!(
        s.post("/v1/studies", json!({ "spec": command_spec("seeded", 2), "spec_path": "s.toml" })).await.status(),
        201
    );
    let seeds: Vec<u64> = (0..250_000).collect();
    let started = Instant::now();
    let (status, message) = refusal(s.post("/v1/studies/seeded/seeds", json!({ "seeds": seeds })).await).await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{message}");
    assert!(message.contains("over this route's limit of 65536 bytes"), "{message}");
    assert!(took < Duration::from_secs(2), "answered in {took:?}");
    // Within the body limit, over the seeds limit.
    let seeds: Vec<u64> = (0..=1_000).collect();
    let started = Instant::now();
    let (status, message) = refusal(s.post("/v1/studies/seeded/seeds", json!({ "seeds": seeds })).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{message}");
    assert!(message.contains("1001 seeds in one request; at most 1000 may be added at a time"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(2), "answered in {:?}", started.elapsed());
    // The writer was not held: a lease is answered at once.
    let started = Instant::now();
    let r = s.post("/v1/lease", json!({ "worker": "w", "wait_ms": 0 })).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(500), "lease took {:?}", started.elapsed());

    // The study's trial limit: 101 configurations × 1,000 new seeds would pass 100,000 trials.
    assert_eq!(
        s.post("/v1/studies", json!({ "spec": command_spec("wide", 101), "spec_path": "w.toml" })).await.status(),
        201
    );
    let seeds: Vec<u64> = (1..=1_000).collect();
    let (status, message) = refusal(s.post("/v1/studies/wide/seeds", json!({ "seeds": seeds })).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{message}");
    assert!(message.contains("a study holds at most 100000 trials"), "{message}");
    assert_eq!(s.coordinator.study("wide").await.unwrap().counts.total(), 101, "nothing was added");
    // Repeats cost nothing and count once.
    let out = s.post("/v1/studies/seeded/seeds", json!({ "seeds": vec![9u64; 1_000] })).await;
    assert_eq!(out.json::<serde_json::Value>().await.unwrap()["added"], 2);
    s.stop().await;
}

#[tokio::test]
async fn a_checkpoint_on_an_unknown_or_stale_lease_leaves_no_file() {
    let clock = std::sync::Arc::new(ManualClock::new(1_700_000_000_000));
    let options = CoordinatorOptions { clock: clock.clone(), lease_ttl: Duration::from_secs(10), ..Default::default() };
    let s = Server::start(tempfile::tempdir().unwrap(), options).await;
    assert_eq!(
        s.post("/v1/studies", json!({ "spec": command_spec("ck", 1), "spec_path": "c.toml" })).await.status(),
        201
    );
    let body = vec![42u8; 1 << 20];
    let query = format!("stage=ae&epoch=1&sha256={}", sha256_hex(&body));

    let (status, message) = refusal(s.put(&format!("/v1/leases/nope/checkpoint?{query}"), body.clone()).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{message}");

    // A lease that lost its trial to another worker.
    let first: Lease = s.post("/v1/lease", json!({ "worker": "a", "wait_ms": 0 })).await.json().await.unwrap();
    clock.advance(Duration::from_secs(11));
    let second: Lease = s.post("/v1/lease", json!({ "worker": "b", "wait_ms": 0 })).await.json().await.unwrap();
    assert_eq!(first.trial_id, second.trial_id);
    let path = format!("/v1/leases/{}/checkpoint?{query}", first.lease_id);
    let (status, message) = refusal(s.put(&path, body.clone()).await).await;
    assert_eq!(status, StatusCode::CONFLICT, "{message}");
    assert_eq!(files_below(&s.data_dir().join("checkpoints")), Vec::<PathBuf>::new(), "no file is left");

    // The lease that owns the trial stores it.
    let path = format!("/v1/leases/{}/checkpoint?{query}", second.lease_id);
    assert_eq!(s.put(&path, body).await.status(), StatusCode::OK);
    assert_eq!(files_below(&s.data_dir().join("checkpoints")).len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn files_a_crash_left_are_collected_at_start_up() {
    let s = Server::start(tempfile::tempdir().unwrap(), CoordinatorOptions::default()).await;
    assert_eq!(
        s.post("/v1/studies", json!({ "spec": command_spec("c", 1), "spec_path": "c.toml" })).await.status(),
        201
    );
    let data_dir = s.data_dir().to_path_buf();
    let dir = s.stop().await;
    let checkpoints = data_dir.join("checkpoints");
    std::fs::create_dir_all(&checkpoints).unwrap();
    let left = [
        checkpoints.join(".upload-half"),
        checkpoints.join(format!("{}.ckpt", "ab".repeat(32))),
        data_dir.join(".upload-dataset"),
        data_dir.join(".incoming-0011223344556677.safetensors"),
    ];
    for path in &left {
        std::fs::write(path, b"left by a crash").unwrap();
    }
    let before = files_below(&data_dir);
    let s = Server::start(dir, CoordinatorOptions::default()).await;
    let after = files_below(&data_dir);
    for path in &left {
        assert!(!path.exists(), "{} is still there", path.display());
    }
    assert_eq!(before.len() - after.len(), left.len(), "only those went: {after:?}");
    s.stop().await;
}
