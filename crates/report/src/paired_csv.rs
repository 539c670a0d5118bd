//! `paired.csv`: the seed pairs behind the paired comparison in `table.md` / `table.tex`, and
//! every number the table derives from them.
//!
//! One row per (dec configuration, baseline configuration, seed): both trial ids, both
//! accuracies as in `trials.csv`, and their difference dec − baseline. Then the comparison's own
//! statistics, the same on every row of one comparison (group by the two config ids to get one
//! row per comparison): `n_pairs`, `mean_difference`, `std_difference` (n − 1), `ci95_low`,
//! `ci95_high` (Student's t, empty for fewer than 3 pairs), `d_z` (Cohen's: mean / std, empty
//! without spread), the t statistic `t` and its two-sided `p_t`, `p_wilcoxon` (signed-rank,
//! empty for fewer than 2 pairs), and the Holm-adjusted `p_t_holm` / `p_wilcoxon_holm` with the
//! size of their families `holm_m_t` / `holm_m_wilcoxon` (every comparison of the study with
//! that p-value, all of which appear in this file). So each number in the table can be
//! recomputed from the `difference` column, and each Holm value from the raw p-values here.

use crate::format::{csv_num, csv_opt};
use crate::model::StudyModel;
use crate::ReportError;

pub(crate) const FILE: &str = "paired.csv";

const HEADERS: [&str; 23] = [
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
    "n_pairs",
    "mean_difference",
    "std_difference",
    "ci95_low",
    "ci95_high",
    "d_z",
    "t",
    "p_t",
    "p_t_holm",
    "holm_m_t",
    "p_wilcoxon",
    "p_wilcoxon_holm",
    "holm_m_wilcoxon",
];

pub(crate) fn render(model: &StudyModel) -> Result<String, ReportError> {
    let paired = &model.paired;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(HEADERS).map_err(|e| ReportError::csv(FILE, e))?;
    for c in &paired.comparisons {
        let (dec, base) = (&model.configs[c.dec], &model.configs[c.baseline]);
        let t = &c.t;
        let stats = [
            t.n.to_string(),
            csv_opt(t.mean),
            csv_opt(t.std),
            csv_opt(t.ci95.map(|c| c.0)),
            csv_opt(t.ci95.map(|c| c.1)),
            csv_opt(t.d_z),
            csv_opt(t.t),
            csv_opt(t.p_value),
            csv_opt(c.t_holm),
            paired.holm_m_t.to_string(),
            csv_opt(c.wilcoxon_p()),
            csv_opt(c.wilcoxon_holm),
            paired.holm_m_wilcoxon.to_string(),
        ];
        for p in &c.pairs {
            let pair = [
                dec.config_id.clone(),
                base.config_id.clone(),
                dec.label.clone(),
                base.label.clone(),
                p.seed.to_string(),
                p.dec_trial_id.to_string(),
                p.baseline_trial_id.to_string(),
                csv_num(p.dec_value),
                csv_num(p.baseline_value),
                csv_num(p.difference()),
            ];
            w.write_record(pair.iter().chain(&stats)).map_err(|e| ReportError::csv(FILE, e))?;
        }
    }
    let bytes = w.into_inner().map_err(|e| ReportError::csv(FILE, e.into_error()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
