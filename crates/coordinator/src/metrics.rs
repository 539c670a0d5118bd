//! Counters behind `GET /metrics`, rendered in the Prometheus text exposition format.
//!
//! Counters live in memory and start from zero with each process (Prometheus handles resets);
//! the trial gauges are read from the store at most once per [`GAUGES_MAX_AGE`], however often
//! it is scraped. The request counter's labels come from fixed sets, so no client can add
//! series: a method outside [`METHODS`] counts as `other`, and a route is one of the router's
//! own paths (or `unmatched`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a reading of the trial gauges is reused.
pub const GAUGES_MAX_AGE: Duration = Duration::from_secs(5);

/// The methods counted by name; any other counts as `other`.
pub const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// Trials per `(study, status)`, as the store last counted them.
pub(crate) type Gauges = Vec<(String, String, i64)>;

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
    /// (method, route, status) → count; the method is one of [`METHODS`] or `other`, the
    /// route a `&'static` path of the router or `unmatched`.
    requests: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
    /// The last reading of the trial gauges and when it was taken. An async lock, so that
    /// scrapes arriving together wait for one reading instead of each making their own.
    gauges: tokio::sync::Mutex<Option<(Instant, std::sync::Arc<Gauges>)>>,
}

pub(crate) fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// The method's label: its name when it is one of [`METHODS`], else `other`.
pub(crate) fn method_label(method: &str) -> &'static str {
    METHODS.iter().copied().find(|m| *m == method).unwrap_or("other")
}

impl Metrics {
    /// Counts an answer. `route` is the router's matched path, or `None` for the fallback.
    pub fn record_request(&self, method: &str, route: Option<&'static str>, status: u16) {
        let key = (method_label(method), route.unwrap_or("unmatched"), status);
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(key).or_insert(0) += 1;
    }

    /// The trial gauges, read with `read` only when the last reading is older than
    /// [`GAUGES_MAX_AGE`].
    pub(crate) async fn gauges<F, Fut, E>(&self, read: F) -> Result<std::sync::Arc<Gauges>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Gauges, E>>,
    {
        let mut cached = self.gauges.lock().await;
        if let Some((taken, gauges)) = cached.as_ref() {
            if taken.elapsed() < GAUGES_MAX_AGE {
                return Ok(std::sync::Arc::clone(gauges));
            }
        }
        let gauges = std::sync::Arc::new(read().await?);
        *cached = Some((Instant::now(), std::sync::Arc::clone(&gauges)));
        Ok(gauges)
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
        m.record_request("POST", Some("/v1/lease"), 200);
        m.record_request("POST", Some("/v1/lease"), 200);
        let text = m.render(&[("a\"b".into(), "pending".into(), 4)]);
        assert!(text.contains("decsweep_trials{study=\"a\\\"b\",status=\"pending\"} 4\n"), "{text}");
        assert!(text.contains("decsweep_leases_granted_total 3\n"));
        assert!(text.contains("decsweep_http_requests_total{method=\"POST\",route=\"/v1/lease\",status=\"200\"} 2\n"));
        assert!(text.contains("# TYPE decsweep_completions_total counter\n"));
        bump(&m.cancellations, 2);
        assert!(m.render(&[]).contains("decsweep_cancelled_trials_total 2\n"));
    }

    #[test]
    fn made_up_methods_and_paths_add_no_series() {
        let m = Metrics::default();
        for i in 0..1000 {
            m.record_request(&format!("X{i}"), None, 405);
        }
        m.record_request("GET", None, 404);
        m.record_request("get", None, 404);
        let text = m.render(&[]);
        let series: Vec<&str> = text.lines().filter(|l| l.starts_with("decsweep_http_requests_total{")).collect();
        assert_eq!(
            series,
            [
                "decsweep_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1",
                "decsweep_http_requests_total{method=\"other\",route=\"unmatched\",status=\"404\"} 1",
                "decsweep_http_requests_total{method=\"other\",route=\"unmatched\",status=\"405\"} 1000",
            ]
        );
    }

    #[tokio::test]
    async fn gauges_are_read_at_most_once_per_max_age() {
        let m = Metrics::default();
        let reads = std::sync::atomic::AtomicU64::new(0);
        let read = || async {
            reads.fetch_add(1, Ordering::Relaxed);
            Ok::<_, ()>(vec![("a".to_string(), "pending".to_string(), 1)])
        };
        for _ in 0..10 {
            assert_eq!(m.gauges(read).await.unwrap()[0].2, 1);
        }
        assert_eq!(reads.load(Ordering::Relaxed), 1);
        *m.gauges.lock().await = Some((Instant::now() - GAUGES_MAX_AGE, std::sync::Arc::new(Vec::new())));
        m.gauges(read).await.unwrap();
        assert_eq!(reads.load(Ordering::Relaxed), 2, "a stale reading is replaced");
    }
}
