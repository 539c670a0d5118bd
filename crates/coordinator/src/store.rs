//! The SQLite store: one writer thread with group commit, and a pool of read-only connections.
//!
//! Every state change is a request to the writer thread, which owns the only writing
//! connection. It takes every request waiting in its queue (up to [`MAX_BATCH`]), runs each in
//! its own savepoint inside one `BEGIN IMMEDIATE` transaction, commits once, and only then
//! answers each request. So a request is atomic (a failed one is rolled back to its savepoint
//! and the others go on), an answer is given only for a durable change, and under load the
//! cost of a commit (an fsync with `synchronous = FULL`) is shared by the whole batch.
//!
//! A storage error (disk full, read-only, I/O error: [`Error::Storage`]) costs the batch, never
//! the writer: the transaction is rolled back (SQLite may already have done so itself, which is
//! checked after every request), every request of the batch is answered with the error, and
//! the next batch starts a fresh transaction on the same connection. The error is kept in
//! [`StorageHealth`] until a commit writes again.
//!
//! Reads (listings, reports, metrics) run on read-only connections in `spawn_blocking`, which
//! WAL lets proceed while the writer writes. Nothing here blocks a tokio worker thread, except
//! dropping the last handle: that waits for the writer to checkpoint the WAL into the database
//! and close, so a finished `decsweep run` leaves one self-contained file rather than a WAL
//! that the next opener would have to replay.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::health::{StorageFault, StorageHealth};
use crate::pruner::Pruner;
use crate::schema::{connect, migrate, Role};
use crate::writer::WriteCtx;

/// The most requests committed in one transaction.
pub(crate) const MAX_BATCH: usize = 512;

/// Idle read-only connections kept for reuse.
const MAX_IDLE_READERS: usize = 8;

/// Called once the batch's fate is known: `None` if it committed, else the commit's error.
type Delivery = Box<dyn FnOnce(Option<&Error>) + Send>;

/// What running one request gave.
struct Ran {
    /// It succeeded (else it is rolled back).
    ok: bool,
    /// Its error, when that is a storage error (the disk's state, for [`StorageHealth`]).
    storage_error: Option<Error>,
    /// How to answer it once the batch's fate is known.
    deliver: Delivery,
}

/// One request to the writer thread.
trait WriteJob: Send {
    fn run(self: Box<Self>, ctx: &mut WriteCtx) -> Ran;
    /// Runs alone and outside any transaction (only tests' connection settings do).
    fn outside_transaction(&self) -> bool {
        false
    }
    /// Answers the request without running it (the batch could not start).
    fn abort(self: Box<Self>, error: &Error);
}

struct Job<F, T> {
    f: F,
    reply: oneshot::Sender<Result<T>>,
}

impl<F, T> WriteJob for Job<F, T>
where
    F: FnOnce(&mut WriteCtx) -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    fn run(self: Box<Self>, ctx: &mut WriteCtx) -> Ran {
        let Job { f, reply } = *self;
        let result = f(ctx).map_err(|e| e.with_os_cause(&ctx.conn));
        let ok = result.is_ok();
        let storage_error = result.as_ref().err().filter(|e| e.storage_problem().is_some()).map(Error::duplicate);
        let deliver: Delivery = Box::new(move |commit_error| {
            let answer = match (result, commit_error) {
                (Ok(_), Some(e)) => Err(e.duplicate()),
                (result, _) => result,
            };
            // The caller may have gone away (a client hung up); the change stands regardless.
            let _ = reply.send(answer);
        });
        Ran { ok, storage_error, deliver }
    }

    fn abort(self: Box<Self>, error: &Error) {
        let _ = self.reply.send(Err(error.duplicate()));
    }
}

/// A change to the writer connection's settings, made outside any transaction: tests (the
/// server's too, through `Coordinator::refuse_writes_for_tests`) use it to make the database
/// refuse writes (`query_only`) and accept them again, which a request cannot do once every
/// `BEGIN` is refused.
type Setting = Box<dyn FnOnce(&Connection) -> rusqlite::Result<()> + Send>;

struct Configure {
    f: Setting,
    reply: oneshot::Sender<Result<()>>,
}

impl WriteJob for Configure {
    fn run(self: Box<Self>, ctx: &mut WriteCtx) -> Ran {
        let Configure { f, reply } = *self;
        let result = f(&ctx.conn).map_err(Error::from);
        Ran { ok: result.is_ok(), storage_error: None, deliver: Box::new(move |_| drop(reply.send(result))) }
    }

    fn outside_transaction(&self) -> bool {
        true
    }

    fn abort(self: Box<Self>, error: &Error) {
        let _ = self.reply.send(Err(error.duplicate()));
    }
}

/// Read-only connections, opened on demand and kept for reuse.
struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match conn {
            Some(c) => c,
            None => connect(&self.path, Role::Reader)?,
        };
        let result = f(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        result
    }
}

/// The writer thread, joined when the last [`Store`] handle goes.
struct Writer(Mutex<Option<std::thread::JoinHandle<()>>>);

impl Drop for Writer {
    fn drop(&mut self) {
        let Some(thread) = self.0.get_mut().unwrap_or_else(|p| p.into_inner()).take() else { return };
        // A handle dropped by a job on the writer thread itself must not wait for itself.
        if thread.thread().id() != std::thread::current().id() {
            let _ = thread.join();
        }
    }
}

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub(crate) struct Store {
    // Field order matters: the queue's sender is dropped before the writer is joined, which is
    // what ends the writer's loop.
    jobs: Option<mpsc::Sender<Box<dyn WriteJob>>>,
    readers: Arc<ReaderPool>,
    health: Arc<StorageHealth>,
    /// Held for its `Drop`: the last handle joins the writer thread.
    _writer: Arc<Writer>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.readers.path).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating and migrating) the database and starts the writer thread. Running leases
    /// get one TTL of grace from now: their workers could not heartbeat while no coordinator ran.
    /// The caller holds the database's lock ([`crate::lock`]) and made its folder.
    pub(crate) fn open(
        path: &Path,
        clock: Arc<dyn Clock>,
        ttl_ms: i64,
        pruner: Arc<dyn Pruner>,
        pruner_override: bool,
    ) -> Result<Store> {
        let mut conn = connect(path, Role::Writer)?;
        migrate(&mut conn, path)?;
        let mut ctx = WriteCtx::new(conn, clock, ttl_ms, pruner);
        ctx.pruner_override = pruner_override;
        ctx.conn.execute_batch("BEGIN IMMEDIATE")?;
        match ctx.grace_running() {
            Ok(n) => {
                ctx.conn.execute_batch("COMMIT")?;
                if n > 0 {
                    tracing::info!(running = n, "resumed running leases from the database");
                }
            }
            Err(e) => {
                let _ = ctx.conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
        let (jobs, queue) = mpsc::channel::<Box<dyn WriteJob>>();
        let health = Arc::new(StorageHealth::default());
        let writer_health = Arc::clone(&health);
        let thread = std::thread::Builder::new()
            .name("decsweep-store".into())
            .spawn(move || writer_loop(ctx, queue, &writer_health))
            .map_err(|e| Error::io(path, e))?;
        let readers = Arc::new(ReaderPool { path: path.to_path_buf(), idle: Mutex::new(Vec::new()) });
        Ok(Store { jobs: Some(jobs), readers, health, _writer: Arc::new(Writer(Mutex::new(Some(thread)))) })
    }

    /// Opens an existing database for reading only, beside the coordinator that may be writing
    /// it: no writer thread, no lock, nothing changed (a database of an older schema is
    /// migrated first by [`crate::Coordinator::open_reader`]). Writes answer an error.
    pub(crate) fn open_reader(path: &Path) -> Result<Store> {
        let readers = Arc::new(ReaderPool { path: path.to_path_buf(), idle: Mutex::new(Vec::new()) });
        let idle = connect(path, Role::Reader)?;
        readers.idle.lock().unwrap_or_else(|p| p.into_inner()).push(idle);
        Ok(Store { jobs: None, readers, health: Arc::default(), _writer: Arc::new(Writer(Mutex::new(None))) })
    }

    /// The writer's queue, or the error of a store opened by [`Store::open_reader`].
    fn jobs(&self) -> Result<&mpsc::Sender<Box<dyn WriteJob>>> {
        self.jobs.as_ref().ok_or_else(|| {
            Error::Internal(format!(
                "{} was opened for reading only; changes go through the coordinator that holds it",
                self.readers.path.display()
            ))
        })
    }

    /// The storage error the writer last saw, until a commit writes again.
    pub(crate) fn storage_fault(&self) -> Option<StorageFault> {
        self.health.current()
    }

    /// Runs `f` on the writer connection inside a transaction; answers once it is committed.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut WriteCtx) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.jobs()?.send(Box::new(Job { f, reply })).map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Internal("the store dropped a request".into()))?
    }

    /// Runs `f` on the writer connection outside any transaction, between batches.
    pub(crate) async fn configure(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<()> + Send + 'static,
    ) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.jobs()?.send(Box::new(Configure { f: Box::new(f), reply })).map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Internal("the store dropped a request".into()))?
    }

    /// Runs `f` on a read-only connection now, on this thread (at start-up, before any request).
    pub(crate) fn read_now<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.readers.with(f)
    }

    /// Runs `f` on a read-only connection, off the async executor.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || pool.with(f))
            .await
            .map_err(|e| Error::Internal(format!("a read task failed: {e}")))?
    }
}

fn writer_loop(mut ctx: WriteCtx, queue: mpsc::Receiver<Box<dyn WriteJob>>, health: &StorageHealth) {
    let mut batch: Vec<Box<dyn WriteJob>> = Vec::with_capacity(MAX_BATCH);
    let mut next = None;
    while let Some(first) = next.take().or_else(|| queue.recv().ok()) {
        if first.outside_transaction() {
            (first.run(&mut ctx).deliver)(None);
            continue;
        }
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                // It waits for the batch before it.
                Ok(job) if job.outside_transaction() => {
                    next = Some(job);
                    break;
                }
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&mut ctx, &mut batch, health);
    }
    // Every handle is gone: fold the WAL into the database and truncate it. Readers that are
    // still open (none once the handles are) would only make this a partial checkpoint.
    if let Err(e) = ctx.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "could not checkpoint the WAL on close");
    }
    tracing::debug!("store writer stopped");
}

fn sql(ctx: &WriteCtx, statement: &str) -> rusqlite::Result<()> {
    ctx.conn.prepare_cached(statement)?.execute([]).map(|_| ())
}

fn run_batch(ctx: &mut WriteCtx, batch: &mut Vec<Box<dyn WriteJob>>, health: &StorageHealth) {
    let changes_before = ctx.conn.total_changes();
    if let Err(e) = sql(ctx, "BEGIN IMMEDIATE") {
        let e = Error::from(e).with_os_cause(&ctx.conn);
        tracing::error!(error = %e, "could not start a transaction");
        health.refused(&e);
        for job in batch.drain(..) {
            job.abort(&e);
        }
        return;
    }
    // A lone request needs no savepoint: on failure the whole transaction is rolled back.
    let single = batch.len() == 1;
    let mut deliveries: Vec<Delivery> = Vec::with_capacity(batch.len());
    let mut any_ok = false;
    // Set when SQLite rolled the whole transaction back by itself (it may, on SQLITE_FULL or
    // SQLITE_IOERR): what ran so far is gone, so nothing else runs and nothing is committed.
    let mut lost: Option<Error> = None;
    for job in batch.drain(..) {
        if let Some(e) = &lost {
            job.abort(e);
            continue;
        }
        if !single {
            if let Err(e) = sql(ctx, "SAVEPOINT job") {
                let e = Error::from(e).with_os_cause(&ctx.conn);
                health.refused(&e);
                job.abort(&e);
                continue;
            }
        }
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| job.run(ctx)));
        let ok = matches!(outcome, Ok(Ran { ok: true, .. }));
        let storage_error = match &outcome {
            Ok(ran) => ran.storage_error.as_ref().map(Error::duplicate),
            Err(_) => None,
        };
        if let Some(e) = &storage_error {
            health.refused(e);
        }
        if ctx.conn.is_autocommit() {
            let e = storage_error
                .unwrap_or_else(|| Error::Internal("SQLite rolled the transaction back while a request ran".into()));
            tracing::error!(error = %e, "the transaction was rolled back; the batch is answered with the error");
            lost = Some(e);
        } else if !single {
            let undo = if ok {
                sql(ctx, "RELEASE job")
            } else {
                sql(ctx, "ROLLBACK TO job").and_then(|_| sql(ctx, "RELEASE job"))
            };
            if let Err(e) = undo {
                tracing::error!(error = %e, "savepoint handling failed");
            }
        }
        if !ok || lost.is_some() {
            // Cached rows read by a rolled-back request may not exist.
            ctx.forget_cached_studies();
        }
        any_ok |= ok;
        match outcome {
            Ok(ran) => deliveries.push(ran.deliver),
            Err(_) => tracing::error!("a store request panicked; it was rolled back"),
        }
    }
    let commit_error = if let Some(e) = lost {
        Some(e)
    } else {
        let commit = if single && !any_ok { sql(ctx, "ROLLBACK") } else { sql(ctx, "COMMIT") };
        match commit {
            Ok(()) => {
                if any_ok && ctx.conn.total_changes() > changes_before {
                    health.wrote();
                }
                None
            }
            Err(e) => {
                // A failed COMMIT may leave the transaction open (SQLITE_BUSY, SQLITE_FULL in
                // some paths) or SQLite may have rolled it back already.
                let e = Error::from(e).with_os_cause(&ctx.conn);
                if !ctx.conn.is_autocommit() {
                    let _ = ctx.conn.execute_batch("ROLLBACK");
                }
                ctx.forget_cached_studies();
                health.refused(&e);
                tracing::error!(error = %e, requests = deliveries.len(), "commit failed; the batch was rolled back");
                Some(e)
            }
        }
    };
    for deliver in deliveries {
        deliver(commit_error.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::clock::ManualClock;
    use crate::ops::tests::command_study;
    use crate::pruner::NoPruner;

    fn open(path: &Path) -> Store {
        Store::open(path, Arc::new(ManualClock::new(1_000_000)), 10_000, Arc::new(NoPruner), false).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_are_batched_and_each_answered() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("c.db"));
        store.write(|ctx| ctx.insert_study(&command_study("a", 200, 2))).await.unwrap();
        let mut tasks = Vec::new();
        for w in 0..50 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut done = 0;
                loop {
                    let worker = format!("w{w}");
                    let Some(lease) = store.write(move |ctx| Ok(ctx.lease(&worker)?.0)).await.unwrap() else {
                        return done;
                    };
                    let id = lease.lease_id.clone();
                    let recorded =
                        store.write(move |ctx| ctx.complete(&id, &BTreeMap::from([("a".into(), 1.0)]))).await.unwrap();
                    assert!(recorded);
                    done += 1;
                }
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        assert_eq!(total, 200, "every trial leased and completed exactly once");
        let n: i64 = store
            .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM trials WHERE status = 'completed'", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(n, 200);
    }

    #[tokio::test]
    async fn a_failed_request_is_rolled_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("c.db"));
        let a = store.write(|ctx| ctx.insert_study(&command_study("a", 1, 2)));
        let bad = store.write(|ctx| {
            ctx.conn.execute("UPDATE trials SET worker = 'x'", [])?;
            Err::<(), _>(Error::BadRequest("refused".into()))
        });
        let b = store.write(|ctx| ctx.insert_study(&command_study("b", 1, 2)));
        let (a, bad, b) = tokio::join!(a, bad, b);
        assert!(a.is_ok() && b.is_ok());
        assert!(matches!(bad, Err(Error::BadRequest(_))));
        let workers: i64 = store
            .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM trials WHERE worker IS NOT NULL", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(workers, 0, "the failed request's change was undone");
    }

    #[tokio::test]
    async fn closing_the_store_folds_the_wal_into_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let wal = dir.path().join("c.db-wal");
        let store = open(&path);
        store.write(|ctx| ctx.insert_study(&command_study("a", 50, 2))).await.unwrap();
        let n = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        assert!(n(&wal) > 0, "writes go to the WAL first");
        let clone = store.clone();
        drop(store);
        assert!(n(&wal) > 0, "another handle keeps the store open");
        drop(clone);
        assert_eq!(n(&wal), 0, "the last handle checkpoints and truncates the WAL");
        // Everything is in the database file itself.
        let conn = Connection::open(&path).unwrap();
        let trials: i64 = conn.query_row("SELECT COUNT(*) FROM trials", [], |r| r.get(0)).unwrap();
        assert_eq!(trials, 50);
    }

    #[tokio::test]
    async fn a_crashed_store_reopens_with_its_leases_valid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let clock = Arc::new(ManualClock::new(1_000_000));
        let store = Store::open(&path, clock.clone(), 10_000, Arc::new(NoPruner), false).unwrap();
        store.write(|ctx| ctx.insert_study(&command_study("a", 2, 2))).await.unwrap();
        let lease = store.write(|ctx| Ok(ctx.lease("w")?.0)).await.unwrap().unwrap();
        let lease2 = store.write(|ctx| Ok(ctx.lease("w")?.0)).await.unwrap().unwrap();
        // Simulate a crash: the connection is never closed, the WAL never checkpointed.
        std::mem::forget(store);

        clock.advance(std::time::Duration::from_millis(5_000));
        let store = Store::open(&path, clock.clone(), 10_000, Arc::new(NoPruner), false).unwrap();
        let id = lease.lease_id.clone();
        let recorded = store.write(move |ctx| ctx.complete(&id, &BTreeMap::new())).await.unwrap();
        assert!(recorded, "the old lease is still valid after the restart");
        // The other lease got a fresh TTL at reopen (t = 15 s); it expires after that.
        clock.advance(std::time::Duration::from_millis(9_999));
        assert!(store.write(|ctx| ctx.expire()).await.unwrap().is_empty());
        clock.advance(std::time::Duration::from_millis(1));
        let expired = store.write(|ctx| ctx.expire()).await.unwrap();
        assert_eq!(expired.requeued, [lease2.trial_id]);
    }

    /// Makes the writer connection refuse to grow the database, as a full disk does:
    /// SQLite answers SQLITE_FULL once `max_page_count` pages are used.
    async fn cap_pages(store: &Store, extra: i64) {
        store
            .write(move |ctx| {
                let used: i64 = ctx.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
                ctx.conn.query_row(&format!("PRAGMA max_page_count = {}", used + extra), [], |_| Ok(()))?;
                Ok(())
            })
            .await
            .unwrap();
    }

    async fn count(store: &Store, sql: &'static str) -> i64 {
        store.read(move |c| Ok(c.query_row(sql, [], |r| r.get(0))?)).await.unwrap()
    }

    #[tokio::test]
    async fn a_full_disk_fails_the_batch_with_a_storage_error_and_the_writer_carries_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("c.db"));
        store.write(|ctx| ctx.insert_study(&command_study("a", 2, 2))).await.unwrap();
        assert_eq!(store.storage_fault(), None);
        cap_pages(&store, 0).await;

        // A batch of writes that cannot all fit: each is answered with the storage error.
        let big = |name: &'static str| store.write(move |ctx| ctx.insert_study(&command_study(name, 400, 2)));
        let (b, c) = tokio::join!(big("b"), big("c"));
        for answer in [b, c] {
            let e = answer.unwrap_err();
            assert_eq!(e.storage_problem(), Some(crate::StorageProblem::Full), "{e:?}");
            assert!(e.to_string().starts_with("storage full: "), "{e}");
            assert!(matches!(e, crate::Error::Storage { .. }), "the server answers it 503");
        }
        let fault = store.storage_fault().expect("the fault is kept for /healthz");
        assert_eq!(fault.problem, crate::StorageProblem::Full);
        assert!(fault.error.starts_with("storage full: ") && fault.refused_writes >= 1, "{fault:?}");
        // Reads go on, and nothing of the refused requests was kept.
        assert_eq!(count(&store, "SELECT COUNT(*) FROM studies").await, 1);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM trials").await, 2);

        // The same connection, the same writer thread: a write that fits still works ...
        let lease = store.write(|ctx| Ok(ctx.lease("w")?.0)).await.unwrap().expect("a pending trial");
        // ... and once space returns, the refused request goes through.
        cap_pages(&store, 1_000_000).await;
        store.write(|ctx| ctx.insert_study(&command_study("b", 400, 2))).await.unwrap();
        assert_eq!(store.storage_fault(), None, "a commit that wrote clears the fault");
        let id = lease.lease_id.clone();
        assert!(store.write(move |ctx| ctx.complete(&id, &BTreeMap::new())).await.unwrap());
        assert_eq!(count(&store, "SELECT COUNT(*) FROM trials").await, 402);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM trials WHERE status = 'completed'").await, 1);
    }

    #[tokio::test]
    async fn a_read_only_database_refuses_writes_until_it_is_writable_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("c.db"));
        store.write(|ctx| ctx.insert_study(&command_study("a", 2, 2))).await.unwrap();
        // `query_only` makes SQLite answer every write SQLITE_READONLY, as a read-only file does.
        store.configure(|conn| conn.pragma_update(None, "query_only", true)).await.unwrap();
        let e = store.write(|ctx| Ok(ctx.lease("w")?.0)).await.unwrap_err();
        assert_eq!(e.storage_problem(), Some(crate::StorageProblem::ReadOnly), "{e:?}");
        assert!(e.to_string().starts_with("storage read-only: "), "{e}");
        assert_eq!(store.storage_fault().map(|f| f.problem), Some(crate::StorageProblem::ReadOnly));
        assert_eq!(count(&store, "SELECT COUNT(*) FROM trials WHERE status = 'pending'").await, 2);

        store.configure(|conn| conn.pragma_update(None, "query_only", false)).await.unwrap();
        let lease = store.write(|ctx| Ok(ctx.lease("w")?.0)).await.unwrap();
        assert!(lease.is_some(), "the writer took the next request on the same connection");
        assert_eq!(store.storage_fault(), None);
    }

    #[tokio::test]
    async fn a_transaction_sqlite_rolled_back_by_itself_answers_the_whole_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("c.db"));
        store.write(|ctx| ctx.insert_study(&command_study("a", 4, 2))).await.unwrap();
        // Three requests in one batch; the second ends the transaction behind the writer's
        // back, as SQLite does itself after some SQLITE_FULL and SQLITE_IOERR errors.
        let first = store.write(|ctx| Ok(ctx.lease("w1")?.0));
        let rollback = store.write(|ctx| {
            ctx.conn.execute_batch("ROLLBACK")?;
            Err::<(), _>(Error::Storage { problem: crate::StorageProblem::IoError, message: "simulated".into() })
        });
        let third = store.write(|ctx| Ok(ctx.lease("w3")?.0));
        let (first, rollback, third) = tokio::join!(first, rollback, third);
        let rollback = rollback.unwrap_err();
        assert!(rollback.to_string().starts_with("storage I/O error: "), "{rollback}");
        // Whether the first request shared the batch depends on timing; if it did, its lease
        // was rolled back with it and it must not have been told otherwise.
        let running = count(&store, "SELECT COUNT(*) FROM trials WHERE status = 'running'").await;
        let granted = [&first, &third].iter().filter(|a| matches!(a, Ok(Some(_)))).count() as i64;
        assert_eq!(running, granted, "every lease answered is in the store, no other: {first:?} {third:?}");
        // The writer goes on.
        assert!(store.write(|ctx| Ok(ctx.lease("w4")?.0)).await.unwrap().is_some());
    }
}
