//! Whether a lease still stands while its trial runs: one state, moved by what the heartbeat,
//! the progress reports and the runner learn.
//!
//! | state \ event | `Lost` (409)  | `Halted` (`stop`) | `Finished` (runner returned) |
//! |---------------|---------------|-------------------|------------------------------|
//! | `Running`     | `Lost`        | `Halted`          | `Finished`                   |
//! | `Lost`        | `Lost`        | `Halted`          | `Lost`                       |
//! | `Halted`      | `Halted`      | `Halted`          | `Halted`                     |
//! | `Finished`    | `Finished`    | `Halted`          | `Finished`                   |
//!
//! A lease lost while the trial ran stopped the trial: there is nothing to report. One found
//! lost only after the trial ended (a heartbeat in flight) is still reported: the coordinator
//! honours it if nobody re-leased the trial, and answers 409 otherwise. A `stop` always wins,
//! even late: the coordinator has recorded how the trial ended.

use std::sync::Mutex;

/// Where a leased trial stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LeaseState {
    /// The trial runs under a lease that stands.
    Running,
    /// The lease expired and was re-leased, or was replaced: the trial is someone else's.
    Lost,
    /// The coordinator answered `stop`: the user cancelled the study or failed the trial.
    Halted,
    /// The trial ended under a standing lease: its outcome is to be reported.
    Finished,
}

/// What can happen to a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LeaseEvent {
    Lost,
    Halted,
    Finished,
}

impl LeaseState {
    /// The state after `event` (the table in the module's doc).
    pub(crate) fn after(self, event: LeaseEvent) -> LeaseState {
        match (self, event) {
            (_, LeaseEvent::Halted) => LeaseState::Halted,
            (LeaseState::Running, LeaseEvent::Lost) => LeaseState::Lost,
            (LeaseState::Running, LeaseEvent::Finished) => LeaseState::Finished,
            (state, _) => state,
        }
    }
}

/// A lease's state, shared by the slot, its heartbeat thread and the runner.
#[derive(Debug)]
pub(crate) struct LeaseWatch(Mutex<LeaseState>);

impl LeaseWatch {
    pub(crate) fn new() -> Self {
        LeaseWatch(Mutex::new(LeaseState::Running))
    }

    pub(crate) fn get(&self) -> LeaseState {
        *self.0.lock().expect("lease state lock")
    }

    pub(crate) fn record(&self, event: LeaseEvent) {
        let mut state = self.0.lock().expect("lease state lock");
        *state = state.after(event);
    }

    /// Whether the lease ended under the trial (lost or halted): the trial is to be stopped.
    pub(crate) fn is_over(&self) -> bool {
        matches!(self.get(), LeaseState::Lost | LeaseState::Halted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_and_event_moves_as_the_table_says() {
        use LeaseEvent as E;
        use LeaseState::*;
        let table = [
            (Running, [Lost, Halted, Finished]),
            (Lost, [Lost, Halted, Lost]),
            (Halted, [Halted, Halted, Halted]),
            (Finished, [Finished, Halted, Finished]),
        ];
        for (state, expected) in table {
            for (event, want) in [E::Lost, E::Halted, E::Finished].into_iter().zip(expected) {
                assert_eq!(state.after(event), want, "{state:?} after {event:?}");
            }
        }
    }

    #[test]
    fn a_watch_is_over_only_when_lost_or_halted() {
        let watch = LeaseWatch::new();
        assert!(!watch.is_over());
        watch.record(LeaseEvent::Lost);
        assert!(watch.is_over());
        watch.record(LeaseEvent::Finished);
        assert_eq!(watch.get(), LeaseState::Lost, "a lease lost while running stays lost");
        let watch = LeaseWatch::new();
        watch.record(LeaseEvent::Finished);
        watch.record(LeaseEvent::Lost);
        assert_eq!(watch.get(), LeaseState::Finished, "lost after the trial ended: still reported");
    }
}
