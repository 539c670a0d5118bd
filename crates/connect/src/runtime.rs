//! The per-user token file of a coordinator that was given no token, so no coordinator is ever
//! open to the other users of a machine, while its own user needs to type nothing:
//!
//! - `decsweep serve` on loopback without `--token`/`--token-file` generates a token
//!   ([`generate_token`], 256 random bits) and keeps it in [`runtime_dir`]`/<ip>-<port>.token`
//!   (mode 0600; the folder 0700). A coordinator restarted on the same address reuses the token
//!   of a file it owns ([`serve_token`]), so running agents keep working; the file is therefore
//!   kept at shutdown.
//! - `decsweep run` writes a fresh token there for its in-process coordinator ([`run_token`]),
//!   hands its workers the file's path, and removes the file when it ends.
//! - A client given no token for a loopback URL reads the file of that address
//!   ([`token_for_url`]), when it exists and belongs to the client's user.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::RngCore;

use crate::{read_token_file, ConnectError, MIN_TOKEN_BYTES};

/// Where the per-user token files live: `$DECSWEEP_RUNTIME_DIR`, else
/// `$XDG_RUNTIME_DIR/decsweep`, else `~/.local/state/decsweep`.
pub fn runtime_dir() -> Result<PathBuf, ConnectError> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var("DECSWEEP_RUNTIME_DIR") {
        return Ok(dir);
    }
    if let Some(dir) = var("XDG_RUNTIME_DIR") {
        return Ok(dir.join("decsweep"));
    }
    match var("HOME") {
        Some(home) => Ok(home.join(".local/state/decsweep")),
        None => Err(ConnectError::RuntimeDir {
            path: PathBuf::from("~/.local/state/decsweep"),
            reason: "neither DECSWEEP_RUNTIME_DIR, XDG_RUNTIME_DIR nor HOME is set".into(),
        }),
    }
}

/// The token file's name for a listening address: `127.0.0.1-8320.token`, `__1-8320.token`.
pub fn token_file_name(addr: SocketAddr) -> String {
    format!("{}-{}.token", addr.ip().to_canonical().to_string().replace(':', "_"), addr.port())
}

/// A token generated for a coordinator, and the file that holds it.
#[derive(Debug, Clone)]
pub struct RuntimeToken {
    pub token: String,
    pub path: PathBuf,
    /// The file existed (a restart): its token was kept.
    pub reused: bool,
}

/// 256 random bits from the operating system's generator, as 64 hex digits.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `decsweep serve`'s token for `addr`: the one in its runtime file when that file is this
/// user's and holds a usable token, else a new one written there.
pub fn serve_token(addr: SocketAddr) -> Result<RuntimeToken, ConnectError> {
    let path = runtime_dir_ready()?.join(token_file_name(addr));
    match fs::symlink_metadata(&path) {
        Ok(meta) => {
            own_regular_file(&path, &meta)?;
            let kept = read_token_file(&path).ok().filter(|t| t.len() >= MIN_TOKEN_BYTES);
            if let Some(token) = kept {
                if meta.mode() & 0o077 != 0 {
                    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                        .map_err(|e| dir_error(&path, format!("cannot make it private: {e}")))?;
                }
                return Ok(RuntimeToken { token, path, reused: true });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ConnectError::TokenUnreadable { path, source: e }),
    }
    write_new(path)
}

/// `decsweep run`'s token for `addr`: always a new one, written over any file left there.
pub fn run_token(addr: SocketAddr) -> Result<RuntimeToken, ConnectError> {
    write_new(runtime_dir_ready()?.join(token_file_name(addr)))
}

/// The token in the runtime file of a loopback `url` (`localhost` tries 127.0.0.1, then ::1),
/// when such a file exists and belongs to this user; `None` otherwise.
pub fn token_for_url(url: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    let port = url.port_or_known_default()?;
    let host = url.host_str()?;
    let ips: Vec<IpAddr> = if host.eq_ignore_ascii_case("localhost") {
        vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()]
    } else {
        vec![host.trim_start_matches('[').trim_end_matches(']').parse().ok()?]
    };
    let dir = runtime_dir().ok()?;
    ips.into_iter().filter(|ip| ip.to_canonical().is_loopback()).find_map(|ip| {
        let path = dir.join(token_file_name(SocketAddr::new(ip, port)));
        let meta = fs::symlink_metadata(&path).ok()?;
        own_regular_file(&path, &meta).ok()?;
        read_token_file(&path).ok()
    })
}

fn dir_error(path: &Path, reason: String) -> ConnectError {
    ConnectError::RuntimeDir { path: path.to_path_buf(), reason }
}

/// This process's effective user id: whose files count as our own.
pub(crate) fn own_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// A file in the runtime folder is trusted only when it is a plain file of this user's.
fn own_regular_file(path: &Path, meta: &fs::Metadata) -> Result<(), ConnectError> {
    if !meta.file_type().is_file() || meta.uid() != own_uid() {
        return Err(dir_error(path, "is not a plain file owned by you; remove it".into()));
    }
    Ok(())
}

/// The runtime folder, created 0700 if missing; refused unless it is this user's own folder,
/// and made private (0700) if group or others could enter it.
fn runtime_dir_ready() -> Result<PathBuf, ConnectError> {
    let dir = runtime_dir()?;
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).map_err(|e| dir_error(parent, format!("cannot create it: {e}")))?;
    }
    match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(dir_error(&dir, format!("cannot create it: {e}"))),
    }
    let meta = fs::symlink_metadata(&dir).map_err(|e| dir_error(&dir, format!("cannot read it: {e}")))?;
    if !meta.file_type().is_dir() || meta.uid() != own_uid() {
        return Err(dir_error(&dir, "is not a folder owned by you (set DECSWEEP_RUNTIME_DIR to one)".into()));
    }
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| dir_error(&dir, format!("cannot make it private (chmod 700): {e}")))?;
    }
    Ok(dir)
}

/// Writes a new token to `path` (0600 from its creation, then renamed into place).
fn write_new(path: PathBuf) -> Result<RuntimeToken, ConnectError> {
    let token = generate_token();
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let _ = fs::remove_file(&temp);
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
        f.write_all(format!("{token}\n").as_bytes())?;
        f.sync_all()?;
        fs::rename(&temp, &path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&temp);
        dir_error(&path, format!("cannot write the token file: {e}"))
    })?;
    Ok(RuntimeToken { token, path, reused: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each test names its own folder through DECSWEEP_RUNTIME_DIR; they run one at a time.
    static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn with_runtime_dir<T>(f: impl FnOnce(&Path) -> T) -> T {
        let _guard = ENV.lock().unwrap_or_else(|p| p.into_inner());
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("rt");
        std::env::set_var("DECSWEEP_RUNTIME_DIR", &dir);
        let out = f(&dir);
        std::env::remove_var("DECSWEEP_RUNTIME_DIR");
        out
    }

    #[test]
    fn serve_writes_a_private_file_and_a_restart_reuses_it() {
        with_runtime_dir(|dir| {
            let addr: SocketAddr = "127.0.0.1:8320".parse().unwrap();
            let first = serve_token(addr).unwrap();
            assert!(!first.reused);
            assert_eq!(first.token.len(), 64);
            assert_eq!(first.path, dir.join("127.0.0.1-8320.token"));
            assert_eq!(fs::metadata(&first.path).unwrap().mode() & 0o777, 0o600);
            assert_eq!(fs::metadata(dir).unwrap().mode() & 0o777, 0o700);
            let again = serve_token(addr).unwrap();
            assert!(again.reused);
            assert_eq!(again.token, first.token);
            assert_eq!(token_for_url("http://127.0.0.1:8320/").as_deref(), Some(first.token.as_str()));
            assert_eq!(token_for_url("http://localhost:8320").as_deref(), Some(first.token.as_str()));
            assert_eq!(token_for_url("http://127.0.0.1:8321"), None, "another port has no file");
            assert_eq!(token_for_url("http://10.0.0.1:8320"), None, "only loopback URLs");

            let fresh = run_token(addr).unwrap();
            assert_ne!(fresh.token, first.token, "run always makes a new token");
            assert_ne!(generate_token(), generate_token());
        })
    }

    #[test]
    fn an_open_folder_is_made_private_and_a_short_file_is_replaced() {
        with_runtime_dir(|dir| {
            fs::create_dir_all(dir).unwrap();
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
            let addr: SocketAddr = "[::1]:9000".parse().unwrap();
            let path = dir.join("__1-9000.token");
            fs::write(&path, "short\n").unwrap();
            let t = serve_token(addr).unwrap();
            assert_eq!(t.path, path);
            assert!(!t.reused, "a token under 16 bytes is not kept");
            assert_eq!(fs::metadata(dir).unwrap().mode() & 0o777, 0o700);
            assert_eq!(token_for_url("http://[::1]:9000").as_deref(), Some(t.token.as_str()));
        })
    }

    #[test]
    fn a_symlink_in_place_of_the_file_is_refused() {
        with_runtime_dir(|dir| {
            fs::create_dir_all(dir).unwrap();
            let elsewhere = dir.join("elsewhere");
            fs::write(&elsewhere, "0123456789abcdef0123\n").unwrap();
            std::os::unix::fs::symlink(&elsewhere, dir.join("127.0.0.1-1234.token")).unwrap();
            let err = serve_token("127.0.0.1:1234".parse().unwrap()).unwrap_err();
            assert!(err.to_string().contains("127.0.0.1-1234.token"), "{err}");
            assert_eq!(token_for_url("http://127.0.0.1:1234"), None);
        })
    }
}
