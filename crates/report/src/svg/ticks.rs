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

/// [`nice_ticks`] for a quantity that cannot leave `limits` (a percentage: 0–100): the range
/// follows the data, a degenerate range is widened only up to the limits, and the axis is cut
/// at them, so no tick and no stretch of axis shows a value the quantity cannot take.
pub(crate) fn nice_ticks_within(min: f64, max: f64, target: usize, limits: (f64, f64)) -> Ticks {
    let (lo_lim, hi_lim) = limits;
    let (mut min, mut max) = (min.max(lo_lim), max.min(hi_lim));
    if !(min.is_finite() && max.is_finite() && min <= max) {
        (min, max) = (lo_lim, hi_lim);
    }
    if max - min <= f64::EPSILON * max.abs().max(min.abs()).max(1.0) {
        // One value: the same ±10% window as nice_ticks, cut at the limits.
        let pad = if min == 0.0 { 1.0 } else { 0.1 * min.abs() };
        min = (min - pad).max(lo_lim);
        max = (max + pad).min(hi_lim);
    }
    let mut t = nice_ticks(min, max, target);
    t.lo = t.lo.max(lo_lim);
    t.hi = t.hi.min(hi_lim);
    let slack = 1e-9 * t.step;
    t.values.retain(|v| *v >= lo_lim - slack && *v <= hi_lim + slack);
    for v in &mut t.values {
        *v = v.clamp(lo_lim, hi_lim);
    }
    t
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
    fn bounded_axes_follow_the_data_and_stop_at_the_limits() {
        let pct = (0.0, 100.0);
        // Accuracies 52%–93%: the axis follows them (50–100), not 0–100.
        let t = nice_ticks_within(52.0, 93.0, 5, pct);
        assert_eq!((t.lo, t.hi), (50.0, 100.0));
        // Every seed at 100%: a window below 100, none above.
        let t = nice_ticks_within(100.0, 100.0, 5, pct);
        assert!(t.lo >= 80.0 && t.lo < 100.0 && t.hi == 100.0, "{t:?}");
        assert!(t.values.iter().all(|v| (0.0..=100.0).contains(v)) && t.values.len() >= 2, "{t:?}");
        // Every seed at 0% likewise; an overshooting input is cut at the limits.
        let t = nice_ticks_within(0.0, 0.0, 5, pct);
        assert_eq!(t.lo, 0.0);
        assert!(t.hi > 0.0);
        let t = nice_ticks_within(-200.0, 300.0, 5, pct);
        assert_eq!((t.lo, t.hi), (0.0, 100.0));
        assert_eq!(labels(&t), ["0", "20", "40", "60", "80", "100"]);
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
