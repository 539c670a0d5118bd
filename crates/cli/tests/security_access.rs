//! A hostile user of the same machine against `decsweep serve` and `decsweep run` (issue 18,
//! findings 2 and 9): no coordinator a CLI path starts is open without its token, tokens and
//! token files follow their rules, and the login form cannot be used to guess. Raw HTTP over
//! loopback, so every header is the attacker's choice.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{decsweep, wait_for, worker_bin, Guard};

const TOKEN: &str = "security-access-cli-token";

/// One raw HTTP/1.1 request; the status, the head and the body.
fn http(addr: SocketAddr, method: &str, path: &str, headers: &[String], body: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{head}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    (code.unwrap_or_else(|| panic!("not an HTTP answer: {response:?}")), head.to_string(), body.to_string())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
}

/// `decsweep serve` with its stderr in a file, once it listens; its address and the log.
struct Serve {
    _child: Guard,
    addr: SocketAddr,
    log: PathBuf,
}

fn serve(dir: &Path, runtime: &Path, bind: &str, extra: &[&str]) -> Serve {
    // Each serve its own database: a test may run two side by side, and one coordinator holds a
    // database at a time.
    let n = fs::read_dir(dir).unwrap().count();
    let log = dir.join(format!("serve-{n}.log"));
    let child = Command::new(decsweep())
        .args(["serve", "--db", dir.join(format!("s-{n}.db")).to_str().unwrap(), "--bind", bind])
        .args(extra)
        .env("DECSWEEP_RUNTIME_DIR", runtime)
        .env("RUST_LOG", "warn")
        .env_remove("DECSWEEP_TOKEN")
        .env_remove("DECSWEEP_TOKEN_FILE")
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut child = Guard(child);
    let started = Instant::now();
    loop {
        let text = fs::read_to_string(&log).unwrap_or_default();
        let url = text.split("listening on http://").nth(1).and_then(|r| r.split_whitespace().next());
        if let Some(addr) = url.and_then(|u| u.parse().ok()) {
            // The second line (the generated token) is written in the same call.
            return Serve { _child: child, addr, log };
        }
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!("decsweep serve exited ({status}): {text}");
        }
        assert!(started.elapsed() < Duration::from_secs(30), "decsweep serve did not listen: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Serve {
    fn stderr(&self) -> String {
        fs::read_to_string(&self.log).unwrap()
    }
}

/// `decsweep ARGS` expected to fail at once: its exit code and stderr.
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Guard(Command::new(decsweep()).args(args).stderr(Stdio::piped()).spawn().unwrap());
    let started = Instant::now();
    while child.0.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(10), "`decsweep {}` did not refuse: it runs", args.join(" "));
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = child.0.wait().unwrap();
    let mut stderr = String::new();
    child.0.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (status.code(), stderr)
}

fn private_file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn serve_without_a_token_is_not_open_and_its_own_user_gets_in_through_the_token_file() {
    let tmp = tempfile::tempdir().unwrap();
    let runtime = tmp.path().join("runtime");
    let port = common::free_port();
    let bind = format!("127.0.0.1:{port}");
    let s = serve(tmp.path(), &runtime, &bind, &[]);
    let (code, _, body) = http(s.addr, "GET", "/v1/studies", &[], "");
    assert_eq!(code, 401, "another user of the machine, without the token: {body}");

    let file = runtime.join(format!("127.0.0.1-{port}.token"));
    let meta = fs::metadata(&file).unwrap_or_else(|e| panic!("{}: {e}\n{}", file.display(), s.stderr()));
    assert_eq!(meta.mode() & 0o777, 0o600, "the token file is its user's alone");
    assert_eq!(fs::metadata(&runtime).unwrap().mode() & 0o777, 0o700);
    let token = fs::read_to_string(&file).unwrap().trim().to_string();
    assert!(token.len() >= 32, "at least 128 bits: {token}");

    // Its own user's clients read the file: no token to type.
    let url = format!("http://{}", s.addr);
    let o = Command::new(decsweep())
        .args(["status", "--coordinator", &url])
        .env("DECSWEEP_RUNTIME_DIR", &runtime)
        .env_remove("DECSWEEP_TOKEN")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // The printed URL logs the browser in once and drops the token from the address.
    let printed = format!("{url}/?token={token}");
    assert!(s.stderr().contains(&printed), "serve prints the login URL: {}", s.stderr());
    let (code, head, _) = http(s.addr, "GET", &format!("/?token={token}&page=2"), &[], "");
    assert_eq!(code, 303, "{head}");
    assert_eq!(header(&head, "location"), Some("/?page=2"), "{head}");
    let cookie = header(&head, "set-cookie").unwrap_or_else(|| panic!("no session: {head}"));
    let session = cookie.split(';').next().unwrap().to_string();
    assert!(!session.contains(&token), "the cookie holds no token");
    let (code, _, _) = http(s.addr, "GET", "/", &[format!("Cookie: {session}")], "");
    assert_eq!(code, 200);
    let (code, _, _) = http(s.addr, "GET", "/?token=not-the-token-0123456789", &[], "");
    assert_eq!(code, 401, "a wrong token in the URL opens nothing");

    // A restart on the same address keeps the token, so running agents go on.
    drop(s);
    let again = serve(tmp.path(), &runtime, &bind, &[]);
    assert_eq!(fs::read_to_string(&file).unwrap().trim(), token);
    let (code, _, _) = http(again.addr, "GET", "/v1/studies", &[format!("Authorization: Bearer {token}")], "");
    assert_eq!(code, 200);
}

#[test]
fn run_protects_its_coordinator_with_a_token_its_workers_get_by_file() {
    let tmp = tempfile::tempdir().unwrap();
    let runtime = tmp.path().join("runtime");
    let spec = tmp.path().join("sleepy.toml");
    fs::write(
        &spec,
        "[study]\nname = \"sleepy\"\npipelines = [\"command\"]\nseeds = [0]\n\n[command]\nprogram = [\"sh\", \"-c\", \"sleep 60\", \"sh\"]\n",
    )
    .unwrap();
    let log = tmp.path().join("run.log");
    let mut run = Guard(
        Command::new(decsweep())
            .args(["run", spec.to_str().unwrap(), "--workers", "1", "--device", "cpu", "--out"])
            .arg(tmp.path().join("out"))
            .env("DECSWEEP_RUNTIME_DIR", &runtime)
            .env("DECSWEEP_WORKER", worker_bin())
            .env("DECSWEEP_HOME", tmp.path().join("home"))
            .env_remove("DECSWEEP_TOKEN")
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut first = String::new();
    wait_for("run's dashboard URL", Duration::from_secs(30), || {
        first = fs::read_to_string(&log).unwrap().lines().next().unwrap_or_default().to_string();
        first.contains("?token=")
    });
    let rest = first.strip_prefix("dashboard: http://").unwrap_or_else(|| panic!("first line: {first}"));
    let (addr, token) = rest.split_once("/?token=").unwrap();
    let addr: SocketAddr = addr.parse().unwrap();
    assert!(token.len() >= 32, "{token}");

    let (code, _, body) = http(addr, "GET", "/v1/studies", &[], "");
    assert_eq!(code, 401, "run's coordinator is not open to other users: {body}");
    let (code, _, _) = http(addr, "GET", "/v1/studies", &[format!("Authorization: Bearer {token}")], "");
    assert_eq!(code, 200);

    // Its worker got the token by file: a trial is running, and no command line holds it.
    wait_for("the worker to lease the trial", Duration::from_secs(60), || {
        let (_, _, body) = http(addr, "GET", "/v1/studies/sleepy", &[format!("Authorization: Bearer {token}")], "");
        body.contains("\"running\":1")
    });
    let file = runtime.join(format!("127.0.0.1-{}.token", addr.port()));
    assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(!cmdline.contains(token), "a command line holds the token: {cmdline}");
        if cmdline.contains("decsweep-worker") && cmdline.contains(&addr.to_string()) {
            assert!(cmdline.contains(&format!("--token-file {}", file.display())), "{cmdline}");
        }
    }

    // Interrupted, run removes its token file.
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(run.0.id() as libc::pid_t, libc::SIGINT) };
    let started = Instant::now();
    while run.0.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(60), "run did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!file.exists(), "{} is left behind: {}", file.display(), fs::read_to_string(&log).unwrap());
}

#[test]
fn a_token_file_others_can_read_gets_a_warning_naming_it_and_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let file = private_file(tmp.path(), "token", &format!("{TOKEN}\n"), 0o644);
    let s = serve(tmp.path(), &tmp.path().join("rt"), "127.0.0.1:0", &["--token-file", file.to_str().unwrap()]);
    let stderr = s.stderr();
    assert!(stderr.contains(&format!("chmod 600 {}", file.display())), "{stderr}");
    assert!(stderr.contains("other users"), "{stderr}");

    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    let quiet = serve(tmp.path(), &tmp.path().join("rt"), "127.0.0.1:0", &["--token-file", file.to_str().unwrap()]);
    assert!(!quiet.stderr().contains("chmod"), "{}", quiet.stderr());
}

#[test]
fn tokens_shorter_than_16_bytes_are_refused_naming_the_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("s.db");
    let base = ["serve", "--db", db.to_str().unwrap(), "--bind", "127.0.0.1:0"];
    let (code, stderr) = refused(&[&base[..], &["--token", "s3cret"]].concat());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--token") && stderr.contains("at least 16 bytes"), "{stderr}");

    let short = private_file(tmp.path(), "read-token", "r3ad\n", 0o600);
    let args = [&base[..], &["--token", TOKEN, "--read-token-file", short.to_str().unwrap()]].concat();
    let (code, stderr) = refused(&args);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&short.display().to_string()) && stderr.contains("at least 16 bytes"), "{stderr}");
    assert!(!db.exists(), "a refused serve creates no database");
}

#[test]
fn the_read_token_comes_from_a_file_and_only_looks() {
    let tmp = tempfile::tempdir().unwrap();
    let token = private_file(tmp.path(), "token", TOKEN, 0o600);
    let read = private_file(tmp.path(), "read-token", "read-only-token-0123456789\n", 0o600);
    let args = ["--token-file", token.to_str().unwrap(), "--read-token-file", read.to_str().unwrap()];
    let s = serve(tmp.path(), &tmp.path().join("rt"), "127.0.0.1:0", &args);
    let look = "Authorization: Bearer read-only-token-0123456789".to_string();
    let (code, _, _) = http(s.addr, "GET", "/v1/studies", std::slice::from_ref(&look), "");
    assert_eq!(code, 200);
    let json = "Content-Type: application/json".to_string();
    let (code, _, body) = http(s.addr, "POST", "/v1/studies/x/cancel", &[look, json], "{}");
    assert_eq!(code, 403, "{body}");
}

#[test]
fn failed_logins_are_limited_per_address() {
    let tmp = tempfile::tempdir().unwrap();
    let token = private_file(tmp.path(), "token", TOKEN, 0o600);
    let s = serve(tmp.path(), &tmp.path().join("rt"), "127.0.0.1:0", &["--token-file", token.to_str().unwrap()]);
    let login = |secret: &str| {
        let headers =
            [format!("Origin: http://{}", s.addr), "Content-Type: application/x-www-form-urlencoded".to_string()];
        http(s.addr, "POST", "/login", &headers, &format!("token={secret}&next=%2F"))
    };
    for i in 0..5 {
        let (code, _, _) = login(&format!("guess-number-{i}"));
        assert_eq!(code, 401, "guess {i}");
    }
    let (code, head, body) = login(TOKEN);
    assert_eq!(code, 429, "the sixth try within a minute is refused, even with the right token: {head}");
    let wait: u64 = header(&head, "retry-after").and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{head}"));
    assert!((1..=60).contains(&wait), "{head}");
    assert!(body.contains("at most 5 per 60 s"), "the answer names the limit: {body}");
}

#[test]
fn plain_http_beyond_loopback_is_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    let token = private_file(tmp.path(), "token", TOKEN, 0o600);
    let s = serve(tmp.path(), &tmp.path().join("rt"), "0.0.0.0:0", &["--token-file", token.to_str().unwrap()]);
    assert!(s.stderr().contains("WARNING: serving plain HTTP on 0.0.0.0"), "{}", s.stderr());
    let local = serve(tmp.path(), &tmp.path().join("rt"), "127.0.0.1:0", &["--token-file", token.to_str().unwrap()]);
    assert!(!local.stderr().contains("plain HTTP"), "{}", local.stderr());
}
