//! `trials.csv`: one row per trial, every parameter and metric as a column.
//!
//! Columns: `id, pipeline, config_id, label` (the configuration's readable name, as in
//! `summary.csv` and the tables), every parameter (sorted by name), `seed, status, attempts,
//! resumes, resumed_from, pack, worker, error`, every metric (see [`crate::columns`] for the order). A parameter or metric a
//! trial does not have is an empty cell. Rows are in trial-id order.

use std::collections::HashMap;

use crate::columns::{metric_names, param_names, Headers};
use crate::format::csv_num;
use crate::{ReportError, StudyModel, TrialRow};

pub(crate) const FILE: &str = "trials.csv";

const LEAD: [&str; 4] = ["id", "pipeline", "config_id", "label"];
const MIDDLE: [&str; 8] = ["seed", "status", "attempts", "resumes", "resumed_from", "pack", "worker", "error"];

/// `trials`, each labelled as its configuration is in `model` (the model of these trials).
pub(crate) fn render(trials: &[TrialRow], model: &StudyModel) -> Result<String, ReportError> {
    let labels: HashMap<(&str, &str), &str> =
        model.configs.iter().map(|c| ((c.pipeline.as_str(), c.config_id.as_str()), c.label.as_str())).collect();
    let params = param_names(trials);
    let metrics = metric_names(trials);
    // Fixed columns are claimed first so a parameter or metric of the same name is the one
    // renamed; the file order is then assembled separately.
    let mut names = Headers::fixed(&[&LEAD[..], &MIDDLE[..]].concat());
    let param_cols: Vec<String> = params.iter().map(|p| names.claim(p, "param")).collect();
    let metric_cols: Vec<String> = metrics.iter().map(|m| names.claim(m, "metric")).collect();
    let headers: Vec<String> = LEAD
        .iter()
        .map(|s| s.to_string())
        .chain(param_cols)
        .chain(MIDDLE.iter().map(|s| s.to_string()))
        .chain(metric_cols)
        .collect();

    let mut rows: Vec<&TrialRow> = trials.iter().collect();
    rows.sort_by_key(|t| t.id);

    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&headers).map_err(|e| ReportError::csv(FILE, e))?;
    for t in rows {
        let mut rec: Vec<String> = Vec::with_capacity(headers.len());
        let label = labels.get(&(t.pipeline.as_str(), t.config_id.as_str())).copied().unwrap_or_default();
        rec.extend([t.id.to_string(), t.pipeline.clone(), t.config_id.clone(), label.to_string()]);
        rec.extend(params.iter().map(|p| t.params.get(p).map(|v| v.to_string()).unwrap_or_default()));
        rec.extend([
            t.seed.to_string(),
            t.status.name().to_string(),
            t.attempts.to_string(),
            t.resumes.to_string(),
            t.resumed_from.clone().unwrap_or_default(),
            pack_cell(&t.pack),
            t.worker.clone().unwrap_or_default(),
            t.error.clone().unwrap_or_default(),
        ]);
        rec.extend(metrics.iter().map(|m| t.metrics.get(m).map(|x| csv_num(*x)).unwrap_or_default()));
        w.write_record(&rec).map_err(|e| ReportError::csv(FILE, e))?;
    }
    let bytes = w.into_inner().map_err(|e| ReportError::csv(FILE, e.into_error()))?;
    // Every cell was a Rust `String`, so the bytes are UTF-8.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The trials trained together, as `3+5+8` (empty when the trial trained alone).
fn pack_cell(pack: &[i64]) -> String {
    pack.iter().map(i64::to_string).collect::<Vec<_>>().join("+")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{trial, TrialSpec};
    use crate::{ReportOptions, TrialStatus};
    use decsweep_api::ParamValue;

    fn render(trials: &[TrialRow]) -> Result<String, ReportError> {
        super::render(trials, &StudyModel::of("s", trials, &ReportOptions::default()))
    }

    fn read(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let headers = r.headers().unwrap().iter().map(str::to_string).collect();
        let rows = r.records().map(|rec| rec.unwrap().iter().map(str::to_string).collect()).collect();
        (headers, rows)
    }

    #[test]
    fn every_field_survives_a_round_trip_through_a_csv_reader() {
        let mut a = trial(TrialSpec {
            id: 7,
            pipeline: "dec",
            config: "cfg,\"1\"",
            seed: 3,
            acc: Some(0.1 + 0.2),
            ..Default::default()
        });
        a.error = Some("CUDA error: out of memory, \"retry\"\nline 2".into());
        a.params.insert("zero_label".into(), ParamValue::Str("drop, then \"see\"".into()));
        a.params.insert("epochs_ft".into(), ParamValue::Int(500));
        a.metrics.insert("loss".into(), f64::NAN);
        a.metrics.insert("time_ae_s".into(), 12.5);
        let mut b = trial(TrialSpec { id: 2, pipeline: "baseline", status: TrialStatus::Failed, ..Default::default() });
        b.worker = None;
        b.attempts = 3;
        b.metrics.insert("cache_reuses".into(), 2.0);
        a.resumes = 2;
        a.resumed_from = Some("finetune:12".into());
        a.pack = vec![5, 7, 9];
        let text = render(&[a.clone(), b]).unwrap();
        let (headers, rows) = read(&text);
        assert_eq!(
            headers,
            [
                "id",
                "pipeline",
                "config_id",
                "label",
                "epochs_ft",
                "label_fraction",
                "zero_label",
                "seed",
                "status",
                "attempts",
                "resumes",
                "resumed_from",
                "pack",
                "worker",
                "error",
                "accuracy",
                "f1_weighted",
                "loss",
                "param_count",
                "time_ae_s",
                "cache_reuses",
            ]
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][..4], ["2", "baseline", "c", "baseline zero=drop"], "rows in id order");
        assert_eq!(
            rows[0][10..15],
            ["0", "", "", "", ""],
            "no resumes; absent resume point, pack, worker and error are empty"
        );
        assert_eq!(rows[0][20], "2");
        let r = &rows[1];
        assert_eq!(r[2], a.config_id);
        // zero_label is the one parameter that varies (b leaves it out: the default, `drop`).
        assert_eq!(r[3], "dec zero=drop, then \"see\"");
        assert_eq!(r[4], "500");
        assert_eq!(r[5].parse::<f64>().unwrap(), 0.4);
        assert_eq!(r[6], "drop, then \"see\"");
        assert_eq!(r[7..14], ["3", "completed", "1", "2", "finetune:12", "5+7+9", "w1"]);
        assert_eq!(r[14], a.error.clone().unwrap());
        assert_eq!(r[15].parse::<f64>().unwrap(), 0.1 + 0.2, "shortest round-trip form");
        assert!(r[17].parse::<f64>().unwrap().is_nan());
        assert_eq!(r[20], "", "a metric the trial lacks");
    }

    #[test]
    fn names_that_clash_with_fixed_columns_are_prefixed() {
        let mut a = trial(TrialSpec::default());
        a.params.insert("seed".into(), ParamValue::Int(9));
        a.metrics.insert("status".into(), 1.0);
        let (headers, rows) = read(&render(&[a]).unwrap());
        let col =
            |name: &str| headers.iter().position(|h| h == name).unwrap_or_else(|| panic!("{name} in {headers:?}"));
        assert_eq!(rows[0][col("param.seed")], "9");
        assert_eq!(rows[0][col("seed")], "0");
        assert_eq!(rows[0][col("metric.status")], "1");
        assert_eq!(rows[0][col("status")], "completed");
    }

    #[test]
    fn each_row_carries_its_configurations_label() {
        let trials: Vec<TrialRow> =
            [(1, "dec", "d1", 0.1), (2, "dec", "d4", 0.4), (3, "baseline", "b1", 0.1), (4, "dec", "d1", 0.1)]
                .into_iter()
                .map(|(id, pipeline, config, lf)| {
                    trial(TrialSpec { id, pipeline, config, lf, seed: id as u64, ..Default::default() })
                })
                .collect();
        let (headers, rows) = read(&render(&trials).unwrap());
        assert_eq!(headers[2..4], ["config_id", "label"]);
        let labels: Vec<(&str, &str)> = rows.iter().map(|r| (r[2].as_str(), r[3].as_str())).collect();
        assert_eq!(
            labels,
            [("d1", "dec lf=0.1"), ("d4", "dec lf=0.4"), ("b1", "baseline lf=0.1"), ("d1", "dec lf=0.1")]
        );
    }

    #[test]
    fn no_trials_is_a_header_only_file() {
        let (headers, rows) = read(&render(&[]).unwrap());
        assert_eq!(
            headers,
            [
                "id",
                "pipeline",
                "config_id",
                "label",
                "seed",
                "status",
                "attempts",
                "resumes",
                "resumed_from",
                "pack",
                "worker",
                "error"
            ]
        );
        assert!(rows.is_empty());
    }
}
