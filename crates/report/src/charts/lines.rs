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
    /// Thin and translucent: one of many.
    pub faint: bool,
    /// Named in the legend. Series that share a name, colour and dash (the trials of one
    /// configuration) share one entry.
    pub legend: bool,
}

/// Most legend entries shown; the rest are counted in a last line.
const MAX_LEGEND: usize = 8;

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
    let mut legend: Vec<&LineSeries> = Vec::new();
    for s in series.iter().filter(|s| s.legend) {
        if !legend.iter().any(|l| l.name == s.name && l.color == s.color && l.dashed == s.dashed) {
            legend.push(s);
        }
    }
    let more = legend.len().saturating_sub(MAX_LEGEND);
    let rows = legend.len().min(MAX_LEGEND) + usize::from(more > 0);
    let legend_h = if rows == 0 { 0.0 } else { 16.0 * rows as f64 + 6.0 };
    let height = H + legend_h;
    let x = Scale::fit(all.iter().map(|p| p.0), x_log, LEFT, W - RIGHT);
    let y = Scale::fit(all.iter().map(|p| p.1), false, H - BOTTOM, TOP);
    let mut svg = Svg::new(W, height);
    svg.title((W / 2.0, 18.0), title, W - 10.0);
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
    for (i, s) in legend.iter().take(MAX_LEGEND).enumerate() {
        let ly = H + 10.0 + 16.0 * i as f64;
        svg.classed_line(
            (LEFT, ly),
            (LEFT + 22.0, ly),
            Stroke { color: s.color, width: 2.0, dashed: s.dashed },
            "legend-sample",
        );
        svg.text((LEFT + 28.0, ly + 4.0), &s.name, Anchor::Start, 11.0, None);
    }
    if more > 0 {
        let ly = H + 10.0 + 16.0 * MAX_LEGEND as f64;
        svg.text((LEFT + 28.0, ly + 4.0), &format!("… and {more} more"), Anchor::Start, 11.0, None);
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
        LineSeries { name: name.into(), color: "#000", dashed: false, points, end, faint: false, legend: true }
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

    #[test]
    fn the_legend_has_one_entry_per_name_and_counts_the_rest() {
        let trial = |name: &str, color: &'static str, y: f64| LineSeries {
            name: name.into(),
            color,
            dashed: false,
            points: vec![(1.0, y), (2.0, y + 0.1)],
            end: Marker::None,
            faint: true,
            legend: true,
        };
        // Two trials of config a, one of b: two entries.
        let doc = line_chart(
            "c",
            "t",
            "epoch",
            "acc",
            &[trial("a", "#111", 0.5), trial("a", "#111", 0.6), trial("b", "#222", 0.4)],
            false,
        )
        .unwrap();
        assert_eq!(doc.matches("class=\"legend-sample\"").count(), 2);
        assert!(doc.contains(">a</text>") && doc.contains(">b</text>"));
        // Ten names: eight entries and a count of the other two.
        let many: Vec<LineSeries> = (0..10).map(|i| trial(&format!("cfg{i}"), "#333", 0.1 * i as f64)).collect();
        let doc = line_chart("c", "t", "epoch", "acc", &many, false).unwrap();
        assert_eq!(doc.matches("class=\"legend-sample\"").count(), MAX_LEGEND);
        assert!(doc.contains(">… and 2 more</text>"));
        // Series out of the legend add no entry.
        let quiet = LineSeries { legend: false, ..trial("q", "#444", 0.2) };
        let doc = line_chart("c", "t", "epoch", "acc", &[quiet], false).unwrap();
        assert_eq!(doc.matches("legend-sample").count(), 0);
    }
}
