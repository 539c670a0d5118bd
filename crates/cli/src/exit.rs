//! Exit statuses: 0 ok, 1 failure, 2 bad input (DESIGN.md, "Interfaces people expect").

use decsweep_data::DataError;

pub const FAILURE: u8 = 1;
pub const BAD_INPUT: u8 = 2;

/// The exit status for an error: 2 when anything in its chain is the user's input. Command
/// groups added later extend this with their own error types.
pub fn code(error: &anyhow::Error) -> u8 {
    let bad_input = error.chain().any(|cause| {
        cause
            .downcast_ref::<DataError>()
            .is_some_and(DataError::is_bad_input)
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
        let write = DataError::Write {
            path: "x".into(),
            source: std::io::Error::other("full"),
        };
        assert_eq!(code(&anyhow::Error::from(write)), FAILURE);
        assert_eq!(code(&anyhow::anyhow!("boom")), FAILURE);
    }
}
