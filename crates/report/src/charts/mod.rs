//! Charts the report files do not have but the dashboard shows (parallel coordinates,
//! importance bars, per-trial and per-study epoch curves), as SVG elements to inline in a page.
//! They are drawn with the reports' own [`crate::svg`] writer; the report files' plots
//! (`accuracy_vs_label_fraction.svg`, `search.svg`) are what [`crate::render`] writes.

mod axis;
mod bars;
mod lines;
mod parallel;

pub use bars::bars;
pub use lines::{line_chart, LineSeries, Marker};
pub use parallel::{parallel, Cell as ParallelCell, Line as ParallelLine};
