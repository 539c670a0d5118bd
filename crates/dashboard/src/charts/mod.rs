//! Charts the reports do not draw (parallel coordinates, importance bars, per-trial and
//! per-study epoch curves), as SVG text the pages inline. The reports' own plots
//! (`accuracy_vs_label_fraction.svg`, `search.svg`) are reused as `decsweep_report` renders them.

mod axis;
mod bars;
mod lines;
mod parallel;
mod svg;

pub(crate) use bars::bars;
pub(crate) use lines::{line_chart, LineSeries, Marker};
pub(crate) use parallel::{parallel, Cell as ParallelCell, Line as ParallelLine};

/// Colour-blind-safe colours (Okabe–Ito), as the reports use.
pub(crate) const PALETTE: [&str; 7] = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"];
