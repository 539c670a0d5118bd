//! The pages' charts are the reports' ([`decsweep_report::charts`]), drawn with the one SVG
//! writer of the project; this names them for the pages.

pub(crate) use decsweep_report::charts::{bars, line_chart, parallel, LineSeries, Marker, ParallelCell, ParallelLine};
pub(crate) use decsweep_report::svg::PALETTE;
