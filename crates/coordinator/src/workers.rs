//! The worker processes the coordinator has seen, for the dashboard's `/workers`.
//!
//! A lease request names its slot (`worker`) and, from workers that send it, the process
//! ([`AgentInfo`]): name, host, slots, device. Each request records the process and when it
//! was last heard from; heartbeats and progress reports of a slot's lease count as hearing
//! from its process. A slot that sends no [`AgentInfo`] (an older worker) is listed as a
//! process of its own. A process that exits cleanly says goodbye ([`said_goodbye`]) and is
//! listed as stopped until a process of its name asks for work again.

use decsweep_api::wire::AgentInfo;
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// One worker process as listed by [`crate::Coordinator::workers`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub name: String,
    pub host: String,
    pub slots: u32,
    pub device: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// When it said goodbye (a clean exit); `None` while it runs or if it vanished without one.
    pub stopped_ms: Option<i64>,
    /// The trials its slots are running now, ascending.
    pub running: Vec<i64>,
    /// Those of them trained together (`--pack`): one ascending list per pack of two or more.
    pub packs: Vec<Vec<i64>>,
}

/// Records that slot `slot` of process `agent` (or of itself, without one) asked for work.
pub(crate) fn seen(conn: &Connection, slot: &str, agent: Option<&AgentInfo>, now: i64) -> Result<()> {
    let fallback = AgentInfo { name: slot.to_string(), host: String::new(), slots: 1, device: String::new() };
    let agent = agent.unwrap_or(&fallback);
    conn.prepare_cached(
        "INSERT INTO workers (name, host, slots, device, first_seen_ms, last_seen_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?5)
         ON CONFLICT(name) DO UPDATE SET host = ?2, slots = ?3, device = ?4, last_seen_ms = ?5, stopped_ms = NULL",
    )?
    .execute(params![agent.name, agent.host, agent.slots, agent.device, now])?;
    conn.prepare_cached(
        "INSERT INTO worker_slots (slot, agent) VALUES (?1, ?2) ON CONFLICT(slot) DO UPDATE SET agent = ?2",
    )?
    .execute(params![slot, agent.name])?;
    Ok(())
}

/// Records that the process holding lease `lease_id` was heard from (heartbeat, progress).
pub(crate) fn seen_lease(conn: &Connection, lease_id: &str, now: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE workers SET last_seen_ms = ?2 WHERE name IN (
             SELECT ws.agent FROM leases l JOIN worker_slots ws ON ws.slot = l.worker WHERE l.lease_id = ?1)",
    )?
    .execute(params![lease_id, now])?;
    Ok(())
}

/// Records that process `name` exited cleanly at `now`; `false` when no process of that name
/// was ever seen (nothing is recorded for it).
pub(crate) fn said_goodbye(conn: &Connection, name: &str, now: i64) -> Result<bool> {
    let changed = conn
        .prepare_cached("UPDATE workers SET stopped_ms = ?2, last_seen_ms = ?2 WHERE name = ?1")?
        .execute(params![name, now])?;
    Ok(changed > 0)
}

/// Every worker process, most recently heard from first.
pub(crate) fn list(conn: &Connection) -> Result<Vec<WorkerInfo>> {
    let mut running = std::collections::HashMap::<String, Vec<i64>>::new();
    let mut packs = std::collections::HashMap::<String, std::collections::BTreeMap<String, Vec<i64>>>::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT ws.agent, t.id, l.pack_id FROM trials t JOIN worker_slots ws ON ws.slot = t.worker
               LEFT JOIN leases l ON l.lease_id = t.lease_id
              WHERE t.status = ?1 ORDER BY t.id",
        )?;
        let mut rows = stmt.query([decsweep_api::TrialStatus::Running])?;
        while let Some(r) = rows.next()? {
            let (agent, id, pack): (String, i64, Option<String>) = (r.get(0)?, r.get(1)?, r.get(2)?);
            if let Some(pack) = pack {
                packs.entry(agent.clone()).or_default().entry(pack).or_default().push(id);
            }
            running.entry(agent).or_default().push(id);
        }
    }
    let mut stmt = conn.prepare_cached(
        "SELECT name, host, slots, device, first_seen_ms, last_seen_ms, stopped_ms FROM workers
          ORDER BY last_seen_ms DESC, name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(WorkerInfo {
            name: r.get(0)?,
            host: r.get(1)?,
            slots: u32::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
            device: r.get(3)?,
            first_seen_ms: r.get(4)?,
            last_seen_ms: r.get(5)?,
            stopped_ms: r.get(6)?,
            running: Vec::new(),
            packs: Vec::new(),
        })
    })?;
    let mut out: Vec<WorkerInfo> = rows.collect::<rusqlite::Result<_>>()?;
    for w in &mut out {
        w.running = running.remove(&w.name).unwrap_or_default();
        w.packs = packs.remove(&w.name).map(|p| p.into_values().collect()).unwrap_or_default();
        w.packs.sort();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::tests::{command_study, Fixture};

    #[test]
    fn slots_are_listed_under_their_process_with_their_running_trials() {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("a", 3, 2)).unwrap();
        let agent = AgentInfo { name: "gpu1-77".into(), host: "gpu1".into(), slots: 2, device: "cuda:0,cuda:1".into() };
        seen(&f.ctx.conn, "gpu1-77/0", Some(&agent), 1_000).unwrap();
        seen(&f.ctx.conn, "gpu1-77/1", Some(&agent), 1_100).unwrap();
        seen(&f.ctx.conn, "old", None, 1_200).unwrap();
        let lease = f.ctx.lease("gpu1-77/1").unwrap().0.unwrap();
        seen_lease(&f.ctx.conn, &lease.lease_id, 5_000).unwrap();

        let all = list(&f.ctx.conn).unwrap();
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!(
            (all[0].name.as_str(), all[0].slots, all[0].last_seen_ms, all[0].first_seen_ms),
            ("gpu1-77", 2, 5_000, 1_000)
        );
        assert_eq!(all[0].running, vec![lease.trial_id]);
        assert!(all[0].packs.is_empty(), "a lone trial is in no pack");
        assert_eq!((all[1].name.as_str(), all[1].host.as_str(), all[1].running.len()), ("old", "", 0));
        assert!(all.iter().all(|w| w.stopped_ms.is_none()), "nobody said goodbye");
    }

    #[test]
    fn a_goodbye_marks_the_process_stopped_until_it_asks_for_work_again() {
        let f = Fixture::new();
        let agent = AgentInfo { name: "cpu1-9".into(), host: "cpu1".into(), slots: 1, device: "cpu".into() };
        seen(&f.ctx.conn, "cpu1-9", Some(&agent), 1_000).unwrap();
        assert!(!said_goodbye(&f.ctx.conn, "never-seen", 2_000).unwrap(), "an unknown name records nothing");
        assert!(said_goodbye(&f.ctx.conn, "cpu1-9", 3_000).unwrap());
        let all = list(&f.ctx.conn).unwrap();
        assert_eq!((all.len(), all[0].stopped_ms, all[0].last_seen_ms), (1, Some(3_000), 3_000));
        seen(&f.ctx.conn, "cpu1-9", Some(&agent), 4_000).unwrap();
        assert_eq!(list(&f.ctx.conn).unwrap()[0].stopped_ms, None, "started again under the same name");
    }
}
