//! `--allow-program PREFIX`: on a shared cluster, the worker's owner chooses which programs a
//! study may run on it. Without the flag every program runs, as before.
//!
//! A `command` trial is allowed when its program (`argv[0]`) lies under one of the prefixes:
//!
//! - a bare name (`python3`) is looked up on the PATH the program would get (the worker's, as the
//!   job may not set PATH under this flag), a relative path is taken from the job's workdir;
//! - the prefixes and the program are compared after resolving `..` and symlinks, by whole path
//!   components (`/opt/lab` allows `/opt/lab/x`, not `/opt/lab-x`). The program is allowed when
//!   either its fully resolved path, or its directory resolved with its own name kept (a symlink
//!   placed in an allowed directory, such as a virtualenv's `bin/python`) lies under a prefix;
//! - the job may not set variables that make an allowed program load other code ([`CODE_LOADERS`]:
//!   the dynamic loader's, shells', Python's, Perl's, Ruby's, Node's, the JVM's, PATH and HOME);
//! - what passes is executed by the path that was checked (`argv[0]` unchanged), so nothing is
//!   looked up twice.
//!
//! A refused trial never starts: it is failed as not retryable (a permanent failure, so the
//! coordinator does not hand it back to this worker until the study's retries run out), with a
//! reason that names the program, what it resolved to and the rule. Built-in pipelines (the
//! worker's own `train`) are always allowed.
//!
//! The flag bounds which program starts, not what it does with its arguments: allowing a shell or
//! an interpreter (`/bin`, `/usr/bin/python3`) allows everything (`sh -c`, `python3 -c`). Allow the
//! directories of your own entry points instead.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::program_env::ProgramEnv;

/// Variables a job may not set under `--allow-program`: each makes a common runtime load code
/// that is not the allowed program's (a library, a startup file, a module path, an option string).
pub const CODE_LOADERS: [&str; 25] = [
    "PATH",
    "HOME",
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
    "PYTHONWARNINGS",
    "PYTHONEXECUTABLE",
    "BROWSER",
    "PERL5OPT",
    "PERL5LIB",
    "PERLLIB",
    "RUBYOPT",
    "RUBYLIB",
    "NODE_OPTIONS",
    "NODE_PATH",
    "JAVA_TOOL_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "GCONV_PATH",
];

/// Name prefixes with the same effect: the dynamic loader's (`LD_PRELOAD`, ...) and exported
/// bash functions.
const CODE_LOADER_PREFIXES: [&str; 4] = ["LD_", "DYLD_", "BASH_FUNC_", "_JAVA_"];

#[derive(clap::Args, Debug, Clone, Default)]
pub struct AllowArgs {
    /// Run only `command` trials whose program lies under PREFIX (a directory or one file);
    /// repeatable, or `:`-separated in DECSWEEP_ALLOW_PROGRAM. Paths are compared after
    /// resolving `..` and symlinks; a bare name is looked up on PATH. Other programs are refused
    /// without running (the trial fails, not retried), and so are jobs that set variables that
    /// make a program load other code (LD_*, PYTHONPATH, PATH, HOME, ...). Built-in pipelines
    /// always run. Allowing a shell or an interpreter allows any code (`sh -c`, `python3 -c`).
    #[arg(long = "allow-program", value_name = "PREFIX", env = "DECSWEEP_ALLOW_PROGRAM", value_delimiter = ':')]
    pub allow_program: Vec<PathBuf>,
}

/// A prefix that cannot be used; the worker does not start.
#[derive(Debug, thiserror::Error)]
pub enum AllowError {
    #[error("--allow-program {}: {source} (a prefix must exist)", path.display())]
    Unresolvable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--allow-program: an empty prefix (`::` or a trailing `:` in DECSWEEP_ALLOW_PROGRAM?)")]
    Empty,
}

/// Why a program may not run here: the trial's failure reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal(pub String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The resolved `--allow-program` prefixes.
#[derive(Debug, Clone)]
pub struct AllowedPrograms {
    prefixes: Vec<PathBuf>,
}

impl AllowedPrograms {
    /// `None` without the flag: every program is allowed.
    pub fn new(args: &AllowArgs) -> Result<Option<Self>, AllowError> {
        if args.allow_program.is_empty() {
            return Ok(None);
        }
        let mut prefixes = Vec::new();
        for given in &args.allow_program {
            if given.as_os_str().is_empty() {
                return Err(AllowError::Empty);
            }
            let resolved = std::fs::canonicalize(given)
                .map_err(|source| AllowError::Unresolvable { path: given.clone(), source })?;
            prefixes.push(resolved);
        }
        Ok(Some(AllowedPrograms { prefixes }))
    }

    /// The resolved prefixes, for logs and refusals.
    pub fn describe(&self) -> String {
        self.prefixes.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    }

    /// The path to execute `program` by when this worker allows it with the job's variables
    /// `job_env`; `path` is the PATH the program would inherit from the worker and `cwd` the
    /// directory it would start in.
    pub fn check(
        &self,
        program: &str,
        job_env: &BTreeMap<String, String>,
        path: Option<&OsStr>,
        cwd: &Path,
    ) -> Result<PathBuf, Refusal> {
        let rule = format!("this worker runs only programs under --allow-program {}", self.describe());
        if let Some(name) = job_env.keys().find(|name| is_code_loader(name)) {
            return Err(Refusal(format!(
                "refused without running `{program}`: the job sets {name}, which can make a program load other \
                 code; under --allow-program a job may set none of {}, {}*",
                CODE_LOADERS.join(", "),
                CODE_LOADER_PREFIXES.join("*, ")
            )));
        }
        let located =
            locate(program, path, cwd).map_err(|why| Refusal(format!("refused `{program}`: {why}; {rule}")))?;
        let unresolvable = |e: std::io::Error| {
            Refusal(format!("refused `{program}`: cannot resolve {}: {e}; {rule}", located.display()))
        };
        let resolved = std::fs::canonicalize(&located).map_err(unresolvable)?;
        // The directory resolved, the name kept: a symlink that the owner of an allowed
        // directory placed there.
        let in_place = match (located.parent(), located.file_name()) {
            (Some(dir), Some(name)) => std::fs::canonicalize(dir).map_err(unresolvable)?.join(name),
            _ => resolved.clone(),
        };
        let under_a_prefix = |p: &Path| self.prefixes.iter().any(|prefix| p.starts_with(prefix));
        if under_a_prefix(&in_place) {
            Ok(in_place)
        } else if under_a_prefix(&resolved) {
            Ok(resolved)
        } else {
            let through =
                if in_place == resolved { String::new() } else { format!(" (through {})", in_place.display()) };
            Err(Refusal(format!(
                "refused without running `{program}`: it resolves to {}{through}, and {rule}",
                resolved.display()
            )))
        }
    }
}

/// The path to start `program` by: as given without `--allow-program` (`allowed` is `None`), else
/// the checked path, or why it may not run. `inherited` is what the program gets of the worker's
/// environment (its PATH), `job_env` what the job sets, `workdir` where it starts (relative to the
/// worker's directory).
pub fn executable(
    allowed: Option<&AllowedPrograms>,
    inherited: &ProgramEnv,
    program: &str,
    job_env: &BTreeMap<String, String>,
    workdir: Option<&str>,
) -> Result<PathBuf, Refusal> {
    let Some(allowed) = allowed else { return Ok(PathBuf::from(program)) };
    let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let cwd = workdir.map_or_else(|| here.clone(), |dir| here.join(dir));
    let path = inherited.effective(job_env, |name| std::env::var_os(name), "PATH");
    allowed.check(program, job_env, path.as_deref(), &cwd)
}

fn is_code_loader(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    CODE_LOADERS.contains(&upper.as_str()) || CODE_LOADER_PREFIXES.iter().any(|p| upper.starts_with(p))
}

/// Where `program` is, as `execvp` would find it: a name with a `/` relative to `cwd`, a bare
/// name in the first PATH directory that holds an executable file of that name.
fn locate(program: &str, path: Option<&OsStr>, cwd: &Path) -> Result<PathBuf, String> {
    if program.is_empty() {
        return Err("the program's name is empty".into());
    }
    if program.contains('/') {
        return Ok(cwd.join(program));
    }
    let path = path.ok_or("it is a bare name and the program gets no PATH")?;
    std::env::split_paths(path)
        // An empty PATH entry means the current directory.
        .map(|dir| cwd.join(if dir.as_os_str().is_empty() { Path::new(".") } else { &dir }).join(program))
        .find(|candidate| is_executable_file(candidate))
        .ok_or_else(|| format!("no executable file of that name on PATH ({})", path.to_string_lossy()))
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// `root/allowed/run.sh`, `root/allowed-not/run.sh`, `root/other/evil.sh`, executable.
    fn tree() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for file in ["allowed/run.sh", "allowed-not/run.sh", "other/evil.sh"] {
            let path = root.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        root
    }

    fn allowing(prefixes: &[PathBuf]) -> AllowedPrograms {
        AllowedPrograms::new(&AllowArgs { allow_program: prefixes.to_vec() }).unwrap().unwrap()
    }

    fn check(allow: &AllowedPrograms, program: &str, path: Option<&Path>, cwd: &Path) -> Result<PathBuf, Refusal> {
        allow.check(program, &BTreeMap::new(), path.map(Path::as_os_str), cwd)
    }

    #[test]
    fn no_flag_allows_everything_as_given() {
        assert!(AllowedPrograms::new(&AllowArgs::default()).unwrap().is_none());
        let any = executable(None, &ProgramEnv::default(), "sh", &BTreeMap::new(), None);
        assert_eq!(any, Ok(PathBuf::from("sh")));
    }

    #[test]
    fn programs_under_a_prefix_run_by_absolute_relative_or_bare_name() {
        let root = tree();
        let allowed = root.path().join("allowed");
        let allow = allowing(std::slice::from_ref(&allowed));
        let real = allowed.canonicalize().unwrap().join("run.sh");
        let abs = allowed.join("run.sh");
        assert_eq!(check(&allow, abs.to_str().unwrap(), None, Path::new("/")), Ok(real.clone()));
        assert_eq!(check(&allow, "./run.sh", None, &allowed), Ok(real.clone()));
        let path = std::env::join_paths([root.path().join("other"), allowed.clone()]).unwrap();
        assert_eq!(check(&allow, "run.sh", Some(Path::new(&path)), Path::new("/")), Ok(real));
        // The first match on PATH is what would run, and it is not allowed.
        let path = std::env::join_paths([root.path().join("allowed-not"), allowed]).unwrap();
        let err = check(&allow, "run.sh", Some(Path::new(&path)), Path::new("/")).unwrap_err();
        assert!(err.0.contains("allowed-not/run.sh") && err.0.contains("--allow-program"), "{err}");
    }

    #[test]
    fn dot_dot_sibling_prefixes_and_symlinked_directories_do_not_escape() {
        let root = tree();
        let allowed = root.path().join("allowed");
        let allow = allowing(std::slice::from_ref(&allowed));
        for program in [
            allowed.join("../other/evil.sh"),
            root.path().join("allowed-not/run.sh"),
            root.path().join("allowed/../allowed-not/run.sh"),
        ] {
            let err = check(&allow, program.to_str().unwrap(), None, Path::new("/")).unwrap_err();
            assert!(err.0.starts_with("refused without running"), "{err}");
            assert!(err.0.contains(&format!("--allow-program {}", allowed.canonicalize().unwrap().display())), "{err}");
        }
        // A directory symlink inside the allowed tree that leads out of it.
        symlink(root.path().join("other"), allowed.join("door")).unwrap();
        let err = check(&allow, allowed.join("door/evil.sh").to_str().unwrap(), None, Path::new("/")).unwrap_err();
        assert!(err.0.contains("other/evil.sh"), "names where it leads: {err}");
    }

    #[test]
    fn symlinks_are_judged_by_where_they_are_placed_or_where_they_lead() {
        let root = tree();
        let allowed = root.path().join("allowed");
        // A prefix given through a symlink is resolved too.
        symlink(&allowed, root.path().join("alias")).unwrap();
        let allow = allowing(&[root.path().join("alias")]);
        let real_dir = allowed.canonicalize().unwrap();
        assert_eq!(
            check(&allow, allowed.join("run.sh").to_str().unwrap(), None, Path::new("/")),
            Ok(real_dir.join("run.sh"))
        );
        // A link in the allowed directory (a virtualenv's bin/python) is the owner's choice.
        symlink(root.path().join("other/evil.sh"), allowed.join("python")).unwrap();
        assert_eq!(
            check(&allow, allowed.join("python").to_str().unwrap(), None, Path::new("/")),
            Ok(real_dir.join("python"))
        );
        // A link elsewhere that leads to an allowed file runs that file.
        symlink(allowed.join("run.sh"), root.path().join("other/to-run")).unwrap();
        assert_eq!(
            check(&allow, root.path().join("other/to-run").to_str().unwrap(), None, Path::new("/")),
            Ok(real_dir.join("run.sh"))
        );
    }

    #[test]
    fn a_prefix_may_name_one_file() {
        let root = tree();
        let allow = allowing(&[root.path().join("allowed/run.sh")]);
        assert!(check(&allow, root.path().join("allowed/run.sh").to_str().unwrap(), None, Path::new("/")).is_ok());
        let other = root.path().join("allowed/other.sh");
        std::fs::copy(root.path().join("allowed/run.sh"), &other).unwrap();
        assert!(check(&allow, other.to_str().unwrap(), None, Path::new("/")).is_err());
    }

    #[test]
    fn jobs_that_set_code_loading_variables_are_refused() {
        let root = tree();
        let allow = allowing(&[root.path().join("allowed")]);
        let program = root.path().join("allowed/run.sh");
        for name in ["LD_PRELOAD", "PYTHONPATH", "PATH", "BASH_FUNC_x%%", "node_options"] {
            let env = BTreeMap::from([(name.to_string(), "x".to_string())]);
            let err = allow.check(program.to_str().unwrap(), &env, None, Path::new("/")).unwrap_err();
            assert!(err.0.contains(&format!("the job sets {name}")) && err.0.contains("--allow-program"), "{err}");
        }
        let env = BTreeMap::from([("DECSWEEP_LR".to_string(), "0.1".into()), ("OMP_NUM_THREADS".into(), "1".into())]);
        assert!(allow.check(program.to_str().unwrap(), &env, None, Path::new("/")).is_ok());
    }

    #[test]
    fn missing_programs_and_prefixes_are_named() {
        let root = tree();
        let allow = allowing(&[root.path().join("allowed")]);
        let err = check(&allow, "no-such-program", Some(root.path()), Path::new("/")).unwrap_err();
        assert!(err.0.contains("`no-such-program`") && err.0.contains("on PATH"), "{err}");
        let err = check(&allow, "sh", None, Path::new("/")).unwrap_err();
        assert!(err.0.contains("no PATH"), "{err}");
        let missing = root.path().join("nope");
        let err = AllowedPrograms::new(&AllowArgs { allow_program: vec![missing.clone()] }).unwrap_err();
        assert!(err.to_string().contains(&missing.display().to_string()), "{err}");
        let err = AllowedPrograms::new(&AllowArgs { allow_program: vec![PathBuf::new()] }).unwrap_err();
        assert!(matches!(err, AllowError::Empty), "{err}");
    }
}
