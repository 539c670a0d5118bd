//! decsweep's coordinator: studies and trials in SQLite, handed out to pulling workers under
//! leases, over an axum HTTP API (no torch here).
//!
//! ```no_run
//! # async fn demo() -> Result<(), decsweep_coordinator::Error> {
//! use decsweep_coordinator::{Coordinator, CoordinatorOptions};
//! use decsweep_api::wire::CreateStudy;
//!
//! let coordinator = Coordinator::open("sweeps.db", CoordinatorOptions::default())?;
//! let spec = std::fs::read_to_string("sweeps/demo.toml").unwrap();
//! coordinator.create_study(CreateStudy::new(spec, "sweeps/demo.toml")).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! coordinator.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! let (trials, curves) = coordinator.report_input("demo").await?;
//! # Ok(()) }
//! ```
//!
//! # Store
//!
//! One SQLite file (WAL, `synchronous = FULL`, busy timeout 10 s), schema version in
//! `PRAGMA user_version`, migrated at open; a database from a newer decsweep is refused with
//! [`Error::SchemaTooNew`]. Tables: `studies`, `datasets` (stored by hash in
//! [`CoordinatorOptions::data_dir`]), `trials`, `leases` (every lease ever granted and how it
//! ended) and `curves`. A single writer thread owns the only writing connection and commits
//! the requests waiting for it together (group commit, each request in its own savepoint), so
//! an fsync per commit is affordable; reads use a pool of read-only connections. No SQLite
//! call runs on a tokio worker thread.
//!
//! # Leases
//!
//! [`Coordinator::lease`] hands out the oldest pending trial of any study (FIFO by id), marks it
//! running, counts the attempt and sets a deadline of now + TTL; heartbeats and progress reports
//! push the deadline out. Overdue leases are expired before every lease and on a background
//! interval: the trial goes back to pending, or to failed ("lease expired after N attempts")
//! once its attempts exceed the study's `retries`. A call naming a lease is judged against the
//! trial's *current* lease:
//!
//! - the current, active lease: the call applies (`recorded: true`);
//! - the same lease repeating a call that already ended it the same way (complete twice,
//!   fail twice, prune twice): `recorded: false`, status 200, nothing changes;
//! - a lease that ended the trial another way, or that has been replaced because the trial was
//!   leased again: [`Error::LeaseConflict`] (409), nothing changes. A result is never counted
//!   twice;
//! - **late completion**: a lease that expired while nobody has leased the trial since is still
//!   honoured. `complete`, `fail` and `prune` are accepted (the work was done and nobody else is
//!   doing it), and a heartbeat or progress report revives it (the trial is running again,
//!   same attempt). Once another worker leases the trial, the old lease gets 409.
//!
//! # The user's controls
//!
//! [`Coordinator::cancel_study`], [`Coordinator::retry_trials`], [`Coordinator::fail_trial`] and
//! [`Coordinator::add_seeds`] steer a study (semantics in `src/control.rs`). A running trial the
//! user cancels or fails is ended at once; its worker's next heartbeat or progress report is
//! answered `stop` and the lease's later complete / fail / prune get 409.
//!
//! # Pruning
//!
//! After recording each epoch a worker reports, the coordinator asks the study's pruner whether
//! the trial goes on, and answers the progress call with `continue` or `prune`. The pruner is the
//! spec's `[pruner]` ([`MedianPruner`], [`AshaPruner`]; semantics and the objective → per-epoch
//! proxy mapping in their docs), else [`CoordinatorOptions::pruner`] ([`NoPruner`] by default);
//! [`CoordinatorOptions::pruner_override`] makes the option win over every spec. A pruned trial's
//! metrics get `pruned_epoch`, `pruned_stage` and, when the worker sent none, the last epoch's
//! validation accuracy and loss as `accuracy` and `loss`.
//!
//! # Adaptive studies
//!
//! A spec whose sampler learns from results (TPE) creates a study with one sampled point; each
//! further point is asked of the sampler, rebuilt from the stored spec, whenever the study has no
//! pending trial (at a lease, or when one of its trials finishes), until `n_trials` points. The
//! sampler sees every finished point with the mean of the objective over its completed seeds.
//! Grid and random studies are planned in full at creation. See `src/adaptive.rs`.
//!
//! # Restarts
//!
//! Everything is in the database, so a coordinator killed at any moment and started again on
//! the same file carries on: pending trials stay pending, completed results stay, and running
//! leases stay valid — at open each gets at least one TTL from now, since its worker could not
//! heartbeat while no coordinator ran. Deadlines are wall-clock milliseconds (see [`Clock`]).
//!
//! # HTTP
//!
//! [`Coordinator::router`] serves the API (JSON bodies of `decsweep_api::wire`) described by
//! [`openapi::document`]; [`Coordinator::serve`] also runs background expiry, refuses a
//! non-loopback address without a bearer token ([`check_bind`]), bounds every wait a client can
//! impose and the number of connections ([`ServeLimits`], `src/serve.rs`), and adds the security
//! headers to every answer (`src/headers.rs`).

mod adaptive;
mod browse;
mod changes;
mod checkpoints;
mod clock;
mod control;
mod dataset;
mod error;
mod headers;
mod health;
mod host;
mod http;
mod intake;
mod limits;
mod logins;
mod metrics;
pub mod openapi;
mod ops;
mod pruner;
mod read;
mod schema;
mod serve;
pub mod sessions;
mod store;
mod study;
mod tls;
mod upload;
mod workers;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
pub use decsweep_api::wire::{CancelOutcome, SeedsAdded};
use decsweep_api::wire::{
    CheckpointInfo, CheckpointUpload, CompleteTrial, EpochProgress, FailTrial, HeartbeatReply, Lease, LeaseRequest,
    ProgressAction, ProgressReply, PruneTrial, Recorded, ReturnTrial, StudyInfo, TrialCurvePoint, TrialInfo,
    TrialStatus,
};
use tokio::sync::Notify;

pub use browse::{
    EpochValue, LeaseView, SortKey, StageProgress, StudyColumns, StudyOverview, SweptParam, TrialDetail, TrialPage,
    TrialQuery, TrialRowView,
};
pub use changes::StudyChanges;
pub use checkpoints::DEFAULT_MAX_CHECKPOINT_BYTES;
pub use clock::{rfc3339, Clock, ManualClock, SystemClock};
pub use dataset::{DEFAULT_MAX_DATASET_BYTES, MAX_SYNTHETIC_N};
pub use error::{Error, Result, StorageProblem};
pub use health::StorageFault;
pub use host::AllowedHosts;
pub use limits::{MAX_SEEDS_PER_REQUEST, MAX_STUDY_TRIALS};
pub use metrics::Metrics;
pub use pruner::{AshaPruner, MedianPruner, NoPruner, PeerPoint, Proxy, PruneContext, Pruner, Series};
pub use schema::SCHEMA_VERSION;
pub use serve::{Scheme, ServeLimits};
pub use sessions::Sessions;
pub use tls::ServerTls;
pub use workers::WorkerInfo;

use crate::metrics::bump;
use crate::ops::{Expired, WriteCtx};
use crate::store::Store;

/// How a coordinator runs. `Default` suits a single machine.
#[derive(Clone, Debug)]
pub struct CoordinatorOptions {
    /// A lease expires this long after it was granted or last extended (heartbeat, progress).
    pub lease_ttl: Duration,
    /// Where datasets are stored by hash. Default: `<db file name>.data/` beside the database.
    pub data_dir: Option<PathBuf>,
    /// Bearer token required on `/v1/*`. Required by [`Coordinator::serve`] on a non-loopback
    /// address. An empty string counts as none.
    pub token: Option<String>,
    /// A second token that may only read (`GET` on `/v1`, a view-only dashboard login).
    /// Ignored without `token`.
    pub read_token: Option<String>,
    /// How often overdue leases are expired in the background (they are also expired before
    /// every lease).
    pub expiry_interval: Duration,
    /// The longest a lease request waits for work (`wait_ms` is capped at this).
    pub max_wait: Duration,
    /// Time for lease deadlines; tests inject a [`ManualClock`].
    pub clock: Arc<dyn Clock>,
    /// Decides after each reported epoch whether a trial goes on, for studies whose spec has
    /// no `[pruner]` (a study's own `[pruner]` wins unless `pruner_override`).
    pub pruner: Arc<dyn Pruner>,
    /// Use `pruner` for every study, ignoring the specs' `[pruner]` sections.
    pub pruner_override: bool,
    /// The largest trial checkpoint an upload may carry (413 past it; the trial goes on).
    pub max_checkpoint_bytes: u64,
    /// The largest dataset `PUT /v1/datasets/{sha256}` accepts (413 past it).
    pub max_dataset_bytes: u64,
    /// The only folder a study created over HTTP may name a dataset file in (`serve
    /// --data-root`); without it such a study must upload its dataset. In-process callers of
    /// [`Coordinator::create_study`] read any path.
    pub data_root: Option<PathBuf>,
    /// Timeouts and the connection limit of [`Coordinator::serve`] (see [`ServeLimits`]).
    pub serve_limits: ServeLimits,
    /// `Host` names served besides IP addresses and `localhost` (`serve --allowed-host`); every
    /// other name is refused with 421 (see `src/host.rs`).
    pub allowed_hosts: AllowedHosts,
}

impl Default for CoordinatorOptions {
    fn default() -> Self {
        CoordinatorOptions {
            lease_ttl: Duration::from_secs(60),
            data_dir: None,
            token: None,
            read_token: None,
            expiry_interval: Duration::from_secs(1),
            max_wait: Duration::from_secs(60),
            clock: Arc::new(SystemClock::new()),
            pruner: Arc::new(NoPruner),
            pruner_override: false,
            max_checkpoint_bytes: checkpoints::DEFAULT_MAX_CHECKPOINT_BYTES,
            max_dataset_bytes: dataset::DEFAULT_MAX_DATASET_BYTES,
            data_root: None,
            serve_limits: ServeLimits::default(),
            allowed_hosts: AllowedHosts::default(),
        }
    }
}

/// The default data directory of a database: `<file name>.data` beside it.
pub fn default_data_dir(db_path: &Path) -> PathBuf {
    let name = db_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "decsweep.db".into());
    db_path.with_file_name(format!("{name}.data"))
}

/// Refuses to listen on anything but loopback without a bearer token.
pub fn check_bind(addr: SocketAddr, token: Option<&str>) -> Result<()> {
    let loopback = addr.ip().to_canonical().is_loopback();
    if !loopback && token.is_none_or(str::is_empty) {
        return Err(Error::InsecureBind { addr });
    }
    Ok(())
}

/// A coordinator over one database. Cheap to clone; clones share everything.
#[derive(Clone, Debug)]
pub struct Coordinator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    data_dir: PathBuf,
    token: Option<String>,
    sessions: Sessions,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    expiry_interval: Duration,
    max_wait: Duration,
    /// Woken when trials become pending (new study, expiry, retryable failure) or at shutdown.
    work: Notify,
    closing: AtomicBool,
    metrics: Metrics,
    max_checkpoint_bytes: u64,
    /// Dataset uploads, the data root and which stored datasets were validated.
    datasets: intake::Datasets,
    serve_limits: ServeLimits,
    allowed_hosts: AllowedHosts,
    /// Each study's spec-derived dashboard columns, parsed once.
    spec_columns: browse::SpecColumnsCache,
    /// Each study's dashboard overview, recomputed only after the study changed.
    overviews: browse::OverviewCache,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
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
                sessions: Sessions::new(options.token.clone(), options.read_token.clone()),
                clock: options.clock.clone(),
                token: options.token.filter(|t| !t.is_empty()),
                ttl: options.lease_ttl,
                expiry_interval: options.expiry_interval.max(Duration::from_millis(10)),
                max_wait: options.max_wait,
                work: Notify::new(),
                closing: AtomicBool::new(false),
                metrics: Metrics::default(),
                max_checkpoint_bytes: options.max_checkpoint_bytes,
                datasets,
                serve_limits: options.serve_limits,
                allowed_hosts: options.allowed_hosts,
                spec_columns: browse::SpecColumnsCache::default(),
                overviews: browse::OverviewCache::default(),
            }),
        })
    }

    /// The HTTP API (see [`openapi::document`]) behind the `Host` rule (`src/host.rs`). Serve it
    /// with [`Coordinator::serve`], which also runs background expiry, bounds request times and
    /// adds the security headers, or mount it yourself.
    pub fn router(&self) -> axum::Router {
        self.guard_hosts(http::router(self.clone()).0)
    }

    /// `app` behind the `Host` rule: every route, fallback included.
    fn guard_hosts(&self, app: axum::Router) -> axum::Router {
        let allowed = self.inner.allowed_hosts.clone();
        app.layer(axum::middleware::from_fn_with_state(allowed, host::require_known_host))
    }

    /// Every `(method, path)` the router serves, e.g. `("POST", "/v1/lease")`.
    pub fn routes(&self) -> Vec<(&'static str, &'static str)> {
        http::router(self.clone()).1
    }

    /// Serves the API on `listener` until `shutdown` completes, expiring leases in the
    /// background. Refuses a non-loopback address without a token ([`check_bind`]). Timeouts and
    /// the connection limit are [`CoordinatorOptions::serve_limits`]. At shutdown, waiting lease
    /// requests are answered 204 at once, and open connections finish their request and close.
    pub async fn serve<F>(&self, listener: tokio::net::TcpListener, shutdown: F) -> Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.serve_with(listener, axum::Router::new(), None, shutdown).await
    }

    /// [`Coordinator::serve`] with `extra` routes beside the API (the dashboard at `/`), over
    /// HTTPS with `tls`'s certificate when given. `extra` must not set a fallback: unknown paths
    /// get the API's JSON 404. The token rule is the same with TLS: encryption does not replace
    /// authentication.
    pub async fn serve_with<F>(
        &self,
        listener: tokio::net::TcpListener,
        extra: axum::Router,
        tls: Option<&ServerTls>,
        shutdown: F,
    ) -> Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let addr = listener.local_addr().map_err(|e| Error::io("listener", e))?;
        check_bind(addr, self.inner.token.as_deref())?;
        // The `Host` rule covers `extra` (the dashboard's pages) as well as the API.
        let app = self
            .guard_hosts(http::router(self.clone()).0.merge(extra))
            .layer(axum::middleware::from_fn_with_state(self.clone(), serve::bound_request_time))
            .layer(axum::middleware::from_fn(headers::secure));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let expiry = tokio::spawn(self.clone().expiry_loop());
        let this = self.clone();
        let signal = async move {
            shutdown.await;
            this.begin_shutdown();
        };
        tracing::info!(%addr, scheme, auth = self.inner.token.is_some(), "coordinator listening");
        serve::serve(listener, app, tls.map(ServerTls::acceptor), self.inner.serve_limits, signal).await;
        expiry.abort();
        Ok(())
    }

    /// Makes waiting lease requests return and stops background expiry.
    pub fn begin_shutdown(&self) {
        self.inner.closing.store(true, Ordering::Release);
        self.inner.work.notify_waiters();
    }

    async fn expiry_loop(self) {
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

    /// Timeouts and the connection limit of [`Coordinator::serve`].
    pub fn serve_limits(&self) -> &ServeLimits {
        &self.inner.serve_limits
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

    /// The bearer token, if one is configured.
    pub fn token(&self) -> Option<&str> {
        self.inner.token.as_deref()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The tokens and the dashboard's browser sessions.
    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    /// The newest change's cursor (see [`StudyChanges`]).
    pub async fn change_cursor(&self) -> Result<i64> {
        self.inner.store.read(changes::cursor).await
    }

    /// What changed in a study after `since`, among the trials `among`.
    pub async fn study_changes(&self, study: &str, since: i64, among: Vec<i64>) -> Result<StudyChanges> {
        let study = study.to_string();
        self.inner
            .store
            .read(move |c| {
                let id: i64 = c
                    .query_row("SELECT id FROM studies WHERE name = ?1", [&study], |r| r.get(0))
                    .map_err(|_| Error::StudyNotFound(study.clone()))?;
                changes::study_changes(c, id, since, &among)
            })
            .await
    }

    /// Overviews of the studies changed after `since` (all of them when the cursor is stale or
    /// `since` is `None`), and the cursor now.
    pub async fn study_overviews(&self, since: Option<i64>) -> Result<(i64, Vec<StudyOverview>)> {
        let inner = Arc::clone(&self.inner);
        self.inner
            .store
            .read(move |c| {
                let (cursor, only) = match since {
                    Some(since) => changes::changed_studies(c, since)?,
                    None => (changes::cursor(c)?, None),
                };
                let list = browse::overviews(c, only.as_deref(), &inner.overviews)?;
                Ok((cursor, list.into_iter().map(|(_, o)| o).collect()))
            })
            .await
    }

    /// One study's overview; `None` when there is no such study.
    pub async fn study_overview(&self, name: &str) -> Result<Option<StudyOverview>> {
        let name = name.to_string();
        let inner = Arc::clone(&self.inner);
        self.inner
            .store
            .read(move |c| {
                let id: Option<i64> = rusqlite::OptionalExtension::optional(c.query_row(
                    "SELECT id FROM studies WHERE name = ?1",
                    [&name],
                    |r| r.get(0),
                ))?;
                let Some(id) = id else { return Ok(None) };
                Ok(browse::overviews(c, Some(&[id]), &inner.overviews)?.pop().map(|(_, o)| o))
            })
            .await
    }

    /// Whether a trial changed after `since`, and the cursor now.
    pub async fn trial_changed(&self, trial_id: i64, since: i64) -> Result<(i64, bool)> {
        self.inner.store.read(move |c| changes::trial_changed(c, trial_id, since)).await
    }

    /// One page of a study's trials, sorted and filtered in SQL.
    pub async fn trial_page(&self, study: &str, query: TrialQuery) -> Result<TrialPage> {
        let study = study.to_string();
        self.inner.store.read(move |c| browse::trial_page(c, &study, &query)).await
    }

    /// The given trials as table rows.
    pub async fn trial_rows(&self, ids: Vec<i64>) -> Result<Vec<TrialRowView>> {
        self.inner.store.read(move |c| browse::trial_rows(c, &ids)).await
    }

    /// A study's swept parameters and metric names.
    pub async fn study_columns(&self, study: &str) -> Result<StudyColumns> {
        let study = study.to_string();
        let inner = Arc::clone(&self.inner);
        self.inner.store.read(move |c| browse::study_columns(c, &study, &inner.spec_columns)).await
    }

    /// A trial with its lease history.
    pub async fn trial_detail(&self, trial_id: i64) -> Result<TrialDetail> {
        self.inner.store.read(move |c| browse::trial_detail(c, trial_id)).await
    }

    /// Per-epoch validation accuracy of a study's latest `max_trials` trials.
    pub async fn epoch_values(&self, study: &str, max_trials: u64) -> Result<Vec<EpochValue>> {
        let study = study.to_string();
        self.inner.store.read(move |c| browse::epoch_values(c, &study, max_trials)).await
    }

    /// Every worker process seen, most recently heard from first.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        self.inner.store.read(workers::list).await
    }

    /// The clock's now, in Unix milliseconds (what [`WorkerInfo::last_seen_ms`] is measured by).
    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// What is wrong with the database's disk (full, read-only, failing), from the last write
    /// it refused until a write succeeds again. Meanwhile every request that must write answers
    /// 503 with the same words, and reads keep working.
    pub fn storage_fault(&self) -> Option<StorageFault> {
        self.inner.store.storage_fault()
    }

    /// Every study, oldest first.
    pub async fn studies(&self) -> Result<Vec<StudyInfo>> {
        self.inner.store.read(read::studies).await
    }

    pub async fn study(&self, name: &str) -> Result<StudyInfo> {
        let name = name.to_string();
        self.inner.store.read(move |c| read::study(c, &name)).await
    }

    /// A study's trials in id order, optionally only those in `status`.
    pub async fn trials(&self, study: &str, status: Option<TrialStatus>) -> Result<Vec<TrialInfo>> {
        let study = study.to_string();
        self.inner.store.read(move |c| read::trials(c, &study, status)).await
    }

    pub async fn trial(&self, id: i64) -> Result<TrialInfo> {
        self.inner.store.read(move |c| read::trial(c, id)).await
    }

    /// Every epoch a trial's attempts reported, in the order recorded.
    pub async fn curves(&self, trial_id: i64) -> Result<Vec<TrialCurvePoint>> {
        self.inner.store.read(move |c| read::curves(c, trial_id)).await
    }

    /// A study's rows mapped for [`decsweep_report::write_all`].
    pub async fn report_input(
        &self,
        study: &str,
    ) -> Result<(Vec<decsweep_report::TrialRow>, Vec<decsweep_report::CurvePoint>)> {
        let study = study.to_string();
        self.inner.store.read(move |c| read::report_input(c, &study)).await
    }

    /// A page of [`Coordinator::report_input`] for `GET /v1/studies/{name}/export`: up to
    /// `limit` trials with ids above `after`, each with its latest attempt's curve.
    pub async fn export_page(&self, study: &str, after: i64, limit: u32) -> Result<decsweep_api::wire::StudyExport> {
        let study = study.to_string();
        self.inner.store.read(move |c| read::export_page(c, &study, after, limit)).await
    }

    fn note_expired(&self, expired: &Expired) {
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

    /// Leases the oldest pending trial to `req.worker`, waiting up to `req.wait_ms` (capped
    /// at [`CoordinatorOptions::max_wait`]) for one. `None`: nothing became available.
    pub async fn lease(&self, req: &LeaseRequest) -> Result<Option<Lease>> {
        let wait = Duration::from_millis(req.wait_ms).min(self.inner.max_wait);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before looking, so a notification between the look and the wait is kept.
            let notified = self.inner.work.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.inner.closing.load(Ordering::Acquire) {
                return Ok(None);
            }
            let (worker, agent) = (req.worker.clone(), req.agent.clone());
            let (lease, expired) = self
                .inner
                .store
                .write(move |ctx| {
                    workers::seen(&ctx.conn, &worker, agent.as_ref(), ctx.clock.now_ms())?;
                    ctx.lease(&worker)
                })
                .await?;
            self.note_expired(&expired);
            if let Some(lease) = lease {
                bump(&self.inner.metrics.leases_granted, 1);
                tracing::debug!(trial_id = lease.trial_id, worker = %req.worker, attempt = lease.attempt, "leased");
                return Ok(Some(lease));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Extends a lease by the TTL. The answer's action is `stop` once the user cancelled or
    /// failed the trial.
    pub async fn heartbeat(&self, lease_id: &str) -> Result<HeartbeatReply> {
        let id = lease_id.to_string();
        let (ttl_ms, action) = self
            .inner
            .store
            .write(move |ctx| {
                let answer = ctx.heartbeat(&id)?;
                workers::seen_lease(&ctx.conn, &id, ctx.clock.now_ms())?;
                Ok(answer)
            })
            .await?;
        Ok(HeartbeatReply { ttl_ms, action })
    }

    /// Records one epoch, extends the lease, and says whether to go on.
    pub async fn progress(&self, lease_id: &str, progress: EpochProgress) -> Result<ProgressReply> {
        let id = lease_id.to_string();
        let action: ProgressAction = self
            .inner
            .store
            .write(move |ctx| {
                let action = ctx.progress(&id, &progress)?;
                workers::seen_lease(&ctx.conn, &id, ctx.clock.now_ms())?;
                Ok(action)
            })
            .await?;
        Ok(ProgressReply { action })
    }

    /// Records a trial's result. `recorded: false`: this lease had already completed it. A lease
    /// replaced by a newer one is [`Error::LeaseConflict`] and changes nothing.
    pub async fn complete(&self, lease_id: &str, body: CompleteTrial) -> Result<Recorded> {
        let id = lease_id.to_string();
        let recorded = self
            .write_collecting(move |ctx| {
                let recorded = ctx.complete(&id, &body.metrics)?;
                if let (true, Some(manifest)) = (recorded, &body.manifest) {
                    ctx.record_manifest(&id, manifest)?;
                }
                Ok(recorded)
            })
            .await?;
        if recorded {
            bump(&self.inner.metrics.completions, 1);
            // An adaptive study may have sampled its next point.
            self.inner.work.notify_waiters();
        }
        Ok(Recorded { recorded })
    }

    /// Records a failed attempt; the trial is retried while `retryable` and retries are left.
    pub async fn fail(&self, lease_id: &str, body: FailTrial) -> Result<Recorded> {
        let id = lease_id.to_string();
        let outcome = self.write_collecting(move |ctx| ctx.fail(&id, &body.reason, body.retryable)).await?;
        if outcome.recorded {
            bump(&self.inner.metrics.failures, 1);
        }
        if outcome.requeued || outcome.recorded {
            self.inner.work.notify_waiters();
        }
        Ok(Recorded { recorded: outcome.recorded })
    }

    /// A write that may end trials (and so orphan their checkpoints): the same transaction
    /// empties `checkpoint_garbage`, and the files no row references are deleted after it.
    async fn write_collecting<T, F>(&self, f: F) -> Result<T>
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

    /// Stores an uploaded trial state (`PUT /v1/leases/{id}/checkpoint`) as the latest of the
    /// lease's trial; see [`checkpoints`].
    pub async fn save_checkpoint(
        &self,
        lease_id: &str,
        upload: CheckpointUpload,
        body: Body,
    ) -> Result<CheckpointInfo> {
        // Before a byte of the body is read: an unknown, ended or replaced lease costs no disk.
        let id = lease_id.to_string();
        self.inner.store.read(move |c| ops::check_checkpoint_lease(c, &id)).await?;
        let received =
            checkpoints::receive(body, &self.inner.data_dir, &upload, self.inner.max_checkpoint_bytes).await?;
        let info =
            CheckpointInfo { sha256: upload.sha256, bytes: received.bytes, stage: upload.stage, epoch: upload.epoch };
        let (id, stored, data_dir) = (lease_id.to_string(), info.clone(), self.inner.data_dir.clone());
        self.write_collecting(move |ctx| {
            // The row first: a lease refused meanwhile leaves the temporary file to be dropped.
            // Renamed in the writer thread, so no garbage collection between the rename and the
            // commit can take the file for an identical one that was just dropped; a failed
            // rename rolls the row back.
            ctx.save_checkpoint(&id, &stored)?;
            let path = checkpoints::file(&data_dir, &stored.sha256);
            received.temp.persist(&path).map_err(|e| Error::io(&path, e.error))
        })
        .await?;
        bump(&self.inner.metrics.checkpoints, 1);
        tracing::debug!(lease_id, stage = %info.stage, epoch = info.epoch, bytes = info.bytes, "checkpoint stored");
        Ok(info)
    }

    /// The stored checkpoint of the trial a lease ran, and its file.
    pub async fn checkpoint(&self, lease_id: &str) -> Result<(CheckpointInfo, PathBuf)> {
        let id = lease_id.to_string();
        let info = self.inner.store.read(move |c| checkpoints::of_lease(c, &id)).await?;
        let path = checkpoints::file(&self.inner.data_dir, &info.sha256);
        Ok((info, path))
    }

    /// Takes a trial back from a stopping worker: pending again, the attempt not counted.
    pub async fn give_back(&self, lease_id: &str, body: ReturnTrial) -> Result<Recorded> {
        let id = lease_id.to_string();
        let recorded = self.inner.store.write(move |ctx| ctx.give_back(&id, &body.reason)).await?;
        if recorded {
            bump(&self.inner.metrics.returns, 1);
            self.inner.work.notify_waiters();
        }
        Ok(Recorded { recorded })
    }

    /// Records that a trial was stopped early at the coordinator's request.
    pub async fn prune(&self, lease_id: &str, body: PruneTrial) -> Result<Recorded> {
        let id = lease_id.to_string();
        let recorded = self.write_collecting(move |ctx| ctx.prune(&id, &body)).await?;
        if recorded {
            bump(&self.inner.metrics.prunes, 1);
            self.inner.work.notify_waiters();
        }
        Ok(Recorded { recorded })
    }

    /// Cancels a study: pending trials become `cancelled` at once; running ones become
    /// `cancelled` and their workers are told to stop at their next heartbeat or epoch; an
    /// adaptive study proposes nothing more. Semantics in `src/control.rs`.
    pub async fn cancel_study(&self, name: &str) -> Result<CancelOutcome> {
        let owned = name.to_string();
        let out = self.write_collecting(move |ctx| ctx.cancel_study(&owned)).await?;
        bump(&self.inner.metrics.cancellations, out.cancelled + out.stopping);
        tracing::info!(study = %name, pending = out.cancelled, running = out.stopping, "study cancelled");
        Ok(out)
    }

    /// Puts a study's failed trials (or only `trial_id`, which must be a failed trial of that
    /// study) back in the queue, each with the study's retries again; returns how many.
    pub async fn retry_trials(&self, name: &str, trial_id: Option<i64>) -> Result<u64> {
        let owned = name.to_string();
        let n = self.inner.store.write(move |ctx| ctx.retry_trials(&owned, trial_id)).await?;
        if n > 0 {
            bump(&self.inner.metrics.retried, n);
            tracing::info!(study = %name, trials = n, "failed trials retried");
            self.inner.work.notify_waiters();
        }
        Ok(n)
    }

    /// Marks a pending or running trial failed with `reason` (default "failed by user"); a
    /// running trial's worker is told to stop. `false`: it had already failed.
    pub async fn fail_trial(&self, trial_id: i64, reason: Option<String>) -> Result<bool> {
        let reason = reason.filter(|r| !r.trim().is_empty()).unwrap_or_else(|| control::DEFAULT_FAIL_REASON.into());
        let failed = self.write_collecting(move |ctx| ctx.fail_trial(trial_id, &reason)).await?;
        if failed {
            bump(&self.inner.metrics.user_failures, 1);
            tracing::info!(trial_id, "trial failed by the user");
            // An adaptive study may have sampled its next point.
            self.inner.work.notify_waiters();
        }
        Ok(failed)
    }

    /// Adds every configuration of the study × each new seed as pending trials; returns how
    /// many. [`Coordinator::add_seeds_detailed`] also says which seeds were already there.
    pub async fn add_seeds(&self, name: &str, seeds: Vec<u64>) -> Result<u64> {
        Ok(self.add_seeds_detailed(name, seeds).await?.added)
    }

    /// [`Coordinator::add_seeds`], with the seeds the study already had (skipped).
    /// At most [`MAX_SEEDS_PER_REQUEST`] seeds (413), checked before the writer is asked, and
    /// the study may not grow past [`MAX_STUDY_TRIALS`] (422).
    pub async fn add_seeds_detailed(&self, name: &str, seeds: Vec<u64>) -> Result<SeedsAdded> {
        let seeds = limits::distinct_seeds(seeds)?;
        let owned = name.to_string();
        let out = self.inner.store.write(move |ctx| ctx.add_seeds(&owned, &seeds)).await?;
        if out.added > 0 {
            bump(&self.inner.metrics.seeded_trials, out.added);
            tracing::info!(study = %name, trials = out.added, skipped = ?out.skipped, "seeds added");
            self.inner.work.notify_waiters();
        }
        Ok(out)
    }

    /// The `/metrics` text.
    pub async fn metrics_text(&self) -> Result<String> {
        let gauges = self.inner.metrics.gauges(|| self.inner.store.read(read::status_gauges)).await?;
        Ok(self.inner.metrics.render(&gauges))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_may_go_without_a_token() {
        let ok = |a: &str, t: Option<&str>| check_bind(a.parse().unwrap(), t).is_ok();
        assert!(ok("127.0.0.1:80", None));
        assert!(ok("[::1]:80", None));
        assert!(ok("[::ffff:127.0.0.1]:80", None));
        assert!(!ok("0.0.0.0:80", None));
        assert!(!ok("10.1.2.3:80", Some("")));
        assert!(ok("0.0.0.0:80", Some("secret")));
        let err = check_bind("0.0.0.0:8080".parse().unwrap(), None).unwrap_err();
        assert!(err.to_string().contains("without a bearer token"), "{err}");
    }

    #[test]
    fn the_data_dir_sits_beside_the_database() {
        assert_eq!(default_data_dir(Path::new("/x/sweeps.db")), PathBuf::from("/x/sweeps.db.data"));
        assert_eq!(default_data_dir(Path::new("s.db")), PathBuf::from("s.db.data"));
    }

    /// The database turning read-only under a running coordinator, over HTTP. (A real file
    /// system cannot be remounted read-only while the coordinator holds its files open for
    /// writing, so SQLite's own `query_only` stands in: it answers every write SQLITE_READONLY.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_only_database_answers_writes_503_in_words_while_reads_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let c = Coordinator::open(dir.path().join("c.db"), CoordinatorOptions::default()).unwrap();
        c.inner.store.write(|ctx| ctx.insert_study(&crate::ops::tests::command_study("a", 2, 2))).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let served = c.clone();
        let server = tokio::spawn(async move { served.serve(listener, std::future::pending()).await });
        let http = reqwest::Client::new();
        let lease =
            || http.post(format!("{base}/v1/lease")).json(&serde_json::json!({"worker": "w", "wait_ms": 0})).send();
        let health = || async {
            http.get(format!("{base}/healthz")).send().await.unwrap().json::<serde_json::Value>().await.unwrap()
        };
        assert_eq!(health().await["storage"], "ok");

        let read_only = |on: bool| c.inner.store.configure(move |conn| conn.pragma_update(None, "query_only", on));
        read_only(true).await.unwrap();
        let refused = lease().await.unwrap();
        assert_eq!(refused.status(), 503);
        let body: decsweep_api::wire::ApiError = refused.json().await.unwrap();
        assert!(body.error.starts_with("storage read-only: "), "{body:?}");
        let studies = http.get(format!("{base}/v1/studies")).send().await.unwrap();
        assert_eq!(studies.status(), 200, "reads go on");
        let h = health().await;
        assert_eq!(h["status"], "degraded");
        assert_eq!(h["storage"]["problem"], "read-only", "{h}");
        assert!(h["storage"]["error"].as_str().unwrap().starts_with("storage read-only: "), "{h}");

        read_only(false).await.unwrap();
        let granted = lease().await.unwrap();
        assert_eq!(granted.status(), 200, "the same coordinator writes again once it may");
        assert_eq!(health().await["storage"], "ok");
        server.abort();
    }
}
