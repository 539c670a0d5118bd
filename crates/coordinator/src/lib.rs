//! decsweep's coordinator core: studies and trials in SQLite, handed out to pulling workers
//! under leases. A [`Coordinator`] is a handle with plain verbs; `decsweep-server` puts them on
//! HTTP, the dashboard reads through them. No torch, and no HTTP here.
//!
//! ```no_run
//! # async fn demo() -> Result<(), decsweep_coordinator::Error> {
//! use decsweep_coordinator::{Coordinator, CoordinatorOptions};
//! use decsweep_api::wire::{CreateStudy, LeaseRequest};
//!
//! let coordinator = Coordinator::open("sweeps.db", CoordinatorOptions::default())?;
//! let spec = std::fs::read_to_string("sweeps/demo.toml").unwrap();
//! coordinator.create_study(CreateStudy::new(spec, "sweeps/demo.toml")).await?;
//! let lease = coordinator.lease(&LeaseRequest { worker: "w".into(), wait_ms: 0, agent: None, pack: None }).await?;
//! let (trials, curves) = coordinator.report_input("demo").await?;
//! # Ok(()) }
//! ```
//!
//! # Components
//!
//! | module | what |
//! | --- | --- |
//! | `handle` | the [`Coordinator`] handle: store, data directory, wake-ups, background expiry |
//! | `lock` | one coordinator per database: the OS lock on `<db>.lock` and who holds it |
//! | `options` | [`CoordinatorOptions`] |
//! | `work`, `steer`, `intake`, `queries`, `views` | the verbs: workers', the user's controls, new studies and datasets, reads, the dashboard's reads |
//! | `lifecycle` | every move of a trial and its lease, decided in one place (tables in its doc) |
//! | `store`, `schema`, `writer` | the SQLite file: one writer thread with group commit, a read pool, migrations; the writer's handle (`WriteCtx`) |
//! | `ops`, `leases`, `control`, `adaptive` | the writes: new studies and trials, a worker's calls on its lease, the user's controls, sampling adaptive studies |
//! | `pruner`, `curves` | whether a trial goes on after an epoch ([`Pruner`]), over a view of stored curves ([`Curves`]) |
//! | `read`, `browse`, `changes`, `workers` | queries: API rows, dashboard views, change cursors, workers seen |
//! | `checkpoints`, `dataset`, `upload` | files in the data directory: trial checkpoints, datasets by hash, streamed uploads |
//! | `study`, `limits`, `health`, `metrics`, `clock`, `error` | study creation, request bounds, the disk's state, counters, time, [`Error`] |
//! | `rows` | rows shared by the writes and the files (a leaf: it imports nothing of the crate) |
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
//! # Leases and the user's controls
//!
//! [`Coordinator::lease`] hands out the oldest pending trial of any study (FIFO by id), marks it
//! running, counts the attempt and sets a deadline of now + TTL; heartbeats and progress reports
//! push it out, and overdue leases are expired before every lease and in the background.
//! [`Coordinator::cancel_study`], [`Coordinator::resume_study`], [`Coordinator::retry_trials`],
//! [`Coordinator::fail_trial`] and [`Coordinator::add_seeds`] steer a study. What every call does to a trial and its lease (late
//! completion, idempotent repeats, conflicts, `stop` after a user's control) is decided and
//! tabled in one place, `src/lifecycle.rs`.
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
//! One coordinator per database: [`Coordinator::open`] takes an OS lock on `<db>.lock` (which
//! names its holder) and a second opener gets [`Error::Locked`]; the lock dies with its process,
//! so a killed coordinator's successor just starts. [`Coordinator::open_reader`] reads a
//! database without the lock, beside its coordinator. See `src/lock.rs`.
//!

mod adaptive;
mod browse;
mod changes;
mod checkpoints;
mod clock;
mod config_labels;
mod control;
mod curves;
mod dataset;
mod error;
mod grant;
mod handle;
mod health;
mod intake;
mod leases;
mod lifecycle;
mod limits;
mod lock;
mod metrics;
mod ops;
mod options;
mod packs;
mod pruner;
mod queries;
mod read;
mod rows;
mod schema;
mod steer;
mod store;
mod study;
mod upload;
mod views;
mod work;
mod workers;
mod writer;

pub use browse::{
    EpochValue, LeaseView, SortKey, StageProgress, StudyColumns, StudyOverview, SweptParam, TrialDetail, TrialPage,
    TrialQuery, TrialRowView,
};
pub use changes::StudyChanges;
pub use checkpoints::DEFAULT_MAX_CHECKPOINT_BYTES;
pub use clock::{rfc3339, Clock, ManualClock, SystemClock};
pub use config_labels::ConfigLabels;
pub use dataset::{DEFAULT_MAX_DATASET_BYTES, MAX_SYNTHETIC_N};
pub use error::{Error, Result, StorageProblem};
pub use handle::Coordinator;
pub use health::StorageFault;
pub use limits::{MAX_SEEDS_PER_REQUEST, MAX_STUDY_TRIALS};
pub use lock::{lock_path, LockHolder};
pub use metrics::Metrics;
pub use options::{default_data_dir, CoordinatorOptions};
pub use pruner::{
    AshaPruner, CurveQuery, Curves, MedianPruner, NoPruner, PeerPoint, Proxy, PruneContext, Pruner, Series,
};
pub use schema::SCHEMA_VERSION;
pub use steer::{CancelOutcome, Resumed, SeedsAdded};
pub use workers::WorkerInfo;

pub(crate) use handle::blocking;
