//! Line charts: a trial's per-stage curves, a study's per-epoch validation accuracy.

use super::axis::Scale;
use crate::svg::{Anchor, Stroke, Svg};

/// A mark at a series' last point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    None,
    /// A cross: the trial was pruned there.
    Pruned,
}

#[derive(Clone, Debug)]
pub struct LineSeries {
    pub name: String,
    pub color: &'static str,
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
    pub end: Marker,
    /// Thin and translucent (one of many), and left out of the legend.
    pub faint: bool,
}

const W: f64 = 520.0;
const H: f64 = 300.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 44.0;

/// One chart; `class` names it for the page (and tests). Series without finite points are
/// skipped; `None` when nothing is left to draw.
pub fn line_chart(
    class: &str,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[LineSeries],
    x_log: bool,
) -> Option<String> {
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite() && (!x_log || p.0 > 0.0);
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.points.iter().filter(finite).copied()).collect();
    if all.is_empty() {
        return None;
    }
    let legend: Vec<&LineSeries> = series.iter().filter(|s| !s.faint).collect();
    let legend_h = if legend.is_empty() { 0.0 } else { 16.0 * legend.len().min(8) as f64 + 6.0 };
    let height = H + legend_h;
    let x = Scale::fit(all.iter().map(|p| p.0), x_log, LEFT, W - RIGHT);
    let y = Scale::fit(all.iter().map(|p| p.1), false, H - BOTTOM, TOP);
    let mut svg = Svg::new(W, height);
    svg.text((W / 2.0, 18.0), title, Anchor::Middle, 13.0, None);
    axes(&mut svg, &x, &y, x_label, y_label);
    for s in series {
        let pts: Vec<(f64, f64)> = s.points.iter().filter(finite).map(|&(a, b)| (x.px(a), y.px(b))).collect();
        let (width, opacity) = if s.faint { (1.0, 0.45) } else { (2.0, 1.0) };
        if pts.len() == 1 {
            svg.classed_circle(pts[0], 3.0, s.color, "point");
        }
        svg.styled_polyline(&pts, Stroke { color: s.color, width, dashed: s.dashed }, opacity, "series");
        if let (Marker::Pruned, Some(&last)) = (s.end, pts.last()) {
            svg.cross(last, 4.0, "#D55E00", "pruned-mark");
        }
    }
    for (i, s) in legend.iter().take(8).enumerate() {
        let ly = H + 10.0 + 16.0 * i as f64;
        svg.line((LEFT, ly), (LEFT + 22.0, ly), Stroke { color: s.color, width: 2.0, dashed: false });
        svg.text((LEFT + 28.0, ly + 4.0), &s.name, Anchor::Start, 11.0, None);
    }
    Some(svg.finish_inline(class))
}

/// Frame, ticks and labels of a plot area.
fn axes(svg: &mut Svg, x: &Scale, y: &Scale, x_label: &str, y_label: &str) {
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, H - BOTTOM, TOP);
    svg.line((x0, y0), (x1, y0), Stroke { color: "#444", width: 1.0, dashed: false });
    svg.line((x0, y0), (x0, y1), Stroke { color: "#444", width: 1.0, dashed: false });
    for (v, label) in x.ticks(6) {
        let px = x.px(v);
        svg.line((px, y0), (px, y0 + 4.0), Stroke { color: "#444", width: 1.0, dashed: false });
        svg.text((px, y0 + 16.0), &label, Anchor::Middle, 10.0, None);
    }
    for (v, label) in y.ticks(5) {
        let py = y.px(v);
        svg.line((x0 - 4.0, py), (x0, py), Stroke { color: "#444", width: 1.0, dashed: false });
        svg.line((x0, py), (x1, py), Stroke { color: "#e5e5e5", width: 1.0, dashed: false });
        svg.text((x0 - 6.0, py + 3.0), &label, Anchor::End, 10.0, None);
    }
    let x_label = if x.log { format!("{x_label} (log)") } else { x_label.to_string() };
    svg.text(((x0 + x1) / 2.0, H - 8.0), &x_label, Anchor::Middle, 11.0, None);
    svg.text((14.0, (y0 + y1) / 2.0), y_label, Anchor::Middle, 11.0, Some(-90.0));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, points: Vec<(f64, f64)>, end: Marker) -> LineSeries {
        LineSeries { name: name.into(), color: "#000", dashed: false, points, end, faint: false }
    }

    #[test]
    fn a_chart_draws_each_series_and_marks_pruned_ends() {
        let doc = line_chart(
            "c",
            "t <1>",
            "epoch",
            "acc",
            &[series("a", vec![(1.0, 0.5), (2.0, 0.6)], Marker::None), series("b", vec![(1.0, 0.4)], Marker::Pruned)],
            false,
        )
        .unwrap();
        crate::svg::assert_well_formed(&doc);
        assert_eq!(doc.matches("class=\"series\"").count(), 2);
        assert_eq!(doc.matches("pruned-mark").count(), 1);
        assert!(doc.contains("t &lt;1&gt;"));
        assert!(line_chart("c", "t", "x", "y", &[series("a", vec![(f64::NAN, 1.0)], Marker::None)], false).is_none());
        let log = line_chart("c", "t", "lr", "y", &[series("a", vec![(1e-4, 1.0), (1e-2, 2.0)], Marker::None)], true);
        assert!(log.unwrap().contains("lr (log)"));
    }
}
