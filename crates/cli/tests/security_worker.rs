//! The worker as a hostile study's author meets it (issue 18, findings 9 and 10), end to end with
//! a token-protected `decsweep serve` and a real `decsweep-worker`:
//!
//! - a program run by a worker that holds the coordinator's token (in `DECSWEEP_TOKEN` and
//!   `DECSWEEP_TOKEN_FILE`) and other credentials sees none of them in its environment, while
//!   what the spec sets, what the owner keeps and the rest of the environment still reach it;
//! - a worker started with `--allow-program DIR` refuses, without running them, a bare `sh -c`,
//!   a path that leaves DIR through `..`, and an allowed program whose job sets `LD_PRELOAD`: each
//!   trial fails at once, naming the rule; a program under DIR still runs.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use decsweep_api::wire::{TrialInfo, TrialStatus};

mod common;

use common::{agent_with, cli_json, decsweep, serve_with, wait_for, Guard, Server};

/// At least 16 bytes, as token files must hold.
const TOKEN: &str = "worker-secret-token-3f9a1c7e5b2d";

fn token_file(dir: &Path) -> PathBuf {
    let path = dir.join("token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn serve_protected(dir: &Path, token: &Path) -> Server {
    serve_with(&dir.join("security.db"), 0, 30, &["--token-file".as_ref(), token.as_os_str()])
}

/// A programs-only study of one trial running `program` with `[command] env` `env`.
fn submit_study(server: &Server, token: &Path, dir: &Path, name: &str, program: &[&str], env: &[(&str, &str)]) {
    let quote = |s: &str| serde_json::to_string(s).unwrap();
    let program: Vec<String> = program.iter().map(|a| quote(a)).collect();
    let env: Vec<String> = env.iter().map(|(k, v)| format!("{k} = {}", quote(v))).collect();
    let spec = dir.join(format!("{name}.toml"));
    std::fs::write(
        &spec,
        format!(
            "[study]\nname = \"{name}\"\npipelines = [\"command\"]\nseeds = [0]\nretries = 0\n\n\
             [command]\nprogram = [{}]\nenv = {{ {} }}\n",
            program.join(", "),
            env.join(", ")
        ),
    )
    .unwrap();
    let o = Command::new(decsweep())
        .args(["submit", spec.to_str().unwrap(), "--coordinator", &server.url])
        .arg("--token-file")
        .arg(token)
        .output()
        .unwrap();
    assert!(o.status.success(), "submit {name}: {}", String::from_utf8_lossy(&o.stderr));
}

fn trial(server: &Server, token: &Path, study: &str) -> TrialInfo {
    #[derive(serde::Deserialize)]
    struct Status {
        trials: Vec<TrialInfo>,
    }
    let url = server.url.as_str();
    let token = token.to_str().unwrap();
    let s: Status = cli_json(&["status", study, "--trials", "--json", "--coordinator", url, "--token-file", token]);
    s.trials.into_iter().next().unwrap_or_else(|| panic!("study {study} has no trial"))
}

/// Waits for the studies' trials to end, failing at once (with its log) if the worker exits.
fn wait_for_trials(server: &Server, token: &Path, studies: &[&str], worker: &mut Guard, log: &Path) {
    wait_for("every trial to end", Duration::from_secs(90), || {
        let ended = studies.iter().all(|s| trial(server, token, s).status.is_terminal());
        if let Some(status) = worker.0.try_wait().unwrap().filter(|_| !ended) {
            panic!("the worker exited ({status}): {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        ended
    });
}

fn executable(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_trial_program_gets_none_of_the_workers_tokens_or_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let token = token_file(dir);
    let server = serve_protected(dir, &token);
    let dump = dir.join("env.txt");
    let parent_argv = dir.join("parent-argv.txt");
    // Its environment, and its parent's (the worker's) argv, to files.
    let script = dir.join("dump-env.sh");
    executable(
        &script,
        "#!/bin/sh\nenv > \"$DUMP\"\ntr '\\0' ' ' < /proc/$PPID/cmdline > \"$PARENT_ARGV\"\necho '{\"ok\": 1}'\n",
    );
    let spec_env = [
        ("DUMP", dump.to_str().unwrap()),
        ("PARENT_ARGV", parent_argv.to_str().unwrap()),
        // Set explicitly by the study: it reaches the program.
        ("HF_TOKEN", "from-the-spec"),
    ];
    submit_study(&server, &token, dir, "env", &[script.to_str().unwrap()], &spec_env);

    let log = dir.join("worker.log");
    let secrets = [
        ("DECSWEEP_TOKEN", TOKEN),
        ("DECSWEEP_TOKEN_FILE", token.to_str().unwrap()),
        ("DECSWEEP_READ_TOKEN", "read-token-5e8d2b6a9c41"),
        ("AWS_SECRET_ACCESS_KEY", "aws-secret-7c1e"),
        ("GITHUB_TOKEN", "github-secret-2b4f"),
        ("HF_TOKEN", "worker-hf-secret-9d3a"),
    ];
    let other = [
        ("WANDB_API_KEY", "wandb-key-kept"),
        ("DECSWEEP_PROGRAM_ENV_KEEP", "WANDB_API_KEY"),
        ("MY_SETTING", "inherited"),
        ("RUST_LOG", "info"),
    ];
    let env: Vec<(&str, &str)> = secrets.iter().chain(&other).copied().collect();
    let args = ["--token-file", token.to_str().unwrap()];
    let mut worker = agent_with(&server.url, &dir.join("home"), &args, &env, File::create(&log).unwrap());
    wait_for_trials(&server, &token, &["env"], &mut worker, &log);

    let t = trial(&server, &token, "env");
    assert_eq!(t.status, TrialStatus::Completed, "{t:#?}");
    let text = std::fs::read_to_string(&dump).unwrap();
    let seen: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    for (name, value) in secrets {
        assert!(!text.contains(value), "the program saw {name}'s value:\n{text}");
        if name != "HF_TOKEN" {
            assert!(!seen.contains_key(name), "the program saw {name}:\n{text}");
        }
    }
    assert_eq!(seen.get("HF_TOKEN"), Some(&"from-the-spec"), "the spec's own setting applies");
    assert_eq!(seen.get("WANDB_API_KEY"), Some(&"wandb-key-kept"), "--program-env-keep (DECSWEEP_PROGRAM_ENV_KEEP)");
    assert_eq!(seen.get("MY_SETTING"), Some(&"inherited"), "the rest is inherited");
    assert_eq!(seen.get("DECSWEEP_SEED"), Some(&"0"), "the job's own DECSWEEP_ variables are set");
    assert!(seen.contains_key("DECSWEEP_CHECKPOINT_DIR") && seen.contains_key("PATH"), "{text}");
    let argv = std::fs::read_to_string(&parent_argv).unwrap();
    assert!(argv.contains("--coordinator") && !argv.contains(TOKEN), "the worker's argv: {argv}");

    drop(worker);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("trial programs do not get these variables") && log.contains("GITHUB_TOKEN"), "{log}");
    for (name, value) in secrets {
        assert!(!log.contains(value), "the worker logged {name}'s value:\n{log}");
    }
}

#[test]
fn a_worker_with_allow_program_refuses_other_programs_without_running_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let token = token_file(dir);
    let server = serve_protected(dir, &token);
    let allowed = dir.join("allowed");
    let marker_script = "#!/bin/sh\necho ran > \"$MARK\"\necho '{\"ok\": 1}'\n";
    executable(&allowed.join("ok.sh"), marker_script);
    executable(&dir.join("outside/evil.sh"), marker_script);
    let mark = |study: &str| dir.join(format!("ran-{study}"));
    let (ok, shell, escape, preload) = (mark("ok"), mark("shell"), mark("escape"), mark("preload"));
    let ok_sh = allowed.join("ok.sh");
    let escape_sh = allowed.join("../outside/evil.sh");
    let touch = "touch \"$MARK\"; echo '{\"ok\": 1}'";
    submit_study(&server, &token, dir, "ok", &[ok_sh.to_str().unwrap()], &[("MARK", ok.to_str().unwrap())]);
    submit_study(&server, &token, dir, "shell", &["sh", "-c", touch], &[("MARK", shell.to_str().unwrap())]);
    submit_study(&server, &token, dir, "escape", &[escape_sh.to_str().unwrap()], &[("MARK", escape.to_str().unwrap())]);
    let preload_env = [("MARK", preload.to_str().unwrap()), ("LD_PRELOAD", "/nonexistent/hook.so")];
    submit_study(&server, &token, dir, "preload", &[ok_sh.to_str().unwrap()], &preload_env);

    let log = dir.join("worker.log");
    let args = ["--token-file", token.to_str().unwrap(), "--allow-program", allowed.to_str().unwrap()];
    let mut worker = agent_with(&server.url, &dir.join("home"), &args, &[], File::create(&log).unwrap());
    wait_for_trials(&server, &token, &["ok", "shell", "escape", "preload"], &mut worker, &log);

    let t = trial(&server, &token, "ok");
    assert_eq!(t.status, TrialStatus::Completed, "an allowed program runs: {t:#?}");
    assert!(ok.exists());
    let rule = format!("--allow-program {}", allowed.canonicalize().unwrap().display());
    for (study, marker, names) in [
        ("shell", &shell, "`sh`"),
        ("escape", &escape, "outside/evil.sh"),
        ("preload", &preload, "the job sets LD_PRELOAD"),
    ] {
        let t = trial(&server, &token, study);
        assert_eq!((t.status, t.attempts), (TrialStatus::Failed, 1), "{study}: failed once, not retried: {t:#?}");
        let error = t.error.as_deref().unwrap_or_default();
        assert!(error.contains("refused") && error.contains(names), "{study}: {error}");
        assert!(error.contains("--allow-program"), "{study}: the error names the rule: {error}");
        if study != "preload" {
            assert!(error.contains(&rule), "{study}: and the prefixes: {error}");
        }
        assert!(!marker.exists(), "{study}: the refused program ran");
    }
}
