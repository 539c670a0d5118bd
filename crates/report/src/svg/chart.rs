//! Line charts with axes, round-number ticks, error bars and a legend, one or more panels per
//! document.

use super::ticks::{nice_ticks, nice_ticks_within, Ticks};
use super::{Anchor, Stroke, Svg};

/// One point; `err` is an absolute (low, high) interval drawn as an error bar.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Point {
    pub x: f64,
    pub y: f64,
    pub err: Option<(f64, f64)>,
}

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    /// A line through the points, with a marker on each when there are few enough.
    Line,
    /// A line without markers (e.g. a precomputed step line).
    Plain,
    /// Filled markers only, no line.
    Dots,
    /// Hollow markers only, no line: values that are not final (pruned trials).
    Hollow,
}

impl Style {
    fn has_line(self) -> bool {
        matches!(self, Style::Line | Style::Plain)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Series {
    pub name: String,
    pub color: &'static str,
    pub dashed: bool,
    pub style: Style,
    /// In drawing order; a non-finite point breaks the line.
    pub points: Vec<Point>,
}

#[derive(Clone, Debug)]
pub(crate) struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// The values y can take at all (0–100 for a percentage), or `None` for unbounded. The
    /// y axis follows the data (points and error bars) and is never drawn past these.
    pub y_limits: Option<(f64, f64)>,
}

const PLOT_W: f64 = 360.0;
const PLOT_H: f64 = 240.0;
const LEFT: f64 = 66.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 50.0;
const TITLE_H: f64 = 34.0;
const PANELS_PER_ROW: usize = 3;
/// Lines with more points than this are drawn without markers, which would only blur them.
const MAX_MARKERS: usize = 20;
/// Horizontal distance between the error bars of two series at the same x, so that bars of
/// configurations measured at the same label fraction do not hide each other.
const DODGE: f64 = 6.0;
/// A rough average glyph width at font size 11, to size the legend.
const CHAR_W: f64 = 6.4;

/// The whole document: a title and the panels, `PANELS_PER_ROW` to a row.
pub(crate) fn render(title: &str, panels: &[Panel]) -> String {
    let widths: Vec<f64> = panels.iter().map(panel_width).collect();
    let rows: Vec<&[f64]> = widths.chunks(PANELS_PER_ROW).collect();
    let width = rows.iter().map(|r| r.iter().sum::<f64>()).fold(360.0, f64::max);
    let panel_h = TOP + PLOT_H + BOTTOM;
    let height = TITLE_H + panel_h * rows.len().max(1) as f64;
    let mut svg = Svg::new(width, height);
    svg.text((width / 2.0, 22.0), title, Anchor::Middle, 15.0, None);
    for (i, panel) in panels.iter().enumerate() {
        let row = i / PANELS_PER_ROW;
        let x0: f64 = widths[row * PANELS_PER_ROW..i].iter().sum();
        svg.begin_group(x0, TITLE_H + row as f64 * panel_h);
        draw_panel(&mut svg, panel);
        svg.end_group();
    }
    svg.finish()
}

fn legend_width(panel: &Panel) -> f64 {
    let longest = panel.series.iter().map(|s| s.name.chars().count()).max().unwrap_or(0);
    if longest == 0 {
        0.0
    } else {
        34.0 + longest as f64 * CHAR_W
    }
}

fn panel_width(panel: &Panel) -> f64 {
    LEFT + PLOT_W + RIGHT + legend_width(panel)
}

/// Finite extent of the points and their error bars, or `None` when nothing is drawable.
fn extent(panel: &Panel) -> Option<((f64, f64), (f64, f64))> {
    let pts = panel.series.iter().flat_map(|s| &s.points).filter(|p| p.x.is_finite() && p.y.is_finite());
    let mut ext: Option<((f64, f64), (f64, f64))> = None;
    for p in pts {
        let (mut ylo, mut yhi) = (p.y, p.y);
        if let Some((lo, hi)) = p.err.filter(|(lo, hi)| lo.is_finite() && hi.is_finite()) {
            ylo = ylo.min(lo);
            yhi = yhi.max(hi);
        }
        ext = Some(match ext {
            None => ((p.x, p.x), (ylo, yhi)),
            Some(((x0, x1), (y0, y1))) => ((x0.min(p.x), x1.max(p.x)), (y0.min(ylo), y1.max(yhi))),
        });
    }
    ext
}

fn draw_panel(svg: &mut Svg, panel: &Panel) {
    let axis = Stroke { color: "#333333", width: 1.0, dashed: false };
    let grid = Stroke { color: "#e5e5e5", width: 1.0, dashed: false };
    svg.text((LEFT + PLOT_W / 2.0, TOP - 12.0), &panel.title, Anchor::Middle, 13.0, None);
    svg.text((LEFT + PLOT_W / 2.0, TOP + PLOT_H + 40.0), &panel.x_label, Anchor::Middle, 12.0, None);
    let (ylx, yly) = (16.0, TOP + PLOT_H / 2.0);
    svg.text((ylx, yly), &panel.y_label, Anchor::Middle, 12.0, Some(-90.0));

    let Some(((xmin, xmax), (ymin, ymax))) = extent(panel) else {
        svg.rect((LEFT, TOP), (PLOT_W, PLOT_H), "none", "#333333");
        svg.text((LEFT + PLOT_W / 2.0, TOP + PLOT_H / 2.0), "no data", Anchor::Middle, 12.0, None);
        return;
    };
    let tx = nice_ticks(xmin, xmax, 5);
    let ty = match panel.y_limits {
        Some(limits) => nice_ticks_within(ymin, ymax, 5, limits),
        None => nice_ticks(ymin, ymax, 5),
    };
    let fx = |x: f64| LEFT + (x - tx.lo) / (tx.hi - tx.lo) * PLOT_W;
    let fy = |y: f64| TOP + PLOT_H - (y - ty.lo) / (ty.hi - ty.lo) * PLOT_H;

    draw_ticks(svg, &tx, &ty, &fx, &fy, grid, axis);

    let offsets = dodge_offsets(panel);
    for (s, dx) in panel.series.iter().zip(offsets) {
        let fx = |x: f64| fx(x) + dx;
        let stroke = Stroke { color: s.color, width: 2.0, dashed: s.dashed };
        if s.style.has_line() {
            // Split the line at non-finite points rather than drawing through them.
            let mut segment: Vec<(f64, f64)> = Vec::new();
            for p in &s.points {
                if p.x.is_finite() && p.y.is_finite() {
                    segment.push((fx(p.x), fy(p.y)));
                } else {
                    svg.polyline(&segment, stroke);
                    segment.clear();
                }
            }
            svg.polyline(&segment, stroke);
        }
        let finite = s.points.iter().filter(|p| p.x.is_finite() && p.y.is_finite());
        for p in finite.clone() {
            if let Some((lo, hi)) = p.err.filter(|(lo, hi)| lo.is_finite() && hi.is_finite()) {
                let bar = Stroke { color: s.color, width: 1.2, dashed: false };
                let x = fx(p.x);
                svg.classed_line((x, fy(lo)), (x, fy(hi)), bar, "error-bar");
                svg.line((x - 4.0, fy(lo)), (x + 4.0, fy(lo)), bar);
                svg.line((x - 4.0, fy(hi)), (x + 4.0, fy(hi)), bar);
            }
        }
        for p in finite {
            marker(svg, s, (fx(p.x), fy(p.y)));
        }
    }
    draw_legend(svg, panel);
}

/// The horizontal pixel shift of each series: when two or more series have error bars, they
/// are spread [`DODGE`] px apart around the true x (the whole series moves, so each bar stays
/// on its marker); every other series stays put.
fn dodge_offsets(panel: &Panel) -> Vec<f64> {
    let barred: Vec<bool> = panel.series.iter().map(|s| s.points.iter().any(|p| p.err.is_some())).collect();
    let k = barred.iter().filter(|b| **b).count();
    if k < 2 {
        return vec![0.0; panel.series.len()];
    }
    let mut rank = 0.0;
    barred
        .into_iter()
        .map(|b| {
            if !b {
                return 0.0;
            }
            let dx = (rank - (k - 1) as f64 / 2.0) * DODGE;
            rank += 1.0;
            dx
        })
        .collect()
}

/// The marker of one point of `s`, if its style has markers.
fn marker(svg: &mut Svg, s: &Series, at: (f64, f64)) {
    match s.style {
        Style::Line if s.points.len() <= MAX_MARKERS => svg.circle(at, 3.0, s.color),
        Style::Line | Style::Plain => {}
        Style::Dots => svg.circle(at, 3.0, s.color),
        Style::Hollow => svg.ring(at, 3.5, s.color),
    }
}

fn draw_ticks(
    svg: &mut Svg,
    tx: &Ticks,
    ty: &Ticks,
    fx: &dyn Fn(f64) -> f64,
    fy: &dyn Fn(f64) -> f64,
    grid: Stroke,
    axis: Stroke,
) {
    for &v in &tx.values {
        let x = fx(v);
        svg.line((x, TOP), (x, TOP + PLOT_H), grid);
        svg.line((x, TOP + PLOT_H), (x, TOP + PLOT_H + 5.0), axis);
        svg.text((x, TOP + PLOT_H + 18.0), &tx.label(v), Anchor::Middle, 11.0, None);
    }
    for &v in &ty.values {
        let y = fy(v);
        svg.line((LEFT, y), (LEFT + PLOT_W, y), grid);
        svg.line((LEFT - 5.0, y), (LEFT, y), axis);
        svg.text((LEFT - 8.0, y + 4.0), &ty.label(v), Anchor::End, 11.0, None);
    }
    svg.line((LEFT, TOP + PLOT_H), (LEFT + PLOT_W, TOP + PLOT_H), axis);
    svg.line((LEFT, TOP), (LEFT, TOP + PLOT_H), axis);
}

fn draw_legend(svg: &mut Svg, panel: &Panel) {
    if legend_width(panel) == 0.0 {
        return;
    }
    let x = LEFT + PLOT_W + RIGHT;
    for (i, s) in panel.series.iter().enumerate() {
        let y = TOP + 10.0 + 18.0 * i as f64;
        if s.style.has_line() {
            svg.line((x, y), (x + 22.0, y), Stroke { color: s.color, width: 2.0, dashed: s.dashed });
        }
        marker(svg, s, (x + 11.0, y));
        svg.text((x + 28.0, y + 4.0), &s.name, Anchor::Start, 11.0, None);
    }
}

#[cfg(test)]
mod tests {
    use super::super::assert_well_formed;
    use super::*;

    fn pt(x: f64, y: f64) -> Point {
        Point { x, y, err: None }
    }

    #[test]
    fn a_chart_is_well_formed_and_has_its_parts() {
        let panel = Panel {
            title: "finetune <stage>".into(),
            x_label: "epoch".into(),
            y_label: "loss".into(),
            series: vec![
                Series {
                    name: "train".into(),
                    color: "#0072B2",
                    dashed: false,
                    style: Style::Line,
                    points: vec![pt(0.0, 1.0), pt(1.0, 0.5)],
                },
                Series {
                    name: "val & co".into(),
                    color: "#D55E00",
                    dashed: true,
                    style: Style::Line,
                    points: vec![
                        Point { x: 0.0, y: 1.2, err: Some((1.0, 1.4)) },
                        pt(1.0, f64::NAN),
                        pt(2.0, 0.7),
                        pt(3.0, 0.6),
                    ],
                },
            ],
            y_limits: None,
        };
        let doc = render("trial 7 \"dec\"", &[panel.clone(), panel]);
        assert_well_formed(&doc);
        assert!(doc.contains("finetune &lt;stage&gt;") && doc.contains("val &amp; co"));
        assert!(doc.contains("stroke-dasharray"), "dashed validation line");
        // Error bar: a vertical line and two caps; legend: one sample line per series per panel.
        assert!(doc.matches("<polyline").count() >= 4);
    }

    #[test]
    fn empty_panels_say_so() {
        let panel = Panel {
            title: "ae".into(),
            x_label: "epoch".into(),
            y_label: "loss".into(),
            series: vec![],
            y_limits: None,
        };
        let doc = render("t", &[panel]);
        assert_well_formed(&doc);
        assert!(doc.contains("no data"));
        let doc = render("nothing", &[]);
        assert_well_formed(&doc);
    }

    #[test]
    fn many_panels_wrap_into_rows() {
        let panel =
            Panel { title: "p".into(), x_label: "x".into(), y_label: "y".into(), series: vec![], y_limits: None };
        let doc = render("t", &vec![panel; 4]);
        assert_well_formed(&doc);
        assert_eq!(doc.matches("<g transform").count(), 4);
        let height = TITLE_H + 2.0 * (TOP + PLOT_H + BOTTOM);
        assert!(doc.contains(&format!("height=\"{height}\"")), "two rows");
    }

    #[test]
    fn error_bars_at_the_same_x_are_dodged() {
        let barred = |name: &str, y: f64| Series {
            name: name.into(),
            color: "#0072B2",
            dashed: false,
            style: Style::Line,
            points: vec![Point { x: 0.1, y, err: Some((y - 2.0, y + 2.0)) }, Point { x: 0.4, y, err: None }],
        };
        let panel = Panel {
            title: "p".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![barred("a", 70.0), barred("b", 71.0)],
            y_limits: None,
        };
        // The vertical part of each bar: its x, read back from the document.
        let bar_xs = |doc: &str| -> Vec<f64> {
            doc.lines()
                .filter(|l| l.contains("class=\"error-bar\""))
                .map(|l| l.split("x1=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap())
                .collect()
        };
        let xs = bar_xs(&render("t", std::slice::from_ref(&panel)));
        assert_eq!(xs.len(), 2, "{xs:?}");
        assert!((xs[1] - xs[0] - DODGE).abs() < 0.01, "bars {DODGE} px apart: {xs:?}");
        // One barred series is not moved, and two are spread around where it is drawn.
        let alone = bar_xs(&render("t", &[Panel { series: vec![barred("a", 70.0)], ..panel }]));
        assert!(((xs[0] + xs[1]) / 2.0 - alone[0]).abs() < 0.01, "{xs:?} around {alone:?}");
    }
}
