//! Axis scales and tick positions, linear or logarithmic.

use crate::format::readable as num;

/// Maps data values to pixels along one axis.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scale {
    lo: f64,
    hi: f64,
    /// Pixel positions of `lo` and `hi` (may be reversed for a y axis).
    from: f64,
    to: f64,
    pub log: bool,
}

impl Scale {
    /// A scale over the finite values given (positive ones only when `log`); a degenerate
    /// range is widened so a single value still gets a line.
    pub(crate) fn fit(values: impl IntoIterator<Item = f64>, log: bool, from: f64, to: f64) -> Scale {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values {
            if v.is_finite() && (!log || v > 0.0) {
                let v = if log { v.log10() } else { v };
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        if hi - lo < 1e-12 {
            let pad = if lo.abs() > 1e-9 { lo.abs() * 0.05 } else { 0.5 };
            (lo, hi) = (lo - pad, hi + pad);
        }
        Scale { lo, hi, from, to, log }
    }

    /// [`Scale::fit`] with the range widened by `fraction` of its span at each end, so that no
    /// value lands exactly on the ends of the axis (where a frame or tick would hide it).
    pub(crate) fn fit_padded(
        values: impl IntoIterator<Item = f64>,
        log: bool,
        from: f64,
        to: f64,
        fraction: f64,
    ) -> Scale {
        let mut s = Scale::fit(values, log, from, to);
        let pad = (s.hi - s.lo) * fraction;
        s.lo -= pad;
        s.hi += pad;
        s
    }

    /// The pixel of a value (values outside a log axis's domain land at its low end).
    pub(crate) fn px(&self, v: f64) -> f64 {
        let v = if self.log {
            if v > 0.0 {
                v.log10()
            } else {
                self.lo
            }
        } else {
            v
        };
        self.from + (v - self.lo) / (self.hi - self.lo) * (self.to - self.from)
    }

    /// About `n` round tick values within the range, with their labels.
    pub(crate) fn ticks(&self, n: usize) -> Vec<(f64, String)> {
        if self.log {
            let (a, b) = (self.lo.floor() as i32, self.hi.ceil() as i32);
            return (a..=b)
                .map(|e| 10f64.powi(e))
                .filter(|v| (self.lo - 1e-9..=self.hi + 1e-9).contains(&v.log10()))
                .map(|v| (v, num(v)))
                .collect();
        }
        let span = self.hi - self.lo;
        let raw = span / n.max(1) as f64;
        let mag = 10f64.powf(raw.log10().floor());
        let step =
            [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * mag).find(|s| span / s <= n as f64).unwrap_or(mag * 10.0);
        let mut out = Vec::new();
        let mut t = (self.lo / step).ceil() * step;
        while t <= self.hi + step * 1e-9 && out.len() < 50 {
            out.push((t, num(if t.abs() < step * 1e-9 { 0.0 } else { t })));
            t += step;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_and_log_ticks_fall_inside_the_range() {
        let s = Scale::fit([0.1, 0.93], false, 0.0, 100.0);
        let ticks = s.ticks(5);
        assert!(ticks.len() >= 3 && ticks.iter().all(|(v, _)| (0.1..=0.93).contains(v)), "{ticks:?}");
        assert_eq!((s.px(0.1), s.px(0.93)), (0.0, 100.0));
        let l = Scale::fit([1e-5, 1e-2], true, 100.0, 0.0);
        let labels: Vec<String> = l.ticks(5).into_iter().map(|(_, s)| s).collect();
        assert_eq!(labels, ["1.000e-5", "1.000e-4", "0.001", "0.01"]);
        assert!((l.px(1e-3) - 33.333).abs() < 0.01, "log spacing");
        let one = Scale::fit([2.0], false, 0.0, 10.0);
        assert!(one.px(2.0) > 0.0 && one.px(2.0) < 10.0);
    }

    #[test]
    fn a_padded_scale_keeps_values_off_the_ends() {
        let s = Scale::fit_padded([0.6, 0.8], false, 270.0, 40.0, 0.05);
        for v in [0.6, 0.8] {
            assert!(s.px(v) < 270.0 - 5.0 && s.px(v) > 40.0 + 5.0, "{v} → {}", s.px(v));
        }
        let l = Scale::fit_padded([1e-4, 1e-2], true, 100.0, 0.0, 0.05);
        assert!(l.px(1e-4) < 100.0 && l.px(1e-2) > 0.0);
    }
}
