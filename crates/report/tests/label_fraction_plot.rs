//! The accuracy-vs-label-fraction plot of a demo-like study stays inside 0–100%.
//!
//! `make demo` once drew a y axis from −200% to +300%: a t interval over 2 seeds, unclipped.
//! These tests build the demo's study (baseline and dec at label fractions 0.1, 0.4 and 1, with
//! the demo's own accuracies for seeds 0 and 1), once with 2 seeds and once with 5, render the
//! report through the public API, read the SVG back, and map every drawn y coordinate to the
//! value it stands for through the y axis's own tick labels.

use std::collections::BTreeMap;

use decsweep_api::ParamValue;
use decsweep_report::{render, ReportOptions, StudyReport, TrialRow, TrialStatus};
use quick_xml::events::Event;

/// Accuracy of (pipeline, label fraction, seed). Seeds 0 and 1 are the demo's results; seeds
/// 2–4 add spread at 10% labels and seeds at exactly 100%, the case a t interval overshoots.
fn accuracy(pipeline: &str, lf: f64, seed: u64) -> f64 {
    let table: [(&str, f64, [f64; 5]); 6] = [
        ("baseline", 0.1, [0.8620689655172413, 0.5517241379310345, 0.62, 0.91, 0.97]),
        ("dec", 0.1, [0.896551724137931, 0.5862068965517241, 0.66, 0.95, 1.0]),
        ("baseline", 0.4, [0.8771929824561403, 0.8245614035087719, 0.9, 0.95, 1.0]),
        ("dec", 0.4, [0.868421052631579, 0.8070175438596491, 0.93, 0.99, 1.0]),
        ("baseline", 1.0, [0.8496503496503497, 0.8286713286713286, 1.0, 1.0, 0.99]),
        ("dec", 1.0, [0.8566433566433567, 0.8391608391608392, 1.0, 1.0, 1.0]),
    ];
    let row = table.iter().find(|(p, f, _)| *p == pipeline && *f == lf).unwrap();
    row.2[seed as usize]
}

fn demo_like(seeds: u64) -> Vec<TrialRow> {
    let mut trials = Vec::new();
    for pipeline in ["baseline", "dec"] {
        for lf in [0.1, 0.4, 1.0] {
            for seed in 0..seeds {
                let acc = accuracy(pipeline, lf, seed);
                trials.push(TrialRow {
                    id: trials.len() as i64 + 1,
                    pipeline: pipeline.into(),
                    params: BTreeMap::from([("label_fraction".to_string(), ParamValue::Float(lf))]),
                    seed,
                    config_id: format!("{pipeline}-{lf}"),
                    spec_label: None,
                    status: TrialStatus::Completed,
                    attempts: 1,
                    resumes: 0,
                    resumed_from: None,
                    pack: Vec::new(),
                    worker: None,
                    error: None,
                    metrics: BTreeMap::from([
                        ("accuracy".to_string(), acc),
                        ("f1_weighted".to_string(), acc),
                        ("loss".to_string(), 1.0 - acc),
                    ]),
                });
            }
        }
    }
    trials
}

/// What the plot draws, read back from its SVG.
#[derive(Debug, Default)]
struct Drawn {
    /// y-axis ticks: (value from the label, pixel y of the tick).
    y_ticks: Vec<(f64, f64)>,
    /// Pixel y of every data mark: line and marker points, error bars, legend samples.
    data_ys: Vec<f64>,
    /// `<line>` elements in a series colour: error bars (three each) and legend samples.
    data_lines: usize,
    texts: Vec<String>,
}

/// The chart's own neutral strokes (axes, tick marks, grid); everything else is data.
const NEUTRAL: [&str; 2] = ["#333333", "#e5e5e5"];

fn read_svg(doc: &str) -> Drawn {
    let mut drawn = Drawn::default();
    let mut reader = quick_xml::Reader::from_str(doc);
    let mut open_text: Option<BTreeMap<String, String>> = None;
    loop {
        let event = reader.read_event().unwrap();
        let attrs = |e: &quick_xml::events::BytesStart| -> BTreeMap<String, String> {
            e.attributes()
                .map(|a| {
                    let a = a.unwrap();
                    (String::from_utf8(a.key.as_ref().to_vec()).unwrap(), a.unescape_value().unwrap().into_owned())
                })
                .collect()
        };
        let num = |a: &BTreeMap<String, String>, k: &str| a[k].parse::<f64>().unwrap();
        match event {
            Event::Start(e) if e.name().as_ref() == b"text" => open_text = Some(attrs(&e)),
            Event::Text(t) => {
                if let Some(a) = open_text.take() {
                    let text = t.unescape().unwrap().into_owned();
                    // Only the y axis's tick labels are right-aligned.
                    if a["text-anchor"] == "end" {
                        let value = text.parse::<f64>().unwrap_or_else(|_| panic!("tick label `{text}`"));
                        // The label's baseline sits 4 px below its tick.
                        drawn.y_ticks.push((value, num(&a, "y") - 4.0));
                    }
                    drawn.texts.push(text);
                }
            }
            Event::Empty(e) => {
                let a = attrs(&e);
                let colour = a.get("stroke").or(a.get("fill")).cloned().unwrap_or_default();
                if NEUTRAL.contains(&colour.as_str()) || e.name().as_ref() == b"rect" {
                    continue;
                }
                match e.name().as_ref() {
                    b"circle" => drawn.data_ys.push(num(&a, "cy")),
                    b"line" => {
                        drawn.data_ys.extend([num(&a, "y1"), num(&a, "y2")]);
                        drawn.data_lines += 1;
                    }
                    b"polyline" => drawn
                        .data_ys
                        .extend(a["points"].split(' ').map(|p| p.split(',').nth(1).unwrap().parse::<f64>().unwrap())),
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    drawn
}

fn plot_of(trials: &[TrialRow]) -> (Drawn, BTreeMap<String, String>) {
    let report = StudyReport { study: "demo", trials, curves: &[] };
    let files = render(&report, &ReportOptions::default()).unwrap();
    let files: BTreeMap<String, String> = files.into_iter().map(|f| (f.name, f.contents)).collect();
    (read_svg(&files["accuracy_vs_label_fraction.svg"]), files)
}

/// Every tick label and every drawn value lies in [0, 100]; returns the drawn values.
fn assert_inside_0_100(d: &Drawn) -> Vec<f64> {
    assert!(d.y_ticks.len() >= 2, "{d:?}");
    for (v, _) in &d.y_ticks {
        assert!((0.0..=100.0).contains(v), "tick {v} outside 0–100%: {d:?}");
    }
    // Pixel → value through the first and last tick (coordinates are written to 0.01 px).
    let (v0, p0) = d.y_ticks[0];
    let (v1, p1) = d.y_ticks[d.y_ticks.len() - 1];
    let value = |py: f64| v0 + (py - p0) * (v1 - v0) / (p1 - p0);
    let values: Vec<f64> = d.data_ys.iter().map(|y| value(*y)).collect();
    assert!(!values.is_empty());
    for v in &values {
        assert!((-0.01..=100.01).contains(v), "a drawn value maps to {v}%: {d:?}");
    }
    values
}

#[test]
fn two_seeds_no_bars_and_an_axis_that_follows_the_means() {
    let (d, files) = plot_of(&demo_like(2));
    let values = assert_inside_0_100(&d);
    // Two legend sample lines and no error bars.
    assert_eq!(d.data_lines, 2, "{d:?}");
    assert!(d.texts.iter().any(|t| t == "mean accuracy; no interval (fewer than 3 seeds)"), "{:?}", d.texts);
    // Means run from 70.69% to 85.09%: the axis starts well above 0 and ends at most at 100.
    let lowest = d.y_ticks.iter().map(|t| t.0).fold(f64::INFINITY, f64::min);
    assert!(lowest >= 60.0, "axis starts at {lowest}");
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    assert!((min - 70.69).abs() < 0.05, "lowest mean drawn at {min}");

    // summary.csv and the table say the same: no interval from two seeds, and why.
    let summary = &files["summary.csv"];
    let mut r = csv::Reader::from_reader(summary.as_bytes());
    let h = r.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|c| c == name).unwrap();
    for rec in r.records() {
        let rec = rec.unwrap();
        assert_eq!(&rec[col("accuracy_n")], "2");
        for c in ["accuracy_ci95_low", "accuracy_ci95_high", "accuracy_ci95_method", "loss_ci95_low"] {
            assert_eq!(&rec[col(c)], "", "{c}");
        }
    }
    let md = &files["table.md"];
    assert_eq!(md.matches("none (n = 2 < 3)").count(), 6 * 2 + 3, "two CI cells per row, one per comparison\n{md}");
    assert!(md.contains("No interval is given for fewer than 3 seeds"), "{md}");
    // Not adaptive: no best-so-far plot for a grid.
    assert!(!files.contains_key("search.svg"));
}

#[test]
fn five_seeds_bars_inside_0_100_even_at_100_percent() {
    let trials = demo_like(5);
    let (d, files) = plot_of(&trials);
    assert_inside_0_100(&d);
    // Six configurations with a bar each (a vertical line and two caps) plus two legend lines;
    // dec at 100% labels has seeds 1.0 1.0 1.0 and two below, the case a t interval overshoots.
    assert_eq!(d.data_lines, 2 + 6 * 3, "{d:?}");
    assert!(d.texts.iter().any(|t| t == "mean accuracy; bars: 95% logit-t interval (n ≥ 3)"), "{:?}", d.texts);

    // The t interval of that configuration would pass 100%; summary.csv's stays below 1.
    let mut r = csv::Reader::from_reader(files["summary.csv"].as_bytes());
    let h = r.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|c| c == name).unwrap();
    let mut overshoot_avoided = 0;
    for rec in r.records() {
        let rec = rec.unwrap();
        let get = |c: &str| rec[col(c)].parse::<f64>().unwrap();
        let (lo, hi, mean, sd) =
            (get("accuracy_ci95_low"), get("accuracy_ci95_high"), get("accuracy_mean"), get("accuracy_std"));
        assert_eq!(&rec[col("accuracy_ci95_method")], "logit_t");
        assert_eq!(&rec[col("loss_ci95_method")], "t", "loss is unbounded");
        assert!(0.0 <= lo && lo <= mean && mean <= hi && hi <= 1.0, "{lo} {mean} {hi}");
        // t_{0.975,4} = 2.776445 (printed table).
        if mean + 2.776445 * sd / 5f64.sqrt() > 1.0 {
            overshoot_avoided += 1;
        }
    }
    assert!(overshoot_avoided >= 2, "the sample exercises the bound ({overshoot_avoided})");
    let md = &files["table.md"];
    assert!(md.contains("logit-t interval"), "{md}");
    assert!(!md.contains("none (n ="), "{md}");
}
