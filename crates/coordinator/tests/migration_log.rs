//! A new database takes every schema migration in one run, which its user sees as one event:
//! one "migrated database schema" line naming the versions, not a line per step; reopening a
//! current database logs none. Its own test binary (one test, one process), because it installs
//! the process's global log subscriber.

use std::io::Write;
use std::sync::{Arc, Mutex};

use decsweep_coordinator::{Coordinator, CoordinatorOptions};

/// Every line the subscriber writes, kept in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_new_database_logs_one_migration_line_naming_the_versions() {
    let sink = Captured::default();
    let writer = sink.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("new.db");
    drop(Coordinator::open(&db, CoordinatorOptions::default()).unwrap());
    drop(Coordinator::open(&db, CoordinatorOptions::default()).unwrap());
    let log = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("migrated database schema")).collect();
    assert_eq!(lines.len(), 1, "one line for the run, none when already current: {log}");
    assert!(lines[0].contains("from=0") && lines[0].contains(&format!("to={}", schema_version(&db))), "{log}");
    assert!(lines[0].contains(&db.display().to_string()), "the file is named: {log}");
}

/// The schema version the database was brought to.
fn schema_version(db: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap()
}
