//! Counters behind `GET /metrics`, rendered in the Prometheus text exposition format.
//!
//! Counters live in memory and start from zero with each process (Prometheus handles resets);
//! the trial gauges are read from the store at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The coordinator's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    pub(crate) leases_granted: AtomicU64,
    pub(crate) completions: AtomicU64,
    pub(crate) expirations: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) prunes: AtomicU64,
    pub(crate) returns: AtomicU64,
    /// Trial checkpoints stored.
    pub(crate) checkpoints: AtomicU64,
    /// Trials cancelled by the user (pending and running).
    pub(crate) cancellations: AtomicU64,
    /// Failed trials the user put back in the queue.
    pub(crate) retried: AtomicU64,
    /// Trials the user marked failed.
    pub(crate) user_failures: AtomicU64,
    /// Trials added by `add-seeds`.
    pub(crate) seeded_trials: AtomicU64,
    /// (method, route, status) → count.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
}

pub(crate) fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl Metrics {
    pub(crate) fn record_request(&self, method: &str, route: &str, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((method.to_string(), route.to_string(), status)).or_insert(0) += 1;
    }

    /// The exposition text, with the trial gauges `(study, status, count)` given by the caller.
    pub(crate) fn render(&self, gauges: &[(String, String, i64)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP decsweep_trials Trials by study and status.\n# TYPE decsweep_trials gauge\n");
        for (study, status, n) in gauges {
            let _ = writeln!(out, "decsweep_trials{{study=\"{}\",status=\"{}\"}} {n}", escape(study), escape(status));
        }
        let counters = [
            ("decsweep_leases_granted_total", "Leases granted to workers.", &self.leases_granted),
            ("decsweep_completions_total", "Trial completions recorded.", &self.completions),
            ("decsweep_lease_expirations_total", "Leases that expired without a result.", &self.expirations),
            ("decsweep_failures_total", "Trial failures reported by workers.", &self.failures),
            ("decsweep_prunes_total", "Trials pruned.", &self.prunes),
            ("decsweep_returns_total", "Trials given back unfinished by stopping workers.", &self.returns),
            ("decsweep_checkpoints_total", "Trial checkpoints uploaded and stored.", &self.checkpoints),
            ("decsweep_cancelled_trials_total", "Trials cancelled by the user.", &self.cancellations),
            ("decsweep_retried_trials_total", "Failed trials put back in the queue by the user.", &self.retried),
            ("decsweep_user_failed_trials_total", "Trials marked failed by the user.", &self.user_failures),
            ("decsweep_seeded_trials_total", "Trials added by add-seeds.", &self.seeded_trials),
        ];
        for (name, help, value) in counters {
            let _ =
                writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", value.load(Ordering::Relaxed));
        }
        out.push_str(
            "# HELP decsweep_http_requests_total HTTP requests by method, route and status.\n\
             # TYPE decsweep_http_requests_total counter\n",
        );
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        for ((method, route, status), n) in requests.iter() {
            let _ = writeln!(
                out,
                "decsweep_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(method),
                escape(route)
            );
        }
        out
    }
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_gauges_counters_and_requests() {
        let m = Metrics::default();
        bump(&m.leases_granted, 3);
        m.record_request("POST", "/v1/lease", 200);
        m.record_request("POST", "/v1/lease", 200);
        let text = m.render(&[("a\"b".into(), "pending".into(), 4)]);
        assert!(text.contains("decsweep_trials{study=\"a\\\"b\",status=\"pending\"} 4\n"), "{text}");
        assert!(text.contains("decsweep_leases_granted_total 3\n"));
        assert!(text.contains("decsweep_http_requests_total{method=\"POST\",route=\"/v1/lease\",status=\"200\"} 2\n"));
        assert!(text.contains("# TYPE decsweep_completions_total counter\n"));
        bump(&m.cancellations, 2);
        assert!(m.render(&[]).contains("decsweep_cancelled_trials_total 2\n"));
    }
}
