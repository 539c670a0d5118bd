//! Per-feature normalisation of one modality, as in the paper's section 3.1: min-max to [0, 1],
//! then z-score of the min-maxed values. Fitted on the training rows only, over the steps the
//! model will see (valid and within `seq_len`), in f64; constant features become 0.

use crate::dataset::Features;

pub(super) struct Scaler {
    min: Vec<f64>,
    /// 0 marks a constant feature (range or std 0), which maps to 0.
    range: Vec<f64>,
    mean: Vec<f64>,
    std: Vec<f64>,
}

/// The steps of row `i` the model sees.
fn visible(lengths: &[u32], i: usize, seq_len: usize) -> usize {
    (lengths[i] as usize).min(seq_len)
}

impl Scaler {
    pub fn fit(f: &Features, lengths: &[u32], rows: &[usize], seq_len: usize) -> Scaler {
        let d = f.d;
        let mut min = vec![f64::INFINITY; d];
        let mut max = vec![f64::NEG_INFINITY; d];
        let mut count = 0usize;
        for &i in rows {
            for s in 0..visible(lengths, i, seq_len) {
                for (j, &x) in f.step(i, s).iter().enumerate() {
                    min[j] = min[j].min(x as f64);
                    max[j] = max[j].max(x as f64);
                }
                count += 1;
            }
        }
        // Two more passes (mean, then variance about it) rather than running sums: stable
        // for features with a large offset.
        let range: Vec<f64> =
            (0..d).map(|j| if count > 0 && max[j] > min[j] { max[j] - min[j] } else { 0.0 }).collect();
        let scaled = |j: usize, x: f32| (x as f64 - min[j]) / range[j];
        let mut mean = vec![0.0f64; d];
        let mut var = vec![0.0f64; d];
        for pass in 0..2 {
            for &i in rows {
                for s in 0..visible(lengths, i, seq_len) {
                    for (j, &x) in f.step(i, s).iter().enumerate() {
                        if range[j] > 0.0 {
                            let v = scaled(j, x);
                            if pass == 0 {
                                mean[j] += v;
                            } else {
                                var[j] += (v - mean[j]).powi(2);
                            }
                        }
                    }
                }
            }
            let target = if pass == 0 { &mut mean } else { &mut var };
            target.iter_mut().for_each(|v| *v /= count.max(1) as f64);
        }
        let std: Vec<f64> = var.iter().map(|v| v.sqrt()).collect();
        let range = range.iter().zip(&std).map(|(&r, &s)| if s > 0.0 { r } else { 0.0 }).collect();
        Scaler { min, range, mean, std }
    }

    /// The rows `rows` of `f`, padded / truncated to `seq_len`, normalised: `[rows, seq_len, d]`
    /// with exact zeros at padded steps.
    pub fn apply(&self, f: &Features, lengths: &[u32], rows: &[usize], seq_len: usize) -> Vec<f32> {
        let d = f.d;
        let mut out = vec![0.0f32; rows.len() * seq_len * d];
        for (r, &i) in rows.iter().enumerate() {
            for s in 0..visible(lengths, i, seq_len) {
                let dst = &mut out[(r * seq_len + s) * d..(r * seq_len + s + 1) * d];
                for (j, (o, &x)) in dst.iter_mut().zip(f.step(i, s)).enumerate() {
                    *o = if self.range[j] > 0.0 {
                        let v = (x as f64 - self.min[j]) / self.range[j];
                        ((v - self.mean[j]) / self.std[j]) as f32
                    } else {
                        0.0
                    };
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitted_on_train_valid_steps_applied_everywhere() {
        // 3 rows, T = 3, d = 2. Feature 1 is constant over valid steps.
        let mut f = Features::zeros(3, 3, 2);
        let rows_values = [
            [(1.0, 5.0), (3.0, 5.0), (99.0, 99.0)],
            [(5.0, 5.0), (0.0, 0.0), (0.0, 0.0)],
            [(10.0, 7.0), (-2.0, 1.0), (4.0, 4.0)],
        ];
        for (i, row) in rows_values.iter().enumerate() {
            for (s, &(a, b)) in row.iter().enumerate() {
                f.data[(i * 3 + s) * 2] = a;
                f.data[(i * 3 + s) * 2 + 1] = b;
            }
        }
        // Row 0 has 2 valid steps (the 99s are beyond its length), row 1 one; row 2 is "test".
        let lengths = [2u32, 1, 3];
        let scaler = Scaler::fit(&f, &lengths, &[0, 1], 3);
        let train = scaler.apply(&f, &lengths, &[0, 1], 3);
        // Feature 0 over valid train steps: 1, 3, 5 → min-max 0, .5, 1 → z: -1.2247, 0, 1.2247.
        let z = 1.5f32.sqrt();
        let expect = [-z, 0.0, 0.0, 0.0, 0.0, 0.0, z, 0.0, 0.0, 0.0, 0.0, 0.0];
        for (a, b) in train.iter().zip(expect) {
            assert!((a - b).abs() < 1e-5, "{train:?}");
        }
        // Applied to a row outside the fit: same affine map, padded to seq_len 2 (truncation).
        let test = scaler.apply(&f, &lengths, &[2], 2);
        assert_eq!(test.len(), 4);
        let expect = (9.0 / 4.0 - 0.5) / (1.0f32 / 6.0).sqrt();
        assert!((test[0] - expect).abs() < 1e-5, "{test:?}");
        assert!((test[2] - (-3.0 / 4.0 - 0.5) / (1.0f32 / 6.0).sqrt()).abs() < 1e-5, "{test:?}");
        assert_eq!((test[1], test[3]), (0.0, 0.0), "constant feature stays 0");
    }

    #[test]
    fn no_training_rows_gives_zeros() {
        let f = Features { data: vec![1.0, 2.0], n: 1, t: 2, d: 1 };
        let s = Scaler::fit(&f, &[2], &[], 2);
        assert_eq!(s.apply(&f, &[2], &[0], 2), vec![0.0, 0.0]);
    }
}
