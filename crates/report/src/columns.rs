//! Which columns a CSV file has, in which order, under which names.
//!
//! Parameters and metrics are open-ended (a `command` pipeline reports whatever it likes), so
//! their columns are the union over all rows. The order must not depend on row order, so that two
//! reports of the same store diff cleanly: parameters by name, metrics in a fixed preferred order
//! (the numbers a reader looks for first) and then by name.

use std::collections::{BTreeSet, HashSet};

use tracing::warn;

use crate::TrialRow;

/// The headline metrics, in the order a reader wants them; `test_<name>` follows the same order.
const HEADLINE: [&str; 4] = ["accuracy", "f1_weighted", "f1_macro", "loss"];
/// Stage times in pipeline order.
const TIMES: [&str; 3] = ["time_ae_s", "time_dec_s", "time_finetune_s"];

/// Sort key of a metric: (tier, position within the tier); ties are broken by name.
fn metric_rank(name: &str) -> (u8, usize) {
    let pos = |list: &[&str], n: &str| list.iter().position(|m| *m == n).unwrap_or(list.len());
    if HEADLINE.contains(&name) {
        (0, pos(&HEADLINE, name))
    } else if let Some(rest) = name.strip_prefix("test_") {
        (1, pos(&HEADLINE, rest))
    } else if name == "param_count" {
        (2, 0)
    } else if name.starts_with("time_") {
        (3, pos(&TIMES, name))
    } else if name == "cache_reuses" {
        (4, 0)
    } else {
        (5, 0)
    }
}

/// The metric that holds how many rows `metric` was scored on: `test_n` for a test-split metric
/// (a worker reports the test split's metrics with its row count under `test`, flattened with a
/// `test_` prefix), `n` (the validation rows) for every other one.
pub(crate) fn rows_metric(metric: &str) -> &'static str {
    if metric.starts_with("test_") {
        "test_n"
    } else {
        "n"
    }
}

/// Every metric name that appears in `trials`, in report order.
pub(crate) fn metric_names(trials: &[TrialRow]) -> Vec<String> {
    let names: BTreeSet<&str> = trials.iter().flat_map(|t| t.metrics.keys().map(String::as_str)).collect();
    let mut names: Vec<String> = names.into_iter().map(str::to_string).collect();
    names.sort_by(|a, b| metric_rank(a).cmp(&metric_rank(b)).then_with(|| a.cmp(b)));
    names
}

/// Every parameter name that appears in `trials`, sorted.
pub(crate) fn param_names(trials: &[TrialRow]) -> Vec<String> {
    let names: BTreeSet<&str> = trials.iter().flat_map(|t| t.params.keys().map(String::as_str)).collect();
    names.into_iter().map(str::to_string).collect()
}

/// Hands out unique header names.
///
/// A `command` pipeline may well report a metric called `seed`, or take a parameter called
/// `status`; rather than refuse the whole report, the later claimant gets a prefixed name
/// (`metric.seed`) and a warning. The fixed columns are claimed first, so they never move.
#[derive(Default)]
pub(crate) struct Headers {
    taken: HashSet<String>,
}

impl Headers {
    pub(crate) fn fixed(names: &[&str]) -> Headers {
        let mut h = Headers::default();
        for n in names {
            h.claim(n, "");
        }
        h
    }

    /// Claims `wanted`, or `<prefix>.<wanted>` (then `…#2`, `…#3`) when it is already taken.
    pub(crate) fn claim(&mut self, wanted: &str, prefix: &str) -> String {
        let mut name = wanted.to_string();
        if self.taken.contains(&name) && !prefix.is_empty() {
            name = format!("{prefix}.{wanted}");
        }
        let base = name.clone();
        let mut k = 2;
        while self.taken.contains(&name) {
            name = format!("{base}#{k}");
            k += 1;
        }
        if name != wanted {
            warn!(column = wanted, renamed = %name, "column name already taken; renamed");
        }
        self.taken.insert(name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TrialStatus;
    use std::collections::BTreeMap;

    fn row(metrics: &[&str]) -> TrialRow {
        TrialRow {
            id: 1,
            pipeline: "dec".into(),
            params: BTreeMap::new(),
            seed: 0,
            config_id: "c".into(),
            spec_label: None,
            status: TrialStatus::Completed,
            attempts: 1,
            resumes: 0,
            resumed_from: None,
            pack: Vec::new(),
            worker: None,
            error: None,
            metrics: metrics.iter().map(|m| (m.to_string(), 0.0)).collect(),
        }
    }

    #[test]
    fn metrics_follow_the_preferred_order_then_names() {
        let trials = [
            row(&["zeta", "cache_reuses", "time_finetune_s", "test_loss", "time_ae_s", "pruned_epoch"]),
            row(&["param_count", "loss", "accuracy", "test_accuracy", "test_extra", "f1_macro", "f1_weighted"]),
            row(&["time_dec_s", "time_other_s", "alpha_metric"]),
        ];
        assert_eq!(
            metric_names(&trials),
            [
                "accuracy",
                "f1_weighted",
                "f1_macro",
                "loss",
                "test_accuracy",
                "test_loss",
                "test_extra",
                "param_count",
                "time_ae_s",
                "time_dec_s",
                "time_finetune_s",
                "time_other_s",
                "cache_reuses",
                "alpha_metric",
                "pruned_epoch",
                "zeta",
            ]
        );
    }

    #[test]
    fn clashing_headers_are_renamed_not_dropped() {
        let mut h = Headers::fixed(&["id", "seed"]);
        assert_eq!(h.claim("lr", "param"), "lr");
        assert_eq!(h.claim("seed", "metric"), "metric.seed");
        assert_eq!(h.claim("metric.seed", "metric"), "metric.metric.seed");
        assert_eq!(h.claim("seed", "metric"), "metric.seed#2");
        assert_eq!(h.claim("id", ""), "id#2");
    }
}
