//! Axis ticks at round numbers: steps of 1, 2 or 5 times a power of ten.

/// An axis range widened to whole steps, and the ticks on it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Ticks {
    pub lo: f64,
    pub hi: f64,
    pub step: f64,
    pub values: Vec<f64>,
    /// Decimals that print every tick exactly (at most 10).
    pub decimals: usize,
}

impl Ticks {
    pub(crate) fn label(&self, v: f64) -> String {
        let s = format!("{:.*}", self.decimals, v);
        // Ticks that straddle zero can land on −0.0.
        if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
            s[1..].to_string()
        } else {
            s
        }
    }
}

/// About `target` ticks spanning [min, max].
///
/// The raw step (max − min)/target is rounded up to the next of 1, 2, 5 × 10^k, and the range is
/// widened outwards to multiples of that step, so ticks sit on values a reader would write down.
/// An empty or degenerate range is widened so there is always something to draw.
pub(crate) fn nice_ticks(min: f64, max: f64, target: usize) -> Ticks {
    let (mut min, mut max) = if min.is_finite() && max.is_finite() && min <= max { (min, max) } else { (0.0, 1.0) };
    if max - min <= f64::EPSILON * max.abs().max(min.abs()).max(1.0) {
        // One value: a window of ±10% around it (±1 around zero).
        let pad = if min == 0.0 { 1.0 } else { 0.1 * min.abs() };
        min -= pad;
        max += pad;
    }
    let raw = (max - min) / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let mantissa = raw / magnitude;
    let nice = if mantissa <= 1.0 {
        1.0
    } else if mantissa <= 2.0 {
        2.0
    } else if mantissa <= 5.0 {
        5.0
    } else {
        10.0
    };
    let step = nice * magnitude;
    // The 1e-9 slack keeps a bound that is a multiple of the step up to rounding (1.0 / 0.2 =
    // 5.000…1) from gaining a whole extra step.
    let lo = (min / step + 1e-9).floor() * step;
    let hi = (max / step - 1e-9).ceil() * step;
    let count = ((hi - lo) / step).round() as usize;
    // Computing each tick from lo (not by repeated addition) keeps rounding error from piling up;
    // values within a hair of zero are zero.
    let values = (0..=count)
        .map(|k| {
            let v = lo + k as f64 * step;
            if v.abs() < step * 1e-9 {
                0.0
            } else {
                v
            }
        })
        .collect();
    let decimals = (-(step.log10() + 1e-9).floor()).clamp(0.0, 10.0) as usize;
    Ticks { lo, hi, step, values, decimals }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(t: &Ticks) -> Vec<String> {
        t.values.iter().map(|v| t.label(*v)).collect()
    }

    #[test]
    fn ticks_land_on_round_numbers() {
        // Accuracies from 71.3% to 78.9%: raw step 7.6/5 = 1.52 → 2.
        let t = nice_ticks(71.3, 78.9, 5);
        assert_eq!((t.lo, t.hi, t.step), (70.0, 80.0, 2.0));
        assert_eq!(labels(&t), ["70", "72", "74", "76", "78", "80"]);
        // Label fractions 0.05..1: raw 0.19 → 0.2.
        let t = nice_ticks(0.05, 1.0, 5);
        assert_eq!(labels(&t), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        // Losses 0.0123..0.0456: raw 0.00666 → 0.01.
        let t = nice_ticks(0.0123, 0.0456, 5);
        assert_eq!(labels(&t), ["0.01", "0.02", "0.03", "0.04", "0.05"]);
        // Epochs 0..499: raw 99.8 → 100.
        let t = nice_ticks(0.0, 499.0, 5);
        assert_eq!(labels(&t), ["0", "100", "200", "300", "400", "500"]);
        // Straddling zero prints 0, not -0.
        let t = nice_ticks(-0.3, 0.25, 4);
        assert!(labels(&t).contains(&"0.0".to_string()), "{:?}", labels(&t));
    }

    #[test]
    fn degenerate_ranges_still_get_ticks() {
        let t = nice_ticks(5.0, 5.0, 5);
        assert!(t.lo < 5.0 && t.hi > 5.0 && t.values.len() >= 2);
        let t = nice_ticks(0.0, 0.0, 5);
        assert!(t.lo < 0.0 && t.hi > 0.0);
        let t = nice_ticks(f64::NAN, 1.0, 5);
        assert_eq!((t.lo, t.hi), (0.0, 1.0));
        let t = nice_ticks(f64::INFINITY, f64::NEG_INFINITY, 5);
        assert_eq!((t.lo, t.hi), (0.0, 1.0));
    }
}
