//! "Did you mean" suggestions for misspelt keys and parameter names.

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidates closest to `word`, best first: close in edit distance, or sharing a prefix
/// (`lr` → `lr_ae`, `lr_dec`, `lr_ft`), at most three.
pub(crate) fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Vec<&'a str> {
    let word_lower = word.to_ascii_lowercase();
    // Allow about one typo per three characters, and at least two.
    let budget = (word.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &'a str)> = candidates
        .iter()
        .filter_map(|c| {
            let d = edit_distance(&word_lower, c);
            let prefix = word_lower.len() >= 2 && (c.starts_with(&word_lower) || word_lower.starts_with(*c));
            (d <= budget || prefix).then_some((d, *c))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, c)| c).collect()
}

/// A sentence suggesting the nearest candidates, or listing them all when none is near.
pub(crate) fn hint(word: &str, candidates: &[&str]) -> String {
    let near = nearest(word, candidates);
    if near.is_empty() {
        format!("expected one of: {}", candidates.join(", "))
    } else {
        let quoted: Vec<String> = near.iter().map(|c| format!("`{c}`")).collect();
        format!("did you mean {}?", quoted.join(" or "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn nearest_prefers_small_distances_and_prefixes() {
        let names = ["lr_ae", "lr_dec", "lr_ft", "label_fraction", "alpha"];
        assert_eq!(nearest("lr", &names), vec!["lr_ae", "lr_ft", "lr_dec"]);
        assert_eq!(nearest("alpah", &names), vec!["alpha"]);
        assert_eq!(nearest("label_fractoin", &names), vec!["label_fraction"]);
        assert!(nearest("zzzzzzzz", &names).is_empty());
        assert_eq!(hint("zzzzzzzz", &["a", "b"]), "expected one of: a, b");
        assert_eq!(hint("alpah", &names), "did you mean `alpha`?");
    }
}
