//! A hostile client on loopback against a real served coordinator (issue 18, findings 3 and 5):
//! half-sent request heads, silent TLS clients, a connection flood, a slow body, made-up
//! methods against `/metrics`, and `/metrics` without a token.
//!
//! The timeouts are configured short here ([`ServeOptions::limits`]) so the tests
//! run in seconds; `serve.rs` pins the defaults.

#[path = "support/pki.rs"]
mod pki;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use decsweep_api::wire::CreateStudy;
use decsweep_coordinator::{Coordinator, CoordinatorOptions};
use decsweep_server::{ServeError, ServeLimits, ServeOptions, Server, ServerTls};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

const TOKEN: &str = "transport-full-token";
const READ_TOKEN: &str = "transport-read-token";
/// What the issue asks: with this many slow clients attached, the server still answers.
const SLOW_CLIENTS: usize = 300;
/// The header-read timeout these tests configure.
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// The issue's bound on an answer while slow clients are attached.
const PROMPT: Duration = Duration::from_secs(1);
/// The issue's bound on how long a slow client stays attached.
const DROPPED_WITHIN: Duration = Duration::from_secs(30);

struct Served {
    addr: SocketAddr,
    coordinator: Coordinator,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<Result<(), ServeError>>,
    _dir: tempfile::TempDir,
}

impl Served {
    async fn start(options: ServeOptions, tls: Option<ServerTls>) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let coordinator = Coordinator::open(dir.path().join("sweeps.db"), CoordinatorOptions::default()).unwrap();
        let spec = r#"[study]
name = "slow"
dataset = { synthetic = { seed = 1, n = 8 } }
pipelines = ["command"]
seeds = [0]

[command]
program = ["true"]

[space]
x = { grid = [1, 2, 3, 4] }
"#;
        coordinator.create_study(CreateStudy::new(spec, "slow.toml")).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let c = Server::new(coordinator.clone(), options);
        let served = tokio::spawn(async move {
            c.serve_with(listener, axum::Router::new(), tls.as_ref(), async move {
                let _ = stopped.await;
            })
            .await
        });
        Served { addr, coordinator, stop: Some(stop), served, _dir: dir }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops the server and checks that it stops.
    async fn stop(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        tokio::time::timeout(Duration::from_secs(30), self.served)
            .await
            .expect("the server stops within 30 s of being asked")
            .unwrap()
            .unwrap();
        drop(self.coordinator);
    }
}

fn short_limits() -> ServeLimits {
    ServeLimits { header_read_timeout: HEADER_TIMEOUT, tls_handshake_timeout: HEADER_TIMEOUT, ..ServeLimits::default() }
}

fn with_tokens(limits: ServeLimits) -> ServeOptions {
    ServeOptions { token: Some(TOKEN.into()), read_token: Some(READ_TOKEN.into()), limits, ..Default::default() }
}

/// Opens `n` connections that each send `opening` and then nothing.
async fn stalled_clients(addr: SocketAddr, n: usize, opening: &'static [u8]) -> Vec<TcpStream> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(opening).await.unwrap();
        clients.push(s);
    }
    clients
}

/// Waits until the server has closed every one of `clients`; returns the longest wait. Panics
/// when one is still open after `within`.
async fn all_dropped(clients: Vec<TcpStream>, within: Duration) -> Duration {
    let started = Instant::now();
    let mut waits = tokio::task::JoinSet::new();
    for mut s in clients {
        waits.spawn(async move {
            let mut buf = [0u8; 1024];
            // Whatever the server says before closing is read and dropped; EOF or a reset ends it.
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        });
    }
    tokio::time::timeout(within, async {
        while let Some(done) = waits.join_next().await {
            done.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("slow clients were still connected {} s later", within.as_secs()));
    started.elapsed()
}

/// A lease request answered within `PROMPT`, with the full token.
async fn prompt_lease(http: &reqwest::Client, s: &Served) -> StatusCode {
    let started = Instant::now();
    let r = http
        .post(s.url("/v1/lease"))
        .bearer_auth(TOKEN)
        .json(&json!({ "worker": "prompt", "wait_ms": 0 }))
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() < PROMPT, "POST /v1/lease took {:?} with slow clients attached", started.elapsed());
    r.status()
}

#[test]
fn the_options_serve_with_the_documented_limits() {
    assert_eq!(ServeOptions::default().limits, ServeLimits::default());
    let l = ServeLimits::default();
    assert_eq!((l.header_read_timeout, l.tls_handshake_timeout), (Duration::from_secs(10), Duration::from_secs(10)));
    assert_eq!(l.max_connections, 1024);
    assert!(l.header_read_timeout < DROPPED_WITHIN, "by default too, slow clients go within the issue's bound");
}

/// The issue's probe: 300 connections that each sent half a request head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_heads_are_dropped_and_others_are_served_meanwhile() {
    let s = Served::start(with_tokens(short_limits()), None).await;
    let sent = Instant::now();
    let slow = stalled_clients(s.addr, SLOW_CLIENTS, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1").await;

    let http = reqwest::Client::new();
    let started = Instant::now();
    let health = http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(started.elapsed() < PROMPT, "/healthz took {:?} with slow clients attached", started.elapsed());
    assert_eq!(prompt_lease(&http, &s).await, StatusCode::OK);

    let longest = all_dropped(slow, DROPPED_WITHIN).await;
    let since_sent = sent.elapsed();
    assert!(
        since_sent >= HEADER_TIMEOUT,
        "dropped after {since_sent:?}, before the {HEADER_TIMEOUT:?} header timeout: dropped for another reason?"
    );
    eprintln!("{SLOW_CLIENTS} slow clients dropped {longest:?} after the check began ({since_sent:?} after sending)");
    s.stop().await;
}

/// A kept-alive connection that says nothing after its answer is closed too, and a long poll
/// that outlasts the header timeout still gets its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_close_and_long_polls_do_not() {
    let s = Served::start(with_tokens(short_limits()), None).await;
    let mut idle = TcpStream::connect(s.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = idle.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..n]));
    let idle_since = Instant::now();

    // Every pending trial leased: the next lease waits its whole `wait_ms`.
    let http = reqwest::Client::new();
    while prompt_lease(&http, &s).await == StatusCode::OK {}
    let wait_ms = (HEADER_TIMEOUT + Duration::from_millis(500)).as_millis() as u64;
    let polled = Instant::now();
    let poll =
        http.post(s.url("/v1/lease")).bearer_auth(TOKEN).json(&json!({ "worker": "patient", "wait_ms": wait_ms }));
    let (poll, idle_for) = tokio::join!(poll.send(), all_dropped(vec![idle], DROPPED_WITHIN));
    assert_eq!(poll.unwrap().status(), StatusCode::NO_CONTENT, "the long poll ran out, uncut");
    assert!(polled.elapsed() >= Duration::from_millis(wait_ms), "{:?}", polled.elapsed());
    assert!(idle_since.elapsed() < DROPPED_WITHIN && idle_for <= HEADER_TIMEOUT * 2, "idle for {idle_for:?}");
    s.stop().await;
}

/// Past `max_connections`, new connections wait for a slot instead of being served without end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_wait_for_a_slot() {
    let limits = ServeLimits { max_connections: 20, ..short_limits() };
    let s = Served::start(with_tokens(limits), None).await;
    let silent = stalled_clients(s.addr, 20, b"").await;
    let started = Instant::now();
    let health = reqwest::get(s.url("/healthz")).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(
        waited >= HEADER_TIMEOUT / 2,
        "answered after {waited:?}: the 21st connection was served while 20 held every slot"
    );
    all_dropped(silent, DROPPED_WITHIN).await;
    s.stop().await;
}

/// A request whose body never finishes gets 503 naming the limit once the request timeout runs
/// out, instead of holding its connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_finishes_is_cut_off_by_the_request_timeout() {
    let limits = ServeLimits { request_timeout: Duration::from_secs(1), ..short_limits() };
    let s = Served::start(with_tokens(limits), None).await;
    let mut slow = TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /v1/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"spec\": \""
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(DROPPED_WITHIN, slow.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "still open after {DROPPED_WITHIN:?}");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("1 s limit") && answer.contains("request timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    s.stop().await;
}

/// Made-up methods and paths add no series to `/metrics`, which needs a token (the read token
/// is enough) when the server has one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_a_token_and_keep_a_fixed_label_set() {
    let s = Served::start(with_tokens(ServeLimits::default()), None).await;
    let http = reqwest::Client::new();
    let anonymous = http.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let wrong = http.get(s.url("/metrics")).bearer_auth("not-the-token").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let scrape = |token: &'static str| {
        let http = http.clone();
        let url = s.url("/metrics");
        async move {
            let r = http.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "with {token}");
            r.text().await.unwrap()
        }
    };
    scrape(READ_TOKEN).await;

    for i in 0..200 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        let path = if i % 2 == 0 { "/v1/studies".to_string() } else { format!("/no/such/path/{i}") };
        let r = http.request(method, s.url(&path)).bearer_auth(TOKEN).send().await.unwrap();
        assert!(r.status().is_client_error(), "{path}: {}", r.status());
    }
    let text = scrape(TOKEN).await;
    assert!(!text.contains("MADEUP") && !text.contains("/no/such"), "client-chosen labels:\n{text}");
    // At most one series per (route or `unmatched`, status) the made-up requests reached.
    let other: Vec<&str> = text.lines().filter(|l| l.contains("method=\"other\"")).collect();
    assert!((1..=2).contains(&other.len()), "200 made-up requests made {} series: {other:#?}", other.len());
    assert!(text.contains("decsweep_trials{study=\"slow\",status=\"pending\"} 4"), "{text}");
    s.stop().await;
}

/// TLS: clients that connect and never finish a handshake are dropped after the handshake
/// timeout, and HTTPS answers promptly meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_tls_clients_are_dropped_and_https_is_served_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, connector) = pki::pki(dir.path());
    let s = Served::start(with_tokens(short_limits()), Some(tls)).await;
    let sent = Instant::now();
    // Half a ClientHello record header, then nothing.
    let silent = stalled_clients(s.addr, SLOW_CLIENTS, b"\x16\x03\x01").await;

    let started = Instant::now();
    let tcp = TcpStream::connect(s.addr).await.unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = connector.connect(name, tcp).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(started.elapsed() < PROMPT, "HTTPS /healthz took {:?} with silent clients attached", started.elapsed());

    all_dropped(silent, DROPPED_WITHIN).await;
    assert!(sent.elapsed() >= HEADER_TIMEOUT, "dropped before the handshake timeout: {:?}", sent.elapsed());
    s.stop().await;
}
