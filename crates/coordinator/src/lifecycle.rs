//! The trial lifecycle: every move of a trial ([`TrialStatus`]) and of its lease
//! ([`LeaseOutcome`]), decided here and nowhere else. The writer's verbs ([`crate::leases`] for
//! workers, [`crate::control`] for the user) ask this module what an event does, then write it.
//!
//! # Leases
//!
//! A lease is one attempt at one trial. The trial row names its current lease; the `leases`
//! table remembers every lease ever granted and how it ended (`outcome`: NULL while active, then
//! one of [`LeaseOutcome`]). A call naming a lease is judged by its [`Standing`]:
//!
//! - **active**: the trial is running under this lease: the call applies.
//! - **expired, unclaimed**: the lease ran out and nobody has leased the trial since (it is
//!   pending again, or failed because its attempts ran out). A completion, failure, prune or
//!   return is still accepted — the work was done and nobody else is doing it — and a heartbeat
//!   or progress report revives the lease (the trial is running again, same attempt) when the
//!   trial is pending. This is what lets workers carry on across a coordinator restart longer
//!   than the TTL, or a network hiccup.
//! - **ended**: this lease already completed, failed, pruned or returned the trial. Repeating
//!   the same kind of call answers "not recorded" (200, idempotent); another kind is a conflict.
//! - **stopped by the user**: the user cancelled the study or failed the trial while this lease
//!   held it (`cancelled`, `failed_by_user`). Heartbeats and progress answer `stop` (200, nothing
//!   recorded) so the worker stops the trial; complete, fail, prune and return get 409 and change
//!   nothing.
//! - **superseded**: the trial has been leased again since (or the user retried it, which
//!   forgets its leases). Every call is a conflict (409) and changes nothing, so a late result is
//!   never counted twice.
//!
//! # Worker calls: (lease standing, call) → verdict
//!
//! A cell `S, lease O` moves the trial to status `S` and ends the lease with outcome `O`;
//! `repeat` is the same call again (200, not recorded); `409` changes nothing. A keep-alive is a
//! heartbeat, a progress report or a checkpoint; `fail` requeues when the failure is retryable
//! and the study's retries (counted since the user's last retry) are not used up.
//!
//! | standing | keep-alive | complete | fail, requeued | fail, for good | prune | return |
//! | --- | --- | --- | --- | --- | --- | --- |
//! | active | extend | completed, lease completed | pending, lease released | failed, lease failed | pruned, lease pruned | pending, lease returned |
//! | expired, trial pending | revive: running | completed, lease completed | pending, lease released | failed, lease failed | pruned, lease pruned | pending, lease returned |
//! | expired, trial not pending | 409 | completed, lease completed | pending, lease released | failed, lease failed | pruned, lease pruned | pending, lease returned |
//! | ended: completed | 409 | repeat | 409 | 409 | 409 | 409 |
//! | ended: failed | 409 | 409 | repeat | repeat | 409 | 409 |
//! | ended: released | 409 | 409 | repeat | repeat | 409 | 409 |
//! | ended: pruned | 409 | 409 | 409 | 409 | repeat | 409 |
//! | ended: returned | 409 | 409 | 409 | 409 | 409 | repeat |
//! | ended: cancelled | stop | 409 | 409 | 409 | 409 | 409 |
//! | ended: failed_by_user | stop | 409 | 409 | 409 | 409 | 409 |
//! | superseded | 409 | 409 | 409 | 409 | 409 | 409 |
//!
//! # Trial events: (status, event) → status
//!
//! A new trial is `pending` ([`NEW_TRIAL`]). Events that name no lease: the queue granting a lease, a deadline passing, and the user's
//! controls (see [`crate::control`]). A cell `S` moves the trial to `S`, with what happens to its
//! current lease; `unchanged` answers success and changes nothing (cancelling a finished trial,
//! failing a failed one); `409` refuses; `—` never happens (the query that finds trials for the
//! event does not select that status).
//!
//! | status | grant | expire, retries left | expire, none left | job undecodable | cancel | resume | user fail | retry |
//! | --- | --- | --- | --- | --- | --- | --- | --- | --- |
//! | pending | running, new lease | — | — | failed | cancelled, lease cancelled | unchanged | failed, lease failed_by_user | 409 |
//! | running | — | pending, lease expired | failed, lease expired | — | cancelled, lease cancelled | unchanged | failed, lease failed_by_user | 409 |
//! | completed | — | — | — | — | unchanged | unchanged | 409 | 409 |
//! | failed | — | — | — | — | unchanged | unchanged | unchanged | pending, leases forgotten |
//! | pruned | — | — | — | — | unchanged | unchanged | 409 | 409 |
//! | cancelled | — | — | — | — | unchanged | pending, leases forgotten | 409 | 409 |
//!
//! A pending trial's lease, ended by `cancel` or `user fail`, is one that expired unclaimed: it
//! is ended so that it cannot revive the trial. A late completion of a trial that failed by
//! expiry is the worker-call table's "expired, trial not pending" row.
//!
//! `cancel` and `resume` are the study's: `resume` undoes a `cancel`, so a cancelled trial is
//! never retried one by one (409, naming `resume`), and a cancelled study takes no retry or new
//! seeds until it is resumed ([`crate::control`]). A resumed trial forgets its leases like a
//! retried one: a worker still stopping the cancelled attempt gets 409, never the new attempt.

use std::fmt;

use decsweep_api::{LeaseOutcome, TrialStatus};

/// Every trial starts in the queue, whoever plans it (the spec, the sampler, `add-seeds`).
pub(crate) const NEW_TRIAL: TrialStatus = TrialStatus::Pending;

/// The one outcome the user's controls still end: a lease that expired unclaimed (besides an
/// active one, whose outcome is NULL). Every other outcome is final.
pub(crate) const ENDABLE_OUTCOME: LeaseOutcome = LeaseOutcome::Expired;

/// Where a lease stands relative to its trial (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Standing {
    Active,
    ExpiredUnclaimed,
    Ended(LeaseOutcome),
    Superseded,
}

impl Standing {
    /// `current`: whether the trial still names this lease; `outcome`: the lease's.
    pub(crate) fn of(current: bool, outcome: Option<LeaseOutcome>) -> Standing {
        match (current, outcome) {
            (false, _) => Standing::Superseded,
            (true, None) => Standing::Active,
            (true, Some(LeaseOutcome::Expired)) => Standing::ExpiredUnclaimed,
            (true, Some(o)) => Standing::Ended(o),
        }
    }
}

/// A call a worker makes naming its lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    /// A heartbeat, a progress report or a checkpoint.
    KeepAlive,
    Complete,
    /// `requeue`: the failure is retryable and the study's retries are not used up.
    Fail {
        requeue: bool,
    },
    Prune,
    /// The worker gives the trial back unfinished (it is stopping).
    Return,
}

impl Call {
    /// Whether a lease that ended with `outcome` ended by this kind of call.
    fn ended_by(self, outcome: LeaseOutcome) -> bool {
        match self {
            Call::KeepAlive => false,
            Call::Complete => outcome == LeaseOutcome::Completed,
            Call::Fail { .. } => matches!(outcome, LeaseOutcome::Failed | LeaseOutcome::Released),
            Call::Prune => outcome == LeaseOutcome::Pruned,
            Call::Return => outcome == LeaseOutcome::Returned,
        }
    }

    /// Where an accepted call that ends the lease takes its trial and lease.
    fn ends_as(self) -> Option<(TrialStatus, LeaseOutcome)> {
        Some(match self {
            Call::KeepAlive => return None,
            Call::Complete => (TrialStatus::Completed, LeaseOutcome::Completed),
            Call::Fail { requeue: true } => (TrialStatus::Pending, LeaseOutcome::Released),
            Call::Fail { requeue: false } => (TrialStatus::Failed, LeaseOutcome::Failed),
            Call::Prune => (TrialStatus::Pruned, LeaseOutcome::Pruned),
            Call::Return => (TrialStatus::Pending, LeaseOutcome::Returned),
        })
    }
}

/// What a worker's call does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The lease's deadline moves out by the TTL.
    Extend,
    /// The expired lease holds the trial again: running, outcome cleared, deadline moved out.
    Revive,
    /// The user stopped the trial: nothing is recorded and the worker is told to stop.
    Stop,
    /// The trial moves to `trial` and the lease ends with `lease`.
    End { trial: TrialStatus, lease: LeaseOutcome },
    /// The same call again: answered "not recorded".
    Repeat,
    /// Refused (409); nothing changes.
    Conflict(Conflict),
}

/// Why a worker's call is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Conflict {
    /// A keep-alive of an expired lease whose trial is no longer pending.
    ExpiredAndTrialIs(TrialStatus),
    /// The lease already ended with this outcome.
    Ended(LeaseOutcome),
    /// The trial was leased again (or retried) since.
    Superseded,
}

/// What `call` does to a lease in `standing` whose trial is in `trial` (the worker-call table).
pub(crate) fn worker_call(standing: Standing, trial: TrialStatus, call: Call) -> Verdict {
    match (standing, call) {
        (Standing::Superseded, _) => Verdict::Conflict(Conflict::Superseded),
        (Standing::Active, Call::KeepAlive) => Verdict::Extend,
        (Standing::ExpiredUnclaimed, Call::KeepAlive) if trial == TrialStatus::Pending => Verdict::Revive,
        (Standing::ExpiredUnclaimed, Call::KeepAlive) => Verdict::Conflict(Conflict::ExpiredAndTrialIs(trial)),
        (Standing::Active | Standing::ExpiredUnclaimed, _) => match call.ends_as() {
            Some((trial, lease)) => Verdict::End { trial, lease },
            None => unreachable!("keep-alives are matched above"),
        },
        (Standing::Ended(o), Call::KeepAlive) if stopped_by_user(o) => Verdict::Stop,
        (Standing::Ended(o), _) if call.ended_by(o) => Verdict::Repeat,
        (Standing::Ended(o), _) => Verdict::Conflict(Conflict::Ended(o)),
    }
}

/// Outcomes set by the user's controls: the worker is told to stop.
pub(crate) fn stopped_by_user(outcome: LeaseOutcome) -> bool {
    matches!(outcome, LeaseOutcome::Cancelled | LeaseOutcome::FailedByUser)
}

/// An event that names no lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TrialEvent {
    /// The queue grants the trial to a worker.
    Grant,
    /// The current lease's deadline passed; `retries_left`: attempts since the user's last retry
    /// are within the study's retries.
    Expire { retries_left: bool },
    /// The stored job does not decode, so nobody can run the trial.
    Unrunnable,
    /// The user cancels the study.
    Cancel,
    /// The user resumes the cancelled study.
    Resume,
    /// The user fails the trial.
    UserFail,
    /// The user retries the trial.
    Retry,
}

/// What happens to a trial's current lease in a [`Move::To`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LeaseChange {
    /// Nothing.
    Keep,
    /// A new lease is granted.
    Grant,
    /// The current lease, if active or expired unclaimed, ends with this outcome.
    End(LeaseOutcome),
    /// The trial forgets its leases: none of them may report into it again.
    Forget,
}

/// What a [`TrialEvent`] does to a trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Move {
    To {
        trial: TrialStatus,
        lease: LeaseChange,
    },
    /// Success, nothing to change.
    Unchanged,
    /// Refused: the trial is in the wrong state.
    Refused,
    /// Never asked: the event's query does not select this status.
    Never,
}

/// What `event` does to a trial in `status` (the trial-event table).
pub(crate) fn trial_event(status: TrialStatus, event: TrialEvent) -> Move {
    use TrialStatus::*;
    let to = |trial, lease| Move::To { trial, lease };
    match (event, status) {
        (TrialEvent::Grant, Pending) => to(Running, LeaseChange::Grant),
        (TrialEvent::Expire { retries_left: true }, Running) => to(Pending, LeaseChange::End(LeaseOutcome::Expired)),
        (TrialEvent::Expire { retries_left: false }, Running) => to(Failed, LeaseChange::End(LeaseOutcome::Expired)),
        (TrialEvent::Unrunnable, Pending) => to(Failed, LeaseChange::Keep),
        (TrialEvent::Grant | TrialEvent::Expire { .. } | TrialEvent::Unrunnable, _) => Move::Never,
        (TrialEvent::Cancel, Pending | Running) => to(Cancelled, LeaseChange::End(LeaseOutcome::Cancelled)),
        (TrialEvent::Cancel, _) => Move::Unchanged,
        (TrialEvent::Resume, Cancelled) => to(Pending, LeaseChange::Forget),
        (TrialEvent::Resume, _) => Move::Unchanged,
        (TrialEvent::UserFail, Pending | Running) => to(Failed, LeaseChange::End(LeaseOutcome::FailedByUser)),
        (TrialEvent::UserFail, Failed) => Move::Unchanged,
        (TrialEvent::Retry, Failed) => to(Pending, LeaseChange::Forget),
        (TrialEvent::UserFail | TrialEvent::Retry, _) => Move::Refused,
    }
}

/// The statuses `event` moves a trial out of: what its bulk query selects.
pub(crate) fn moved_by(event: TrialEvent) -> impl Iterator<Item = (TrialStatus, TrialStatus, LeaseChange)> {
    TrialStatus::ALL.into_iter().filter_map(move |from| match trial_event(from, event) {
        Move::To { trial, lease } => Some((from, trial, lease)),
        _ => None,
    })
}

impl fmt::Display for Verdict {
    /// The cell of the worker-call table.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Extend => f.write_str("extend"),
            Verdict::Revive => f.write_str("revive: running"),
            Verdict::Stop => f.write_str("stop"),
            Verdict::End { trial, lease } => write!(f, "{trial}, lease {lease}"),
            Verdict::Repeat => f.write_str("repeat"),
            Verdict::Conflict(_) => f.write_str("409"),
        }
    }
}

impl fmt::Display for Move {
    /// The cell of the trial-event table.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Move::To { trial, lease } => {
                write!(f, "{trial}")?;
                match lease {
                    LeaseChange::Keep => Ok(()),
                    LeaseChange::Grant => f.write_str(", new lease"),
                    LeaseChange::End(o) => write!(f, ", lease {o}"),
                    LeaseChange::Forget => f.write_str(", leases forgotten"),
                }
            }
            Move::Unchanged => f.write_str("unchanged"),
            Move::Refused => f.write_str("409"),
            Move::Never => f.write_str("—"),
        }
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conflict::ExpiredAndTrialIs(status) => write!(f, "the lease expired and the trial is {status}"),
            Conflict::Ended(outcome) => write!(f, "the lease already ended: {outcome}"),
            Conflict::Superseded => f.write_str("the trial was leased again"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// The module doc's table whose header starts with `first`: (row, column) → cell.
    fn doc_table(first: &str) -> (Vec<String>, BTreeMap<(String, String), String>) {
        let source = include_str!("lifecycle.rs");
        let rows: Vec<Vec<String>> = source
            .lines()
            .filter_map(|l| l.strip_prefix("//! |"))
            .map(|l| l.trim_end_matches('|').split('|').map(|c| c.trim().to_string()).collect())
            .collect();
        let start = rows.iter().position(|r| r[0] == first).expect("the table is in the module doc");
        let header = rows[start][1..].to_vec();
        let mut cells = BTreeMap::new();
        for row in rows[start + 2..].iter().take_while(|r| r[0] != "status" && r[0] != "standing") {
            assert_eq!(row.len(), header.len() + 1, "a full row: {row:?}");
            for (col, cell) in header.iter().zip(&row[1..]) {
                cells.insert((row[0].clone(), col.clone()), cell.clone());
            }
        }
        (header, cells)
    }

    fn calls() -> [(Call, &'static str); 6] {
        [
            (Call::KeepAlive, "keep-alive"),
            (Call::Complete, "complete"),
            (Call::Fail { requeue: true }, "fail, requeued"),
            (Call::Fail { requeue: false }, "fail, for good"),
            (Call::Prune, "prune"),
            (Call::Return, "return"),
        ]
    }

    fn standings() -> Vec<Standing> {
        let mut out = vec![Standing::Active, Standing::ExpiredUnclaimed, Standing::Superseded];
        out.extend(LeaseOutcome::ALL.into_iter().filter(|o| *o != LeaseOutcome::Expired).map(Standing::Ended));
        out
    }

    /// The row of the worker-call table a lease and its trial fall in.
    fn row(standing: Standing, trial: TrialStatus) -> String {
        match standing {
            Standing::Active => "active".into(),
            Standing::ExpiredUnclaimed if trial == TrialStatus::Pending => "expired, trial pending".into(),
            Standing::ExpiredUnclaimed => "expired, trial not pending".into(),
            Standing::Ended(o) => format!("ended: {o}"),
            Standing::Superseded => "superseded".into(),
        }
    }

    #[test]
    fn every_worker_call_in_every_standing_is_the_tables() {
        let (header, table) = doc_table("standing");
        assert_eq!(header, calls().map(|(_, name)| name.to_string()));
        let mut seen = std::collections::BTreeSet::new();
        for standing in standings() {
            for trial in TrialStatus::ALL {
                for (call, column) in calls() {
                    let key = (row(standing, trial), column.to_string());
                    let cell = table.get(&key).unwrap_or_else(|| panic!("no cell for {key:?}"));
                    let got = worker_call(standing, trial, call);
                    assert_eq!(&got.to_string(), cell, "{standing:?}, trial {trial}, {call:?}");
                    seen.insert(key);
                }
            }
        }
        assert_eq!(seen.len(), table.len(), "every cell of the table is reached");
    }

    #[test]
    fn every_trial_event_in_every_status_is_the_tables() {
        let events = [
            (TrialEvent::Grant, "grant"),
            (TrialEvent::Expire { retries_left: true }, "expire, retries left"),
            (TrialEvent::Expire { retries_left: false }, "expire, none left"),
            (TrialEvent::Unrunnable, "job undecodable"),
            (TrialEvent::Cancel, "cancel"),
            (TrialEvent::Resume, "resume"),
            (TrialEvent::UserFail, "user fail"),
            (TrialEvent::Retry, "retry"),
        ];
        let (header, table) = doc_table("status");
        assert_eq!(header, events.map(|(_, name)| name.to_string()));
        assert_eq!(table.len(), TrialStatus::ALL.len() * events.len(), "one row per status");
        for status in TrialStatus::ALL {
            for (event, column) in events {
                let cell = &table[&(status.name().to_string(), column.to_string())];
                assert_eq!(&trial_event(status, event).to_string(), cell, "{status}, {event:?}");
            }
        }
    }

    #[test]
    fn standing_comes_from_the_trials_current_lease_and_the_outcome() {
        assert_eq!(Standing::of(true, None), Standing::Active);
        assert_eq!(Standing::of(true, Some(LeaseOutcome::Expired)), Standing::ExpiredUnclaimed);
        assert_eq!(Standing::of(true, Some(LeaseOutcome::Pruned)), Standing::Ended(LeaseOutcome::Pruned));
        for o in [None, Some(LeaseOutcome::Expired), Some(LeaseOutcome::Completed)] {
            assert_eq!(Standing::of(false, o), Standing::Superseded);
        }
    }

    #[test]
    fn bulk_moves_select_the_statuses_the_table_moves() {
        let from = |e| moved_by(e).map(|(s, _, _)| s).collect::<Vec<_>>();
        assert_eq!(from(TrialEvent::Cancel), [TrialStatus::Pending, TrialStatus::Running]);
        assert_eq!(from(TrialEvent::Retry), [TrialStatus::Failed]);
        assert_eq!(from(TrialEvent::Resume), [TrialStatus::Cancelled]);
    }
}
