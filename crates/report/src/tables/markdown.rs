//! `table.md`: GitHub-flavoured Markdown.

use super::{Cell, Model};
use crate::stats::{NoInterval, MIN_INTERVAL_N};

pub(crate) const FILE: &str = "table.md";

/// Said under the comparisons when a dec configuration stands on the baseline side.
const EXTENSION_NOTE: &str = "Rows with a dec configuration in the baseline column compare a dec configuration \
     that turns on an extension past the paper (DEC pseudo-labels in fine-tuning: \
     `pseudo_threshold` > 0) with the same dec configuration without it: Δ is what the extension \
     adds.\n\n";

const COMPARISON_HEADERS: [&str; 10] = [
    "dec",
    "baseline",
    "pairs",
    "Δ accuracy (pp)",
    "95% CI (pp)",
    "d_z",
    "p (paired t)",
    "p Holm (t)",
    "p (Wilcoxon)",
    "p Holm (Wilcoxon)",
];

/// Escapes text so it renders literally inside a table cell.
///
/// `|` would end the cell and a newline the row. Emphasis and link characters are escaped too,
/// except `_` between two letters or digits, which GFM never treats as emphasis: parameter names
/// like `label_fraction` stay readable in the raw file.
pub(crate) fn escape(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '\n' | '\r' => out.push(' '),
            '_' => {
                let word = |j: Option<usize>| j.and_then(|j| chars.get(j)).is_some_and(|c| c.is_alphanumeric());
                if !(word(i.checked_sub(1)) && word(Some(i + 1))) {
                    out.push('\\');
                }
                out.push('_');
            }
            '\\' | '|' | '*' | '`' | '[' | ']' | '<' | '>' | '#' | '~' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

fn cell(c: &Cell) -> String {
    match c {
        Cell::Text(t) => escape(t),
        // Our own formatted numbers: "<0.001" is no HTML tag and renders as written.
        Cell::Num(n) => n.clone(),
        Cell::MeanStd(m, Some(s)) => format!("{m} ± {s}"),
        Cell::MeanStd(m, None) => m.clone(),
        Cell::Interval(lo, hi) => format!("[{lo}, {hi}]"),
        Cell::PooledInterval(lo, hi) => format!("[{lo}, {hi}] W"),
        Cell::NoInterval(NoInterval::FewValues(n)) => format!("none (n = {n} < {MIN_INTERVAL_N})"),
        Cell::NoInterval(NoInterval::NoSpread) => "none (no spread)".to_string(),
        Cell::Range(lo, hi) => format!("{lo}–{hi}"),
        Cell::Rows(val, test) => format!("{} / {}", cell(val), cell(test)),
        Cell::Missing => "–".to_string(),
    }
}

/// A table whose first `text_cols` columns are left-aligned text and the rest right-aligned
/// numbers.
fn table(out: &mut String, headers: &[&str], text_cols: usize, rows: impl Iterator<Item = Vec<String>>) {
    out.push_str(&format!("| {} |\n", headers.iter().map(|h| escape(h)).collect::<Vec<_>>().join(" | ")));
    let align: Vec<&str> = (0..headers.len()).map(|i| if i < text_cols { ":---" } else { "---:" }).collect();
    out.push_str(&format!("|{}|\n", align.join("|")));
    for r in rows {
        out.push_str(&format!("| {} |\n", r.join(" | ")));
    }
}

pub(crate) fn render(m: &Model) -> String {
    let aggregated = if m.include_pruned { "completed and pruned trials" } else { "completed trials only" };
    let mut out = format!("# Study {}\n\n", escape(&m.study));
    out.push_str(&format!("{}\n\n", super::notes::yardstick(m.yardstick)));
    out.push_str(&format!(
        "Each number is the mean ± sample standard deviation over the seeds of each configuration \
         ({aggregated}; Seeds = how many), and the 95% confidence interval of the mean: \
         {method}{why}. No interval is given for fewer than {MIN_INTERVAL_N} seeds: with 2, the \
         t quantile on 1 degree of freedom is 12.7 and the interval would say nothing.{pooled}{no_spread} \
         Each number is recomputable from `summary.csv` and the `trials.csv` rows it lists.\n\n",
        method = m.interval_method,
        why = if m.interval_method.starts_with("logit") { super::LOGIT_WHY } else { "" },
        pooled = if m.pooled { super::notes::POOLED } else { "" },
        no_spread = if m.no_spread { super::notes::NO_SPREAD } else { "" },
    ));
    if m.results.is_empty() {
        out.push_str("No trials.\n");
    } else {
        table(&mut out, m.yardstick.headers(), 1, m.results.iter().map(|r| r.cells.iter().map(cell).collect()));
    }
    if !m.excluded.is_empty() {
        out.push_str("\nNot aggregated:\n\n");
        for e in &m.excluded {
            out.push_str(&format!("- {}: {}\n", escape(&e.label), e.describe()));
        }
    }
    if m.pruned > 0 {
        let trials = if m.pruned == 1 { "trial was" } else { "trials were" };
        let treatment = if m.include_pruned { "aggregated with the completed ones above" } else { "not aggregated" };
        out.push_str(&format!(
            "\nPruned: {} {trials} stopped early by the pruner and {treatment}; their last metrics \
             and `pruned_epoch` are in `trials.csv`.\n",
            m.pruned
        ));
    }

    out.push_str("\n## dec vs baseline, paired by seed\n\n");
    if m.comparisons.is_empty() {
        out.push_str("No dec configuration has a baseline with the same shared parameters.\n");
    } else {
        out.push_str(
            "Δ accuracy = dec − baseline in percentage points, over the seeds both configurations \
             completed; the baseline is the one whose parameters read by both pipelines are equal. \
             95% CI from Student's t with n − 1 degrees of freedom (none for fewer than 3 pairs, \
             or when every pair differs by the same amount). \
             d_z (Cohen) = mean difference / standard deviation of the differences, blank when \
             they have no spread. p-values are two-sided, from the paired t-test and, as a \
             robustness check, the Wilcoxon signed-rank test (exact without ties, normal \
             approximation otherwise). The paired t p-value is left blank when every pair \
             differs by the same non-zero amount (no spread to test against). The pairs and \
             every number here are in `paired.csv`.\n\n",
        );
        if m.extensions {
            out.push_str(EXTENSION_NOTE);
        }
        out.push_str(&format!(
            "Multiple comparisons: the Holm columns adjust each test's p-values over all \
             comparisons of this study (Holm–Bonferroni step-down; controls the family-wise \
             error rate): m = {} paired t-tests, m = {} Wilcoxon tests.\n\n",
            m.m_t, m.m_wilcoxon
        ));
        table(&mut out, &COMPARISON_HEADERS, 2, m.comparisons.iter().map(|r| r.iter().map(cell).collect()));
    }
    if !m.unmatched.is_empty() {
        out.push_str("\nNo matching baseline:\n\n");
        for u in &m.unmatched {
            out.push_str(&format!("- {}\n", escape(u)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_cells_intact_and_names_readable() {
        assert_eq!(escape("dec (label_fraction=0.4)"), "dec (label_fraction=0.4)");
        assert_eq!(escape("a|b"), "a\\|b");
        assert_eq!(escape("_x_ *y* `z` [l](u) <b>"), "\\_x\\_ \\*y\\* \\`z\\` \\[l\\](u) \\<b\\>");
        assert_eq!(escape("line\nbreak"), "line break");
        assert_eq!(escape("back\\slash"), "back\\\\slash");
    }

    #[test]
    fn cells_are_spelled_for_markdown() {
        assert_eq!(cell(&Cell::MeanStd("73.14".into(), Some("1.02".into()))), "73.14 ± 1.02");
        assert_eq!(cell(&Cell::Interval("-0.50".into(), "+4.94".into())), "[-0.50, +4.94]");
        assert_eq!(cell(&Cell::Num("<0.001".into())), "<0.001");
        assert_eq!(cell(&Cell::Missing), "–");
    }
}
