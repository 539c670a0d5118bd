//! The change cursor: what changed since a dashboard page was drawn.
//!
//! Triggers (schema migration 2 → 3) append a row to `changes` whenever a trial is inserted or
//! updated (status, lease, heartbeat, result) and whenever an epoch is recorded for it. `seq`
//! only grows, so "everything after seq C" is what a page drawn at cursor C has not seen; a page
//! asks for that and patches only those trials in. Writing the log from triggers rather than from
//! each operation means every write path, present and future, is covered without a call to
//! forget. The log is trimmed to its last 100,000 rows; a cursor older than that is *stale*
//! and the page reloads instead.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;

/// What changed in one study after a cursor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StudyChanges {
    /// The cursor to ask with next time.
    pub cursor: i64,
    /// Changed trials among those asked about, ascending, each once.
    pub trials: Vec<i64>,
    /// How many distinct trials of the study changed (asked about or not).
    pub changed: u64,
    /// The cursor is older than the log: the caller must start over (reload).
    pub stale: bool,
}

/// The newest change's sequence number (0 for none yet).
pub(crate) fn cursor(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM changes", [], |r| r.get(0))?)
}

/// Whether changes after `since` are all still in the log.
fn is_stale(conn: &Connection, since: i64) -> Result<bool> {
    let oldest: Option<i64> = conn.query_row("SELECT MIN(seq) FROM changes", [], |r| r.get(0)).optional()?.flatten();
    // The log holds (oldest..=newest); changes (since, oldest) are gone when since + 1 < oldest.
    Ok(oldest.is_some_and(|oldest| since + 1 < oldest))
}

/// The trials of study `study_id` changed after `since`, restricted to `among` (the rows a page
/// shows), plus how many trials changed in all.
pub(crate) fn study_changes(conn: &Connection, study_id: i64, since: i64, among: &[i64]) -> Result<StudyChanges> {
    let cursor = cursor(conn)?;
    if since >= cursor {
        return Ok(StudyChanges { cursor, ..Default::default() });
    }
    if is_stale(conn, since)? {
        return Ok(StudyChanges { cursor, stale: true, ..Default::default() });
    }
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT trial_id FROM changes WHERE study_id = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY trial_id",
    )?;
    let changed: Vec<i64> =
        stmt.query_map(params![study_id, since, cursor], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    let trials = changed.iter().copied().filter(|id| among.contains(id)).collect();
    Ok(StudyChanges { cursor, trials, changed: changed.len() as u64, stale: false })
}

/// The ids of studies with a change after `since` (`None`: the cursor is stale).
pub(crate) fn changed_studies(conn: &Connection, since: i64) -> Result<(i64, Option<Vec<i64>>)> {
    let cursor = cursor(conn)?;
    if since >= cursor {
        return Ok((cursor, Some(Vec::new())));
    }
    if is_stale(conn, since)? {
        return Ok((cursor, None));
    }
    let mut stmt = conn.prepare_cached("SELECT DISTINCT study_id FROM changes WHERE seq > ?1 AND seq <= ?2")?;
    let ids = stmt.query_map(params![since, cursor], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    Ok((cursor, Some(ids)))
}

/// Whether trial `trial_id` changed after `since` (stale cursors count as changed).
pub(crate) fn trial_changed(conn: &Connection, trial_id: i64, since: i64) -> Result<(i64, bool)> {
    let cursor = cursor(conn)?;
    if since >= cursor {
        return Ok((cursor, false));
    }
    if is_stale(conn, since)? {
        return Ok((cursor, true));
    }
    // No index on trial_id: the scan covers only the changes after `since` (the primary key's range).
    let hit: Option<i64> = conn
        .prepare_cached("SELECT seq FROM changes WHERE seq > ?1 AND seq <= ?2 AND trial_id = ?3 LIMIT 1")?
        .query_row(params![since, cursor, trial_id], |r| r.get(0))
        .optional()?;
    Ok((cursor, hit.is_some()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ops::tests::{command_study, Fixture};

    #[test]
    fn a_cursor_sees_exactly_the_trials_changed_after_it() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 3, 2)).unwrap();
        f.ctx.insert_study(&command_study("b", 2, 2)).unwrap();
        let start = cursor(&f.ctx.conn).unwrap();
        assert!(start >= 5, "inserting trials is a change");

        let lease = f.ctx.lease("w").unwrap().0.unwrap();
        let after_lease = cursor(&f.ctx.conn).unwrap();
        assert!(after_lease > start);
        let seen = study_changes(&f.ctx.conn, 1, start, &[1, 2, 3]).unwrap();
        assert_eq!((seen.trials, seen.changed, seen.stale), (vec![lease.trial_id], 1, false));
        assert_eq!(study_changes(&f.ctx.conn, 2, start, &[4, 5]).unwrap().changed, 0, "study b did not change");

        f.ctx.complete(&lease.lease_id, &BTreeMap::from([("accuracy".into(), 0.5)])).unwrap();
        let later = study_changes(&f.ctx.conn, 1, after_lease, &[2, 3]).unwrap();
        assert_eq!((later.trials.len(), later.changed), (0, 1), "trial 1 changed but is not on the page");
        assert!(trial_changed(&f.ctx.conn, 1, after_lease).unwrap().1);
        assert!(!trial_changed(&f.ctx.conn, 2, after_lease).unwrap().1);
        let (now, studies) = changed_studies(&f.ctx.conn, after_lease).unwrap();
        assert_eq!(studies, Some(vec![1]));
        assert_eq!(
            study_changes(&f.ctx.conn, 1, now, &[1]).unwrap(),
            StudyChanges { cursor: now, ..Default::default() }
        );
    }

    #[test]
    fn a_cursor_older_than_the_log_is_stale() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 2, 2)).unwrap();
        f.ctx.conn.execute("DELETE FROM changes WHERE seq <= 1", []).unwrap();
        assert!(study_changes(&f.ctx.conn, 1, 0, &[1]).unwrap().stale);
        assert!(!study_changes(&f.ctx.conn, 1, 1, &[1]).unwrap().stale, "change 2 is still there");
        assert_eq!(changed_studies(&f.ctx.conn, 0).unwrap().1, None);
    }
}
