//! Headless Chromium over WebDriver (chromedriver + fantoccini), one fresh profile per test.
//!
//! Debian's `chromium` and `chromium-driver` are installed with apt-get when missing (as root;
//! `apt-get update` first if the install fails); a test fails with the reason if that cannot be
//! done, rather than being skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use tokio::sync::{Mutex, MutexGuard};

use super::{eventually, spawn_quiet, target_dir, Reaped};

const CHROMIUM: &str = "/usr/bin/chromium";
const DRIVER: &str = "/usr/bin/chromedriver";
/// How long any DOM condition may take (the machine is shared and slow).
pub const PATIENCE: Duration = Duration::from_secs(60);

fn apt_get(args: &[&str]) -> Result<(), String> {
    let out = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .map_err(|e| format!("running apt-get {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("apt-get {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr)))
    }
}

/// Installs chromium and chromium-driver once per test binary when they are missing.
fn ensure_chromium() {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        if Path::new(CHROMIUM).exists() && Path::new(DRIVER).exists() {
            return Ok(());
        }
        let install = ["install", "-y", "--no-install-recommends", "chromium", "chromium-driver"];
        apt_get(&install).or_else(|_| apt_get(&["update"]).and_then(|_| apt_get(&install))).map_err(|e| {
            format!("the browser tests need Debian's chromium and chromium-driver, and installing them failed (run as root with network access to the Debian mirrors): {e}")
        })?;
        if Path::new(CHROMIUM).exists() && Path::new(DRIVER).exists() {
            Ok(())
        } else {
            Err(format!("apt-get installed chromium, but {CHROMIUM} or {DRIVER} is still missing"))
        }
    });
    if let Err(e) = ready {
        panic!("{e}");
    }
}

/// One browser test at a time: each Chromium wants most of a small machine.
fn one_at_a_time() -> &'static Mutex<()> {
    static LOCK: OnceLock<Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| Mutex::new(()))
}

/// A headless Chromium session; call [`Browser::close`] at the end.
pub struct Browser {
    pub client: Client,
    name: String,
    _driver: Reaped,
    _profile: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Browser {
    /// Starts chromedriver on a free port and a fresh headless Chromium; `name` names the
    /// screenshot.
    pub async fn start(name: &str) -> Browser {
        ensure_chromium();
        let turn = one_at_a_time().lock().await;
        let port = free_port();
        let driver = spawn_quiet(Command::new(DRIVER).arg(format!("--port={port}")))
            .unwrap_or_else(|e| panic!("starting {DRIVER}: {e}"));
        let status = format!("http://127.0.0.1:{port}/status");
        let http = reqwest::Client::new();
        eventually("chromedriver to answer /status", PATIENCE, || {
            let (http, status) = (http.clone(), status.clone());
            async move { http.get(&status).send().await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
        })
        .await;
        let profile = tempfile::tempdir().unwrap();
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1400,1000".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), serde_json::json!({ "binary": CHROMIUM, "args": args }));
        // Another test may have installed it already; either way ring is the provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = ClientBuilder::rustls()
            .expect("rustls connector")
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("starting a Chromium session through chromedriver: {e}"));
        let record = Cdp {
            cmd: "Page.addScriptToEvaluateOnNewDocument",
            params: serde_json::json!({ "source": RECORD_CSP_VIOLATIONS }),
        };
        client.issue_cmd(record).await.unwrap_or_else(|e| panic!("installing the CSP violation recorder: {e}"));
        Browser { client, name: name.to_string(), _driver: driver, _profile: profile, _turn: turn }
    }

    /// The content-security-policy violations every page of this tab reported so far.
    pub async fn csp_violations(&self) -> Vec<String> {
        let seen = self.eval(READ_CSP_VIOLATIONS).await;
        serde_json::from_value(seen).unwrap_or_else(|e| panic!("the recorded violations: {e}"))
    }

    /// Forgets the violations recorded so far.
    pub async fn forget_csp_violations(&self) {
        self.eval("sessionStorage.removeItem('decsweep-csp'); return true;").await;
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// Waits for an element matching `css`.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("waiting for `{css}`: {e}"))
    }

    /// Runs `script` (a function body returning a value) until it returns something truthy.
    pub async fn until(&self, what: &str, script: &str) -> serde_json::Value {
        eventually(what, PATIENCE, || async {
            let v = self.client.execute(script, vec![]).await.ok()?;
            let truthy = !(v.is_null() || v == serde_json::json!(false) || v == serde_json::json!(""));
            truthy.then_some(v)
        })
        .await
    }

    /// Like [`Browser::until`], but gives up after `limit` and returns `None` (for benchmarks
    /// that report a page which never renders instead of failing).
    pub async fn until_within(&self, limit: Duration, script: &str) -> Option<serde_json::Value> {
        let start = std::time::Instant::now();
        while start.elapsed() < limit {
            if let Ok(v) = self.client.execute(script, vec![]).await {
                if !(v.is_null() || v == serde_json::json!(false) || v == serde_json::json!("")) {
                    return Some(v);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Evaluates `script` once.
    pub async fn eval(&self, script: &str) -> serde_json::Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("running `{script}`: {e}"))
    }

    /// Marks the current document, so a test can tell a patch from a reload.
    pub async fn mark_document(&self) {
        self.eval("window.__decsweepMark = 'kept'; return true;").await;
    }

    pub async fn document_kept(&self) -> bool {
        self.eval("return window.__decsweepMark === 'kept';").await == serde_json::json!(true)
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    /// Saves a screenshot as target/dashboard-screens/NAME.png.
    pub async fn screenshot(&self) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = target_dir().join("dashboard-screens");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.png", self.name));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Saves a screenshot and ends the session; fails the test if any page of it broke the
    /// content security policy (an inline style or script the policy blocked).
    pub async fn close(self) {
        let _ = self.screenshot().await;
        let violations = self.csp_violations().await;
        let _ = self.client.close().await;
        assert!(violations.is_empty(), "pages broke the content security policy: {violations:#?}");
    }
}

/// Runs in every document before its own scripts (the DevTools protocol's injected scripts are
/// not subject to the page's policy): each `securitypolicyviolation` is appended to the tab's
/// `sessionStorage`, which outlives navigations within the origin.
const RECORD_CSP_VIOLATIONS: &str = r#"
document.addEventListener('securitypolicyviolation', function (e) {
  try {
    var seen = JSON.parse(sessionStorage.getItem('decsweep-csp') || '[]');
    seen.push(e.effectiveDirective + ' blocked ' + (e.blockedURI || 'inline') + ' on ' + e.documentURI
      + ' (' + e.sourceFile + ':' + e.lineNumber + ')');
    sessionStorage.setItem('decsweep-csp', JSON.stringify(seen));
  } catch (err) {}
});
"#;

const READ_CSP_VIOLATIONS: &str =
    "try { return JSON.parse(sessionStorage.getItem('decsweep-csp') || '[]'); } catch (e) { return []; }";

/// A Chrome DevTools protocol command, through chromedriver's `goog/cdp/execute`.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: serde_json::Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/goog/cdp/execute", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (axum::http::Method, Option<String>) {
        let body = serde_json::json!({ "cmd": self.cmd, "params": self.params });
        (axum::http::Method::POST, Some(body.to_string()))
    }
}
