//! The dashboard against a hostile page or link (issue 18, findings 7 and 8): login redirects
//! that stay on this site, the security headers on every kind of answer, pages that need
//! nothing the content security policy forbids, and a `Secure` session cookie over HTTPS.

#[path = "../../server/tests/support/pki.rs"]
mod pki;
mod support;

use decsweep_coordinator::{Coordinator, CoordinatorOptions};
use decsweep_server::ServeOptions;
use pki::pki;
use reqwest::header;
use reqwest::StatusCode;
use support::{command_spec, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "pages-full-token";

/// The policy every answer carries (the coordinator's `headers.rs`).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn with_token() -> ServeOptions {
    ServeOptions { token: Some(TOKEN.into()), ..Default::default() }
}

/// Targets that a browser reads as another host, or that decode to one.
const HOSTILE_NEXT: &[&str] = &[
    "/\t/evil.example",
    "/\\evil.example",
    "//evil.example",
    "https://evil.example",
    "/%09/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "\\\\evil.example",
    "/%5Cevil.example",
    "/%2F/evil.example",
    " //evil.example",
    "javascript:alert(1)",
];

#[tokio::test]
async fn logins_go_only_to_paths_on_this_site() {
    let s = Server::start_serving(with_token()).await;
    let http = no_redirects();
    let host = s.base.trim_start_matches("http://").to_string();
    let log_in = |next: &'static str| {
        let (http, url, origin) = (http.clone(), s.url("/login"), format!("http://{host}"));
        async move {
            http.post(url)
                .header(header::ORIGIN, origin)
                .form(&[("token", TOKEN), ("next", next)])
                .send()
                .await
                .unwrap()
        }
    };
    for &next in HOSTILE_NEXT {
        let r = log_in(next).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{next:?}");
        assert_eq!(r.headers()[header::LOCATION], "/", "after a login with next={next:?}");
        // The form carries the same target it would follow.
        let url = reqwest::Url::parse_with_params(&s.url("/login"), &[("next", next)]).unwrap();
        let form = http.get(url).send().await.unwrap().text().await.unwrap();
        assert!(form.contains(r#"name="next" value="/""#), "the form for next={next:?}:\n{form}");
    }
    let r = log_in("/studies/a%20b?page=2").await;
    assert_eq!(r.headers()[header::LOCATION], "/studies/a%20b?page=2", "a path on this site is followed");
    s.stop().await;
}

fn assert_security_headers(what: &str, r: &reqwest::Response) {
    let h = r.headers();
    let value = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("<missing>").to_string();
    assert_eq!(value("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(value("referrer-policy"), "same-origin", "{what}");
    assert_eq!(value("x-frame-options"), "DENY", "{what}");
    assert_eq!(value("content-security-policy"), CSP, "{what}");
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let s = Server::start_serving(with_token()).await;
    s.create(&command_spec("h", 2), Some(TOKEN)).await;
    let http = no_redirects();
    let answers = [
        ("the login page", http.get(s.url("/login")).send().await.unwrap(), StatusCode::OK),
        ("a page behind the login", http.get(s.url("/studies/h")).send().await.unwrap(), StatusCode::SEE_OTHER),
        ("an API answer", http.get(s.url("/v1/studies")).bearer_auth(TOKEN).send().await.unwrap(), StatusCode::OK),
        ("an API refusal", http.get(s.url("/v1/studies")).send().await.unwrap(), StatusCode::UNAUTHORIZED),
        ("a 404", http.get(s.url("/no/such/page")).send().await.unwrap(), StatusCode::NOT_FOUND),
        ("a wrong method", http.delete(s.url("/v1/studies")).send().await.unwrap(), StatusCode::METHOD_NOT_ALLOWED),
        ("the script", http.get(s.url("/assets/dashboard.js")).send().await.unwrap(), StatusCode::OK),
        ("the health check", http.get(s.url("/healthz")).send().await.unwrap(), StatusCode::OK),
    ];
    for (what, r, status) in &answers {
        assert_eq!(r.status(), *status, "{what}");
        assert_security_headers(what, r);
    }
    s.stop().await;
}

/// What the policy forbids, looked for in the HTML: inline scripts, `style` attributes and
/// elements, event-handler attributes, `javascript:` links.
fn csp_violations(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut found = Vec::new();
    let mut rest = lower.as_str();
    while let Some(at) = rest.find("<script") {
        let tag_end = rest[at..].find('>').map_or(rest.len(), |e| at + e);
        if !rest[at..tag_end].contains(" src=") {
            found.push(format!("inline script: {}", &rest[at..tag_end.min(at + 80)]));
        }
        rest = &rest[tag_end..];
    }
    for pattern in [" style=", "<style", "javascript:"] {
        if let Some(at) = lower.find(pattern) {
            found.push(format!("{pattern}: {}", &lower[at..(at + 80).min(lower.len())]));
        }
    }
    for handler in ["onclick", "onload", "onerror", "onsubmit", "onchange", "oninput", "onmouseover"] {
        if lower.contains(&format!(" {handler}=")) {
            found.push(format!("event handler attribute {handler}"));
        }
    }
    found
}

/// Every page, and the fragments the script patches in, needs nothing the policy forbids; the
/// browser tests (`tests/browser.rs`) run the same pages under the policy.
#[tokio::test]
async fn pages_need_nothing_the_policy_forbids() {
    let s = Server::open().await;
    s.create(&command_spec("p", 3), None).await;
    let lease = s.lease("w1/0", "w1", None).await;
    s.epoch(&lease, 2, None).await;
    s.complete(&lease, serde_json::json!({ "accuracy": 0.75, "loss": 0.4 }), None).await;
    let pages = [
        "/".to_string(),
        "/studies/p".into(),
        "/studies/p/summary".into(),
        format!("/trials/{}", lease.trial_id),
        "/workers".into(),
        "/live/studies?since=0".into(),
        format!("/live/studies/p?since=0&ids={}", lease.trial_id),
        "/no/such/page".into(),
    ];
    for page in &pages {
        let r = s.http.get(s.url(page)).send().await.unwrap();
        let body = r.text().await.unwrap();
        let found = csp_violations(&body);
        assert!(found.is_empty(), "{page} needs what the policy forbids: {found:#?}");
    }
    s.stop().await;
}

/// Over HTTPS the session cookie is `Secure`, so a browser never sends it over plain HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_secure_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, connector) = pki(dir.path());
    let coordinator = Coordinator::open(dir.path().join("tls.db"), CoordinatorOptions::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let c = decsweep_server::Server::new(coordinator.clone(), with_token());
    let served = tokio::spawn(async move {
        let dashboard = decsweep_dashboard::router(c.clone());
        c.serve_with(listener, dashboard, Some(&tls), async move {
            let _ = stopped.await;
        })
        .await
    });

    let body = format!("token={TOKEN}&next=%2F");
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: {addr}\r\nOrigin: https://{addr}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = connector.connect(name, tcp).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 303"), "{answer}");
    let cookie = answer
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie set:\n{answer}"));
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");

    // Over plain HTTP (the same code, another server) it is not: the browser would drop it.
    let plain = Server::start_serving(with_token()).await;
    let host = plain.base.trim_start_matches("http://").to_string();
    let r = no_redirects()
        .post(plain.url("/login"))
        .header(header::ORIGIN, format!("http://{host}"))
        .form(&[("token", TOKEN), ("next", "/")])
        .send()
        .await
        .unwrap();
    let cookie = r.headers()[header::SET_COOKIE].to_str().unwrap().to_string();
    assert!(!cookie.contains("Secure"), "{cookie}");
    plain.stop().await;

    let _ = stop.send(());
    served.await.unwrap().unwrap();
}
