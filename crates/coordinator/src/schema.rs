//! The database schema, its versions and how a connection is set up.
//!
//! The version lives in `PRAGMA user_version`. [`migrate`] applies every migration newer than
//! the file's version, each in its own transaction together with the version bump, and refuses
//! a file whose version is newer than this build knows (a newer decsweep wrote it).
//!
//! Times are Unix milliseconds (`*_ms` columns; see [`crate::clock`]) except `created_at`,
//! kept as RFC 3339 text for people reading the file with `sqlite3`.
//!
//! # Durability
//!
//! WAL journal with `synchronous = FULL`: a commit returns only once the WAL is on disk, so a
//! completion the API acknowledged survives a power cut, not only a killed process. FULL costs
//! one fsync per commit; the writer thread ([`crate::store`]) commits many requests in one
//! transaction (group commit), so that cost is paid per batch, not per request.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::{Error, Result};

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = 8;

/// Migration `i` brings a database from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 → 1: the initial schema.
    r#"
    CREATE TABLE datasets (
        sha256      TEXT PRIMARY KEY,
        file        TEXT NOT NULL,              -- file name inside the data directory
        bytes       INTEGER NOT NULL,
        source      TEXT NOT NULL,              -- "file:<path>" or "synthetic:seed=<s>,n=<n>"
        created_at  TEXT NOT NULL
    );
    CREATE INDEX datasets_source ON datasets(source);

    CREATE TABLE studies (
        id                  INTEGER PRIMARY KEY,
        name                TEXT NOT NULL UNIQUE,
        spec                TEXT NOT NULL,
        spec_path           TEXT NOT NULL,
        dataset_sha256      TEXT NOT NULL REFERENCES datasets(sha256),
        retries             INTEGER NOT NULL,
        objective_metric    TEXT NOT NULL,
        objective_direction TEXT NOT NULL,      -- "maximize" | "minimize"
        created_at          TEXT NOT NULL,
        created_ms          INTEGER NOT NULL
    );

    CREATE TABLE trials (
        id                INTEGER PRIMARY KEY,
        study_id          INTEGER NOT NULL REFERENCES studies(id),
        trial_key         TEXT NOT NULL,
        pipeline          TEXT NOT NULL,        -- baseline | dec | command
        job               TEXT NOT NULL,        -- JSON of decsweep_api::wire::TrialJob
        params            TEXT NOT NULL,        -- JSON object: the parameters the pipeline reads
        seed              INTEGER NOT NULL,     -- u64 stored bit-for-bit as i64
        config_id         TEXT NOT NULL,
        label             TEXT,
        status            TEXT NOT NULL
                          CHECK (status IN ('pending', 'running', 'completed', 'failed', 'pruned')),
        attempts          INTEGER NOT NULL DEFAULT 0,
        lease_id          TEXT,                 -- the current (or last) lease
        worker            TEXT,
        lease_expires_ms  INTEGER,
        error             TEXT,
        metrics           TEXT,                 -- JSON object name -> number
        created_ms        INTEGER NOT NULL,
        started_ms        INTEGER,              -- first lease
        finished_ms       INTEGER,
        updated_ms        INTEGER NOT NULL,
        UNIQUE (study_id, trial_key)
    );
    -- The queue: oldest pending first, across studies.
    CREATE INDEX trials_pending ON trials(id) WHERE status = 'pending';
    -- Expiry: running trials by deadline.
    CREATE INDEX trials_running_expiry ON trials(lease_expires_ms) WHERE status = 'running';
    CREATE INDEX trials_study_status ON trials(study_id, status);

    -- Every lease ever granted, so a call naming an old lease can be told apart from an unknown
    -- one: the same lease repeating its completion is answered 200, a replaced lease 409.
    CREATE TABLE leases (
        lease_id    TEXT PRIMARY KEY,
        trial_id    INTEGER NOT NULL REFERENCES trials(id),
        attempt     INTEGER NOT NULL,
        worker      TEXT NOT NULL,
        granted_ms  INTEGER NOT NULL,
        ended_ms    INTEGER,
        -- NULL while active; then expired | completed | failed | released | pruned
        outcome     TEXT
    ) WITHOUT ROWID;

    CREATE TABLE curves (
        id            INTEGER PRIMARY KEY,
        trial_id      INTEGER NOT NULL REFERENCES trials(id),
        attempt       INTEGER NOT NULL,
        stage         TEXT NOT NULL,
        epoch         INTEGER NOT NULL,
        epochs        INTEGER NOT NULL,
        train_loss    REAL,
        val_loss      REAL,
        val_accuracy  REAL,
        recorded_ms   INTEGER NOT NULL,
        UNIQUE (trial_id, attempt, stage, epoch)
    );
    "#,
    // 1 → 2: adaptive studies (TPE) plan their trials as the sampler proposes points.
    r#"
    -- 1: trials are asked of the spec's sampler as work is needed (crates/coordinator/src/adaptive.rs).
    ALTER TABLE studies ADD COLUMN adaptive INTEGER NOT NULL DEFAULT 0;
    -- JSON of the sampled point a trial was planned from (adaptive studies only).
    ALTER TABLE trials ADD COLUMN point TEXT;
    "#,
    // 2 → 3: the user's controls (cancel, retry, fail, add seeds). SQLite cannot alter a CHECK
    // constraint, so `trials` is rebuilt with `cancelled` allowed (every row, column and index
    // kept); `migrate` turns foreign keys off around it, as SQLite's own procedure requires.
    r#"
    CREATE TABLE trials_v3 (
        id                INTEGER PRIMARY KEY,
        study_id          INTEGER NOT NULL REFERENCES studies(id),
        trial_key         TEXT NOT NULL,
        pipeline          TEXT NOT NULL,        -- baseline | dec | command
        job               TEXT NOT NULL,        -- JSON of decsweep_api::wire::TrialJob
        params            TEXT NOT NULL,        -- JSON object: the parameters the pipeline reads
        seed              INTEGER NOT NULL,     -- u64 stored bit-for-bit as i64
        config_id         TEXT NOT NULL,
        label             TEXT,
        status            TEXT NOT NULL
                          CHECK (status IN ('pending', 'running', 'completed', 'failed', 'pruned', 'cancelled')),
        attempts          INTEGER NOT NULL DEFAULT 0,
        lease_id          TEXT,                 -- the current (or last) lease
        worker            TEXT,
        lease_expires_ms  INTEGER,
        error             TEXT,
        metrics           TEXT,                 -- JSON object name -> number
        created_ms        INTEGER NOT NULL,
        started_ms        INTEGER,              -- first lease
        finished_ms       INTEGER,
        updated_ms        INTEGER NOT NULL,
        point             TEXT,                 -- JSON of the sampled point (adaptive studies)
        -- `attempts` when the user last retried the trial: the study's `retries` count from here.
        attempts_base     INTEGER NOT NULL DEFAULT 0,
        UNIQUE (study_id, trial_key)
    );
    INSERT INTO trials_v3 (id, study_id, trial_key, pipeline, job, params, seed, config_id, label, status,
                           attempts, lease_id, worker, lease_expires_ms, error, metrics, created_ms,
                           started_ms, finished_ms, updated_ms, point)
        SELECT id, study_id, trial_key, pipeline, job, params, seed, config_id, label, status,
               attempts, lease_id, worker, lease_expires_ms, error, metrics, created_ms,
               started_ms, finished_ms, updated_ms, point
          FROM trials;
    DROP TABLE trials;
    ALTER TABLE trials_v3 RENAME TO trials;
    CREATE INDEX trials_pending ON trials(id) WHERE status = 'pending';
    CREATE INDEX trials_running_expiry ON trials(lease_expires_ms) WHERE status = 'running';
    CREATE INDEX trials_study_status ON trials(study_id, status);

    -- Set by `cancel`: an adaptive study proposes no more points.
    ALTER TABLE studies ADD COLUMN cancelled_ms INTEGER;
    "#,
    // 3 → 4: the dashboard's change log and the workers it lists.
    r#"
    -- Every change to a trial (a new trial, a status or lease change, a reported epoch) as one
    -- row; `seq` is the change cursor a dashboard page polls with (crates/coordinator/src/changes.rs).
    -- Written by triggers, so every write path (present and future) is covered without code.
    CREATE TABLE changes (
        seq       INTEGER PRIMARY KEY AUTOINCREMENT,
        study_id  INTEGER NOT NULL,
        trial_id  INTEGER NOT NULL
    );
    CREATE INDEX changes_study ON changes(study_id, seq);
    CREATE TRIGGER changes_trial_inserted AFTER INSERT ON trials BEGIN
        INSERT INTO changes (study_id, trial_id) VALUES (NEW.study_id, NEW.id);
    END;
    CREATE TRIGGER changes_trial_updated AFTER UPDATE ON trials BEGIN
        INSERT INTO changes (study_id, trial_id) VALUES (NEW.study_id, NEW.id);
    END;
    CREATE TRIGGER changes_curve_inserted AFTER INSERT ON curves BEGIN
        INSERT INTO changes (study_id, trial_id) SELECT study_id, id FROM trials WHERE id = NEW.trial_id;
    END;
    -- The log keeps the last 100,000 changes: every 1,000th insert drops the older ones, so the
    -- cost is amortised. A page whose cursor fell off the log reloads.
    CREATE TRIGGER changes_trimmed AFTER INSERT ON changes WHEN NEW.seq % 1000 = 0 BEGIN
        DELETE FROM changes WHERE seq <= NEW.seq - 100000;
    END;

    -- Worker processes seen by lease requests (crates/coordinator/src/workers.rs).
    CREATE TABLE workers (
        name           TEXT PRIMARY KEY,
        host           TEXT NOT NULL DEFAULT '',
        slots          INTEGER NOT NULL DEFAULT 0,
        device         TEXT NOT NULL DEFAULT '',
        first_seen_ms  INTEGER NOT NULL,
        last_seen_ms   INTEGER NOT NULL
    );
    -- The `worker` name each slot leases under, and the process it belongs to.
    CREATE TABLE worker_slots (
        slot    TEXT PRIMARY KEY,
        agent   TEXT NOT NULL REFERENCES workers(name)
    ) WITHOUT ROWID;
    CREATE INDEX worker_slots_agent ON worker_slots(agent);
    "#,
    // 4 → 5: trial checkpoints, so a preempted trial resumes (crates/coordinator/src/checkpoints.rs).
    r#"
    -- The latest state each unfinished trial saved; the file is `<data dir>/checkpoints/<sha256>.ckpt`.
    CREATE TABLE checkpoints (
        trial_id   INTEGER PRIMARY KEY REFERENCES trials(id),
        sha256     TEXT NOT NULL,
        bytes      INTEGER NOT NULL,
        stage      TEXT NOT NULL,               -- the stage in progress, and epochs of it done
        epoch      INTEGER NOT NULL,
        attempt    INTEGER NOT NULL,            -- the attempt whose curves led up to it
        saved_ms   INTEGER NOT NULL
    );
    CREATE INDEX checkpoints_sha256 ON checkpoints(sha256);
    -- Files no row may need any more; the coordinator deletes those still unreferenced.
    CREATE TABLE checkpoint_garbage (sha256 TEXT PRIMARY KEY) WITHOUT ROWID;
    CREATE TRIGGER checkpoints_replaced AFTER UPDATE OF sha256 ON checkpoints
        WHEN OLD.sha256 != NEW.sha256 BEGIN
        INSERT OR IGNORE INTO checkpoint_garbage (sha256) VALUES (OLD.sha256);
    END;
    CREATE TRIGGER checkpoints_deleted AFTER DELETE ON checkpoints BEGIN
        INSERT OR IGNORE INTO checkpoint_garbage (sha256) VALUES (OLD.sha256);
    END;
    -- A trial that ended, however it ended (every write path, present and future), needs its
    -- state no more; one sent back to pending (returned, expired, a retryable failure) keeps it.
    CREATE TRIGGER checkpoints_trial_ended AFTER UPDATE OF status ON trials
        WHEN NEW.status IN ('completed', 'failed', 'pruned', 'cancelled') BEGIN
        DELETE FROM checkpoints WHERE trial_id = NEW.id;
    END;
    -- Leases that resumed the trial from a checkpoint, and where the last one started.
    ALTER TABLE trials ADD COLUMN resumes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE trials ADD COLUMN resumed_from TEXT;
    -- JSON: what a completed trial's result was computed with (`decsweep reproduce`).
    ALTER TABLE trials ADD COLUMN manifest TEXT;
    "#,
    // 5 → 6: lease outcomes are checked, as trial statuses are. SQLite cannot add a CHECK
    // constraint, so `leases` is rebuilt (every row kept; it has no index but its key, no
    // trigger, and no table references it); `migrate` turns foreign keys off around it.
    r#"
    CREATE TABLE leases_v6 (
        lease_id    TEXT PRIMARY KEY,
        trial_id    INTEGER NOT NULL REFERENCES trials(id),
        attempt     INTEGER NOT NULL,
        worker      TEXT NOT NULL,
        granted_ms  INTEGER NOT NULL,
        ended_ms    INTEGER,
        -- NULL while active; then how it ended: decsweep_api::LeaseOutcome, whose moves are
        -- crates/coordinator/src/lifecycle.rs's tables.
        outcome     TEXT CHECK (outcome IN ('expired', 'completed', 'failed', 'released', 'pruned',
                                            'returned', 'cancelled', 'failed_by_user'))
    ) WITHOUT ROWID;
    INSERT INTO leases_v6 (lease_id, trial_id, attempt, worker, granted_ms, ended_ms, outcome)
        SELECT lease_id, trial_id, attempt, worker, granted_ms, ended_ms, outcome FROM leases;
    DROP TABLE leases;
    ALTER TABLE leases_v6 RENAME TO leases;
    "#,
    // 6 → 7: when a worker process said goodbye (a clean exit); NULL while it runs, cleared when
    // a process of the same name asks for work again.
    r#"
    ALTER TABLE workers ADD COLUMN stopped_ms INTEGER;
    "#,
    // 7 → 8: packed training. The leases granted in one answer to a packing worker share a
    // `pack_id` (crates/coordinator/src/packs.rs); a lone trial's lease has none.
    r#"
    ALTER TABLE leases ADD COLUMN pack_id TEXT;
    CREATE INDEX leases_pack ON leases(pack_id) WHERE pack_id IS NOT NULL;
    "#,
];

/// The schema version of the database at `path`, read without changing it (a reader decides
/// whether it must migrate first); a newer one than this decsweep's is [`Error::SchemaTooNew`].
pub(crate) fn stored_version(path: &Path) -> Result<i64> {
    let found: i64 = connect(path, Role::Reader)?.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew { path: path.to_path_buf(), found, supported: SCHEMA_VERSION });
    }
    Ok(found)
}

/// What a connection is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// The single connection that writes (and runs migrations).
    Writer,
    /// A read-only connection of the reader pool.
    Reader,
}

/// Opens a connection with the coordinator's settings.
pub(crate) fn connect(path: &Path, role: Role) -> Result<Connection> {
    let flags = match role {
        Role::Writer => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        Role::Reader => OpenFlags::SQLITE_OPEN_READ_ONLY,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    // Another process (a second coordinator, `sqlite3`) may hold the lock for a moment.
    conn.busy_timeout(Duration::from_secs(10))?;
    if role == Role::Writer {
        let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "could not switch the database to WAL");
        }
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Brings the database to [`SCHEMA_VERSION`], or refuses a newer one.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let supported = SCHEMA_VERSION;
    if found > supported {
        return Err(Error::SchemaTooNew { path: path.to_path_buf(), found, supported });
    }
    if found == supported {
        return Ok(());
    }
    // A migration may rebuild a table others reference (SQLite's way to change a constraint);
    // with foreign keys enforced, dropping the old table would fail. The pragma is a no-op
    // inside a transaction, so it is switched around them, and each migration checks the keys
    // itself before it commits.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let migrated = apply_migrations(conn, path, found, supported);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrated
}

fn apply_migrations(conn: &mut Connection, path: &Path, found: i64, supported: i64) -> Result<()> {
    for version in found..supported {
        let Some(sql) = usize::try_from(version).ok().and_then(|v| MIGRATIONS.get(v)) else {
            return Err(Error::Corrupt(format!("negative schema version {version}")));
        };
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        let broken: Option<String> =
            tx.query_row("PRAGMA foreign_key_check", [], |r| r.get::<_, String>(0)).optional()?;
        if let Some(table) = broken {
            return Err(Error::Corrupt(format!(
                "migrating {} to schema {}: table `{table}` has rows whose foreign keys point nowhere",
                path.display(),
                version + 1
            )));
        }
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
        tracing::debug!(path = %path.display(), from = version, to = version + 1, "applied a schema migration");
    }
    // One line for the whole run: a new database takes every step, which is one event to its user.
    tracing::info!(path = %path.display(), from = found, to = supported, "migrated database schema");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_cover_every_version() {
        assert_eq!(MIGRATIONS.len() as i64, SCHEMA_VERSION);
    }

    #[test]
    fn a_fresh_database_is_migrated_once_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let mut conn = connect(&path, Role::Writer).unwrap();
        migrate(&mut conn, &path).unwrap();
        let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        drop(conn);
        let mut again = connect(&path, Role::Writer).unwrap();
        migrate(&mut again, &path).unwrap();
        let reader = connect(&path, Role::Reader).unwrap();
        let n: i64 = reader.query_row("SELECT COUNT(*) FROM trials", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn a_version_1_database_gains_the_adaptive_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let mut conn = connect(&path, Role::Writer).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO datasets VALUES ('h', 'f', 1, 's', 't');
             INSERT INTO studies (name, spec, spec_path, dataset_sha256, retries, objective_metric,
                                  objective_direction, created_at, created_ms)
             VALUES ('old', 'x', 'x.toml', 'h', 2, 'accuracy', 'maximize', 't', 0);",
        )
        .unwrap();
        migrate(&mut conn, &path).unwrap();
        let adaptive: i64 = conn.query_row("SELECT adaptive FROM studies", [], |r| r.get(0)).unwrap();
        assert_eq!(adaptive, 0, "an old study is planned in full");
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM trials WHERE point IS NULL", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 0);
    }

    /// The indexes on `trials`, by name, with their SQL.
    fn trial_indexes(conn: &Connection) -> Vec<(String, Option<String>)> {
        let mut stmt = conn
            .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'trials' ORDER BY name")
            .unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    #[test]
    fn a_version_2_database_with_data_keeps_its_rows_and_indexes_and_allows_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let mut conn = connect(&path, Role::Writer).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(MIGRATIONS[1]).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute_batch(
            "INSERT INTO datasets VALUES ('h', 'f', 1, 's', 't');
             INSERT INTO studies (name, spec, spec_path, dataset_sha256, retries, objective_metric,
                                  objective_direction, created_at, created_ms, adaptive)
             VALUES ('old', 'x', 'x.toml', 'h', 2, 'accuracy', 'maximize', 't', 0, 1);
             INSERT INTO trials (study_id, trial_key, pipeline, job, params, seed, config_id, label, status,
                                 attempts, lease_id, worker, lease_expires_ms, error, metrics, created_ms,
                                 started_ms, finished_ms, updated_ms, point)
             VALUES (1, 'k1', 'command', '{}', '{}', -1, 'c1', 'lab', 'completed', 1, 'L1', 'w', NULL, NULL,
                     '{\"accuracy\":0.5}', 1, 2, 3, 4, '{\"x\":1}'),
                    (1, 'k2', 'command', '{}', '{}', 7, 'c1', NULL, 'running', 2, 'L2', 'w', 99, 'e', NULL,
                     1, 2, NULL, 4, NULL);
             INSERT INTO leases VALUES ('L1', 1, 1, 'w', 2, 3, 'completed'), ('L2', 2, 2, 'w', 2, NULL, NULL);
             INSERT INTO curves (trial_id, attempt, stage, epoch, epochs, recorded_ms) VALUES (2, 2, 'finetune', 1, 5, 9);",
        )
        .unwrap();
        let before: Vec<String> = {
            let mut stmt = conn.prepare("SELECT quote(id) || '|' || quote(seed) || '|' || quote(label) || '|' || status || '|' || quote(metrics) || '|' || quote(point) || '|' || quote(lease_expires_ms) FROM trials ORDER BY id").unwrap();
            let rows = stmt.query_map([], |r| r.get(0)).unwrap();
            rows.collect::<rusqlite::Result<_>>().unwrap()
        };
        let indexes_before = trial_indexes(&conn);
        assert_eq!(indexes_before.len(), 4, "three named indexes and the UNIQUE one: {indexes_before:?}");

        migrate(&mut conn, &path).unwrap();

        let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let after: Vec<String> = {
            let mut stmt = conn.prepare("SELECT quote(id) || '|' || quote(seed) || '|' || quote(label) || '|' || status || '|' || quote(metrics) || '|' || quote(point) || '|' || quote(lease_expires_ms) FROM trials ORDER BY id").unwrap();
            let rows = stmt.query_map([], |r| r.get(0)).unwrap();
            rows.collect::<rusqlite::Result<_>>().unwrap()
        };
        assert_eq!(after, before, "every row and value kept");
        let names = |ix: &[(String, Option<String>)]| ix.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&trial_indexes(&conn)), names(&indexes_before), "every index kept");
        for ((_, a), (_, b)) in trial_indexes(&conn).iter().zip(&indexes_before) {
            assert_eq!(a, b, "index definitions unchanged");
        }
        let fk: bool = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0)).unwrap();
        assert!(fk, "foreign keys enforced again after the migration");
        // Leases and curves still point at their trials, and the new status is allowed.
        let joined: i64 = conn
            .query_row("SELECT COUNT(*) FROM leases l JOIN trials t ON t.id = l.trial_id", [], |r| r.get(0))
            .unwrap();
        assert_eq!(joined, 2);
        conn.execute("UPDATE trials SET status = 'cancelled' WHERE id = 2", []).unwrap();
        // The dashboard's change log (migration 3 → 4) watches the rebuilt table.
        let logged: i64 = conn.query_row("SELECT COUNT(*) FROM changes WHERE trial_id = 2", [], |r| r.get(0)).unwrap();
        assert_eq!(logged, 1, "the trigger on the rebuilt trials table records the change");
        assert!(
            conn.execute("UPDATE trials SET status = 'bogus' WHERE id = 2", []).is_err(),
            "the CHECK is still there"
        );
        assert!(
            conn.execute("INSERT INTO curves (trial_id, attempt, stage, epoch, epochs, recorded_ms) VALUES (99, 1, 'ae', 1, 1, 1)", []).is_err(),
            "foreign keys still reference the rebuilt table"
        );
        let (base, cancelled): (i64, Option<i64>) = conn
            .query_row("SELECT t.attempts_base, s.cancelled_ms FROM trials t JOIN studies s ON s.id = t.study_id WHERE t.id = 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((base, cancelled), (0, None));
    }

    /// What [`migrate`] does, stopping at `version`: a test of one step sees that step alone.
    fn migrate_until(conn: &mut Connection, path: &Path, version: i64) {
        let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap();
        conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
        apply_migrations(conn, path, found, version).unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    }

    #[test]
    fn a_version_7_database_keeps_its_leases_and_gains_pack_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let mut conn = connect(&path, Role::Writer).unwrap();
        migrate_until(&mut conn, &path, 7);
        conn.execute_batch(
            "INSERT INTO datasets VALUES ('h', 'f', 1, 's', 't');
             INSERT INTO studies (name, spec, spec_path, dataset_sha256, retries, objective_metric,
                                  objective_direction, created_at, created_ms, adaptive, cancelled_ms)
             VALUES ('a', 'x', 'x.toml', 'h', 2, 'accuracy', 'maximize', 't', 0, 0, NULL);
             INSERT INTO trials (id, study_id, trial_key, pipeline, job, params, seed, config_id, status, created_ms, updated_ms)
             VALUES (1, 1, 'k1', 'dec', '{}', '{}', 0, 'c', 'completed', 1, 2);
             INSERT INTO leases VALUES ('L1', 1, 1, 'w', 2, 3, 'returned'), ('L2', 1, 2, 'w', 4, 5, 'completed');",
        )
        .unwrap();
        let before = dump(&conn);

        migrate(&mut conn, &path).unwrap();

        let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let after = dump(&conn);
        let leases_before: Vec<&String> = before.iter().filter(|r| r.starts_with("leases:")).collect();
        let leases_after: Vec<String> = after.iter().filter(|r| r.starts_with("leases:")).cloned().collect();
        let expected: Vec<String> = leases_before.iter().map(|r| format!("{r} | Null")).collect();
        assert_eq!(leases_after, expected, "every lease kept, none of them packed");
        let others = |d: &[String]| -> Vec<String> {
            d.iter().filter(|r| !r.starts_with("leases:") && !r.starts_with("table leases")).cloned().collect()
        };
        let mut kept = others(&after);
        kept.retain(|r| !r.starts_with("index leases_pack"));
        assert_eq!(kept, others(&before), "nothing else changed");
        conn.execute("UPDATE leases SET pack_id = 'p' WHERE lease_id IN ('L1', 'L2')", []).unwrap();
        let packed: i64 = conn.query_row("SELECT COUNT(*) FROM leases WHERE pack_id = 'p'", [], |r| r.get(0)).unwrap();
        assert_eq!(packed, 2);
        assert!(
            conn.execute("INSERT INTO leases VALUES ('x', 1, 3, 'w', 2, 3, 'finished', NULL)", []).is_err(),
            "outcomes still checked"
        );
    }

    /// Every row of every table, each value as SQLite holds it, and every index and trigger.
    fn dump(conn: &Connection) -> Vec<String> {
        let mut out = Vec::new();
        let objects: Vec<(String, String, Option<String>)> = {
            let mut stmt = conn
                .prepare("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name")
                .unwrap();
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
            rows.collect::<rusqlite::Result<_>>().unwrap()
        };
        for (kind, name, sql) in objects {
            if kind != "table" {
                out.push(format!("{kind} {name}: {sql:?}"));
                continue;
            }
            let mut stmt = conn.prepare(&format!("SELECT * FROM {name} ORDER BY 1")).unwrap();
            let n = stmt.column_count();
            let mut rows = stmt.query([]).unwrap();
            while let Some(r) = rows.next().unwrap() {
                let values: Vec<String> = (0..n).map(|i| format!("{:?}", r.get_ref(i).unwrap())).collect();
                out.push(format!("{name}: {}", values.join(" | ")));
            }
        }
        out
    }

    #[test]
    fn a_version_5_database_with_data_keeps_every_row_and_checks_lease_outcomes() {
        use decsweep_api::{LeaseOutcome, TrialStatus};

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let mut conn = connect(&path, Role::Writer).unwrap();
        for sql in &MIGRATIONS[..5] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 5).unwrap();
        conn.execute_batch(
            "INSERT INTO datasets VALUES ('h', 'f', 1, 's', 't');
             INSERT INTO studies (name, spec, spec_path, dataset_sha256, retries, objective_metric,
                                  objective_direction, created_at, created_ms, adaptive, cancelled_ms)
             VALUES ('a', 'x', 'x.toml', 'h', 2, 'accuracy', 'maximize', 't', 0, 1, NULL),
                    ('b', 'y', 'y.toml', 'h', 0, 'loss', 'minimize', 't', 1, 0, 5);
             INSERT INTO workers VALUES ('agent', 'host', 2, 'cpu', 1, 2);
             INSERT INTO worker_slots VALUES ('w', 'agent');",
        )
        .unwrap();
        // A trial in every status, each with one lease per outcome (and an active one).
        let mut lease = 0;
        for (i, status) in TrialStatus::ALL.into_iter().enumerate() {
            let id = i as i64 + 1;
            conn.execute(
                "INSERT INTO trials (id, study_id, trial_key, pipeline, job, params, seed, config_id, label, status,
                                     attempts, lease_id, worker, lease_expires_ms, error, metrics, created_ms,
                                     started_ms, finished_ms, updated_ms, point, attempts_base, resumes,
                                     resumed_from, manifest)
                 VALUES (?1, 1 + ?1 % 2, 'k' || ?1, 'command', '{}', '{\"x\":1}', -?1, 'c', NULL, ?2, 9, 'L' || ?1,
                         'w', 99, 'e', '{\"accuracy\":0.5}', 1, 2, 3, 4, '{\"x\":1}', 1, 1, 'z', '{}')",
                rusqlite::params![id, status.name()],
            )
            .unwrap();
            for outcome in LeaseOutcome::ALL.iter().map(|o| Some(o.name())).chain([None]) {
                lease += 1;
                conn.execute(
                    "INSERT INTO leases VALUES ('L' || ?1, ?2, ?1, 'w', 2, 3, ?3)",
                    rusqlite::params![lease, id, outcome],
                )
                .unwrap();
            }
            conn.execute(
                "INSERT INTO curves (trial_id, attempt, stage, epoch, epochs, train_loss, val_loss, val_accuracy,
                                     recorded_ms) VALUES (?1, 1, 'finetune', 1, 5, 0.5, NULL, 0.25, 9)",
                [id],
            )
            .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO checkpoints VALUES (2, 'cd', 7, 'dec', 2, 9, 10);
             INSERT INTO checkpoint_garbage VALUES ('ef');",
        )
        .unwrap();
        let before = dump(&conn);
        assert_eq!(before.iter().filter(|r| r.starts_with("leases:")).count(), 6 * 9);

        migrate_until(&mut conn, &path, 6);

        let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, 6);
        let after = dump(&conn);
        assert_eq!(after, before, "every row, index and trigger kept");
        let fk: bool = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0)).unwrap();
        assert!(fk, "foreign keys enforced again after the migration");

        // The rebuilt table takes every outcome this build writes, read back as the enum, and
        // refuses any other.
        let stored: Vec<Option<LeaseOutcome>> = {
            let mut stmt = conn.prepare("SELECT outcome FROM leases WHERE trial_id = 1 ORDER BY attempt").unwrap();
            let rows = stmt.query_map([], |r| r.get(0)).unwrap();
            rows.collect::<rusqlite::Result<_>>().unwrap()
        };
        let expected: Vec<Option<LeaseOutcome>> = LeaseOutcome::ALL.into_iter().map(Some).chain([None]).collect();
        assert_eq!(stored, expected);
        let insert = |id: &str, outcome: &str| {
            conn.execute("INSERT INTO leases VALUES (?1, 1, 1, 'w', 2, 3, ?2)", [id, outcome])
        };
        assert!(insert("bad", "finished").is_err(), "an unknown outcome is refused");
        assert!(insert("bad", "Completed").is_err(), "names are exact");
        assert!(
            conn.execute("INSERT INTO leases VALUES ('x', 99, 1, 'w', 2, 3, NULL)", []).is_err(),
            "foreign keys still checked"
        );
        assert!(conn.execute("UPDATE trials SET status = 'bogus' WHERE id = 1", []).is_err(), "statuses are checked");
        let statuses: Vec<TrialStatus> = {
            let mut stmt = conn.prepare("SELECT status FROM trials ORDER BY id").unwrap();
            let rows = stmt.query_map([], |r| r.get(0)).unwrap();
            rows.collect::<rusqlite::Result<_>>().unwrap()
        };
        assert_eq!(statuses, TrialStatus::ALL);
    }

    #[test]
    fn the_checks_name_exactly_the_enums() {
        use decsweep_api::{LeaseOutcome, TrialStatus};

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let mut conn = connect(&path, Role::Writer).unwrap();
        migrate(&mut conn, &path).unwrap();
        let sql = |table: &str| -> String {
            conn.query_row("SELECT sql FROM sqlite_master WHERE name = ?1", [table], |r| r.get(0)).unwrap()
        };
        let quoted = |sql: &str, column: &str| -> Vec<String> {
            let from = sql.find(&format!("{column} IN (")).unwrap();
            let list = &sql[from..sql[from..].find(')').unwrap() + from];
            list.split('\'').skip(1).step_by(2).map(str::to_string).collect()
        };
        assert_eq!(quoted(&sql("leases"), "outcome"), LeaseOutcome::ALL.map(|o| o.name().to_string()));
        assert_eq!(quoted(&sql("trials"), "status"), TrialStatus::ALL.map(|s| s.name().to_string()));
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let mut conn = connect(&path, Role::Writer).unwrap();
        migrate(&mut conn, &path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        let err = migrate(&mut conn, &path).unwrap_err();
        assert!(matches!(err, Error::SchemaTooNew { found, .. } if found == SCHEMA_VERSION + 1), "{err}");
        assert!(err.to_string().contains("upgrade decsweep"), "{err}");
    }
}
