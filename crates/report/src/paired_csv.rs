//! `paired.csv`: the seed pairs behind the paired comparison in `table.md` / `table.tex`.
//!
//! One row per (dec configuration, baseline configuration, seed): both trial ids, both
//! accuracies as in `trials.csv`, and their difference dec − baseline. The table's mean
//! difference, interval and p-values are computed from exactly these `difference` values.

use crate::format::csv_num;
use crate::groups::Group;
use crate::pairing::Comparison;
use crate::ReportError;

pub(crate) const FILE: &str = "paired.csv";

const HEADERS: [&str; 10] = [
    "dec_config_id",
    "baseline_config_id",
    "dec_model",
    "baseline_model",
    "seed",
    "dec_trial_id",
    "baseline_trial_id",
    "dec_accuracy",
    "baseline_accuracy",
    "difference",
];

pub(crate) fn render(groups: &[Group], comparisons: &[Comparison]) -> Result<String, ReportError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(HEADERS).map_err(|e| ReportError::csv(FILE, e))?;
    for c in comparisons {
        let (dec, base) = (&groups[c.dec], &groups[c.baseline]);
        for p in &c.pairs {
            w.write_record([
                dec.config_id.to_string(),
                base.config_id.to_string(),
                dec.label.clone(),
                base.label.clone(),
                p.seed.to_string(),
                p.dec.id.to_string(),
                p.baseline.id.to_string(),
                csv_num(p.dec_value),
                csv_num(p.baseline_value),
                csv_num(p.dec_value - p.baseline_value),
            ])
            .map_err(|e| ReportError::csv(FILE, e))?;
        }
    }
    let bytes = w.into_inner().map_err(|e| ReportError::csv(FILE, e.into_error()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
