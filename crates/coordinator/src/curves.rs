//! The pruners' view of stored curves ([`Curves`]) over the `curves` table.
//!
//! Index lookups only: a few per trial, however long the curves, since every decision reads
//! them inside the transaction that records an epoch.

use rusqlite::{params, Connection};

use crate::error::Result;
use crate::pruner::{CurveQuery, Curves, PeerPoint, Proxy};

/// [`Curves`] read from the writer's connection.
pub(crate) struct SqlCurves<'a> {
    conn: &'a Connection,
}

impl<'a> SqlCurves<'a> {
    pub(crate) fn new(conn: &'a Connection) -> Self {
        SqlCurves { conn }
    }
}

impl Curves for SqlCurves<'_> {
    fn peers(&self, q: &CurveQuery, epoch: u32) -> Result<Vec<PeerPoint>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.trial_id, c.train_loss, c.val_loss, c.val_accuracy
               FROM curves c JOIN trials t ON t.id = c.trial_id
              WHERE t.study_id = ?1 AND c.trial_id <> ?2 AND c.stage = ?3 AND c.epoch = ?4
                AND c.attempt = t.attempts
              ORDER BY c.trial_id",
        )?;
        let rows = stmt.query_map(params![q.study_id, q.trial_id, q.stage.name(), epoch], |r| {
            Ok(PeerPoint {
                trial_id: r.get(0)?,
                train_loss: r.get::<_, Option<f64>>(1)?.unwrap_or(f64::NAN),
                val_loss: r.get::<_, Option<f64>>(2)?.unwrap_or(f64::NAN),
                val_accuracy: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn own_points(&self, q: &CurveQuery, proxy: Proxy, epoch: u32) -> Result<Vec<(u32, u32, Option<f64>)>> {
        let sql = format!(
            "SELECT epoch, epochs, {} FROM curves
              WHERE trial_id = ?1 AND attempt = ?2 AND stage = ?3 AND epoch <= ?4 ORDER BY epoch",
            proxy.column()
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![q.trial_id, q.attempt, q.stage.name(), epoch], |r| {
            Ok((r.get::<_, u32>(0)?, r.get::<_, u32>(1)?, r.get::<_, Option<f64>>(2)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn peers_at_epoch(&self, q: &CurveQuery, proxy: Proxy, epoch: u32) -> Result<Vec<(i64, bool, Option<f64>)>> {
        let sql = format!(
            "SELECT t.id,
                    (SELECT f.epoch >= f.epochs FROM curves f
                      WHERE f.trial_id = t.id AND f.attempt = t.attempts AND f.stage = ?3
                      ORDER BY f.epoch DESC LIMIT 1),
                    (SELECT c.{col} FROM curves c
                      WHERE c.trial_id = t.id AND c.attempt = t.attempts AND c.stage = ?3 AND c.epoch = ?4)
               FROM trials t JOIN trials me ON me.id = ?2
              WHERE t.study_id = ?1 AND t.id <> ?2 AND t.attempts > 0
                AND t.pipeline = me.pipeline AND t.label IS me.label
              ORDER BY t.id",
            col = proxy.column()
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![q.study_id, q.trial_id, q.stage.name(), epoch], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<bool>>(1)?.unwrap_or(false),
                r.get::<_, Option<f64>>(2)?.filter(|v| v.is_finite()),
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn rung_values(&self, q: &CurveQuery, proxy: Proxy, epoch: u32) -> Result<Vec<f64>> {
        let sql = format!(
            "SELECT (SELECT c.{col} FROM curves c
                      WHERE c.trial_id = t.id AND c.attempt = t.attempts AND c.stage = ?3 AND c.epoch >= ?4
                      ORDER BY c.epoch LIMIT 1)
               FROM trials t JOIN trials me ON me.id = ?2
              WHERE t.study_id = ?1 AND t.id <> ?2 AND t.attempts > 0
                AND t.pipeline = me.pipeline AND t.label IS me.label",
            col = proxy.column()
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows =
            stmt.query_map(params![q.study_id, q.trial_id, q.stage.name(), epoch], |r| r.get::<_, Option<f64>>(0))?;
        let mut out = Vec::new();
        for v in rows {
            out.extend(v?.filter(|v| v.is_finite()));
        }
        Ok(out)
    }
}
