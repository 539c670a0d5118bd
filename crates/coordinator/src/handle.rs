//! The handle: [`Coordinator`] owns the store, the data directory and the signals between
//! requests (new work, shutdown). Its verbs live beside what they do: `work.rs` (workers),
//! `steer.rs` (the user's controls), `intake.rs` (new studies and datasets), `queries.rs` and
//! `views.rs` (reads).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::leases::Expired;
use crate::lock::{DatabaseLock, LockHolder};
use crate::metrics::bump;
use crate::metrics::Metrics;
use crate::options::{default_data_dir, CoordinatorOptions};
use crate::store::Store;
use crate::writer::WriteCtx;
use crate::{checkpoints, intake, schema, upload, views, Clock, Error, Result};

/// A coordinator over one database. Cheap to clone; clones share everything.
#[derive(Clone, Debug)]
pub struct Coordinator {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) store: Store,
    /// The database's lock (`None` for a reader). After `store`, so it is released only once the
    /// writer thread has stopped and checkpointed.
    lock: Option<DatabaseLock>,
    pub(crate) data_dir: PathBuf,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ttl: Duration,
    pub(crate) expiry_interval: Duration,
    pub(crate) max_wait: Duration,
    /// Woken when trials become pending (new study, expiry, retryable failure) or at shutdown.
    pub(crate) work: Notify,
    pub(crate) closing: AtomicBool,
    pub(crate) metrics: Metrics,
    pub(crate) max_checkpoint_bytes: u64,
    /// Dataset uploads, the data root and which stored datasets were validated.
    pub(crate) datasets: intake::Datasets,
    /// What the dashboard's reads keep between requests (`views.rs`).
    pub(crate) views: views::Caches,
}

pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Internal(format!("a blocking task failed: {e}")))?
}

impl Coordinator {
    /// Opens (creating or migrating) the database at `db_path`, first taking its lock
    /// (`<db>.lock`): while another coordinator, in this process or another, holds it, this is
    /// [`Error::Locked`] naming the holder. Trials running when a previous coordinator stopped
    /// keep their leases (extended by one TTL from now), so their workers carry on. Opening does
    /// a little synchronous SQLite work (schema check, migrations) and starts the writer thread;
    /// it needs no runtime and may be called from async code at start-up.
    pub fn open(db_path: impl AsRef<Path>, options: CoordinatorOptions) -> Result<Coordinator> {
        let db_path = db_path.as_ref();
        if let Some(dir) = db_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let lock = DatabaseLock::acquire(db_path, LockHolder::this_process(options.lock_command.clone()))?;
        let ttl_ms = i64::try_from(options.lease_ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        let store =
            Store::open(db_path, options.clock.clone(), ttl_ms, options.pruner.clone(), options.pruner_override)?;
        let data_dir = options.data_dir.clone().unwrap_or_else(|| default_data_dir(db_path));
        // Nothing is served yet: what a crash left half-written or unreferenced may go.
        upload::sweep_temporaries(&data_dir);
        store.read_now(|conn| checkpoints::collect_at_start(conn, &data_dir))?;
        tracing::info!(db = %db_path.display(), data_dir = %data_dir.display(), ttl_ms, "coordinator opened");
        Coordinator::assemble(store, Some(lock), data_dir, &options)
    }

    /// Opens an existing database to read it (reports, `reproduce`), beside the coordinator
    /// that may be serving it: no lock, no writer, and nothing in the database or its data
    /// directory changes. Only a database of an older schema is migrated first, which takes the
    /// lock for that moment (refused, naming the holder, while an older coordinator holds it).
    /// Every verb that writes answers an error.
    pub fn open_reader(db_path: impl AsRef<Path>) -> Result<Coordinator> {
        let db_path = db_path.as_ref();
        if !db_path.is_file() {
            return Err(Error::io(db_path, std::io::Error::new(std::io::ErrorKind::NotFound, "no such database")));
        }
        if schema::stored_version(db_path)? < schema::SCHEMA_VERSION {
            let _lock = DatabaseLock::acquire(db_path, LockHolder::this_process(Some("a migration".into())))?;
            schema::migrate(&mut schema::connect(db_path, schema::Role::Writer)?, db_path)?;
        }
        let options = CoordinatorOptions::default();
        let data_dir = default_data_dir(db_path);
        Coordinator::assemble(Store::open_reader(db_path)?, None, data_dir, &options)
    }

    fn assemble(
        store: Store,
        lock: Option<DatabaseLock>,
        data_dir: PathBuf,
        options: &CoordinatorOptions,
    ) -> Result<Coordinator> {
        let datasets = intake::Datasets::new(options.data_root.as_deref(), options.max_dataset_bytes)?;
        Ok(Coordinator {
            inner: Arc::new(Inner {
                store,
                lock,
                data_dir,
                clock: options.clock.clone(),
                ttl: options.lease_ttl,
                expiry_interval: options.expiry_interval.max(Duration::from_millis(10)),
                max_wait: options.max_wait,
                work: Notify::new(),
                closing: AtomicBool::new(false),
                metrics: Metrics::default(),
                max_checkpoint_bytes: options.max_checkpoint_bytes,
                datasets,
                views: views::Caches::default(),
            }),
        })
    }

    /// Writes `address` (the URL `/v1` is served on) into the database's lock file, so a second
    /// coordinator refused by the lock can say where this one answers. A reader has no lock:
    /// nothing to write.
    pub fn announce_address(&self, address: &str) -> Result<()> {
        match &self.inner.lock {
            Some(lock) => lock.announce_address(address),
            None => Ok(()),
        }
    }

    /// Makes waiting lease requests return and stops background expiry.
    pub fn begin_shutdown(&self) {
        self.inner.closing.store(true, Ordering::Release);
        self.inner.work.notify_waiters();
    }

    /// Expires overdue leases every [`CoordinatorOptions::expiry_interval`] until
    /// [`Coordinator::begin_shutdown`]; the server spawns it beside its accept loop.
    pub async fn expire_in_background(self) {
        let mut tick = tokio::time::interval(self.inner.expiry_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.inner.closing.load(Ordering::Acquire) {
                return;
            }
            if let Err(e) = self.expire().await {
                tracing::warn!(error = %e, "background lease expiry failed");
            }
        }
    }

    /// The longest a lease request waits for work.
    pub fn max_wait(&self) -> Duration {
        self.inner.max_wait
    }

    /// The lease TTL.
    pub fn lease_ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// Where datasets are stored.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(crate) fn note_expired(&self, expired: &Expired) {
        if expired.is_empty() {
            return;
        }
        bump(&self.inner.metrics.expirations, (expired.requeued.len() + expired.failed.len()) as u64);
        if !expired.requeued.is_empty() {
            self.inner.work.notify_waiters();
        }
    }

    /// Expires overdue leases now; returns how many trials were requeued or failed.
    pub async fn expire(&self) -> Result<usize> {
        let expired = self.write_collecting(|ctx| ctx.expire()).await?;
        self.note_expired(&expired);
        Ok(expired.requeued.len() + expired.failed.len())
    }

    /// A write that may end trials (and so orphan their checkpoints): the same transaction
    /// empties `checkpoint_garbage`, and the files no row references are deleted after it.
    pub(crate) async fn write_collecting<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx) -> Result<T> + Send + 'static,
    {
        let data_dir = self.inner.data_dir.clone();
        let (out, garbage) = self
            .inner
            .store
            .write(move |ctx| {
                let out = f(ctx)?;
                let mut garbage = checkpoints::take_garbage(&ctx.conn)?;
                if !garbage.is_empty() {
                    // With the collection, any file no row references (a crash's leftovers).
                    garbage.extend(checkpoints::orphaned_files(&ctx.conn, &data_dir)?);
                    garbage.sort_unstable();
                    garbage.dedup();
                }
                Ok((out, garbage))
            })
            .await?;
        if !garbage.is_empty() {
            let data_dir = self.inner.data_dir.clone();
            // Deleting files is blocking I/O; nothing waits for it.
            tokio::task::spawn_blocking(move || checkpoints::delete_files(&data_dir, &garbage));
        }
        Ok(out)
    }

    /// Test aid: makes the database answer every write `SQLITE_READONLY` (SQLite's
    /// `query_only`), or write again. A real file system cannot be remounted read-only while the
    /// coordinator holds its files open for writing, so this stands in for a disk that turned
    /// read-only, in the server's tests of the 503 it then answers.
    #[doc(hidden)]
    pub async fn refuse_writes_for_tests(&self, refuse: bool) -> Result<()> {
        self.inner.store.configure(move |conn| conn.pragma_update(None, "query_only", refuse)).await
    }
}

#[cfg(test)]
mod tests {
    use decsweep_api::wire::CreateStudy;

    use super::*;

    const SPEC: &str = r#"
[study]
name = "s"
dataset = { synthetic = { seed = 1, n = 8 } }
pipelines = ["command"]
seeds = [0]
[command]
program = ["true"]
[space]
x = { grid = [1, 2] }
"#;

    #[tokio::test]
    async fn one_coordinator_per_database_and_readers_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sub").join("c.db");
        let options = || CoordinatorOptions { lock_command: Some("the test".into()), ..Default::default() };
        let first = Coordinator::open(&db, options()).unwrap();
        first.announce_address("http://127.0.0.1:1").unwrap();
        first.create_study(CreateStudy::new(SPEC, "s.toml")).await.unwrap();
        let err = Coordinator::open(&db, options()).unwrap_err();
        assert!(
            matches!(&err, Error::Locked { holder: Some(h), .. } if h.address.as_deref() == Some("http://127.0.0.1:1")),
            "{err:?}"
        );

        // A reader reads what the holder wrote, and cannot write.
        let reader = Coordinator::open_reader(&db).unwrap();
        assert_eq!(reader.study("s").await.unwrap().counts.pending, 2);
        let refused = reader.cancel_study("s").await.unwrap_err();
        assert!(refused.to_string().contains("opened for reading only"), "{refused}");
        reader.announce_address("http://elsewhere:2").unwrap();
        assert_eq!(first.study("s").await.unwrap().counts.pending, 2, "the holder is undisturbed");

        // Once the holder's last handle is gone, the next coordinator opens it.
        let clone = first.clone();
        drop(first);
        assert!(matches!(Coordinator::open(&db, options()), Err(Error::Locked { .. })), "a clone still holds it");
        drop(clone);
        let next = Coordinator::open(&db, options()).unwrap();
        assert_eq!(next.study("s").await.unwrap().counts.pending, 2);
        assert!(Coordinator::open_reader(dir.path().join("missing.db"))
            .unwrap_err()
            .to_string()
            .contains("missing.db"));
    }

    #[tokio::test]
    async fn a_reader_migrates_an_old_database_only_under_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("old.db");
        // Schema version 0: what an empty SQLite file is.
        rusqlite::Connection::open(&db).unwrap().execute_batch("CREATE TABLE unrelated (x)").unwrap();
        let held = DatabaseLock::acquire(&db, LockHolder::this_process(Some("an older decsweep".into()))).unwrap();
        let err = Coordinator::open_reader(&db).unwrap_err();
        assert!(matches!(&err, Error::Locked { .. }) && err.to_string().contains("an older decsweep"), "{err}");
        assert_eq!(schema::stored_version(&db).unwrap(), 0, "nothing migrated while another holds the lock");
        drop(held);
        let reader = Coordinator::open_reader(&db).unwrap();
        assert_eq!(schema::stored_version(&db).unwrap(), schema::SCHEMA_VERSION);
        assert!(matches!(reader.study("s").await, Err(Error::StudyNotFound(_))));
        // The migration's lock was let go: a coordinator opens the database beside the reader.
        drop(Coordinator::open(&db, CoordinatorOptions::default()).unwrap());
    }
}
