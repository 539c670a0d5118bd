//! The agent against a scripted coordinator on loopback: a failure waiting cannot cure ends
//! the worker process at once with exit status 2 and its reason; one that may pass (no answer,
//! a 5xx, 503 "storage full") keeps the worker retrying until the coordinator is back or the
//! worker is stopped. The classification itself is crates/connect's (error.rs). A pack answer
//! whose trials cannot train together is refused and given back.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// A coordinator stand-in: answers request number i (from 0) with `answer(i, path)`: a status
/// and a JSON body. Returns its URL and the count of requests so far.
fn scripted(answer: impl Fn(usize, &str) -> (u16, String) + Send + 'static) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream);
            // Keep-alive: several requests may come on one connection.
            loop {
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                    break;
                }
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    break;
                }
                let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_string();
                let (status, body) = answer(seen.fetch_add(1, Ordering::SeqCst), &path);
                let reply = if status == 204 {
                    "HTTP/1.1 204 No Content\r\n\r\n".to_string()
                } else {
                    format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    )
                };
                if reader.get_mut().write_all(reply.as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
    (url, count)
}

fn worker(url: &str, home: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_decsweep-worker"))
        .args(["--coordinator", url, "--name", "w", "--device", "cpu", "--work-dir"])
        .arg(home)
        .args(["--token", "0123456789abcdef0123"])
        .args(extra)
        .env_remove("DECSWEEP_TOKEN_FILE")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The exit status and stderr of `child`, which must end within `limit`.
fn finish(mut child: Child, limit: Duration) -> (Option<i32>, String) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            return (status.code(), err);
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            let _ = child.wait();
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("the worker was still running after {limit:?}: {err}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

#[test]
fn permanent_errors_end_the_worker_at_once_with_exit_2_and_the_reason() {
    let cases: [(u16, &str, &str); 6] = [
        (401, r#"{"error": "missing or wrong bearer token"}"#, "refused the token (401)"),
        (403, r#"{"error": "this token may only read"}"#, "may not make this call (403)"),
        (404, r#"{"error": "no route"}"#, "no decsweep API at this URL (404)"),
        (422, r#"{"error": "unknown field `agent`"}"#, "incompatible decsweep versions"),
        (400, r#"{"error": "`worker` must name the worker"}"#, "incompatible decsweep versions"),
        // A 2xx lease in a form this worker cannot read: another version's answer.
        (200, r#"{"lease": "from the future"}"#, "incompatible decsweep versions"),
    ];
    for (status, body, reason) in cases {
        let home = tempfile::tempdir().unwrap();
        let (url, requests) = scripted(move |_, _| (status, body.to_string()));
        let started = Instant::now();
        let (code, err) = finish(worker(&url, home.path(), &[]), Duration::from_secs(20));
        assert_eq!(code, Some(2), "{status}: {err}");
        assert!(err.contains(reason), "{status}: the reason `{reason}` is given: {err}");
        assert!(err.contains(&format!("{url}/v1")), "{status}: the URL is named: {err}");
        assert_eq!(requests.load(Ordering::SeqCst), 1, "{status}: one request, no retry: {err}");
        assert!(!err.contains("retrying"), "{status}: {err}");
        assert!(started.elapsed() < Duration::from_secs(10), "{status}: at once, not after a backoff");
    }
}

#[test]
fn a_url_without_a_scheme_is_bad_input_with_the_fix() {
    let home = tempfile::tempdir().unwrap();
    let (code, err) = finish(worker("127.0.0.1:8320", home.path(), &[]), Duration::from_secs(10));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`127.0.0.1:8320` has no http:// or https:// scheme"), "{err}");
    assert!(err.contains("did you mean http://127.0.0.1:8320?"), "{err}");
    assert!(!err.contains("relative URL without a base"), "the library's words are replaced: {err}");
}

#[test]
fn server_errors_and_storage_full_are_retried_until_the_coordinator_is_back() {
    let home = tempfile::tempdir().unwrap();
    // 503 "storage full", 500, 502, then an empty queue: with --exit-when-idle the worker ends 0.
    let (url, requests) = scripted(|i, path| match (i, path) {
        (0, _) => (503, r#"{"error": "storage full: the coordinator refuses writes"}"#.into()),
        (1, _) => (500, r#"{"error": "internal error"}"#.into()),
        (2, _) => (502, "Bad Gateway".into()),
        (_, "/v1/lease") => (204, String::new()),
        _ => (200, r#"{"recorded": true}"#.into()),
    });
    let (code, err) = finish(worker(&url, home.path(), &["--exit-when-idle"]), Duration::from_secs(30));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(err.matches("lease request failed; retrying").count(), 3, "each transient answer retried: {err}");
    assert!(err.contains("storage full"), "the coordinator's words are logged: {err}");
    assert!(requests.load(Ordering::SeqCst) >= 4, "{err}");
    assert!(!err.contains("could not tell the coordinator"), "the goodbye was heard: {err}");
}

#[test]
fn a_coordinator_that_refuses_connections_is_waited_for_until_the_worker_is_stopped() {
    let home = tempfile::tempdir().unwrap();
    // Nothing listens on a port just given back.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = worker(&format!("http://127.0.0.1:{port}"), home.path(), &["--exit-when-idle"]);
    thread::sleep(Duration::from_secs(3));
    sigterm(&child);
    let (code, err) = finish(child, Duration::from_secs(20));
    assert_eq!(code, Some(0), "still running when stopped, then a clean exit: {err}");
    assert!(err.matches("lease request failed; retrying").count() >= 2, "{err}");
    assert!(err.to_ascii_lowercase().contains("connection refused"), "the cause is logged: {err}");
}

#[test]
fn logs_into_a_file_carry_no_colour_codes() {
    let home = tempfile::tempdir().unwrap();
    let (url, _) = scripted(|_, _| (401, r#"{"error": "wrong token"}"#.into()));
    let (_, err) = finish(worker(&url, home.path(), &[]), Duration::from_secs(20));
    assert!(err.contains("agent started"), "{err}");
    assert!(!err.contains('\u{1b}'), "no ANSI escape in a piped log: {err:?}");
}

/// A lease answer whose trials disagree on the pack key (a coordinator bug, or another
/// version's packing) is refused before anything trains: the log names both trials and the
/// parameter, and every lease of the answer is given back at once.
#[test]
fn a_pack_answer_of_mixed_keys_is_refused_naming_the_trials_and_every_lease_is_given_back() {
    use decsweep_api::wire::{DatasetRef, Lease, LeasePack, TrialJob};
    use decsweep_api::{Params, Pipeline};

    let lease = |trial_id: i64, params: Params| Lease {
        lease_id: format!("l{trial_id}"),
        trial_id,
        study: "s".into(),
        job: TrialJob::Model { pipeline: Pipeline::Dec, params },
        seed: trial_id as u64,
        attempt: 1,
        dataset: Some(DatasetRef { sha256: "ab".repeat(32), bytes: 1, source: None }),
        ttl_ms: 60_000,
        resume: None,
        checkpoint_every_s: 300.0,
        pack_id: Some("p".into()),
    };
    let wider = Params { d_model: 64, n_heads: 4, ..Params::default() };
    let answer =
        serde_json::to_string(&LeasePack { leases: vec![lease(1, Params::default()), lease(7, wider)] }).unwrap();
    let paths = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&paths);
    let leased = std::sync::atomic::AtomicBool::new(false);
    let (url, _) = scripted(move |_, path| {
        seen.lock().unwrap().push(path.to_string());
        match path {
            "/v1/lease" if !leased.swap(true, Ordering::SeqCst) => (200, answer.clone()),
            "/v1/lease" => (204, String::new()),
            _ => (200, r#"{"recorded": true}"#.into()),
        }
    });
    let home = tempfile::tempdir().unwrap();
    let (code, err) = finish(worker(&url, home.path(), &["--pack", "4", "--exit-when-idle"]), Duration::from_secs(30));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("trials 1 and 7 disagree on the pack key (d_model: 128 ≠ 64): they cannot be trained together"),
        "{err}"
    );
    let paths = paths.lock().unwrap();
    for returned in ["/v1/leases/l1/return", "/v1/leases/l7/return"] {
        assert!(paths.iter().any(|p| p == returned), "{returned} was called: {paths:?}");
    }
    assert!(!paths.iter().any(|p| p.contains("/complete") || p.contains("/fail")), "nothing was reported: {paths:?}");
    assert!(!paths.iter().any(|p| p.starts_with("/v1/datasets/")), "no dataset fetched for a refused pack: {paths:?}");
}
