//! How a row longer than `seq_len` becomes `seq_len` steps (`time_pool`).
//!
//! - `truncate`: the first `seq_len` valid steps; the rest is dropped.
//! - `resample`: every valid step is kept, averaged into `seq_len` consecutive windows. Window
//!   `k` of a row with `L > seq_len` valid steps holds steps `⌊k·L/seq_len⌋ ..< ⌊(k+1)·L/seq_len⌋`:
//!   the windows cover each step exactly once and their sizes differ by at most one (375 steps
//!   into 30 windows: 12 or 13 steps each; 500 into 30: 16 or 17). A row of at most `seq_len`
//!   steps is left as it is (and padded later), so short and long rows are both "what the model
//!   sees" without stretching the short ones.
//!
//! Either way the result has at most `seq_len` valid steps per row. The pooled values are what
//! the normalisation is fitted on and applied to.

use std::borrow::Cow;

use decsweep_api::TimePool;

use crate::dataset::Features;

/// One modality as the model will see it: at most `seq_len` valid steps per row, the values of
/// each step already pooled. `Truncate` borrows the file's features (the truncation itself is
/// done by reading only the first `seq_len` steps); `Resample` builds a `[n, seq_len, d]` copy.
pub(super) struct Pooled<'a> {
    pub features: Cow<'a, Features>,
    /// Valid steps per row after pooling, `min(length, seq_len)`.
    pub lengths: Vec<u32>,
}

pub(super) fn pool<'a>(f: &'a Features, lengths: &[u32], seq_len: usize, how: TimePool) -> Pooled<'a> {
    let pooled_lengths: Vec<u32> = lengths.iter().map(|&l| l.min(seq_len as u32)).collect();
    let features = match how {
        TimePool::Truncate => Cow::Borrowed(f),
        TimePool::Resample => Cow::Owned(resample(f, lengths, seq_len)),
    };
    Pooled { features, lengths: pooled_lengths }
}

/// The step range (start, end) of window `k` of a row of `len > seq_len` valid steps.
pub(super) fn window(k: usize, len: usize, seq_len: usize) -> (usize, usize) {
    (k * len / seq_len, (k + 1) * len / seq_len)
}

fn resample(f: &Features, lengths: &[u32], seq_len: usize) -> Features {
    let d = f.d;
    let mut out = Features::zeros(f.n, seq_len, d);
    let mut acc = vec![0.0f64; d];
    for (i, &len) in lengths.iter().enumerate() {
        let len = len as usize;
        if len <= seq_len {
            for s in 0..len {
                let dst = (i * seq_len + s) * d;
                out.data[dst..dst + d].copy_from_slice(f.step(i, s));
            }
            continue;
        }
        for k in 0..seq_len {
            let (start, end) = window(k, len, seq_len);
            acc.iter_mut().for_each(|a| *a = 0.0);
            for s in start..end {
                for (a, &x) in acc.iter_mut().zip(f.step(i, s)) {
                    *a += x as f64;
                }
            }
            // Accumulated in f64 so a window's mean is the f32 nearest the exact mean.
            let dst = (i * seq_len + k) * d;
            for (o, a) in out.data[dst..dst + d].iter_mut().zip(&acc) {
                *o = (a / (end - start) as f64) as f32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per length, `d = 2`: feature 0 at step `s` is `s`, feature 1 is `-2 s + 1`.
    fn ramp(lengths: &[u32]) -> Features {
        let t = *lengths.iter().max().unwrap() as usize;
        let mut f = Features::zeros(lengths.len(), t, 2);
        for (i, &len) in lengths.iter().enumerate() {
            for s in 0..len as usize {
                f.data[(i * t + s) * 2] = s as f32;
                f.data[(i * t + s) * 2 + 1] = -2.0 * s as f32 + 1.0;
            }
        }
        f
    }

    #[test]
    fn resample_375_and_500_steps_into_equal_windows_of_25() {
        // 375 = 25 × 15 and 500 = 25 × 20: every window has the same size, and the mean of
        // steps 15k .. 15k+14 is 15k + 7 (of 20k .. 20k+19: 20k + 9.5).
        let lengths = [375, 500];
        let f = ramp(&lengths);
        let p = pool(&f, &lengths, 25, TimePool::Resample);
        assert_eq!(p.lengths, vec![25, 25]);
        assert_eq!((p.features.n, p.features.t, p.features.d), (2, 25, 2));
        for k in 0..25 {
            let (a, b) = (15.0 * k as f32 + 7.0, 20.0 * k as f32 + 9.5);
            assert_eq!(p.features.step(0, k), [a, -2.0 * a + 1.0], "375 steps, window {k}");
            assert_eq!(p.features.step(1, k), [b, -2.0 * b + 1.0], "500 steps, window {k}");
        }
    }

    #[test]
    fn resample_375_and_500_steps_into_30_near_equal_windows() {
        // 375 / 30 = 12.5: windows alternate 12 and 13 steps (0..12, 12..25, 25..37, ...);
        // 500 / 30 = 16.67: 16 or 17 steps (0..16, 16..33, 33..50, ...). The mean of steps
        // a .. b-1 of a ramp is (a + b - 1) / 2.
        assert_eq!([window(0, 375, 30), window(1, 375, 30), window(29, 375, 30)], [(0, 12), (12, 25), (362, 375)]);
        assert_eq!([window(0, 500, 30), window(1, 500, 30), window(29, 500, 30)], [(0, 16), (16, 33), (483, 500)]);
        let lengths = [375, 500];
        let f = ramp(&lengths);
        let p = pool(&f, &lengths, 30, TimePool::Resample);
        for (row, len) in [(0, 375usize), (1, 500)] {
            let mut covered = 0;
            for k in 0..30 {
                let (a, b) = window(k, len, 30);
                assert!(b - a == len / 30 || b - a == len / 30 + 1, "window sizes differ by at most one");
                covered += b - a;
                let mean = (a + b - 1) as f32 / 2.0;
                assert_eq!(p.features.step(row, k), [mean, -2.0 * mean + 1.0], "{len} steps, window {k}");
            }
            assert_eq!(covered, len, "every step in exactly one window");
        }
        // The first windows, written out: (0 + … + 11) / 12, (12 + … + 24) / 13 and, for 500
        // steps, (16 + … + 32) / 17.
        assert_eq!(p.features.step(0, 0)[0], 5.5);
        assert_eq!(p.features.step(0, 1)[0], 18.0);
        assert_eq!(p.features.step(1, 1)[0], 24.0);
    }

    #[test]
    fn short_rows_are_left_as_they_are_and_truncate_borrows() {
        let lengths = [3u32, 30, 31];
        let f = ramp(&lengths);
        let p = pool(&f, &lengths, 30, TimePool::Resample);
        assert_eq!(p.lengths, vec![3, 30, 30]);
        for s in 0..30 {
            let want_short = if s < 3 { f.step(0, s).to_vec() } else { vec![0.0, 0.0] };
            assert_eq!(p.features.step(0, s), &want_short[..], "short row, step {s}: unchanged then padded");
            assert_eq!(p.features.step(1, s), f.step(1, s), "exactly seq_len steps: unchanged");
        }
        // 31 steps into 30 windows: one window of two steps (29 and 30 → 29.5), the rest single.
        assert_eq!(p.features.step(2, 28)[0], 28.0);
        assert_eq!(p.features.step(2, 29)[0], 29.5);

        let t = pool(&f, &lengths, 30, TimePool::Truncate);
        assert!(matches!(t.features, Cow::Borrowed(_)), "truncate copies nothing");
        assert_eq!(t.lengths, vec![3, 30, 30]);
    }
}
