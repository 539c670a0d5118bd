//! How numbers and parameter values are spelled in reports.

/// A number in a CSV cell: Rust's shortest text that reads back to the same `f64`, so every
/// number in a CSV file can be recomputed bit for bit (`NaN`, `inf`, `-inf` for non-finite).
pub(crate) fn csv_num(x: f64) -> String {
    x.to_string()
}

/// An optional number in a CSV cell; absent is the empty cell.
pub(crate) fn csv_opt(x: Option<f64>) -> String {
    x.map(csv_num).unwrap_or_default()
}

/// A number rounded for a human-facing table.
pub(crate) fn fixed(x: f64, decimals: usize) -> String {
    let s = format!("{x:.decimals$}");
    // "-0.00" reads as a sign the data does not have.
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}

/// Like [`fixed`] with an explicit `+` on positive values, for differences.
pub(crate) fn signed(x: f64, decimals: usize) -> String {
    let s = fixed(x, decimals);
    if s.starts_with('-') || s.chars().all(|c| c == '0' || c == '.') {
        s
    } else {
        format!("+{s}")
    }
}

/// An integer-valued count with thousands separators (851713 → "851,713"), the way the paper
/// prints parameter counts. Non-integral values keep their decimals after the grouped part.
pub(crate) fn grouped(x: f64) -> String {
    if !x.is_finite() {
        return csv_num(x);
    }
    let rounded = x.round();
    let digits = format!("{}", rounded.abs() as u128);
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if rounded < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// A number for a person glancing at a page or an axis: up to 4 decimals without trailing
/// zeros, scientific notation outside [0.001, 10⁶).
pub fn readable(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let a = x.abs();
    if a != 0.0 && !(1e-3..1e6).contains(&a) {
        return format!("{x:.3e}");
    }
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// A p-value for a table: three decimals, or "<0.001".
pub(crate) fn p_value(p: f64) -> String {
    if p < 0.001 {
        "<0.001".to_string()
    } else {
        fixed(p, 3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_numbers_read_back_exactly() {
        for x in [0.1 + 0.2, 1e-9, 851713.0, -3.25, 1.0 / 3.0, f64::MAX] {
            assert_eq!(csv_num(x).parse::<f64>().unwrap(), x);
        }
        assert!(csv_num(f64::NAN).parse::<f64>().unwrap().is_nan());
        assert_eq!(csv_num(f64::NEG_INFINITY).parse::<f64>().unwrap(), f64::NEG_INFINITY);
        assert_eq!(csv_opt(None), "");
    }

    #[test]
    fn table_numbers() {
        assert_eq!(fixed(73.144, 2), "73.14");
        assert_eq!(fixed(-0.001, 2), "0.00");
        assert_eq!(signed(2.719, 2), "+2.72");
        assert_eq!(signed(-0.5, 2), "-0.50");
        assert_eq!(signed(0.0001, 2), "0.00");
        assert_eq!(grouped(851713.0), "851,713");
        assert_eq!(grouped(14_707_911.0), "14,707,911");
        assert_eq!(grouped(999.0), "999");
        assert_eq!(grouped(-1234.0), "-1,234");
        assert_eq!(p_value(0.0132), "0.013");
        assert_eq!(p_value(0.0004), "<0.001");
    }
}
