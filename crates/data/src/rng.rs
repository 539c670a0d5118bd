//! Seeded randomness that gives the same numbers on every platform and every `rand` patch
//! release: only the raw ChaCha8 word stream is used, and every derived quantity (uniforms,
//! integers below a bound, normals, shuffles) is computed here rather than through `rand`'s
//! distributions, whose algorithms are allowed to change between versions.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Independent streams of one seed. Each purpose draws from its own stream so that, e.g., the
/// train/validation partition never shifts when the number of labeled rows changes.
pub(crate) mod stream {
    pub const SYNTH: u64 = 1;
    /// The clustered generator (its own stream: the linear generator's bytes never move).
    pub const SYNTH_CLUSTERED: u64 = 2;
    /// Stratified train/validation partition; the class is added.
    pub const PARTITION: u64 = 0x100;
    /// Labeled rows inside the training part; the class is added.
    pub const LABELED_TRAIN: u64 = 0x200;
    /// Labeled rows inside the validation part; the class is added.
    pub const LABELED_VAL: u64 = 0x300;
}

pub(crate) struct DetRng(ChaCha8Rng);

impl DetRng {
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        DetRng(rng)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in [0, n), unbiased (rejection of the incomplete last block). n > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let zone = u64::MAX - (u64::MAX - n + 1) % n;
        loop {
            let x = self.next_u64();
            if x <= zone {
                return x % n;
            }
        }
    }

    /// Standard normal by Box–Muller (one of the pair; used where few draws are needed).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1], so ln is finite
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Zero-mean, unit-variance, bell-shaped noise from one 64-bit word: the sum of four 16-bit
    /// uniforms (Irwin–Hall). About ten times cheaper than a true normal, which matters for the
    /// tens of millions of feature-noise draws of a synthetic dataset; bounded at ±3.46.
    pub fn noise(&mut self) -> f32 {
        let x = self.next_u64();
        let sum = (x & 0xffff) + ((x >> 16) & 0xffff) + ((x >> 32) & 0xffff) + (x >> 48);
        // Each 16-bit term has mean 32767.5 and variance (65536² − 1) / 12.
        const MEAN: f32 = 4.0 * 32767.5;
        const INV_SD: f32 = 1.0 / 37837.23; // 1 / sqrt(4 · (65536² − 1) / 12)
        (sum as f32 - MEAN) * INV_SD
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            xs.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = DetRng::new(7, 1);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..4)
            .map({
                let mut r = DetRng::new(7, 1);
                move |_| r.next_u64()
            })
            .collect();
        let c: Vec<u64> = (0..4)
            .map({
                let mut r = DetRng::new(7, 2);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn noise_has_unit_variance_and_below_is_in_range() {
        let mut r = DetRng::new(0, 0);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| r.noise() as f64).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.02, "mean {mean} var {var}");
        let mut counts = [0usize; 3];
        for _ in 0..3000 {
            counts[r.below(3) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (850..1150).contains(&c)), "{counts:?}");
        let zs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let var = zs.iter().map(|z| z * z).sum::<f64>() / n as f64;
        assert!((var - 1.0).abs() < 0.02, "{var}");
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut xs: Vec<usize> = (0..100).collect();
        DetRng::new(3, 9).shuffle(&mut xs);
        assert_ne!(xs, (0..100).collect::<Vec<_>>());
        xs.sort_unstable();
        assert_eq!(xs, (0..100).collect::<Vec<_>>());
    }
}
