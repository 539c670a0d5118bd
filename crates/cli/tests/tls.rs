//! HTTPS and token files end to end: `decsweep serve --tls-cert --tls-key --token-file` with a
//! certificate from a CA made in the test (rcgen), `decsweep status`/`submit` and a real
//! `decsweep-worker` over https:// with and without `--ca-cert`, and the refusals (empty token
//! file, unusable certificate files, wrong token) naming what is wrong.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use decsweep_api::wire::StudyInfo;

mod common;

use common::{decsweep, worker_bin, Server};

const TOKEN: &str = "tls-test-token-0123456789";

/// A CA, a server certificate it signed for `localhost` and 127.0.0.1, and the server's key,
/// written as PEM files; plus a token file with a trailing newline, as `echo` writes it.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    token_file: PathBuf,
}

fn make_pki(dir: &Path) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "decsweep test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let mut server_params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    server_params.distinguished_name.push(DnType::CommonName, "decsweep coordinator");
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

    let pki = Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server-key.pem"),
        token_file: dir.join("token"),
    };
    fs::write(&pki.ca, ca_cert.pem()).unwrap();
    fs::write(&pki.cert, server_cert.pem()).unwrap();
    fs::write(&pki.key, server_key.serialize_pem()).unwrap();
    fs::write(&pki.token_file, format!("{TOKEN}\n")).unwrap();
    pki
}

fn serve(dir: &Path, pki: &Pki) -> Server {
    let options = ["--tls-cert".as_ref(), pki.cert.as_os_str(), "--tls-key".as_ref(), pki.key.as_os_str()];
    let token = ["--token-file".as_ref(), pki.token_file.as_os_str()];
    let server = common::serve_with(&dir.join("tls.db"), 0, 20, &[&options[..], &token[..]].concat());
    assert!(server.url.starts_with("https://127.0.0.1:"), "{}", server.url);
    server
}

fn cli(args: &[&str], extra: &[&Path]) -> Output {
    Command::new(decsweep()).args(args).args(extra).env_remove("DECSWEEP_TOKEN").output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A `command` study whose trials finish at once, so the worker's part costs no training.
fn write_spec(dir: &Path) -> PathBuf {
    let spec = r#"
[study]
name = "tls"
dataset = { synthetic = { seed = 0, n = 20 } }
pipelines = ["command"]
seeds = [0, 1]

[command]
program = ["sh", "-c", "echo \"{\\\"accuracy\\\": $2}\"", "sh"]

[space]
x = { grid = [0.25, 0.5] }
"#;
    let path = dir.join("tls.toml");
    fs::write(&path, spec).unwrap();
    path
}

fn run_worker(server: &Server, home: &Path, extra: &[&str]) -> Output {
    Command::new(worker_bin())
        .args(["--coordinator", &server.url, "--exit-when-idle", "--device", "cpu", "--threads", "1"])
        .args(extra)
        .env("DECSWEEP_HOME", home)
        .env_remove("DECSWEEP_TOKEN")
        .output()
        .unwrap()
}

#[test]
fn a_coordinator_served_over_tls_is_reached_with_the_private_ca_and_a_token_file() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = make_pki(tmp.path());
    let server = serve(tmp.path(), &pki);
    let url = server.url.as_str();
    let ca = pki.ca.to_str().unwrap();
    let token_file = pki.token_file.to_str().unwrap();

    // Without the CA the client refuses the certificate and says what to do.
    let o = cli(&["status", "--coordinator", url, "--token-file", token_file], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("certificate") && stderr(&o).contains("--ca-cert"), "{}", stderr(&o));

    // The wrong token is still 401 over TLS (bad input: exit 2).
    let o = cli(&["status", "--coordinator", url, "--ca-cert", ca, "--token", "not-the-token"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("bearer token"), "{}", stderr(&o));

    // With the CA and the token file: submit and status work.
    let spec = write_spec(tmp.path());
    let o = cli(
        &["submit", spec.to_str().unwrap(), "--coordinator", url, "--ca-cert", ca, "--token-file", token_file],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));

    // A worker without the CA stops at once with the certificate problem, instead of retrying:
    // exit 2, as for every error no wait can cure.
    let o = run_worker(&server, &tmp.path().join("home-noca"), &["--token-file", token_file]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("certificate") && stderr(&o).contains("--ca-cert"), "{}", stderr(&o));

    // With it, the worker runs every trial over https.
    let o = run_worker(&server, &tmp.path().join("home"), &["--ca-cert", ca, "--token-file", token_file]);
    assert!(o.status.success(), "{}", stderr(&o));

    let o = cli(&["status", "tls", "--json", "--coordinator", url, "--ca-cert", ca, "--token-file", token_file], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let answer: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let study: StudyInfo = serde_json::from_value(answer["studies"][0].clone()).unwrap();
    assert_eq!((study.counts.completed, study.counts.total()), (4, 4), "{study:#?}");
}

#[test]
fn empty_token_files_and_unusable_certificates_are_refused_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = make_pki(tmp.path());
    let empty = tmp.path().join("empty-token");
    fs::write(&empty, "\n").unwrap();
    let db = tmp.path().join("refused.db");

    let refused = |args: &[&str], paths: &[&Path], names: &Path| {
        let o = cli(args, paths);
        assert_eq!(o.status.code(), Some(2), "{args:?} {paths:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(&names.display().to_string()), "{args:?}: {}", stderr(&o));
        stderr(&o)
    };
    let bind = ["serve", "--bind", "127.0.0.1:0", "--db", db.to_str().unwrap()];

    // An empty token file: serve and every client command refuse it by name.
    let e = refused(&[&bind[..], &["--token-file"]].concat(), &[&empty], &empty);
    assert!(e.contains("is empty"), "{e}");
    refused(&["status", "--coordinator", "https://127.0.0.1:1", "--token-file"], &[&empty], &empty);
    let missing = tmp.path().join("no-such-token");
    refused(&["status", "--coordinator", "https://127.0.0.1:1", "--token-file"], &[&missing], &missing);
    let o = run_worker_to(&["--coordinator", "https://127.0.0.1:1", "--token-file"], &empty);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains(&empty.display().to_string()), "{}", stderr(&o));

    // A certificate file that is not one, a key that is not one, a key of another certificate.
    let junk = tmp.path().join("junk.pem");
    fs::write(&junk, "not pem at all\n").unwrap();
    let with_tls = |cert: &Path, key: &Path| {
        let mut args: Vec<&str> = bind.to_vec();
        args.extend(["--token-file", pki.token_file.to_str().unwrap(), "--tls-cert"]);
        let o = Command::new(decsweep())
            .args(&args)
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .env_remove("DECSWEEP_TOKEN")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        stderr(&o)
    };
    let e = with_tls(&junk, &pki.key);
    assert!(e.contains(&junk.display().to_string()) && e.contains("no PEM certificate"), "{e}");
    let e = with_tls(&pki.cert, &junk);
    assert!(e.contains(&junk.display().to_string()) && e.contains("no PEM private key"), "{e}");
    let other = make_pki(&{
        let d = tmp.path().join("other");
        fs::create_dir_all(&d).unwrap();
        d
    });
    let e = with_tls(&pki.cert, &other.key);
    assert!(e.contains(&other.key.display().to_string()) && e.contains(&pki.cert.display().to_string()), "{e}");
    assert!(!db.exists(), "nothing was served, so no database was created");

    // A CA file that holds no certificate.
    refused(&["status", "--coordinator", "https://127.0.0.1:1", "--ca-cert"], &[&junk], &junk);
}

fn run_worker_to(args: &[&str], path: &Path) -> Output {
    Command::new(worker_bin()).args(args).arg(path).env_remove("DECSWEEP_TOKEN").output().unwrap()
}
