//! `summary.csv`: one row per configuration (pipeline, config_id), statistics over its seeds.
//!
//! Columns: `pipeline, config_id, label` (the configuration's readable name, see
//! [`decsweep_api::labels`]), every parameter (the value the group's trials share; empty
//! when they disagree or do not have it), the trial counts `n_trials, n_completed, n_failed,
//! n_pruned, n_pending, n_running, n_cancelled`, then `seeds` and `trial_ids` (`;`-separated, the aggregated
//! trials only: completed ones, plus pruned ones with `include_pruned`), then for every metric
//! `<metric>_n, _mean, _std, _ci95_low, _ci95_high, _ci95_method`.
//!
//! Each statistic is reproducible from `trials.csv`: take the rows named in `trial_ids`, keep the
//! metric's finite cells (`<metric>_n` of them), and compute the mean x̄ and the sample standard
//! deviation s (n − 1). The 95% interval of the mean is named by `_ci95_method`:
//! - `t`: x̄ ± t_{0.975, n−1} · s / √n (unbounded metrics: loss, times, counts);
//! - `logit_t`: expit(logit(x̄) ± t_{0.975, n−1} · s / (√n · x̄ (1 − x̄))) (metrics in [0, 1]:
//!   accuracy and F1; the interval stays inside [0, 1]; see [`crate::stats::interval95`]).
//!
//! - `wilson_pooled`: when every seed scored the same (no spread up to rounding), a t or
//!   logit-t interval would be the single point [x̄, x̄]; accuracy and F1 then get Wilson's score
//!   interval of the seeds' rows pooled, p̂ = Σ xᵢ·Nᵢ / Σ Nᵢ over N = Σ Nᵢ rows, where Nᵢ is
//!   the trial's `n` (validation rows) or, for a `test_` metric, `test_n` (see
//!   [`crate::stats::wilson95`]).
//!
//! With n < 3 the interval cells (and the method) are empty: two seeds give no usable interval.
//! They are empty too when the values have no spread and the metric is not a proportion with
//! known rows (a constant loss or parameter count): no zero-width interval is ever written.
//! With n = 1 the std is empty too; with n = 0 the mean is too.

use crate::columns::Headers;
use crate::format::csv_opt;
use crate::model::StudyModel;
use crate::{ReportError, TrialStatus};

pub(crate) const FILE: &str = "summary.csv";

const LEAD: [&str; 3] = ["pipeline", "config_id", "label"];
const COUNTS: [(&str, TrialStatus); 6] = [
    ("n_completed", TrialStatus::Completed),
    ("n_failed", TrialStatus::Failed),
    ("n_pruned", TrialStatus::Pruned),
    ("n_pending", TrialStatus::Pending),
    ("n_running", TrialStatus::Running),
    ("n_cancelled", TrialStatus::Cancelled),
];
const STATS: [&str; 6] = ["n", "mean", "std", "ci95_low", "ci95_high", "ci95_method"];

pub(crate) fn render(model: &StudyModel) -> Result<String, ReportError> {
    let (params, metrics) = (&model.params, &model.metrics);

    let mut fixed: Vec<&str> = LEAD.to_vec();
    fixed.push("n_trials");
    fixed.extend(COUNTS.iter().map(|(c, _)| *c));
    fixed.extend(["seeds", "trial_ids"]);
    let mut names = Headers::fixed(&fixed);
    let param_cols: Vec<String> = params.iter().map(|p| names.claim(p, "param")).collect();
    let stat_cols: Vec<String> =
        metrics.iter().flat_map(|m| STATS.map(|s| format!("{m}_{s}"))).map(|c| names.claim(&c, "metric")).collect();
    let headers: Vec<String> = LEAD
        .iter()
        .map(|s| s.to_string())
        .chain(param_cols)
        .chain(fixed[LEAD.len()..].iter().map(|s| s.to_string()))
        .chain(stat_cols)
        .collect();

    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&headers).map_err(|e| ReportError::csv(FILE, e))?;
    for g in &model.configs {
        let mut rec: Vec<String> = Vec::with_capacity(headers.len());
        rec.extend([g.pipeline.clone(), g.config_id.clone(), g.label.clone()]);
        rec.extend(params.iter().map(|p| g.params.get(p).map(|v| v.to_string()).unwrap_or_default()));
        rec.push(g.n_trials().to_string());
        rec.extend(COUNTS.iter().map(|(_, st)| g.count(*st).to_string()));
        rec.push(join(g.seeds.iter().map(|s| s.to_string())));
        rec.push(join(g.trial_ids.iter().map(|t| t.to_string())));
        for m in metrics {
            let s = g.summary(m);
            rec.extend([
                s.n.to_string(),
                csv_opt(s.mean),
                csv_opt(s.std),
                csv_opt(s.ci95.map(|c| c.low)),
                csv_opt(s.ci95.map(|c| c.high)),
                s.ci95.map(|c| c.method.name().to_string()).unwrap_or_default(),
            ]);
        }
        w.write_record(&rec).map_err(|e| ReportError::csv(FILE, e))?;
    }
    let bytes = w.into_inner().map_err(|e| ReportError::csv(FILE, e.into_error()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(";")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::testutil::study;
    use crate::{trials_csv, ReportOptions};

    type Table = (Vec<String>, Vec<HashMap<String, String>>);

    fn parse(text: &str) -> Table {
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let headers: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
        let rows = r
            .records()
            .map(|rec| headers.iter().cloned().zip(rec.unwrap().iter().map(str::to_string)).collect())
            .collect();
        (headers, rows)
    }

    /// t_{0.975, df} for df = 1..5 from a printed table, so this check does not lean on the
    /// crate's own quantile function.
    const T975: [f64; 5] = [12.706205, 4.302653, 3.182446, 2.776445, 2.570582];

    fn close(got: &str, want: f64, tol: f64, what: &str) {
        let g: f64 = got.parse().unwrap_or_else(|_| panic!("{what}: `{got}` is not a number"));
        assert!((g - want).abs() <= tol * want.abs().max(1.0), "{what}: {g} vs {want}");
    }

    #[test]
    fn every_number_is_reproducible_from_the_trials_csv_rows_it_names() {
        let (trials, _) = study();
        let model = StudyModel::of("s", &trials, &ReportOptions::default());
        let (_, trial_rows) = parse(&trials_csv::render(&trials, &model).unwrap());
        let (headers, summary) = parse(&render(&model).unwrap());
        let by_id: HashMap<&str, &HashMap<String, String>> = trial_rows.iter().map(|r| (r["id"].as_str(), r)).collect();
        let metrics: Vec<&str> = headers.iter().filter_map(|h| h.strip_suffix("_mean")).collect();
        assert_eq!(
            metrics,
            [
                "accuracy",
                "f1_weighted",
                "f1_macro",
                "loss",
                "param_count",
                "time_ae_s",
                "time_finetune_s",
                "cache_reuses",
                "pruned_epoch"
            ]
        );
        assert_eq!(summary.len(), 4);
        let mut checked = 0;

        for row in &summary {
            let key = (row["pipeline"].as_str(), row["config_id"].as_str());
            let members: Vec<&HashMap<String, String>> =
                trial_rows.iter().filter(|t| (t["pipeline"].as_str(), t["config_id"].as_str()) == key).collect();
            // Counts by status, from trials.csv.
            for (col, st) in
                [("n_completed", "completed"), ("n_failed", "failed"), ("n_pruned", "pruned"), ("n_pending", "pending")]
            {
                let n = members.iter().filter(|t| t["status"] == st).count();
                assert_eq!(row[col], n.to_string(), "{key:?} {col}");
            }
            assert_eq!(row["n_trials"], members.len().to_string());
            assert!(members.iter().all(|t| t["label"] == row["label"]), "{key:?}: one label in both files");
            // trial_ids are exactly the completed members.
            let ids: Vec<&str> = row["trial_ids"].split(';').collect();
            let mut completed: Vec<&str> =
                members.iter().filter(|t| t["status"] == "completed").map(|t| t["id"].as_str()).collect();
            let mut named = ids.clone();
            completed.sort();
            named.sort();
            assert_eq!(named, completed, "{key:?}");
            let seeds: Vec<&str> = ids.iter().map(|id| by_id[id]["seed"].as_str()).collect();
            assert_eq!(row["seeds"], seeds.join(";"));
            // Parameters equal the named rows'.
            assert_eq!(row["label_fraction"], by_id[ids[0]]["label_fraction"]);

            for m in &metrics {
                let xs: Vec<f64> = ids
                    .iter()
                    .filter_map(|id| by_id[id].get(*m).and_then(|c| c.parse::<f64>().ok()))
                    .filter(|x| x.is_finite())
                    .collect();
                let n = xs.len();
                assert_eq!(row[&format!("{m}_n")], n.to_string(), "{key:?} {m}_n");
                let cell = |s: &str| row[&format!("{m}_{s}")].as_str();
                let no_interval = || ["ci95_low", "ci95_high", "ci95_method"].iter().all(|s| cell(s).is_empty());
                if n == 0 {
                    assert!(cell("mean").is_empty() && cell("std").is_empty() && no_interval());
                    continue;
                }
                let mean = xs.iter().sum::<f64>() / n as f64;
                close(cell("mean"), mean, 1e-12, m);
                if n == 1 {
                    assert!(cell("std").is_empty() && no_interval());
                    continue;
                }
                let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
                close(cell("std"), sd, 1e-12, m);
                if n < 3 {
                    assert!(no_interval(), "{key:?} {m}: no interval from two seeds");
                    continue;
                }
                if sd == 0.0 {
                    // Every seed the same (param_count): no zero-width interval, and no rows to
                    // pool in this study (its trials record no `n`).
                    assert!(no_interval(), "{key:?} {m}: no interval without spread");
                    continue;
                }
                let se = sd / (n as f64).sqrt();
                let bounded = m.starts_with("accuracy") || m.starts_with("f1_");
                let (lo, hi) = if bounded {
                    let eta = (mean / (1.0 - mean)).ln();
                    let half = T975[n - 2] * se / (mean * (1.0 - mean));
                    let expit = |z: f64| 1.0 / (1.0 + (-z).exp());
                    (expit(eta - half), expit(eta + half))
                } else {
                    (mean - T975[n - 2] * se, mean + T975[n - 2] * se)
                };
                assert_eq!(cell("ci95_method"), if bounded { "logit_t" } else { "t" }, "{key:?} {m}");
                close(cell("ci95_low"), lo, 1e-6, m);
                close(cell("ci95_high"), hi, 1e-6, m);
                checked += 1;
            }
        }
        assert!(checked > 10, "intervals were checked: {checked}");
        // dec-lf40: trials 13, 15, 16 completed, 14 pruned, 17 pending; the NaN loss of trial 16
        // is left out of the loss statistics.
        let dec40 = summary.iter().find(|r| r["config_id"] == "dec-lf40").unwrap();
        assert_eq!((dec40["n_completed"].as_str(), dec40["loss_n"].as_str()), ("3", "2"));
        assert_eq!((dec40["n_pruned"].as_str(), dec40["n_pending"].as_str()), ("1", "1"));
        assert_eq!(dec40["label"], "dec lf=0.4");
        assert_eq!(headers[..3], ["pipeline", "config_id", "label"]);
    }
}
