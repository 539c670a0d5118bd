//! Search spaces: the values each swept parameter may take.

use decsweep_api::ParamValue;
use serde::{Deserialize, Serialize};

/// The values one parameter of `[space]` may take.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dimension {
    /// Every value is run, whatever the sampler: the grid sampler enumerates it, the random
    /// sampler crosses each drawn point with all of its values.
    Grid(Vec<ParamValue>),
    /// A categorical dimension: enumerated by the grid sampler, drawn uniformly by the random one.
    Choice(Vec<ParamValue>),
    /// A real number drawn uniformly from `[lo, hi]`.
    Uniform { lo: f64, hi: f64 },
    /// A positive real number whose logarithm is drawn uniformly from `[ln lo, ln hi]`.
    LogUniform { lo: f64, hi: f64 },
    /// An integer in `lo, lo + step, ... ≤ hi`; with `log`, drawn uniformly in log space (step 1).
    Int { lo: i64, hi: i64, step: i64, log: bool },
}

impl Dimension {
    /// The spec keyword of this kind of dimension.
    pub fn kind(&self) -> &'static str {
        match self {
            Dimension::Grid(_) => "grid",
            Dimension::Choice(_) => "choice",
            Dimension::Uniform { .. } => "uniform",
            Dimension::LogUniform { .. } => "loguniform",
            Dimension::Int { .. } => "int",
        }
    }

    /// The values of a dimension that lists them (grid, choice).
    pub fn values(&self) -> Option<&[ParamValue]> {
        match self {
            Dimension::Grid(v) | Dimension::Choice(v) => Some(v),
            _ => None,
        }
    }

    /// Whether `value` is one this dimension can produce.
    pub fn contains(&self, value: &ParamValue) -> bool {
        match self {
            Dimension::Grid(vs) | Dimension::Choice(vs) => vs.contains(value),
            Dimension::Uniform { lo, hi } | Dimension::LogUniform { lo, hi } => {
                value.as_f64().is_some_and(|x| *lo <= x && x <= *hi)
            }
            Dimension::Int { lo, hi, step, .. } => match value {
                ParamValue::Int(i) => lo <= i && i <= hi && (i128::from(*i) - i128::from(*lo)) % i128::from(*step) == 0,
                _ => false,
            },
        }
    }

    /// The largest value of an integer range that its step reaches.
    pub(crate) fn int_last(lo: i64, hi: i64, step: i64) -> i64 {
        let span = i128::from(hi) - i128::from(lo);
        let last = i128::from(lo) + span / i128::from(step) * i128::from(step);
        // `last` lies in [lo, hi], so it fits.
        i64::try_from(last).unwrap_or(hi)
    }
}

/// The swept parameters in the order they were declared; that order fixes the grid's nesting
/// (the first parameter varies slowest) and the random sampler's draw order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Space {
    pub dims: Vec<(String, Dimension)>,
}

impl Space {
    pub fn get(&self, name: &str) -> Option<&Dimension> {
        self.dims.iter().find(|(n, _)| n == name).map(|(_, d)| d)
    }

    pub fn is_empty(&self) -> bool {
        self.dims.is_empty()
    }

    /// The dimensions a sampler chooses from: everything except `grid`, which is always crossed.
    pub fn sampled(&self) -> Space {
        Space { dims: self.dims.iter().filter(|(_, d)| !matches!(d, Dimension::Grid(_))).cloned().collect() }
    }

    /// The `grid` dimensions alone.
    pub fn grid_only(&self) -> Space {
        Space { dims: self.dims.iter().filter(|(_, d)| matches!(d, Dimension::Grid(_))).cloned().collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_respects_kind_and_step() {
        let int = Dimension::Int { lo: 10, hi: 100, step: 10, log: false };
        assert!(int.contains(&ParamValue::Int(10)) && int.contains(&ParamValue::Int(100)));
        assert!(!int.contains(&ParamValue::Int(15)) && !int.contains(&ParamValue::Int(110)));
        assert!(!int.contains(&ParamValue::Float(20.0)), "an int dimension yields integers");
        let u = Dimension::Uniform { lo: 0.0, hi: 1.0 };
        assert!(u.contains(&ParamValue::Float(0.5)) && !u.contains(&ParamValue::Float(1.5)));
        let c = Dimension::Choice(vec![ParamValue::Str("a".into())]);
        assert!(c.contains(&ParamValue::Str("a".into())) && !c.contains(&ParamValue::Str("b".into())));
    }

    #[test]
    fn int_last_is_the_last_step_reached() {
        assert_eq!(Dimension::int_last(1, 10, 4), 9);
        assert_eq!(Dimension::int_last(1, 9, 4), 9);
        assert_eq!(Dimension::int_last(i64::MIN, i64::MAX, i64::MAX), i64::MAX - 1);
    }
}
