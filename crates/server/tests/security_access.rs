//! A hostile client on loopback against the access rules (issue 18, findings 2 and 9): a web
//! page reaching the coordinator through DNS rebinding (`Host: evil.example`), and a page on
//! another site sending a change with whatever credentials it can get. Raw HTTP over TCP, so
//! every header is exactly what the attacker chose; the server is the real `serve_with`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use decsweep_coordinator::{Coordinator, CoordinatorOptions};
use decsweep_server::{AllowedHosts, ServeOptions};
use tokio::sync::oneshot;

const TOKEN: &str = "security-access-test-token";

/// A study whose trials run `sh -c ...` on every worker: what an attacker would create.
fn command_study(name: &str) -> String {
    let spec = format!(
        "[study]\nname = \"{name}\"\ndataset = {{ synthetic = {{ seed = 1, n = 8 }} }}\npipelines = [\"command\"]\n\
         seeds = [0]\n\n[command]\nprogram = [\"sh\", \"-c\", \"echo pwned > /tmp/decsweep-pwned\"]\n"
    );
    serde_json::json!({ "spec": spec, "spec_path": "evil.toml" }).to_string()
}

struct Server {
    addr: SocketAddr,
    coordinator: Coordinator,
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// `serve_with` on 127.0.0.1 with an extra route beside the API (as the dashboard is).
    async fn start(options: ServeOptions) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let coordinator = Coordinator::open(dir.path().join("s.db"), CoordinatorOptions::default()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let extra = axum::Router::new().route("/page", axum::routing::get(|| async { "a dashboard page" }));
        let (stop, stopped) = oneshot::channel::<()>();
        let c = decsweep_server::Server::new(coordinator.clone(), options);
        tokio::spawn(async move {
            c.serve_with(listener, extra, None, async move {
                let _ = stopped.await;
            })
            .await
        });
        Server { addr, coordinator, stop: Some(stop), _dir: dir }
    }

    /// One request with exactly these extra header lines; the status and the body.
    async fn raw(&self, method: &str, path: &str, headers: &[String], body: &str) -> (u16, String) {
        let (addr, method, path, body) = (self.addr, method.to_string(), path.to_string(), body.to_string());
        let head: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
        tokio::task::spawn_blocking(move || {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            write!(
                s,
                "{method} {path} HTTP/1.1\r\n{head}Content-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            let mut response = String::new();
            s.read_to_string(&mut response).unwrap();
            let code = response.split_whitespace().nth(1).and_then(|c| c.parse().ok());
            let code = code.unwrap_or_else(|| panic!("not an HTTP answer: {response:?}"));
            (code, response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
        })
        .await
        .unwrap()
    }

    async fn studies(&self) -> usize {
        self.coordinator.studies().await.unwrap().len()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn bearer() -> String {
    format!("Authorization: Bearer {TOKEN}")
}

/// The rebinding page: its name now resolves to 127.0.0.1, so the browser sends its own name as
/// `Host` and its own origin as `Origin`, which match each other.
#[tokio::test]
async fn a_rebinding_host_is_refused_on_every_route_with_or_without_a_token() {
    for token in [None, Some(TOKEN)] {
        let s = Server::start(ServeOptions { token: token.map(str::to_string), ..Default::default() }).await;
        let port = s.addr.port();
        let evil = [format!("Host: evil.example:{port}"), format!("Origin: http://evil.example:{port}")];
        let with_token: Vec<String> = evil.iter().cloned().chain(token.map(|_| bearer())).collect();
        let (code, body) = s.raw("POST", "/v1/studies", &with_token, &command_study("evil")).await;
        assert_eq!(code, 421, "token {token:?}: {body}");
        assert!(body.contains("evil.example") && body.contains("--allowed-host"), "the answer names the rule: {body}");
        assert_eq!(s.studies().await, 0, "no study was created");
        for path in ["/healthz", "/v1/studies", "/page", "/no-such-route"] {
            let (code, body) = s.raw("GET", path, &with_token, "").await;
            assert_eq!(code, 421, "GET {path} with a foreign Host: {body}");
        }

        // The same request to the coordinator's own address works (with the token when set).
        let good = vec![format!("Host: 127.0.0.1:{port}"), format!("Origin: http://127.0.0.1:{port}")];
        let good: Vec<String> = good.into_iter().chain(token.map(|_| bearer())).collect();
        let (code, body) = s.raw("POST", "/v1/studies", &good, &command_study("fine")).await;
        assert_eq!(code, 201, "token {token:?}: {body}");
        let (code, _) = s.raw("GET", "/page", &[format!("Host: localhost:{port}")], "").await;
        assert_eq!(code, 200, "localhost is loopback");
    }
}

#[tokio::test]
async fn a_name_given_with_allowed_host_is_served() {
    let options = ServeOptions {
        token: Some(TOKEN.into()),
        allowed_hosts: AllowedHosts::new(["decsweep-coordinator"]),
        ..Default::default()
    };
    let s = Server::start(options).await;
    let port = s.addr.port();
    let (code, body) = s.raw("GET", "/v1/studies", &[format!("Host: decsweep-coordinator:{port}"), bearer()], "").await;
    assert_eq!(code, 200, "{body}");
    let (code, _) = s.raw("GET", "/v1/studies", &[format!("Host: other:{port}"), bearer()], "").await;
    assert_eq!(code, 421);
}

/// A page on another site cannot send a change, even if it somehow holds the token: a browser
/// names the page's origin, and it is not this server.
#[tokio::test]
async fn a_change_from_another_origin_is_refused_even_with_the_token() {
    let s = Server::start(ServeOptions { token: Some(TOKEN.into()), ..Default::default() }).await;
    let port = s.addr.port();
    let headers = vec![format!("Host: 127.0.0.1:{port}"), "Origin: http://evil.example".to_string(), bearer()];
    let (code, body) = s.raw("POST", "/v1/studies", &headers, &command_study("cross")).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("cross-site"), "{body}");
    assert_eq!(s.studies().await, 0);
    // Without Origin (the CLI, a worker) the token alone is enough.
    let (code, body) =
        s.raw("POST", "/v1/studies", &[format!("Host: 127.0.0.1:{port}"), bearer()], &command_study("cli")).await;
    assert_eq!(code, 201, "{body}");
}
