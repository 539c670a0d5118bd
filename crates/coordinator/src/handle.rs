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
use crate::metrics::bump;
use crate::metrics::Metrics;
use crate::options::{default_data_dir, CoordinatorOptions};
use crate::store::Store;
use crate::writer::WriteCtx;
use crate::{checkpoints, intake, upload, views, Clock, Error, Result};

/// A coordinator over one database. Cheap to clone; clones share everything.
#[derive(Clone, Debug)]
pub struct Coordinator {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) store: Store,
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
    /// Opens (creating or migrating) the database at `db_path`. Trials running when a previous
    /// coordinator stopped keep their leases (extended by one TTL from now), so their workers
    /// carry on. Opening does a little synchronous SQLite work (schema check, migrations) and
    /// starts the writer thread; it needs no runtime and may be called from async code at start-up.
    pub fn open(db_path: impl AsRef<Path>, options: CoordinatorOptions) -> Result<Coordinator> {
        let db_path = db_path.as_ref();
        let ttl_ms = i64::try_from(options.lease_ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        let store =
            Store::open(db_path, options.clock.clone(), ttl_ms, options.pruner.clone(), options.pruner_override)?;
        let data_dir = options.data_dir.clone().unwrap_or_else(|| default_data_dir(db_path));
        let datasets = intake::Datasets::new(options.data_root.as_deref(), options.max_dataset_bytes)?;
        // Nothing is served yet: what a crash left half-written or unreferenced may go.
        upload::sweep_temporaries(&data_dir);
        store.read_now(|conn| checkpoints::collect_at_start(conn, &data_dir))?;
        tracing::info!(db = %db_path.display(), data_dir = %data_dir.display(), ttl_ms, "coordinator opened");
        Ok(Coordinator {
            inner: Arc::new(Inner {
                store,
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
