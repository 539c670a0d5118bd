//! Statistics for reports, written here rather than taken from `statrs`.
//!
//! Why by hand: a report needs only the Student-t and normal distributions, a summary of a
//! sample, two paired tests, an interval on the logit scale and Holm's correction. Those are a
//! few hundred lines over two special functions (the regularised incomplete beta and gamma
//! functions, evaluated by their continued fractions and series), which keeps this crate's
//! build light on a 2-core machine and lets every routine be checked against closed forms,
//! printed tables and hand-worked examples in the tests below.

mod describe;
mod dist;
mod interval;
mod multiple;
mod paired;
mod rounding;
mod special;

pub use describe::{NoInterval, Summary};
pub use dist::{normal_cdf, student_t_cdf, student_t_quantile, student_t_two_sided_p};
pub use interval::{
    interval95, is_unit_interval_metric, method_for, wilson95, Interval, IntervalMethod, MIN_INTERVAL_N,
};
pub use multiple::holm;
pub use paired::{paired_t_test, wilcoxon_signed_rank, PairedT, Wilcoxon, WilcoxonMethod, EXACT_MAX_N};
