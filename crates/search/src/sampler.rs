//! Samplers: where the next configuration to try comes from.
//!
//! A sampler is asked for one point at a time with [`Sampler::ask`]`(history, pending)`:
//!
//! - `history`: every *finished* configuration so far, as [`Observation`]s. A configuration is a
//!   point run for every seed of the spec; its `value` is the **mean over its seeds** of the
//!   objective metric, **raw** (in the metric's own units, not negated), or `None` when its
//!   trials failed (or every seed was pruned). The sampler knows the objective's
//!   [`Direction`](crate::spec::Direction): [`SweepSpec::sampler`](crate::SweepSpec::sampler)
//!   builds it with the direction, and a model-based sampler minimises `-value` when maximising.
//!   Order matters only for reproducibility: pass observations in the order the configurations
//!   were *proposed* (e.g. by trial/config id), so the same history gives the same next point.
//! - `pending`: the points proposed earlier that are still running (or queued) on some worker.
//!   A model-based sampler must not propose a point equal to one of them (TPE counts them with the
//!   constant liar); grid and random ignore it, since their sequences never repeat a point
//!   on purpose.
//!
//! `ask` returns `None` once the sampler has nothing more to propose (the grid is exhausted,
//! `n_trials` points were proposed). Grid and random count their asks: the i-th ask gives point
//! i, whatever the arguments. TPE ([`crate::tpe`]) keeps no state: its proposal is a function of
//! its seed, `history` and `pending` (its random stream is `history.len() + pending.len()`), so a
//! restarted coordinator that passes the same history and pending points gets the same point.

use std::collections::BTreeMap;

use decsweep_api::ParamValue;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::space::{Dimension, Space};

/// One value per swept parameter.
pub type Point = BTreeMap<String, ParamValue>;

/// A finished configuration as a sampler sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub point: Point,
    /// The objective metric, raw (not oriented by the direction), averaged over the
    /// configuration's seeds; `None` when its trials failed. For a pruned configuration: the
    /// last value its trials reported, when there is one.
    pub value: Option<f64>,
    /// `Some(step)` when no seed of the configuration completed because the pruner stopped them:
    /// the furthest step (epoch of the pruned stage) any of them reached. TPE ranks such a
    /// configuration below every completed one, as Optuna's TPE does, so it learns from it
    /// instead of ignoring it like a failure.
    pub pruned_at: Option<u32>,
}

/// Proposes configurations.
pub trait Sampler: Send {
    /// The next point to try, given every finished observation and the points still running;
    /// `None` once the sampler has nothing more to propose (the grid is exhausted, `n_trials`
    /// points were drawn). See the module docs for what the arguments hold.
    fn ask(&mut self, history: &[Observation], pending: &[Point]) -> Option<Point>;
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SamplerError {
    #[error("the grid sampler cannot enumerate `{name}` ({kind}); use {{ grid = [...] }} or {{ choice = [...] }}, or the random sampler")]
    NotEnumerable { name: String, kind: &'static str },
    #[error("the grid has more points than can be counted")]
    TooLarge,
}

/// Every combination of the listed values, the first-declared parameter varying slowest.
#[derive(Clone, Debug)]
pub struct GridSampler {
    dims: Vec<(String, Vec<ParamValue>)>,
    next: usize,
    total: usize,
}

impl GridSampler {
    pub fn new(space: &Space) -> Result<Self, SamplerError> {
        let mut dims = Vec::with_capacity(space.dims.len());
        let mut total: usize = 1;
        for (name, dim) in &space.dims {
            let values =
                dim.values().ok_or_else(|| SamplerError::NotEnumerable { name: name.clone(), kind: dim.kind() })?;
            total = total.checked_mul(values.len()).ok_or(SamplerError::TooLarge)?;
            dims.push((name.clone(), values.to_vec()));
        }
        Ok(GridSampler { dims, next: 0, total })
    }

    /// How many points the grid has (1 for an empty space: the single configuration of defaults).
    pub fn len(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    fn point(&self, mut index: usize) -> Point {
        let mut point = Point::new();
        // Mixed-radix digits, least significant last, so the first dimension is the outer loop.
        for (name, values) in self.dims.iter().rev() {
            point.insert(name.clone(), values[index % values.len()].clone());
            index /= values.len();
        }
        point
    }
}

impl Sampler for GridSampler {
    fn ask(&mut self, _history: &[Observation], _pending: &[Point]) -> Option<Point> {
        if self.next >= self.total {
            return None;
        }
        let p = self.point(self.next);
        self.next += 1;
        Some(p)
    }
}

/// Independent uniform draws, reproducible from the seed: point `i` comes from ChaCha8 stream
/// `i`, so it does not depend on how many points were asked before or in which process.
#[derive(Clone, Debug)]
pub struct RandomSampler {
    space: Space,
    seed: u64,
    n_trials: usize,
    next: usize,
}

impl RandomSampler {
    /// Draws `n_trials` points from `space` (which should hold no `grid` dimension: those are
    /// crossed by the caller; a grid dimension here is drawn like a choice).
    pub fn new(space: Space, seed: u64, n_trials: usize) -> Self {
        RandomSampler { space, seed, n_trials, next: 0 }
    }

    /// The `index`-th point of this sampler's sequence.
    pub fn point(&self, index: usize) -> Point {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(index as u64);
        self.space.dims.iter().map(|(name, dim)| (name.clone(), draw(&mut rng, dim))).collect()
    }
}

impl Sampler for RandomSampler {
    fn ask(&mut self, _history: &[Observation], _pending: &[Point]) -> Option<Point> {
        if self.next >= self.n_trials {
            return None;
        }
        let p = self.point(self.next);
        self.next += 1;
        Some(p)
    }
}

/// A uniform draw from [0, 1) with 53 random bits, done here rather than through `rand` so the
/// mapping from the stream to values is fixed by this crate alone.
pub(crate) fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A uniform integer in `0..n` (n ≥ 1), by rejection so no value is favoured.
fn below(rng: &mut ChaCha8Rng, n: u128) -> u128 {
    if n <= 1 {
        return 0;
    }
    let n64 = u64::try_from(n).unwrap_or(u64::MAX);
    // Largest multiple of n that fits below 2^64; draws at or above it are retried.
    let zone = u64::MAX - (u64::MAX % n64 + 1) % n64;
    loop {
        let x = rng.next_u64();
        if x <= zone {
            return u128::from(x % n64);
        }
    }
}

pub(crate) fn draw(rng: &mut ChaCha8Rng, dim: &Dimension) -> ParamValue {
    match dim {
        Dimension::Grid(vs) | Dimension::Choice(vs) => {
            let i = below(rng, vs.len() as u128) as usize;
            vs.get(i).cloned().unwrap_or(ParamValue::Int(0))
        }
        Dimension::Uniform { lo, hi } => ParamValue::Float((lo + unit(rng) * (hi - lo)).clamp(*lo, *hi)),
        Dimension::LogUniform { lo, hi } => {
            let (a, b) = (lo.ln(), hi.ln());
            ParamValue::Float((a + unit(rng) * (b - a)).exp().clamp(*lo, *hi))
        }
        Dimension::Int { lo, hi, log: true, .. } => {
            // Widen by half a step on both sides so rounding gives the end values their share.
            let (a, b) = ((*lo as f64 - 0.5).ln(), (*hi as f64 + 0.5).ln());
            let x = (a + unit(rng) * (b - a)).exp().round() as i64;
            ParamValue::Int(x.clamp(*lo, *hi))
        }
        Dimension::Int { lo, hi, step, log: false } => {
            let count = (i128::from(*hi) - i128::from(*lo)) / i128::from(*step) + 1;
            let k = below(rng, count as u128) as i128;
            let v = i128::from(*lo) + k * i128::from(*step);
            ParamValue::Int(i64::try_from(v).unwrap_or(*hi))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn vals(xs: &[i64]) -> Vec<ParamValue> {
        xs.iter().map(|x| ParamValue::Int(*x)).collect()
    }

    fn drain(s: &mut dyn Sampler) -> Vec<Point> {
        std::iter::from_fn(|| s.ask(&[], &[])).collect()
    }

    #[test]
    fn grid_is_the_cartesian_product_first_dimension_slowest() {
        let space = Space {
            dims: vec![
                ("b".into(), Dimension::Grid(vals(&[1, 2]))),
                ("a".into(), Dimension::Choice(vals(&[10, 20, 30]))),
            ],
        };
        let mut g = GridSampler::new(&space).unwrap();
        assert_eq!(g.len(), 6);
        let pts = drain(&mut g);
        let pairs: Vec<(i64, i64)> = pts
            .iter()
            .map(|p| match (&p["b"], &p["a"]) {
                (ParamValue::Int(b), ParamValue::Int(a)) => (*b, *a),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(pairs, vec![(1, 10), (1, 20), (1, 30), (2, 10), (2, 20), (2, 30)]);
    }

    #[test]
    fn empty_grid_space_has_one_point() {
        let mut g = GridSampler::new(&Space::default()).unwrap();
        assert_eq!(drain(&mut g), vec![Point::new()]);
    }

    #[test]
    fn grid_rejects_continuous_dimensions() {
        let space = Space { dims: vec![("lr".into(), Dimension::Uniform { lo: 0.0, hi: 1.0 })] };
        assert_eq!(
            GridSampler::new(&space).unwrap_err(),
            SamplerError::NotEnumerable { name: "lr".into(), kind: "uniform" }
        );
    }

    /// One dimension of every kind (also used by the TPE tests).
    pub(crate) fn mixed_space() -> Space {
        Space {
            dims: vec![
                ("u".into(), Dimension::Uniform { lo: -2.0, hi: 3.0 }),
                ("lu".into(), Dimension::LogUniform { lo: 1e-5, hi: 1e-2 }),
                ("i".into(), Dimension::Int { lo: 3, hi: 17, step: 1, log: false }),
                ("is".into(), Dimension::Int { lo: 8, hi: 100, step: 8, log: false }),
                ("il".into(), Dimension::Int { lo: 1, hi: 1024, step: 1, log: true }),
                ("c".into(), Dimension::Choice(vec![ParamValue::Str("x".into()), ParamValue::Float(0.5)])),
            ],
        }
    }

    /// Property: whatever the seed, every drawn value lies in its dimension (range, integrality,
    /// step, membership), and a seed always gives the same sequence.
    #[test]
    fn every_draw_lies_in_its_space() {
        let space = mixed_space();
        for seed in 0..200 {
            let mut s = RandomSampler::new(space.clone(), seed, 25);
            let pts = drain(&mut s);
            assert_eq!(pts.len(), 25);
            for p in &pts {
                for (name, dim) in &space.dims {
                    let v = &p[name];
                    assert!(dim.contains(v), "seed {seed}: {name} = {v} outside {dim:?}");
                }
                assert!(p["lu"].as_f64().unwrap() > 0.0);
            }
            let again = drain(&mut RandomSampler::new(space.clone(), seed, 25));
            assert_eq!(pts, again, "seed {seed} is not reproducible");
        }
    }

    #[test]
    fn draws_cover_the_space_and_depend_on_the_seed() {
        let space = mixed_space();
        let pts = drain(&mut RandomSampler::new(space.clone(), 7, 2000));
        let ints: std::collections::BTreeSet<i64> = pts
            .iter()
            .map(|p| match p["i"] {
                ParamValue::Int(i) => i,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(ints.len(), 15, "all of 3..=17 appear in 2000 draws");
        // Log-uniform: about a third of the draws in each decade of [1e-5, 1e-2].
        let low = pts.iter().filter(|p| p["lu"].as_f64().unwrap() < 1e-4).count();
        assert!((500..850).contains(&low), "{low} of 2000 in the lowest decade");
        let log_small = pts.iter().filter(|p| matches!(p["il"], ParamValue::Int(i) if i <= 32)).count();
        assert!((950..1250).contains(&log_small), "log int: about 55% of draws ≤ 32, got {log_small}");
        let other = drain(&mut RandomSampler::new(space, 8, 2000));
        assert_ne!(pts, other);
    }

    #[test]
    fn point_i_does_not_depend_on_earlier_asks() {
        let s = RandomSampler::new(mixed_space(), 3, 10);
        let mut asked = s.clone();
        let seq = drain(&mut asked);
        assert_eq!(seq[7], s.point(7));
    }
}
