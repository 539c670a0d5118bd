//! The one retry policy of decsweep's `/v1` clients: a call that failed for want of a
//! coordinator (it is unreachable, restarting, or its disk refuses writes: a transport error or
//! a 5xx) is tried again after a jittered wait that doubles up to [`MAX_BACKOFF`]; an answer
//! about the request itself (any 4xx, a 409 included) is final and never retried.
//!
//! Jitter spreads workers that were cut off together, so they do not come back in step.

use std::time::Duration;

/// The first wait after a failure.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// The longest wait between two tries: a cut-off or storage-less coordinator sees a few
/// requests a minute per caller, not a storm.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How long an outcome (complete, prune, fail, return) is retried before it is given up. The
/// work behind it is done, so a worker waits out a long outage rather than lose it; a trial
/// whose outcome is given up is leased again once its lease expires.
pub const REPORT_PATIENCE: Duration = Duration::from_secs(30 * 60);

/// Doubling waits from [`FIRST_BACKOFF`] to [`MAX_BACKOFF`], each jittered.
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: FIRST_BACKOFF }
    }
}

impl Backoff {
    pub fn new() -> Self {
        Self::default()
    }

    /// The wait before the next try; the one after it is twice as long (up to the cap).
    pub fn next_wait(&mut self) -> Duration {
        let wait = jittered(self.next);
        self.next = (self.next * 2).min(MAX_BACKOFF);
        wait
    }

    /// Back to the first wait, after a call that succeeded.
    pub fn reset(&mut self) {
        self.next = FIRST_BACKOFF;
    }
}

/// `wait` scaled by a factor in [0.5, 1), so callers cut off together do not retry in step.
pub fn jittered(wait: Duration) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    // A cheap spread from the clock's low bits and the thread: no randomness quality is needed.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&(nanos, std::thread::current().id()), &mut h);
    let fraction = (std::hash::Hasher::finish(&h) % 1000) as f64 / 2000.0;
    wait.mul_f64(0.5 + fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_with_jitter_below_each_step() {
        let mut b = Backoff::new();
        let mut step = FIRST_BACKOFF;
        for _ in 0..10 {
            let wait = b.next_wait();
            assert!(wait >= step / 2 && wait < step, "{wait:?} for a step of {step:?}");
            step = (step * 2).min(MAX_BACKOFF);
        }
        assert_eq!(step, MAX_BACKOFF);
        b.reset();
        assert!(b.next_wait() < FIRST_BACKOFF);
    }
}
