//! The `command` pipeline: any program, run once per trial with the trial's parameters, whose
//! last line on stdout is a JSON object of metrics (the way W&B sweeps run a `program`).
//!
//! Parameters reach the program in one of two ways (`pass` in `[command]`):
//! - `"args"` (default): `program... --name value --name value ... --seed N`, parameters in name
//!   order, values printed as in the spec (`0.001` prints as `0.001`, `1e-5` as `0.00001`).
//! - `"env"`: environment variables `DECSWEEP_<NAME>` with the name upper-cased
//!   (`lr` → `DECSWEEP_LR=0.001`), and the program's argv unchanged.
//!
//! In both modes the environment also carries `DECSWEEP_PARAMS` (every parameter as one JSON
//! object), `DECSWEEP_SEED`, `DECSWEEP_TRIAL_KEY` and `DECSWEEP_CONFIG_ID`, plus whatever
//! `[command] env` sets; the worker adds `DECSWEEP_CHECKPOINT_DIR`.
//!
//! **Reports.** While it runs, a program may print lines such as
//! `{"decsweep": "report", "step": 3, "val_accuracy": 0.81, "val_loss": 0.42}` ([`read_line`]):
//! each becomes a progress report of the trial (the step is the epoch), recorded in its curve
//! and judged by the study's pruner, which compares `val_accuracy` when the objective is
//! accuracy-like and maximised and `val_loss` otherwise. `train_loss` is recorded too; other
//! numbers are ignored. A line that says `"decsweep"` but is not a valid report is warned about,
//! naming the line, and skipped. Every other line is the program's own; the last of those is
//! its metrics, as before. `tools/decsweep_trial.py` writes these lines.
//!
//! **Checkpoints.** `{"decsweep": "checkpoint"}` says the program has just left a complete state
//! in `DECSWEEP_CHECKPOINT_DIR`: the worker uploads the directory at once (when it changed). A
//! program that has said so once is trusted to say it every time, and its directory is no longer
//! also uploaded on the `checkpoint_every` clock, which could catch it half written; after the
//! program exits for the worker's shutdown it is uploaded once more either way.

use std::collections::BTreeMap;

use decsweep_api::ParamValue;
use serde::{Deserialize, Serialize};

/// How a trial's parameters are handed to the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PassMode {
    /// `--name value` arguments after the program's own.
    Args,
    /// `DECSWEEP_<NAME>=value` environment variables.
    Env,
}

impl PassMode {
    pub const WORDS: &'static [&'static str] = &["args", "env"];
}

/// `[command]` of a spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandSpec {
    /// The program and its own leading arguments, e.g. `["python3", "train.py"]`.
    pub program: Vec<String>,
    pub pass: PassMode,
    /// Extra environment variables for every trial.
    pub env: BTreeMap<String, String>,
    /// Working directory on the worker, as written (it is the worker's filesystem, not the
    /// spec's, so it is not resolved against the spec file). `None`: the worker's own.
    pub workdir: Option<String>,
    /// Seconds between SIGTERM and SIGKILL when the program is stopped (`stop_grace`).
    #[serde(default = "default_stop_grace_s")]
    pub stop_grace_s: f64,
}

fn default_stop_grace_s() -> f64 {
    DEFAULT_STOP_GRACE_S
}

/// How long a stopped program has to save and exit before SIGKILL, unless the spec says.
pub const DEFAULT_STOP_GRACE_S: f64 = 3.0;
/// The most `stop_grace` may be: a worker being preempted rarely has longer itself.
pub const MAX_STOP_GRACE_S: f64 = 600.0;

/// Names decsweep sets itself, so a parameter may not take them.
pub const RESERVED_NAMES: &[&str] = &["seed", "trial_key", "config_id"];

/// What a worker executes for one trial.
#[derive(Clone, Debug, PartialEq)]
pub struct Invocation {
    /// Program followed by its arguments.
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub stop_grace_s: f64,
}

/// The environment variable carrying parameter `name` in `env` mode.
pub fn env_var(name: &str) -> String {
    format!("DECSWEEP_{}", name.to_ascii_uppercase())
}

impl CommandSpec {
    /// The command line and environment of one trial.
    pub fn invocation(
        &self,
        params: &BTreeMap<String, ParamValue>,
        seed: u64,
        trial_key: &str,
        config_id: &str,
    ) -> Invocation {
        let mut argv = self.program.clone();
        let mut env = self.env.clone();
        match self.pass {
            PassMode::Args => {
                for (name, value) in params {
                    argv.push(format!("--{name}"));
                    argv.push(value.to_string());
                }
                argv.push("--seed".into());
                argv.push(seed.to_string());
            }
            PassMode::Env => {
                for (name, value) in params {
                    env.insert(env_var(name), value.to_string());
                }
            }
        }
        let as_json: serde_json::Map<String, serde_json::Value> = params
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_value(v).expect("a parameter value is JSON")))
            .collect();
        env.insert("DECSWEEP_PARAMS".into(), serde_json::Value::Object(as_json).to_string());
        env.insert("DECSWEEP_SEED".into(), seed.to_string());
        env.insert("DECSWEEP_TRIAL_KEY".into(), trial_key.into());
        env.insert("DECSWEEP_CONFIG_ID".into(), config_id.into());
        Invocation { argv, env, workdir: self.workdir.clone(), stop_grace_s: self.stop_grace_s }
    }
}

/// Whether `name` can be a parameter of a command: it must survive being an argument flag and,
/// in `env` mode, an environment variable name.
pub(crate) fn valid_param_name(name: &str, pass: PassMode) -> bool {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (c == '-' && pass == PassMode::Args));
    first_ok && rest_ok
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricsError {
    #[error("the program printed nothing on stdout; expected its last line to be a JSON object of metrics")]
    NoOutput,
    #[error("the last line of stdout is not a JSON object of metrics: {line}")]
    NotAnObject { line: String },
}

/// One step a program reported (`{"decsweep": "report", "step": N, ...}`).
#[derive(Clone, Debug, PartialEq)]
pub struct StepReport {
    pub step: u32,
    /// `steps`, if the program said how many it will run.
    pub steps: Option<u32>,
    pub val_accuracy: Option<f64>,
    pub val_loss: Option<f64>,
    pub train_loss: Option<f64>,
}

/// What one line of a program's stdout is to decsweep.
#[derive(Clone, Debug, PartialEq)]
pub enum ProgramLine {
    Report(StepReport),
    /// The program has just saved a complete state in its checkpoint directory.
    Checkpoint,
    /// Addressed to decsweep (it has a `"decsweep"` key) but not a valid report: why.
    Malformed(String),
    /// The program's own output (its last such line holds its metrics).
    Own,
}

/// Reads one line of a program's stdout (see the module docs for the protocol).
pub fn read_line(line: &str) -> ProgramLine {
    let trimmed = line.trim();
    if !trimmed.starts_with('{') || !trimmed.contains("\"decsweep\"") {
        return ProgramLine::Own;
    }
    let Ok(serde_json::Value::Object(o)) = serde_json::from_str::<serde_json::Value>(trimmed) else {
        return ProgramLine::Own;
    };
    let Some(kind) = o.get("decsweep") else { return ProgramLine::Own };
    if kind == "checkpoint" {
        return ProgramLine::Checkpoint;
    }
    if kind != "report" {
        return ProgramLine::Malformed(format!(
            "unknown \"decsweep\": {kind} (the kinds are \"report\" and \"checkpoint\")"
        ));
    }
    let count = |key: &str| -> Result<Option<u32>, String> {
        match o.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| format!("`{key}` must be a whole number ≥ 0, found {v}")),
        }
    };
    let number = |key: &str| -> Result<Option<f64>, String> {
        match o.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| format!("`{key}` must be a finite number, found {v}")),
        }
    };
    let report = (|| -> Result<StepReport, String> {
        let step = count("step")?.ok_or("a report needs `step`, a whole number ≥ 0")?;
        Ok(StepReport {
            step,
            steps: count("steps")?,
            val_accuracy: number("val_accuracy")?,
            val_loss: number("val_loss")?,
            train_loss: number("train_loss")?,
        })
    })();
    match report {
        Ok(r) => ProgramLine::Report(r),
        Err(why) => ProgramLine::Malformed(why),
    }
}

/// Reads the metrics from a command's stdout: its last non-blank line, a JSON object.
/// Numeric entries are kept; others (strings, nested objects) are skipped, as programs often
/// print a run name or a config beside their numbers.
pub fn parse_metrics(stdout: &str) -> Result<BTreeMap<String, f64>, MetricsError> {
    let line = stdout.lines().rev().map(str::trim).find(|l| !l.is_empty()).ok_or(MetricsError::NoOutput)?;
    let shorten = || line.chars().take(200).collect::<String>();
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|_| MetricsError::NotAnObject { line: shorten() })?;
    let object = value.as_object().ok_or_else(|| MetricsError::NotAnObject { line: shorten() })?;
    Ok(object.iter().filter_map(|(k, v)| v.as_f64().map(|x| (k.clone(), x))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(pass: PassMode) -> CommandSpec {
        CommandSpec {
            program: vec!["python3".into(), "train.py".into()],
            pass,
            env: BTreeMap::from([("OMP_NUM_THREADS".into(), "1".into())]),
            workdir: None,
            stop_grace_s: DEFAULT_STOP_GRACE_S,
        }
    }

    fn params() -> BTreeMap<String, ParamValue> {
        BTreeMap::from([("lr".into(), ParamValue::Float(1e-3)), ("layers".into(), ParamValue::Int(2))])
    }

    #[test]
    fn report_lines_are_read_and_bad_ones_say_why() {
        let r = read_line(r#"{"decsweep": "report", "step": 3, "val_accuracy": 0.81, "steps": 20, "other": 1}"#);
        let want = StepReport { step: 3, steps: Some(20), val_accuracy: Some(0.81), val_loss: None, train_loss: None };
        assert_eq!(r, ProgramLine::Report(want));
        assert_eq!(read_line("epoch 3 done"), ProgramLine::Own);
        assert_eq!(read_line(r#"{"accuracy": 0.9}"#), ProgramLine::Own, "metrics are the program's own");
        let bad = |line: &str, why: &str| match read_line(line) {
            ProgramLine::Malformed(w) => assert!(w.contains(why), "{line}: {w}"),
            other => panic!("{line}: {other:?}"),
        };
        bad(r#"{"decsweep": "report", "val_loss": 1}"#, "needs `step`");
        bad(r#"{"decsweep": "report", "step": -1}"#, "`step` must be a whole number");
        bad(r#"{"decsweep": "report", "step": 1, "val_loss": "low"}"#, "`val_loss` must be a finite number");
        bad(r#"{"decsweep": "progress", "step": 1}"#, "unknown");
        assert_eq!(read_line(r#"{"decsweep": "checkpoint"}"#), ProgramLine::Checkpoint);
    }

    #[test]
    fn args_mode_appends_flags_in_name_order_then_the_seed() {
        let inv = spec(PassMode::Args).invocation(&params(), 4, "tk", "cid");
        assert_eq!(inv.argv, ["python3", "train.py", "--layers", "2", "--lr", "0.001", "--seed", "4"]);
        assert_eq!(inv.env["DECSWEEP_SEED"], "4");
        assert_eq!(inv.env["DECSWEEP_PARAMS"], r#"{"layers":2,"lr":0.001}"#);
        assert_eq!(inv.env["DECSWEEP_TRIAL_KEY"], "tk");
        assert_eq!(inv.env["OMP_NUM_THREADS"], "1");
        assert!(!inv.env.contains_key("DECSWEEP_LR"));
    }

    #[test]
    fn env_mode_sets_upper_case_variables() {
        let inv = spec(PassMode::Env).invocation(&params(), 4, "tk", "cid");
        assert_eq!(inv.argv, ["python3", "train.py"]);
        assert_eq!(inv.env["DECSWEEP_LR"], "0.001");
        assert_eq!(inv.env["DECSWEEP_LAYERS"], "2");
        assert_eq!(inv.env["DECSWEEP_CONFIG_ID"], "cid");
    }

    #[test]
    fn metrics_come_from_the_last_line() {
        let out = "epoch 1\n{\"not\": \"this\"}\n{\"accuracy\": 0.75, \"f1\": 0.7, \"run\": \"x\"}\n\n";
        let m = parse_metrics(out).unwrap();
        assert_eq!(m, BTreeMap::from([("accuracy".into(), 0.75), ("f1".into(), 0.7)]));
        assert_eq!(parse_metrics("  \n"), Err(MetricsError::NoOutput));
        assert!(matches!(parse_metrics("{\"a\": 1}\ndone"), Err(MetricsError::NotAnObject { .. })));
        assert!(matches!(parse_metrics("[1, 2]"), Err(MetricsError::NotAnObject { .. })));
    }

    #[test]
    fn parameter_names_must_survive_flags_and_environment() {
        assert!(valid_param_name("learning-rate", PassMode::Args));
        assert!(!valid_param_name("learning-rate", PassMode::Env));
        assert!(valid_param_name("_x1", PassMode::Env));
        assert!(!valid_param_name("1x", PassMode::Args));
        assert!(!valid_param_name("", PassMode::Args));
        assert!(!valid_param_name("a b", PassMode::Args));
    }
}
