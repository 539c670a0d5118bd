//! What a report is made from: plain rows, as the coordinator reads them from its store.

use std::collections::{BTreeMap, HashMap};

use decsweep_api::ParamValue;
use serde::{Deserialize, Serialize};

use crate::ReportError;

/// Where a trial stands: the API's own status type.
pub use decsweep_api::TrialStatus;

/// One trial: a (pipeline, parameters, seed) and what became of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialRow {
    pub id: i64,
    pub pipeline: String,
    pub params: BTreeMap<String, ParamValue>,
    pub seed: u64,
    /// Groups the seeds of one configuration: trials with the same pipeline and `config_id` are
    /// replicates and are aggregated together.
    pub config_id: String,
    /// The `label` of the spec's `[[configs]]` entry the trial comes from: it leads the
    /// configuration's readable label (see [`decsweep_api::labels`]).
    #[serde(default)]
    pub spec_label: Option<String>,
    pub status: TrialStatus,
    pub attempts: u32,
    /// Leases that resumed the trial from a checkpoint, and where the last one started
    /// (`stage:epoch`).
    #[serde(default)]
    pub resumes: u32,
    #[serde(default)]
    pub resumed_from: Option<String>,
    /// The trials trained together with this one in its latest lease, itself included (empty:
    /// it trained alone).
    #[serde(default)]
    pub pack: Vec<i64>,
    pub worker: Option<String>,
    pub error: Option<String>,
    /// accuracy, f1_weighted, f1_macro, loss, test_*, param_count, time_*_s, cache_reuses,
    /// pruned_epoch, or whatever a `command` pipeline reports. Accuracies are fractions in [0, 1].
    pub metrics: BTreeMap<String, f64>,
}

/// One epoch of one stage of one trial, as streamed by the worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub trial_id: i64,
    pub stage: String,
    pub epoch: u32,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
}

/// Everything one report is made from.
#[derive(Clone, Copy, Debug)]
pub struct StudyReport<'a> {
    pub study: &'a str,
    pub trials: &'a [TrialRow],
    /// In the order they were recorded: when a re-leased trial streams an epoch again, the later
    /// point wins.
    pub curves: &'a [CurvePoint],
}

impl StudyReport<'_> {
    /// Refuses input that cannot be reported unambiguously.
    pub(crate) fn validate(&self) -> Result<(), ReportError> {
        let mut seen: HashMap<i64, usize> = HashMap::with_capacity(self.trials.len());
        for (row, t) in self.trials.iter().enumerate() {
            if let Some(first) = seen.insert(t.id, row) {
                return Err(ReportError::DuplicateTrialId { id: t.id, first, second: row });
            }
        }
        Ok(())
    }
}

/// A trial as the API lists it is a report row.
impl From<decsweep_api::wire::TrialInfo> for TrialRow {
    fn from(t: decsweep_api::wire::TrialInfo) -> Self {
        TrialRow {
            id: t.id,
            pipeline: t.pipeline,
            params: t.params,
            seed: t.seed,
            config_id: t.config_id,
            spec_label: t.label,
            status: t.status,
            attempts: t.attempts,
            resumes: t.resumes,
            resumed_from: t.resumed_from,
            pack: t.pack,
            worker: t.worker,
            error: t.error,
            metrics: t.metrics,
        }
    }
}

impl CurvePoint {
    /// A point of trial `trial_id` as the API serves it (`GET /v1/trials/{id}/curves`, the
    /// study export): a loss or accuracy it does not know is NaN here.
    pub fn from_wire(trial_id: i64, p: &decsweep_api::wire::TrialCurvePoint) -> Self {
        CurvePoint {
            trial_id,
            stage: p.stage.name().to_string(),
            epoch: p.epoch,
            train_loss: p.train_loss.unwrap_or(f64::NAN),
            val_loss: p.val_loss.unwrap_or(f64::NAN),
            val_accuracy: p.val_accuracy.unwrap_or(f64::NAN),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words_round_trip_through_str_and_serde() {
        for st in TrialStatus::ALL {
            assert_eq!(st.name().parse::<TrialStatus>().unwrap(), st);
            assert_eq!(serde_json::to_string(&st).unwrap(), format!("\"{}\"", st.name()));
        }
        assert!("done".parse::<TrialStatus>().unwrap_err().contains("completed"));
    }

    #[test]
    fn duplicate_ids_are_refused_with_both_rows() {
        let row = |id| TrialRow {
            id,
            pipeline: "dec".into(),
            params: BTreeMap::new(),
            seed: 0,
            config_id: "c".into(),
            spec_label: None,
            status: TrialStatus::Pending,
            attempts: 0,
            resumes: 0,
            resumed_from: None,
            pack: Vec::new(),
            worker: None,
            error: None,
            metrics: BTreeMap::new(),
        };
        let trials = [row(1), row(2), row(1)];
        let r = StudyReport { study: "s", trials: &trials, curves: &[] };
        let err = r.validate().unwrap_err();
        assert!(matches!(err, ReportError::DuplicateTrialId { id: 1, first: 0, second: 2 }), "{err}");
    }

    /// Cancelled trials are treated as pruned ones are: listed with their status in trials.csv,
    /// counted in summary.csv, never aggregated (not even with `include_pruned`).
    #[test]
    fn cancelled_trials_are_listed_and_counted_but_not_aggregated() {
        let (mut trials, _) = crate::testutil::study();
        // Trial 13 (dec lf40, seed 0) is cancelled instead of completed.
        trials[12].status = TrialStatus::Cancelled;
        let report = StudyReport { study: "s", trials: &trials, curves: &[] };
        for opts in
            [crate::ReportOptions::default(), crate::ReportOptions { include_pruned: true, ..Default::default() }]
        {
            let files = crate::render(&report, &opts).unwrap();
            let get = |name: &str| files.iter().find(|f| f.name == name).unwrap().contents.clone();
            let trials_csv = get("trials.csv");
            let mut r = csv::Reader::from_reader(trials_csv.as_bytes());
            let h = r.headers().unwrap().clone();
            let (id, status) =
                (h.iter().position(|c| c == "id").unwrap(), h.iter().position(|c| c == "status").unwrap());
            let row13 = r.records().map(|x| x.unwrap()).find(|x| &x[id] == "13").expect("listed");
            assert_eq!(&row13[status], "cancelled");

            let summary = get("summary.csv");
            let mut r = csv::Reader::from_reader(summary.as_bytes());
            let h = r.headers().unwrap().clone();
            let col = |name: &str| h.iter().position(|c| c == name).unwrap();
            let (cfg, n, ids) = (col("config_id"), col("n_cancelled"), col("trial_ids"));
            let dec40 = r.records().map(|x| x.unwrap()).find(|x| &x[cfg] == "dec-lf40").unwrap();
            assert_eq!(&dec40[n], "1");
            assert!(!dec40[ids].split(';').any(|t| t == "13"), "not aggregated: {}", &dec40[ids]);
            assert!(get("table.md").contains("1 cancelled"), "{}", get("table.md"));
        }
    }
}
