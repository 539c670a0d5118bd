//! One coordinator per database: an exclusive OS lock on `<db>.lock`, taken by
//! [`crate::Coordinator::open`] before the database is opened for writing and held until the
//! coordinator's last handle is dropped. Every exactly-once argument of the store (one writer
//! thread, leases handed out once, results counted once) assumes one writer; two coordinators on
//! one file would each hand out the same pending trial.
//!
//! # Why `flock` on a file of its own
//!
//! - The lock is the kernel's (`flock(2)`, through [`std::fs::File::try_lock`]), not the file's
//!   existence: it dies with its process, so a coordinator killed with SIGKILL (or a lost
//!   machine, see below) leaves nothing to clean up. The next starter simply takes it, and two
//!   starters cannot both win, since taking the lock is one atomic call. No pid is checked for
//!   liveness (a pid can be reused; another host's pid cannot be checked at all).
//! - `flock` rather than `fcntl` record locks: an `fcntl` lock belongs to the process, so a
//!   second open in the same process (`run` and a `serve` in one test binary, or a library user
//!   opening the database twice) would be granted it, and closing *any* descriptor of the file
//!   drops it. An `flock` lock belongs to the open file: a second [`crate::Coordinator::open`]
//!   on the same database in the same process is refused like another process's.
//! - Not SQLite's own locks: they are per transaction, and a second coordinator's writes would
//!   simply wait for the first's.
//! - The file is never deleted. Deleting a lock file races with a starter that opened it just
//!   before: the deleter's successor and that starter would hold locks on different files. At
//!   a clean exit the holder's lines are cleared; a killed holder's lines stay, and the next
//!   holder overwrites them (and logs whom it took over from).
//!
//! The file names its holder (pid, host, address once the server listens, command, start time),
//! so a refused second coordinator can say which process to stop.
//!
//! # Network file systems
//!
//! On Linux, `flock` on NFS (v3 with `lockd`, v4) is carried out as a whole-file lock on the
//! server, so coordinators on two hosts exclude each other, and a holder's lock ends when the
//! server's lease on it does (after the holder's host dies, the NFS lease time, often 90 s).
//! File systems that cannot lock fail the call (`ENOLCK`, `EOPNOTSUPP`): then the coordinator
//! refuses to start rather than run unguarded. Some (CIFS mounted `nobrl`, sshfs, other FUSE
//! mounts) grant every lock locally without telling other hosts: there the lock only excludes
//! coordinators of the same host. SQLite's WAL mode needs shared memory between its users, which
//! no network file system provides, so the database belongs on a local disk in any case; the
//! lock's host name then tells where the database is served from.
//!
//! Readers (`decsweep report --db`, `reproduce --db`) never take the lock: they read through
//! SQLite's read-only connections, which WAL lets run beside the writer.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::clock::rfc3339;
use crate::error::{Error, Result};

/// How long a refused starter waits for a holder that has just taken the lock to write its name.
const NAME_WAIT: Duration = Duration::from_millis(500);

/// The lock file of a database: `<file name>.lock` beside it.
pub fn lock_path(db_path: &Path) -> PathBuf {
    let name = db_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "decsweep.db".into());
    db_path.with_file_name(format!("{name}.lock"))
}

/// Who holds a database's lock, as its lock file names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockHolder {
    pub pid: u32,
    pub host: String,
    /// The URL the holder serves `/v1` on; `None` until its listener is bound (or for a
    /// coordinator that serves no HTTP).
    pub address: Option<String>,
    /// What the holder is (`decsweep serve`, `decsweep run`), when it said.
    pub command: Option<String>,
    /// When it took the lock (RFC 3339, UTC).
    pub started: String,
}

impl LockHolder {
    /// This process, now.
    pub(crate) fn this_process(command: Option<String>) -> LockHolder {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        LockHolder { pid: std::process::id(), host: host_name(), address: None, command, started: rfc3339(ms) }
    }

    /// The lock file's text: one `key=value` line each.
    fn to_text(&self) -> String {
        let mut text = format!("pid={}\nhost={}\nstarted={}\n", self.pid, self.host, self.started);
        if let Some(a) = &self.address {
            text.push_str(&format!("address={a}\n"));
        }
        if let Some(c) = &self.command {
            text.push_str(&format!("command={c}\n"));
        }
        text
    }

    /// Reads [`LockHolder::to_text`]; `None` if the text names no pid (empty, cleared, or not
    /// ours). Unknown keys are ignored, so a newer decsweep may add some.
    fn parse(text: &str) -> Option<LockHolder> {
        let mut holder =
            LockHolder { pid: 0, host: String::new(), address: None, command: None, started: String::new() };
        let mut pid = None;
        for (key, value) in text.lines().filter_map(|l| l.split_once('=')) {
            let value = value.trim().to_string();
            match key.trim() {
                "pid" => pid = value.parse().ok(),
                "host" => holder.host = value,
                "started" => holder.started = value,
                "address" => holder.address = Some(value),
                "command" => holder.command = Some(value),
                _ => {}
            }
        }
        holder.pid = pid?;
        Some(holder)
    }
}

impl std::fmt::Display for LockHolder {
    /// `decsweep serve (pid 42 on host h, serving http://…, since …)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (pid {} on host {}", self.command.as_deref().unwrap_or("a coordinator"), self.pid, self.host)?;
        if let Some(a) = &self.address {
            write!(f, ", serving {a}")?;
        }
        write!(f, ", since {})", self.started)
    }
}

/// Why a second coordinator of `db` does not start, naming the holder and what to do instead.
pub(crate) fn refusal(db: &Path, lock: &Path, holder: Option<&LockHolder>) -> String {
    let (who, steer) = match holder {
        Some(h) => (
            h.to_string(),
            match &h.address {
                Some(a) => format!("send your commands to it with `--coordinator {a}`"),
                None => "send your commands to it with --coordinator".to_string(),
            },
        ),
        None => ("another coordinator, which has not named itself yet".to_string(), "retry in a moment".to_string()),
    };
    format!(
        "database {} is in use by {who}; only one coordinator may write a database: stop that one first, or \
         {steer} (lock file {})",
        db.display(),
        lock.display()
    )
}

/// The host name (`gethostname(2)`); empty if the system will not say.
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// A held database lock; released (its lines cleared) when dropped.
#[derive(Debug)]
pub(crate) struct DatabaseLock {
    file: File,
    path: PathBuf,
    holder: Mutex<LockHolder>,
}

impl DatabaseLock {
    /// Takes the lock of the database at `db_path`, or says who holds it ([`Error::Locked`]).
    pub(crate) fn acquire(db_path: &Path, holder: LockHolder) -> Result<DatabaseLock> {
        let path = lock_path(db_path);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    db: db_path.to_path_buf(),
                    lock: path.clone(),
                    holder: named_holder(&path).map(Box::new),
                })
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::Io {
                    path: path.clone(),
                    source: std::io::Error::new(
                        e.kind(),
                        format!(
                            "cannot lock it ({e}); the file system does not support locks, so it cannot keep a \
                             second coordinator off this database: put the database on a local disk"
                        ),
                    ),
                })
            }
        }
        let mut previous = String::new();
        // A lock file we cannot read back is still ours to overwrite.
        let _ = file.read_to_string(&mut previous);
        if let Some(dead) = LockHolder::parse(&previous) {
            if dead.host == holder.host || dead.host.is_empty() {
                tracing::info!(lock = %path.display(), previous = %dead, "took over the lock of a coordinator that is gone");
            } else {
                tracing::warn!(
                    lock = %path.display(), previous = %dead,
                    "took over the lock last held from another host; if the database is on a network file system \
                     that does not share locks between hosts, make sure that coordinator is stopped"
                );
            }
        }
        let lock = DatabaseLock { file, path, holder: Mutex::new(holder) };
        lock.write_holder()?;
        Ok(lock)
    }

    /// Names `address` as where the holder serves, so a refused second coordinator can say it.
    pub(crate) fn announce_address(&self, address: &str) -> Result<()> {
        self.holder.lock().unwrap_or_else(|p| p.into_inner()).address = Some(address.to_string());
        self.write_holder()
    }

    fn write_holder(&self) -> Result<()> {
        let text = self.holder.lock().unwrap_or_else(|p| p.into_inner()).to_text();
        let mut file = &self.file;
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(text.as_bytes()))
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::io(&self.path, e))
    }
}

impl Drop for DatabaseLock {
    fn drop(&mut self) {
        // Cleared while still held, so nobody reads a holder that is gone; the lock itself ends
        // when the file is closed, right after.
        if let Err(e) = self.file.set_len(0) {
            tracing::debug!(lock = %self.path.display(), error = %e, "could not clear the lock file");
        }
    }
}

/// The holder a lock file names, waiting briefly for one that has just taken the lock to write it.
fn named_holder(path: &Path) -> Option<LockHolder> {
    let deadline = std::time::Instant::now() + NAME_WAIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(holder) = LockHolder::parse(&text) {
            return Some(holder);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(command: &str) -> LockHolder {
        LockHolder::this_process(Some(command.into()))
    }

    #[test]
    fn the_lock_file_sits_beside_the_database() {
        assert_eq!(lock_path(Path::new("/x/sweeps.db")), PathBuf::from("/x/sweeps.db.lock"));
        assert_eq!(lock_path(Path::new("s.db")), PathBuf::from("s.db.lock"));
    }

    #[test]
    fn a_second_lock_in_the_same_process_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let first = DatabaseLock::acquire(&db, holder("decsweep serve")).unwrap();
        first.announce_address("http://127.0.0.1:8320").unwrap();
        let err = DatabaseLock::acquire(&db, holder("decsweep run")).unwrap_err();
        let Error::Locked { holder: Some(named), lock, .. } = &err else { panic!("not Locked: {err:?}") };
        assert_eq!(lock, &lock_path(&db));
        assert_eq!((named.pid, named.command.as_deref()), (std::process::id(), Some("decsweep serve")));
        assert_eq!(named.address.as_deref(), Some("http://127.0.0.1:8320"));
        let message = err.to_string();
        for part in
            [&format!("pid {}", std::process::id()), "`--coordinator http://127.0.0.1:8320`", "decsweep serve", "s.db"]
        {
            assert!(message.contains(part), "{message:?} names {part}");
        }
        drop(first);
        assert_eq!(std::fs::read_to_string(lock_path(&db)).unwrap(), "", "a clean exit clears the holder");
        let again = DatabaseLock::acquire(&db, holder("decsweep run")).unwrap();
        let text = std::fs::read_to_string(lock_path(&db)).unwrap();
        assert_eq!(LockHolder::parse(&text).unwrap(), *again.holder.lock().unwrap());
    }

    #[test]
    fn a_dead_holders_lines_are_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        // What a killed coordinator leaves: its lines, and no lock.
        std::fs::write(lock_path(&db), "pid=999999\nhost=elsewhere\nstarted=x\naddress=http://a:1\n").unwrap();
        let lock = DatabaseLock::acquire(&db, holder("decsweep serve")).unwrap();
        let now = LockHolder::parse(&std::fs::read_to_string(lock_path(&db)).unwrap()).unwrap();
        assert_eq!((now.pid, now.address), (std::process::id(), None), "nothing of the old holder stays");
        drop(lock);
    }

    #[test]
    fn a_lock_file_without_a_pid_names_nobody() {
        assert_eq!(LockHolder::parse(""), None);
        assert_eq!(LockHolder::parse("host=h\n"), None);
        assert_eq!(LockHolder::parse("pid=seven\n"), None);
        let h = LockHolder::parse("pid=7\nhost=h\nstarted=t\nfuture=1\n").unwrap();
        assert_eq!(h.to_string(), "a coordinator (pid 7 on host h, since t)");
    }

    #[test]
    fn an_unlockable_place_is_an_error_naming_the_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("missing").join("s.db");
        let err = DatabaseLock::acquire(&db, holder("x")).unwrap_err();
        assert!(err.to_string().contains("s.db.lock"), "{err}");
    }
}
