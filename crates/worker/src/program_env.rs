//! What a trial's child process (a study's program, or `decsweep-worker train`) inherits of the
//! worker's environment.
//!
//! Anyone who can submit a study chooses the program a worker runs, so the worker's own secrets
//! must not be handed to it: the coordinator's token lets its holder run programs on every
//! worker. The rule, stated in `--help`:
//!
//! - every `DECSWEEP_*` variable of the worker (its token, token file, read token, coordinator,
//!   ...) is withheld; the four token variables cannot be passed on at all;
//! - so is every variable whose name looks like a credential (see [`looks_like_credential`]:
//!   `*TOKEN`, `*SECRET`, `*PASSWORD`, `*API_KEY`, `*ACCESS_KEY`, `*CREDENTIALS`, ... and the same
//!   with `_FILE`, plus `SSH_AUTH_SOCK`, `CREDENTIALS_DIRECTORY`, `KRB5CCNAME`), unless the worker's owner passes it on with
//!   `--program-env-keep NAME`;
//! - `--program-env-drop NAME` withholds more;
//! - what the job itself sets (the spec's `[command] env`, the parameters, the seed,
//!   `DECSWEEP_CHECKPOINT_DIR`) is applied afterwards and always reaches the program.
//!
//! This is not a sandbox: a program runs as the worker's user and can read that user's files
//! (a `--token-file` included). [`hide_worker_memory`] at least keeps it out of the worker's
//! `/proc/<pid>/environ` and memory; `--allow-program` and a dedicated unprivileged user are what
//! bound a hostile study.

use std::ffi::{OsStr, OsString};
use std::process::Command;

/// The variables that carry decsweep's tokens: never passed to a program, whatever the flags.
pub const TOKEN_VARIABLES: [&str; 4] =
    ["DECSWEEP_TOKEN", "DECSWEEP_TOKEN_FILE", "DECSWEEP_READ_TOKEN", "DECSWEEP_READ_TOKEN_FILE"];

/// Name endings (after an optional `_FILE`, the convention for a secret mounted as a file) of
/// variables that hold a credential.
const CREDENTIAL_ENDINGS: [&str; 11] = [
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "API_KEY",
    "APIKEY",
    "ACCESS_KEY",
    "SECRET_KEY",
    "PRIVATE_KEY",
    "CREDENTIAL",
    "CREDENTIALS",
];

/// Credentials that are not values but ways to reach one: the ssh agent (it signs with the
/// user's keys), systemd's folder of a service's credentials, a Kerberos ticket cache.
const CREDENTIAL_NAMES: [&str; 3] = ["SSH_AUTH_SOCK", "CREDENTIALS_DIRECTORY", "KRB5CCNAME"];

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ProgramEnvArgs {
    /// Pass this variable of the worker's environment on to trial programs although its name
    /// looks like a credential (e.g. `HF_TOKEN`, `WANDB_API_KEY`); repeatable, or
    /// comma-separated in DECSWEEP_PROGRAM_ENV_KEEP. decsweep's token variables cannot be kept.
    #[arg(long = "program-env-keep", value_name = "NAME", env = "DECSWEEP_PROGRAM_ENV_KEEP", value_delimiter = ',')]
    pub keep: Vec<String>,
    /// Withhold this variable of the worker's environment from trial programs too; repeatable,
    /// or comma-separated in DECSWEEP_PROGRAM_ENV_DROP.
    #[arg(long = "program-env-drop", value_name = "NAME", env = "DECSWEEP_PROGRAM_ENV_DROP", value_delimiter = ',')]
    pub drop: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProgramEnvError {
    #[error(
        "--program-env-keep {0}: decsweep's token variables ({tokens}) are never passed to trial programs \
         (the token lets its holder run programs on every worker)",
        tokens = TOKEN_VARIABLES.join(", ")
    )]
    KeepsToken(String),
    #[error("--program-env-keep/--program-env-drop: `{0}` is not a variable name (empty, or holds `=` or NUL)")]
    BadName(String),
}

/// The worker's variables withheld from every child it starts, decided once at start-up.
#[derive(Debug, Clone, Default)]
pub struct ProgramEnv {
    withheld: Vec<OsString>,
}

impl ProgramEnv {
    /// Applies the rule (module docs) to `vars`, the worker's environment.
    pub fn new(
        args: &ProgramEnvArgs,
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<Self, ProgramEnvError> {
        for name in args.keep.iter().chain(&args.drop) {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(ProgramEnvError::BadName(name.clone()));
            }
        }
        if let Some(token) = args.keep.iter().find(|k| TOKEN_VARIABLES.iter().any(|t| t.eq_ignore_ascii_case(k))) {
            return Err(ProgramEnvError::KeepsToken(token.clone()));
        }
        let withheld = vars
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| {
                let text = name.to_string_lossy();
                let named = |list: &[String]| list.iter().any(|n| n.as_str() == text);
                let secret_looking = is_decsweep_own(&text) || looks_like_credential(&text);
                secret_looking && !named(&args.keep)
                    || named(&args.drop)
                    || TOKEN_VARIABLES.iter().any(|t| t.eq_ignore_ascii_case(&text))
            })
            .collect();
        Ok(ProgramEnv { withheld })
    }

    /// The names withheld, for the start-up log (never the values).
    pub fn withheld(&self) -> &[OsString] {
        &self.withheld
    }

    /// The value of `name` in the environment of a child whose job sets `job`: the job's value
    /// when it sets one, else the worker's (`worker`) unless withheld.
    pub fn effective(
        &self,
        job: &std::collections::BTreeMap<String, String>,
        worker: impl Fn(&str) -> Option<OsString>,
        name: &str,
    ) -> Option<OsString> {
        if let Some(value) = job.get(name) {
            return Some(OsString::from(value));
        }
        if self.withheld.iter().any(|w| w.as_os_str() == OsStr::new(name)) {
            return None;
        }
        worker(name)
    }

    /// Removes the withheld variables from what `cmd`'s child inherits. Call it before setting
    /// the job's own variables, which then win.
    pub fn apply(&self, cmd: &mut Command) {
        for name in &self.withheld {
            cmd.env_remove(name);
        }
    }
}

/// A variable of decsweep's own namespace (its configuration and its secrets).
fn is_decsweep_own(name: &str) -> bool {
    name.get(..9).is_some_and(|p| p.eq_ignore_ascii_case("DECSWEEP_"))
}

/// Whether `name` (case-insensitive) names a credential: it ends, before an optional `_FILE`,
/// in one of [`CREDENTIAL_ENDINGS`], or it is one of [`CREDENTIAL_NAMES`].
pub fn looks_like_credential(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let stem = upper.strip_suffix("_FILE").unwrap_or(&upper);
    CREDENTIAL_ENDINGS.iter().any(|end| stem.ends_with(end)) || CREDENTIAL_NAMES.contains(&upper.as_str())
}

/// Makes the worker non-dumpable (`PR_SET_DUMPABLE` 0, as ssh-agent does): processes of the
/// same user, its trial programs included, can then neither read its `/proc/<pid>/environ` or
/// memory nor ptrace it, so a token given in `DECSWEEP_TOKEN` stays out of their reach. The
/// programs themselves are unaffected (`execve` makes them dumpable again); the worker no longer
/// leaves core dumps.
pub fn hide_worker_memory() -> std::io::Result<()> {
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `names`, comma-separated, for a log line.
pub fn list(names: &[OsString]) -> String {
    names.iter().map(|n| n.to_string_lossy().into_owned()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(names: &[&str]) -> Vec<(OsString, OsString)> {
        names.iter().map(|n| (OsString::from(n), OsString::from("v"))).collect()
    }

    fn withheld(args: &ProgramEnvArgs, names: &[&str]) -> Vec<String> {
        let env = ProgramEnv::new(args, vars(names)).unwrap();
        env.withheld().iter().map(|n| n.to_string_lossy().into_owned()).collect()
    }

    const WORKER_ENV: [&str; 16] = [
        "PATH",
        "HOME",
        "LD_LIBRARY_PATH",
        "CUDA_VISIBLE_DEVICES",
        "TOKENIZERS_PARALLELISM",
        "DECSWEEP_TOKEN",
        "DECSWEEP_TOKEN_FILE",
        "DECSWEEP_READ_TOKEN",
        "DECSWEEP_READ_TOKEN_FILE",
        "DECSWEEP_COORDINATOR",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "HF_TOKEN",
        "WANDB_API_KEY",
        "POSTGRES_PASSWORD_FILE",
        "SSH_AUTH_SOCK",
    ];

    #[test]
    fn decsweep_variables_and_credentials_are_withheld_and_the_rest_is_inherited() {
        let got = withheld(&ProgramEnvArgs::default(), &WORKER_ENV);
        assert_eq!(
            got,
            [
                "DECSWEEP_TOKEN",
                "DECSWEEP_TOKEN_FILE",
                "DECSWEEP_READ_TOKEN",
                "DECSWEEP_READ_TOKEN_FILE",
                "DECSWEEP_COORDINATOR",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
                "HF_TOKEN",
                "WANDB_API_KEY",
                "POSTGRES_PASSWORD_FILE",
                "SSH_AUTH_SOCK",
            ]
        );
    }

    #[test]
    fn the_owner_keeps_or_drops_by_name_but_never_keeps_a_token_variable() {
        let args = ProgramEnvArgs { keep: vec!["HF_TOKEN".into()], drop: vec!["HOME".into()] };
        let got = withheld(&args, &WORKER_ENV);
        assert!(!got.contains(&"HF_TOKEN".to_string()), "{got:?}");
        assert!(got.contains(&"HOME".to_string()) && got.contains(&"WANDB_API_KEY".to_string()), "{got:?}");
        for token in ["DECSWEEP_TOKEN", "decsweep_read_token_file"] {
            let args = ProgramEnvArgs { keep: vec![token.into()], drop: vec![] };
            let err = ProgramEnv::new(&args, vars(&WORKER_ENV)).unwrap_err();
            assert_eq!(err, ProgramEnvError::KeepsToken(token.into()));
            assert!(err.to_string().contains("never passed to trial programs"), "{err}");
        }
        let args = ProgramEnvArgs { keep: vec![], drop: vec!["A=B".into()] };
        assert_eq!(ProgramEnv::new(&args, vars(&[])).unwrap_err(), ProgramEnvError::BadName("A=B".into()));
    }

    #[test]
    fn credential_names_are_recognised_by_their_ending_in_any_case() {
        for name in [
            "GITHUB_TOKEN",
            "gh_token",
            "AZURE_CLIENT_SECRET",
            "PGPASSWORD",
            "OPENAI_API_KEY",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "VAULT_TOKEN_FILE",
            "MY_PRIVATE_KEY",
        ] {
            assert!(looks_like_credential(name), "{name}");
        }
        for name in ["PATH", "TOKENIZERS_PARALLELISM", "AWS_REGION", "HF_HOME", "KEY", "FILE", "SECRETS_DIR"] {
            assert!(!looks_like_credential(name), "{name}");
        }
    }

    #[test]
    fn the_child_inherits_nothing_withheld_and_gets_what_the_job_sets() {
        let env = ProgramEnv::new(&ProgramEnvArgs::default(), vars(&["DECSWEEP_TOKEN", "HF_TOKEN"])).unwrap();
        let mut cmd = Command::new("env");
        env.apply(&mut cmd);
        cmd.env("HF_TOKEN", "from-the-spec");
        let set: Vec<(&OsStr, Option<&OsStr>)> = cmd.get_envs().collect();
        assert!(set.contains(&(OsStr::new("DECSWEEP_TOKEN"), None)), "{set:?}");
        assert!(set.contains(&(OsStr::new("HF_TOKEN"), Some(OsStr::new("from-the-spec")))), "{set:?}");
        let job = std::collections::BTreeMap::from([("PATH".to_string(), "/job".to_string())]);
        let worker = |name: &str| Some(OsString::from(format!("worker-{name}")));
        assert_eq!(env.effective(&job, worker, "PATH"), Some("/job".into()));
        assert_eq!(env.effective(&job, worker, "HF_TOKEN"), None);
        assert_eq!(env.effective(&job, worker, "HOME"), Some("worker-HOME".into()));
    }

    #[test]
    fn a_hidden_worker_is_not_dumpable() {
        hide_worker_memory().unwrap();
        // SAFETY: PR_GET_DUMPABLE takes no pointer.
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) }, 0);
    }
}
