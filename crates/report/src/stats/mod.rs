//! Statistics for reports, written here rather than taken from `statrs`.
//!
//! Why by hand: a report needs only the Student-t and normal distributions, a summary of a
//! sample and two paired tests. Those are ~300 lines over two special functions (the regularised
//! incomplete beta and gamma functions, evaluated by their continued fractions and series), which
//! keeps this crate's build light on a 2-core machine and lets every routine be checked against
//! closed forms and printed tables in the tests below.

mod describe;
mod dist;
mod paired;
mod special;

pub use describe::Summary;
pub use dist::{normal_cdf, student_t_cdf, student_t_quantile, student_t_two_sided_p};
pub use paired::{paired_t_test, wilcoxon_signed_rank, PairedT, Wilcoxon, WilcoxonMethod, EXACT_MAX_N};
