//! The link flags of `crates/model/build.rs`, and what the trial manifest says about this build
//! (`crates/worker/src/manifest.rs`): the git revision of the source and the libtorch version.

#[path = "../model/build.rs"]
mod link;

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    link::main();
    // A commit, a checkout or a staged change moves these.
    for file in ["../../.git/HEAD", "../../.git/index"] {
        if Path::new(file).exists() {
            println!("cargo:rerun-if-changed={file}");
        }
    }
    let revision = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(rev) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{rev}-dirty")
            } else {
                rev
            }
        }
        None => "unknown".to_string(),
    };
    println!("cargo:rustc-env=DECSWEEP_GIT_REVISION={revision}");
    // torch/lib/../version.py of the wheel torch-sys built against: `__version__ = '2.11.0+cpu'`.
    let version = std::env::var_os("DEP_TCH_LIBTORCH_LIB")
        .and_then(|lib| std::fs::read_to_string(Path::new(&lib).join("../version.py")).ok())
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("__version__ = ").map(|v| v.trim_matches(|c| c == '\'' || c == '"').to_string())
            })
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=DECSWEEP_LIBTORCH_VERSION={version}");
}
