//! The summary and paired tables, spelled from the study's report model: the numbers of
//! `summary.csv` and `paired.csv` (each p-value and interval method also as a data attribute,
//! exactly as the CSV writes it, so a test can compare the two).

use std::collections::BTreeSet;

use decsweep_report::stats::{IntervalMethod, NoInterval};
use decsweep_report::{StudyModel, TrialStatus};
use maud::{html, Markup};

use crate::format::num;

/// The model's metrics, the objective first.
/// The study's metrics, led as `table.md` leads: the objective's test counterpart (its name
/// with `test_` before it, measured on the fixed test split) when the study has one, then the
/// objective (validation, which selected checkpoints and steered the search), then the rest.
fn metrics_objective_first<'m>(model: &'m StudyModel, objective: &str) -> Vec<&'m str> {
    let mut out: Vec<&str> = model.metrics.iter().map(String::as_str).collect();
    let test = format!("test_{objective}");
    for lead in [objective, test.as_str()] {
        if let Some(i) = out.iter().position(|m| *m == lead) {
            let m = out.remove(i);
            out.insert(0, m);
        }
    }
    out
}

/// How the intervals of `metric` were computed across the configurations, for its header.
fn interval_name(model: &StudyModel, metric: &str) -> &'static str {
    let methods: BTreeSet<&'static str> =
        model.configs.iter().filter_map(|c| c.summary(metric).ci95.map(|i| i.method.name())).collect();
    let only = |m: IntervalMethod| methods.len() == 1 && methods.contains(m.name());
    if methods.is_empty() {
        "95% CI"
    } else if only(IntervalMethod::LogitT) {
        "95% CI (logit-t)"
    } else if only(IntervalMethod::T) {
        "95% CI (t)"
    } else if only(IntervalMethod::WilsonPooled) {
        "95% CI (Wilson, pooled rows)"
    } else {
        "95% CI (method per cell)"
    }
}

/// Why a summary has no interval, for the cell's tooltip.
fn no_interval_reason(why: Option<NoInterval>) -> &'static str {
    match why {
        Some(NoInterval::FewValues(_)) => "fewer than 3 seeds",
        Some(NoInterval::NoSpread) => "every seed scored the same and there are no rows to pool",
        None => "no value",
    }
}

/// Both tables; `version` names the counts they were computed at (see `live.rs`).
pub(crate) fn render(model: &StudyModel, objective: &str, version: &str) -> Markup {
    html! {
        section #summary-table data-version=(version) {
            h2 { "Summary over seeds" }
            (summary_table(model, objective))
        }
        (paired_table(model))
    }
}

fn summary_table(model: &StudyModel, objective: &str) -> Markup {
    let metrics = metrics_objective_first(model, objective);
    let aggregated = if model.include_pruned { "Completed and pruned trials" } else { "Completed trials only" };
    html! {
        @if model.configs.is_empty() { p { "No trials yet." } } @else {
            p.note {
                (aggregated) "; mean ± sample std and the 95% interval of the mean over seeds, as in summary.csv: "
                "logit-t for metrics in [0, 1] (accuracy, F1), Student's t for the others, none from fewer than 3 seeds. "
                "When every seed scores the same, accuracy and F1 get Wilson's interval of the seeds' pooled rows "
                "(marked W) and other metrics none: a zero-width interval would claim certainty. "
                "Validation selects checkpoints and drives pruning and TPE; test_ metrics are on the fixed test split."
            }
            div.scroll {
                table.summary {
                    thead { tr {
                        th { "pipeline" } th { "config" } th { "trials" } th { "completed" } th { "failed" } th { "pruned" }
                        @for m in &metrics { th { (m) " (n)" } th { (m) " mean ± std" } th { (m) " " (interval_name(model, m)) } }
                    } }
                    tbody {
                        @for c in &model.configs {
                            tr.config data-pipeline=(c.pipeline) data-config=(c.config_id) {
                                td { (c.pipeline) }
                                td.label title={ "config " (c.config_id) } { (c.label) }
                                td.num { (c.n_trials()) }
                                td.num.completed { (c.count(TrialStatus::Completed)) }
                                td.num { (c.count(TrialStatus::Failed)) }
                                td.num { (c.count(TrialStatus::Pruned)) }
                                @for m in &metrics {
                                    @let s = c.summary(m);
                                    td.num { (s.n) }
                                    td.num {
                                        @match (s.mean, s.std) {
                                            (Some(mean), Some(std)) => { (num(mean)) " ± " (num(std)) }
                                            (Some(mean), None) => { (num(mean)) }
                                            _ => { "–" }
                                        }
                                    }
                                    @match s.ci95 {
                                        Some(ci) => {
                                            td.num.ci data-metric=(m) data-method=(ci.method.name()) title=(ci.method.caption()) {
                                                "[" (num(ci.low)) ", " (num(ci.high)) "]"
                                                @if ci.method == IntervalMethod::WilsonPooled { " W" }
                                            }
                                        }
                                        None => { td.num.ci data-metric=(m) title=(no_interval_reason(s.no_interval())) { "–" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A p-value cell: rounded for reading, exact (as `paired.csv` writes it) in `data-p`.
fn p_cell(p: Option<f64>, what: &str) -> Markup {
    html! {
        @match p {
            Some(p) => { td.num.p data-test=(what) data-p=(p.to_string()) { (num(p)) } }
            None => { td.num.p data-test=(what) { "–" } }
        }
    }
}

/// The dec-vs-baseline comparisons with the same columns as `table.md`: raw and Holm-adjusted
/// p-values of both tests, the Holm family being every comparison of the study.
fn paired_table(model: &StudyModel) -> Markup {
    let paired = &model.paired;
    let label = |i: usize| model.configs[i].label.as_str();
    html! {
        @if !paired.comparisons.is_empty() {
            section #paired {
                h2 { "Paired dec vs baseline (same seeds)" }
                p.note {
                    "Paired t-test and Wilcoxon signed-rank test of dec − baseline accuracy, as in paired.csv; "
                    "Holm-adjusted over the study's " (paired.holm_m_t) " t-tests and "
                    (paired.holm_m_wilcoxon) " Wilcoxon tests."
                }
                table.summary {
                    thead { tr {
                        th { "dec" } th { "baseline" } th { "pairs" } th { "Δ accuracy (pp)" } th { "95% CI (pp)" } th { "d_z" }
                        th { "p (paired t)" } th { "p Holm (t)" } th { "p (Wilcoxon)" } th { "p Holm (Wilcoxon)" }
                    } }
                    tbody {
                        @for c in &paired.comparisons {
                            tr.comparison data-dec=(model.configs[c.dec].config_id) data-baseline=(model.configs[c.baseline].config_id) {
                                td { (label(c.dec)) } td { (label(c.baseline)) } td.num { (c.t.n) }
                                td.num { (c.t.mean.map(|m| num(m * 100.0)).unwrap_or("–".into())) }
                                td.num { (c.t.ci95.map(|(lo, hi)| format!("[{}, {}]", num(lo * 100.0), num(hi * 100.0))).unwrap_or("–".into())) }
                                td.num { (c.t.d_z.map(num).unwrap_or("–".into())) }
                                (p_cell(c.t.p_value, "t"))
                                (p_cell(c.t_holm, "t_holm"))
                                (p_cell(c.wilcoxon_p(), "wilcoxon"))
                                (p_cell(c.wilcoxon_holm, "wilcoxon_holm"))
                            }
                        }
                    }
                }
                @if !paired.unmatched.is_empty() {
                    p.small {
                        "No baseline with the same shared parameters for: "
                        (paired.unmatched.iter().map(|i| label(*i)).collect::<Vec<_>>().join(", "))
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_objective_comes_first_after_its_test_counterpart() {
        let mut model = StudyModel::of("s", &[], &Default::default());
        model.metrics = vec!["a".into(), "loss".into()];
        assert_eq!(metrics_objective_first(&model, "loss"), ["loss", "a"]);
        assert_eq!(interval_name(&model, "a"), "95% CI", "no interval anywhere: no method named");
        // With a test split, the objective's test counterpart leads, as in table.md.
        model.metrics =
            vec!["accuracy".into(), "f1_weighted".into(), "test_accuracy".into(), "test_f1_weighted".into()];
        assert_eq!(
            metrics_objective_first(&model, "accuracy"),
            ["test_accuracy", "accuracy", "f1_weighted", "test_f1_weighted"]
        );
    }
}
