//! Parallel coordinates: one vertical axis per parameter (the caller puts the pipeline first)
//! and one for the objective, one line per configuration coloured by its objective (the mean over
//! its seeds), with a colour legend. Log-scaled parameters get log axes; text-valued ones an
//! axis of their distinct values. Numeric axes are padded by [`PAD`] of their span at both ends,
//! so the worst and best configurations are drawn inside the plot, not on its edges.

use super::axis::Scale;
use crate::format::readable as num;
use crate::svg::{Anchor, Stroke, Svg};

/// A configuration's value on one parameter axis.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Num(f64),
    Text(String),
    Missing,
}

#[derive(Clone, Debug)]
pub struct Line {
    /// The configuration's label, the line's tooltip.
    pub label: String,
    pub cells: Vec<Cell>,
    pub objective: f64,
}

/// Share of an axis's span left free at each end.
const PAD: f64 = 0.06;
/// Steps of the colour legend's bar.
const LEGEND_STEPS: usize = 12;

enum Axis {
    Num(Scale),
    Text(Vec<String>),
}

/// Colour from low (blue) to high (orange) objective; `best_high` flips it so the best is orange.
fn colour(t: f64) -> String {
    let t = t.clamp(0.0, 1.0);
    let (a, b) = ((0x1f, 0x4e, 0x9e), (0xe6, 0x7e, 0x00));
    let mix = |x: i32, y: i32| (f64::from(x) + (f64::from(y) - f64::from(x)) * t).round() as i32;
    format!("#{:02x}{:02x}{:02x}", mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// `params` are `(name, log)`; `None` when there are no lines or no parameters. `objective`
/// names what each line's `objective` is (e.g. "accuracy (mean over seeds)").
pub fn parallel(
    class: &str,
    params: &[(String, bool)],
    objective: &str,
    maximize: bool,
    lines: &[Line],
) -> Option<String> {
    let lines: Vec<&Line> = lines.iter().filter(|l| l.objective.is_finite()).collect();
    if lines.is_empty() || params.is_empty() {
        return None;
    }
    let (top, bottom) = (40.0, 270.0);
    let n_axes = params.len() + 1;
    let width = (120.0 * n_axes as f64).max(360.0);
    let xs: Vec<f64> = (0..n_axes).map(|i| 50.0 + (width - 100.0) * i as f64 / (n_axes - 1).max(1) as f64).collect();
    let mut axes: Vec<Axis> = Vec::new();
    for (i, (_, log)) in params.iter().enumerate() {
        let nums: Vec<f64> = lines
            .iter()
            .filter_map(|l| match l.cells.get(i) {
                Some(Cell::Num(v)) => Some(*v),
                _ => None,
            })
            .collect();
        let texts: Vec<String> = {
            let mut t: Vec<String> = lines
                .iter()
                .filter_map(|l| match l.cells.get(i) {
                    Some(Cell::Text(s)) => Some(s.clone()),
                    _ => None,
                })
                .collect();
            t.sort();
            t.dedup();
            t
        };
        axes.push(if texts.is_empty() {
            Axis::Num(Scale::fit_padded(nums, *log, bottom, top, PAD))
        } else {
            Axis::Text(texts)
        });
    }
    let objective_scale = Scale::fit_padded(lines.iter().map(|l| l.objective), false, bottom, top, PAD);
    let (lo, hi) =
        lines.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), l| (a.min(l.objective), b.max(l.objective)));
    let mut svg = Svg::new(width, 350.0);
    svg.title((width / 2.0, 16.0), &format!("Parallel coordinates, coloured by {objective}"), width - 10.0);
    // Worst first, so the best lines are drawn on top.
    let mut order: Vec<&&Line> = lines.iter().collect();
    order.sort_by(|a, b| {
        let (a, b) = (a.objective, b.objective);
        if maximize {
            a.total_cmp(&b)
        } else {
            b.total_cmp(&a)
        }
    });
    for line in order {
        let mut pts = Vec::with_capacity(n_axes);
        for (i, axis) in axes.iter().enumerate() {
            let y = match (axis, line.cells.get(i)) {
                (Axis::Num(s), Some(Cell::Num(v))) => s.px(*v),
                (Axis::Text(values), Some(Cell::Text(t))) => {
                    let k = values.iter().position(|v| v == t).unwrap_or(0);
                    bottom + (top - bottom) * (k as f64 + 0.5) / values.len() as f64
                }
                _ => continue,
            };
            pts.push((xs[i], y));
        }
        pts.push((xs[n_axes - 1], objective_scale.px(line.objective)));
        let t = if hi > lo { (line.objective - lo) / (hi - lo) } else { 1.0 };
        let t = if maximize { t } else { 1.0 - t };
        let stroke = Stroke { color: &colour(t), width: 1.2, dashed: false };
        let title = format!("{}: {objective} {}", line.label, num(line.objective));
        svg.polyline_with_title(&pts, stroke, 0.7, "config-line", Some(&title));
    }
    for (i, (name, log)) in params.iter().enumerate() {
        let x = xs[i];
        svg.line((x, top), (x, bottom), Stroke { color: "#333", width: 1.0, dashed: false });
        let label = if *log { format!("{name} (log)") } else { name.clone() };
        svg.text((x, bottom + 28.0), &label, Anchor::Middle, 11.0, None);
        match &axes[i] {
            Axis::Num(s) => {
                for (v, l) in s.ticks(4) {
                    svg.text((x - 4.0, s.px(v) + 3.0), &l, Anchor::End, 9.0, None);
                }
            }
            Axis::Text(values) => {
                for (k, v) in values.iter().enumerate() {
                    let y = bottom + (top - bottom) * (k as f64 + 0.5) / values.len() as f64;
                    svg.text((x - 4.0, y + 3.0), v, Anchor::End, 9.0, None);
                }
            }
        }
    }
    let x = xs[n_axes - 1];
    svg.line((x, top), (x, bottom), Stroke { color: "#333", width: 1.0, dashed: false });
    svg.text((x, bottom + 28.0), objective, Anchor::Middle, 11.0, None);
    for (v, l) in objective_scale.ticks(4) {
        svg.text((x + 4.0, objective_scale.px(v) + 3.0), &l, Anchor::Start, 9.0, None);
    }
    let best = if maximize { hi } else { lo };
    svg.text((x, top - 8.0), &format!("best configuration: {}", num(best)), Anchor::End, 9.0, None);
    colour_legend(&mut svg, (50.0, 322.0), (lo, hi), maximize);
    Some(svg.finish_inline(class))
}

/// A bar of the line colours from the worst objective to the best, each end labelled.
fn colour_legend(svg: &mut Svg, (x, y): (f64, f64), (lo, hi): (f64, f64), maximize: bool) {
    let (worst, best) = if maximize { (lo, hi) } else { (hi, lo) };
    let step = 12.0;
    svg.text((x, y + 4.0), &format!("worse {}", num(worst)), Anchor::Start, 10.0, None);
    let bar_x = x + 90.0;
    for i in 0..LEGEND_STEPS {
        let t = i as f64 / (LEGEND_STEPS - 1) as f64;
        svg.classed_rect((bar_x + step * i as f64, y - 6.0), (step, 12.0), &colour(t), "colour-legend");
    }
    let end = bar_x + step * LEGEND_STEPS as f64 + 6.0;
    svg.text((end, y + 4.0), &format!("better {}", num(best)), Anchor::Start, 10.0, None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_configuration_and_log_axes_are_named() {
        let lines = vec![
            Line { label: "lr=1e-4 <a>".into(), cells: vec![Cell::Num(1e-4), Cell::Text("a".into())], objective: 0.6 },
            Line {
                label: "lr=0.01 <b>".into(),
                cells: vec![Cell::Num(1e-2), Cell::Text("<b>".into())],
                objective: 0.8,
            },
            Line { label: "none".into(), cells: vec![Cell::Missing, Cell::Missing], objective: f64::NAN },
        ];
        let params = vec![("lr".to_string(), true), ("opt".to_string(), false)];
        let doc = parallel("p", &params, "accuracy", true, &lines).unwrap();
        crate::svg::assert_well_formed(&doc);
        assert_eq!(doc.matches("config-line").count(), 2);
        assert!(doc.contains("lr (log)") && doc.contains("&lt;b&gt;"));
        assert!(doc.contains("<title>lr=0.01 &lt;b&gt;: accuracy 0.8</title>"), "each line's tooltip: {doc}");
        assert!(parallel("p", &[], "accuracy", true, &lines).is_none());
        assert_eq!(colour(0.0), "#1f4e9e");
    }

    /// The y coordinates of every configuration line, read back from the document.
    fn line_ys(doc: &str) -> Vec<f64> {
        doc.lines()
            .filter(|l| l.contains("class=\"config-line\""))
            .flat_map(|l| {
                let pts = l.split("points=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
                pts.split(' ').map(|p| p.split(',').nth(1).unwrap().parse::<f64>().unwrap()).collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn no_line_lies_on_the_ends_of_an_axis_and_the_colours_are_explained() {
        // The worst configuration (0.6) used to be drawn along y = 270, the axes' bottom end.
        let lines = vec![
            Line {
                label: "baseline lf=0.1".into(),
                cells: vec![Cell::Text("baseline".into()), Cell::Num(0.1)],
                objective: 0.6,
            },
            Line { label: "dec lf=0.4".into(), cells: vec![Cell::Text("dec".into()), Cell::Num(0.4)], objective: 0.8 },
            Line { label: "dec lf=1".into(), cells: vec![Cell::Text("dec".into()), Cell::Num(1.0)], objective: 0.9 },
        ];
        let params = vec![("pipeline".to_string(), false), ("label_fraction".to_string(), false)];
        let doc = parallel("p", &params, "accuracy (mean over seeds)", true, &lines).unwrap();
        crate::svg::assert_well_formed(&doc);
        let ys = line_ys(&doc);
        assert_eq!(ys.len(), 9);
        for y in ys {
            assert!(y > 40.0 + 5.0 && y < 270.0 - 5.0, "a line at y = {y}, on or near the frame");
        }
        // The pipeline axis has both values; the colour legend names both ends.
        assert!(doc.contains(">baseline</text>") && doc.contains(">dec</text>") && doc.contains(">pipeline</text>"));
        assert_eq!(doc.matches("class=\"colour-legend\"").count(), LEGEND_STEPS);
        assert!(doc.contains(">worse 0.6</text>") && doc.contains(">better 0.9</text>"), "{doc}");
        assert!(doc.contains(">best configuration: 0.9</text>"));
        // Minimised: the best is the lowest, the legend runs the other way.
        let doc = parallel("p", &params, "loss", false, &lines).unwrap();
        assert!(doc.contains(">worse 0.9</text>") && doc.contains(">better 0.6</text>"), "{doc}");
    }
}
