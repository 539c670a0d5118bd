//! How numbers and times read on the pages.

/// A metric or parameter value: the reports' readable spelling (up to 4 decimals, no trailing
/// noise), so pages and charts write numbers alike.
pub(crate) use decsweep_report::readable_number as num;

/// A duration in ms as people say it: `45 s`, `12 min`, `3.5 h`, `2.1 d`.
pub(crate) fn duration_ms(ms: i64) -> String {
    let s = ms.max(0) as f64 / 1000.0;
    if s < 90.0 {
        format!("{s:.0} s")
    } else if s < 90.0 * 60.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 36.0 * 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} d", s / 86400.0)
    }
}

/// Unix ms as an RFC 3339 UTC time (seconds).
pub(crate) fn time_ms(ms: i64) -> String {
    decsweep_coordinator::rfc3339(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_durations_read_well() {
        assert_eq!(num(0.5), "0.5");
        assert_eq!(num(0.123456), "0.1235");
        assert_eq!(num(3.0), "3");
        assert_eq!(num(1e-5), "1.000e-5");
        assert_eq!(num(-0.00001), "-1.000e-5");
        assert_eq!(duration_ms(45_000), "45 s");
        assert_eq!(duration_ms(20 * 60_000), "20 min");
        assert_eq!(duration_ms(5 * 3_600_000), "5.0 h");
    }
}
