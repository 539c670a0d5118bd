//! Exit statuses: 0 ok, 1 failure, 2 bad input (DESIGN.md, "Interfaces people expect").

use decsweep_coordinator::Error as CoordinatorError;
use decsweep_data::DataError;

pub const FAILURE: u8 = 1;
pub const BAD_INPUT: u8 = 2;

/// The user's input is wrong (a spec, a file, an argument); the message says how.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Ctrl-C before the work was done.
#[derive(Debug, thiserror::Error)]
#[error("interrupted; run the same command again to resume")]
pub struct Interrupted;

/// The exit status for an error: 2 when anything in its chain is the user's input, or a
/// database another coordinator holds (the user started a second one; the message names the
/// first).
pub fn code(error: &anyhow::Error) -> u8 {
    let bad_input = error.chain().any(|cause| {
        cause.downcast_ref::<DataError>().is_some_and(DataError::is_bad_input)
            || cause.is::<BadInput>()
            || matches!(cause.downcast_ref::<CoordinatorError>(), Some(CoordinatorError::Locked { .. }))
    });
    if bad_input {
        BAD_INPUT
    } else {
        FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_errors_exit_2_even_with_context_and_others_1() {
        let missing: anyhow::Error = DataError::NotFound { path: "x".into() }.into();
        assert_eq!(code(&missing.context("loading")), BAD_INPUT);
        let write = DataError::Write { path: "x".into(), cause: std::io::Error::other("full") };
        assert_eq!(code(&anyhow::Error::from(write)), FAILURE);
        assert_eq!(code(&anyhow::anyhow!("boom")), FAILURE);
        let locked = CoordinatorError::Locked { db: "s.db".into(), lock: "s.db.lock".into(), holder: None };
        assert_eq!(code(&anyhow::Error::from(locked).context("opening")), BAD_INPUT);
    }
}
