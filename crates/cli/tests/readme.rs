//! The README's "Across machines" block, run as written on loopback, so the README cannot drift
//! from the code again: `make install`, the token, the **TLS** block's certificates, `serve` with
//! TLS, a worker, the exported client settings, the dataset's conversion, `submit`, `status` and
//! `report`, in one bash script with `set -e`.
//!
//! The blocks are found by their `<!-- readme-test: NAME -->` markers. The test changes only what
//! loopback needs, each change asserted to apply so a rewritten README fails here rather than
//! running something else: `HOST` is `localhost`, port 8320 a free one, `0.0.0.0` loopback,
//! `make install` installs the debug build already made into a scratch `$HOME` (`-o build
//! INSTALL_FROM=target/debug`), and `sweeps/label-fraction.toml` (hours of training) a tiny spec
//! that reads the same `../data/mosi.safetensors`, converted by the README's own command from a
//! small `aligned_50.pkl` in MMSA's schema. Its own lines are marked `# test:`: running the
//! long-lived commands in the background, waiting for the port and for the trials to finish.
//!
//! The script starts with a PATH that holds no decsweep binary and without `LD_LIBRARY_PATH`, so
//! it passes only if `make install` puts both binaries on the README's PATH and the installed
//! worker finds libtorch by itself.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{free_port, worker_bin};

const README: &str = include_str!("../../../README.md");

/// The lines of the ```sh block after `<!-- readme-test: NAME`, continuation lines (`\`) joined.
fn block(name: &str) -> Vec<String> {
    let marker = format!("<!-- readme-test: {name} ");
    let start = README.find(&marker).unwrap_or_else(|| panic!("README.md has no `{marker}…-->` marker"));
    let rest = &README[start..];
    let fence = rest.find("```sh\n").unwrap_or_else(|| panic!("no ```sh block after the {name} marker"));
    let body = &rest[fence + "```sh\n".len()..];
    let end = body.find("```").unwrap_or_else(|| panic!("the {name} block is not closed"));
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in body[..end].lines() {
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                if !current.trim().is_empty() {
                    lines.push(std::mem::take(&mut current));
                }
                current.clear();
            }
        }
    }
    assert!(!lines.is_empty(), "the {name} block is empty");
    lines
}

/// A README line with its trailing `# comment` removed (none of its commands has a `#` inside).
fn command(line: &str) -> &str {
    line.split(" #").next().unwrap_or(line).trim()
}

/// Replaces `from` by `to` in every line, failing when no line has it: the README changed.
fn substitute(lines: &mut [String], from: &str, to: &str) {
    let mut found = false;
    for line in lines.iter_mut() {
        if line.contains(from) {
            *line = line.replace(from, to);
            found = true;
        }
    }
    assert!(found, "the README block no longer has `{from}`; update crates/cli/tests/readme.rs with it");
}

/// MMSA's `aligned_50.pkl` schema (what tools/convert_mosi.py reads), 60 rows, tiny dimensions.
const MMSA_FIXTURE: &str = r#"
import pickle, sys
import numpy as np

rng = np.random.default_rng(0)
T, DIMS, g = 6, [4, 3, 2], 0
data = {}
for split, n in [("train", 40), ("valid", 10), ("test", 10)]:
    labels = np.where(np.arange(n) % 2 == 0, 1.0, -1.0) * rng.uniform(0.4, 3.0, n)
    lens = 1 + np.arange(n) % T
    part = {}
    for name, d in zip(["text", "audio", "vision"], DIMS):
        x = np.zeros((n, T, d), np.float32)
        for i in range(n):
            x[i, :lens[i]] = labels[i] + rng.normal(0, 1, (lens[i], d))
        part[name] = x
    part["regression_labels"] = labels.astype(np.float32)
    part["id"] = ["vid%d$_$%d" % (g + i, i) for i in range(n)]
    part["raw_text"] = ["words %d" % (g + i) for i in range(n)]
    bert = np.zeros((n, 3, T), np.int64)
    for i in range(n):
        bert[i, 0, :lens[i]] = 101
        bert[i, 1, :lens[i]] = 1
    part["text_bert"] = bert
    data[split] = part
    g += n
with open(sys.argv[1], "wb") as f:
    pickle.dump(data, f, protocol=4)
"#;

/// The spec standing in for sweeps/label-fraction.toml: the same dataset path, two tiny trials.
const TINY_SPEC: &str = r#"[study]
name = "readme-tiny"
dataset = "../data/mosi.safetensors"
pipelines = ["baseline", "dec"]
seeds = [0]
retries = 0

[fixed]
d_model = 8
n_heads = 2
n_layers = 1
ff_dim = 16
latent_dim = 4
batch_size = 16
epochs_ae = 1
epochs_dec = 1
epochs_ft = 2
"#;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The script: the across-machines block, the TLS block where it points at **TLS**, and the
/// test's own lines.
fn script(port: u16, built: &Path) -> String {
    let mut across = block("across-machines");
    let mut tls = block("tls");
    let port = port.to_string();
    let install_from = format!("make install -o build INSTALL_FROM={}", built.display());
    substitute(&mut across, "make install", &install_from);
    substitute(&mut across, "0.0.0.0", "127.0.0.1");
    substitute(&mut across, "8320", &port);
    substitute(&mut across, "HOST", "localhost");
    substitute(&mut tls, "HOST", "localhost");
    substitute(&mut across, "sweeps/label-fraction.toml", "sweeps/readme-tiny.toml");
    substitute(&mut across, "label-fraction", "readme-tiny");

    let mut out = vec![
        "set -euo pipefail".to_string(),
        "pids=()".to_string(),
        r#"trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait' EXIT"#.to_string(),
    ];
    let mut saw = (false, false, false);
    for line in &across {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') {
            if trimmed.contains("**TLS**") {
                out.extend(tls.iter().map(|l| command(l).to_string()));
                saw.0 = true;
            }
            continue;
        }
        let cmd = command(line);
        if cmd.starts_with("decsweep serve") || cmd.starts_with("decsweep-worker") {
            out.push(format!("{cmd} &  # test: long-lived"));
            out.push("pids+=($!)".to_string());
            if cmd.starts_with("decsweep serve") {
                saw.1 = true;
                out.push(format!(
                    "for i in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && break; sleep 0.2; done  # test: wait for the port"
                ));
            }
            continue;
        }
        if cmd.starts_with("decsweep report") {
            saw.2 = true;
            // The study's trials end before its report is read (test only).
            out.push(
                "for i in $(seq 600); do decsweep status readme-tiny | grep -q ' 0 running, 0 pending' && break; sleep 1; done  # test: wait"
                    .to_string(),
            );
        }
        out.push(cmd.to_string());
    }
    assert!(saw.0, "the across-machines block no longer points at the **TLS** block for its certificates");
    assert!(saw.1 && saw.2, "the across-machines block lost `decsweep serve` or `decsweep report`");
    out.join("\n") + "\n"
}

/// A python that can import numpy: $DECSWEEP_PYTHON (the Makefile's .venv), else the checkout's.
fn python() -> PathBuf {
    let venv = repo().join(".venv/bin/python");
    let py = std::env::var_os("DECSWEEP_PYTHON").map(PathBuf::from).unwrap_or(venv);
    let ok = Command::new(&py).args(["-c", "import numpy"]).output().is_ok_and(|o| o.status.success());
    assert!(ok, "{} cannot import numpy; run `make venv` (the README's converter needs it)", py.display());
    py
}

/// Kills the script's whole process group (its background server and worker) when dropped.
struct Group(std::process::Child);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this test started; at worst it is gone already.
        unsafe {
            libc::kill(-(self.0.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

#[test]
fn the_across_machines_block_runs_as_written_on_loopback() {
    let built = worker_bin().parent().unwrap().to_path_buf();
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    // A checkout as the README's reader has one: the Makefile, tools/ and .venv of this one.
    let checkout = tmp.path().join("checkout");
    let home = tmp.path().join("home");
    for dir in [checkout.join("sweeps"), home.clone(), tmp.path().join("runtime")] {
        std::fs::create_dir_all(dir).unwrap();
    }
    for name in ["Makefile", "tools", ".venv"] {
        std::os::unix::fs::symlink(repo().join(name), checkout.join(name)).unwrap();
    }
    std::fs::write(checkout.join("sweeps/readme-tiny.toml"), TINY_SPEC).unwrap();
    let fixture =
        Command::new(python()).args(["-c", MMSA_FIXTURE]).arg(checkout.join("aligned_50.pkl")).output().unwrap();
    assert!(fixture.status.success(), "writing aligned_50.pkl: {}", String::from_utf8_lossy(&fixture.stderr));

    let script = script(free_port(), &built);
    let log_path = tmp.path().join("readme.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new("bash");
    child
        .arg("-c")
        .arg(&script)
        .current_dir(&checkout)
        .env_clear()
        .env("HOME", &home)
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .env("DECSWEEP_RUNTIME_DIR", tmp.path().join("runtime"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0);
    let mut group = Group(child.spawn().unwrap());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = group.0.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(900) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    let shown = format!("script:\n{script}\noutput:\n{output}");
    assert!(status.is_some_and(|s| s.success()), "the README's commands failed ({status:?})\n{shown}");

    // make install put both binaries into the README's PATH entry and said how to add it.
    for bin in ["decsweep", "decsweep-worker"] {
        assert!(home.join(".local/bin").join(bin).is_file(), "make install left no {bin}\n{shown}");
    }
    assert!(output.contains(".local/bin is not on PATH"), "make install did not say how to put it on PATH\n{shown}");
    assert!(output.contains("cuda_available"), "the installed worker's `info` did not run\n{shown}");
    assert!(output.contains("uploaded dataset"), "submit did not upload the converted dataset\n{shown}");
    assert!(output.contains("readme-tiny"), "status did not show the study\n{shown}");
    // report wrote the study's files where the README's reader stands, every trial completed.
    let trials = std::fs::read_to_string(checkout.join("results/readme-tiny/trials.csv"))
        .unwrap_or_else(|e| panic!("report wrote no trials.csv ({e})\n{shown}"));
    let rows: Vec<&str> = trials.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{trials}");
    assert!(rows.iter().all(|r| r.contains("completed")), "{trials}\n{shown}");
}
