//! Bounds on the work one request may ask for. Every refusal names its limit.
//!
//! (Request bodies are bounded per route by the HTTP server, `decsweep-server`; uploads
//! (checkpoints, datasets) stream to disk under the core's own byte limits.)

use std::collections::BTreeSet;

use crate::error::{Error, Result};

/// The most trials a study may hold, seeds added later included: the same bound as a spec's
/// expansion ([`decsweep_search::MAX_TRIALS`]).
pub const MAX_STUDY_TRIALS: usize = decsweep_search::MAX_TRIALS;

/// The most seeds one `POST /v1/studies/{name}/seeds` may list (413 past it), checked before
/// the writer is asked.
pub const MAX_SEEDS_PER_REQUEST: usize = 1_000;

/// `seeds` without repeats, in the order first given: sorted membership, so O(n log n) however
/// many repeats. 400 for none, 413 past [`MAX_SEEDS_PER_REQUEST`].
pub(crate) fn distinct_seeds(seeds: Vec<u64>) -> Result<Vec<u64>> {
    if seeds.is_empty() {
        return Err(Error::BadRequest("`seeds` must list at least one seed".into()));
    }
    if seeds.len() > MAX_SEEDS_PER_REQUEST {
        return Err(Error::TooLarge(format!(
            "{} seeds in one request; at most {MAX_SEEDS_PER_REQUEST} may be added at a time",
            seeds.len()
        )));
    }
    let mut seen = BTreeSet::new();
    Ok(seeds.into_iter().filter(|s| seen.insert(*s)).collect())
}

/// Refuses (422) a study that would hold more than [`MAX_STUDY_TRIALS`] trials.
pub(crate) fn check_study_size(study: &str, existing: u64, adding: u64) -> Result<()> {
    let total = existing.saturating_add(adding);
    if total > MAX_STUDY_TRIALS as u64 {
        return Err(Error::Unprocessable(format!(
            "study `{study}` would hold {total} trials ({existing} and {adding} new); a study holds at most \
             {MAX_STUDY_TRIALS} trials"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_keep_their_first_order_without_repeats() {
        assert_eq!(distinct_seeds(vec![5, 3, 5, 1, 3]).unwrap(), [5, 3, 1]);
        assert!(matches!(distinct_seeds(vec![]), Err(Error::BadRequest(_))));
        let Err(Error::TooLarge(m)) = distinct_seeds((0..=MAX_SEEDS_PER_REQUEST as u64).collect()) else {
            panic!("accepted too many seeds")
        };
        assert!(m.contains(&MAX_SEEDS_PER_REQUEST.to_string()), "{m}");
    }

    #[test]
    fn a_study_may_not_grow_past_its_limit() {
        assert!(check_study_size("s", 10, MAX_STUDY_TRIALS as u64 - 10).is_ok());
        let Err(Error::Unprocessable(m)) = check_study_size("s", 10, MAX_STUDY_TRIALS as u64) else { panic!() };
        assert!(m.contains("at most 100000 trials"), "{m}");
    }
}
