//! A one-look description of a dataset, for `decsweep data synth` / `inspect` and logs.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, MODALITIES};

/// Lengths beyond this many times `seq_len` are "far past" it: most of such a row is either
/// dropped (`time_pool = truncate`) or averaged into windows (`resample`), and a user should
/// choose which knowingly. With the default `seq_len` 30, the threshold is 60 steps.
pub const LONG_SEQUENCE_FACTOR: usize = 2;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub rows: usize,
    /// Features per modality: text, audio, vision.
    pub dims: [usize; 3],
    /// Steps per modality in the file (T).
    pub steps: [usize; 3],
    /// Mean valid length per modality.
    pub mean_length: [f64; 3],
    /// Longest valid length per modality (0 for an empty dataset).
    #[serde(default)]
    pub max_length: [usize; 3],
    pub positive: usize,
    pub negative: usize,
    /// Labels exactly 0.
    pub zero: usize,
    /// Rows with split 0 / 1 / 2, when the file has a split.
    pub split: Option<[usize; 3]>,
    pub source: String,
    pub nonfinite_replaced: u64,
}

pub fn summarize(ds: &Dataset) -> Summary {
    let count = |pred: fn(f32) -> bool| ds.labels.iter().filter(|&&y| pred(y)).count();
    Summary {
        rows: ds.n(),
        dims: ds.modalities.each_ref().map(|f| f.d),
        steps: ds.modalities.each_ref().map(|f| f.t),
        mean_length: ds.lengths.each_ref().map(|l| {
            if l.is_empty() {
                0.0
            } else {
                l.iter().map(|&x| x as f64).sum::<f64>() / l.len() as f64
            }
        }),
        max_length: ds.lengths.each_ref().map(|l| l.iter().copied().max().unwrap_or(0) as usize),
        positive: count(|y| y > 0.0),
        negative: count(|y| y < 0.0),
        zero: count(|y| y == 0.0),
        split: ds.split.as_ref().map(|s| [0u8, 1, 2].map(|v| s.iter().filter(|&&x| x == v).count())),
        source: ds.meta.source.clone(),
        nonfinite_replaced: ds.meta.nonfinite_replaced,
    }
}

/// A warning when some modality's rows run far past `seq_len` (more than
/// [`LONG_SEQUENCE_FACTOR`] × `seq_len` steps), saying what each `time_pool` value will do with
/// them; `None` when every length is within that.
pub fn long_sequence_warning(summary: &Summary, seq_len: usize) -> Option<String> {
    let limit = LONG_SEQUENCE_FACTOR * seq_len;
    let long: Vec<String> = (0..3)
        .filter(|&m| summary.max_length[m] > limit)
        .map(|m| format!("{} up to {} steps", MODALITIES[m], summary.max_length[m]))
        .collect();
    if long.is_empty() {
        return None;
    }
    let worst = (0..3).map(|m| summary.max_length[m]).max().unwrap_or(0);
    Some(format!(
        "lengths run far past seq_len = {seq_len} ({}; more than {LONG_SEQUENCE_FACTOR} x seq_len): \
         with time_pool = truncate (the default) only the first {seq_len} steps of each row are used, \
         so a {worst}-step row loses {:.0}% of its steps; with time_pool = resample every step is \
         averaged into {seq_len} near-equal windows (about {:.1} steps each for a {worst}-step row)",
        long.join(", "),
        100.0 * (worst - seq_len) as f64 / worst as f64,
        worst as f64 / seq_len as f64,
    ))
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |k: usize| {
            if self.rows == 0 {
                0.0
            } else {
                100.0 * k as f64 / self.rows as f64
            }
        };
        write!(
            f,
            "{} rows; dims text {} audio {} vision {}; steps {}/{}/{} (mean length {:.1}/{:.1}/{:.1}); \
             labels {} positive ({:.1}%), {} negative ({:.1}%), {} zero ({:.1}%)",
            self.rows,
            self.dims[0],
            self.dims[1],
            self.dims[2],
            self.steps[0],
            self.steps[1],
            self.steps[2],
            self.mean_length[0],
            self.mean_length[1],
            self.mean_length[2],
            self.positive,
            pct(self.positive),
            self.negative,
            pct(self.negative),
            self.zero,
            pct(self.zero),
        )?;
        match self.split {
            Some([a, b, c]) => write!(f, "; split {a} train / {b} valid / {c} test")?,
            None => write!(f, "; no split")?,
        }
        if self.nonfinite_replaced > 0 {
            write!(f, "; {} non-finite values replaced by 0", self.nonfinite_replaced)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::tests::tiny;

    #[test]
    fn counts_and_one_line() {
        let s = summarize(&tiny());
        assert_eq!((s.rows, s.positive, s.negative, s.zero), (4, 2, 1, 1));
        assert_eq!((s.dims, s.steps, s.split), ([2, 1, 3], [3, 5, 2], Some([2, 1, 1])));
        let line = s.to_string();
        assert!(!line.contains('\n'));
        assert!(line.starts_with("4 rows; dims text 2 audio 1 vision 3;"), "{line}");
        assert!(line.contains("1 zero (25.0%)") && line.contains("split 2 train / 1 valid / 1 test"), "{line}");
        assert_eq!(s.max_length, [3, 5, 2]);
    }

    #[test]
    fn long_sequences_are_flagged_with_what_each_time_pool_does() {
        // MMSA's unaligned CMU-MOSI: text 50, audio up to 375, vision up to 500 steps.
        let mut s = summarize(&tiny());
        s.max_length = [50, 375, 500];
        let w = long_sequence_warning(&s, 30).expect("375 and 500 are far past 30");
        assert!(w.contains("audio up to 375 steps") && w.contains("vision up to 500 steps"), "{w}");
        assert!(!w.contains("text"), "50 ≤ 2 × 30 is not flagged: {w}");
        assert!(w.contains("time_pool = truncate") && w.contains("time_pool = resample"), "{w}");
        assert!(w.contains("loses 94% of its steps") && w.contains("about 16.7 steps each"), "{w}");
        // At the threshold nothing is said; one past it, something is.
        s.max_length = [60, 60, 60];
        assert_eq!(long_sequence_warning(&s, 30), None);
        s.max_length = [61, 1, 1];
        assert!(long_sequence_warning(&s, 30).unwrap().contains("text up to 61 steps"));
    }
}
