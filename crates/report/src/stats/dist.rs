//! Student-t and normal distributions.

use super::special::{beta_inc, gamma_inc_lower, gamma_inc_upper};

/// P(|T| ≥ |t|) for T ~ Student-t with `df` degrees of freedom.
///
/// Uses P(|T| ≥ t) = I_{df/(df+t²)}(df/2, 1/2), which stays accurate far into the tail where
/// `1 − cdf` would cancel to zero.
pub fn student_t_two_sided_p(t: f64, df: f64) -> f64 {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if t.is_infinite() {
        return 0.0;
    }
    beta_inc(df / 2.0, 0.5, df / (df + t * t))
}

/// P(T ≤ t) for T ~ Student-t with `df` degrees of freedom (df > 0, not necessarily whole).
pub fn student_t_cdf(t: f64, df: f64) -> f64 {
    let tail = student_t_two_sided_p(t, df) / 2.0;
    if t > 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// The `p`-quantile of Student-t with `df` degrees of freedom, for p in (0, 1).
///
/// Found by bisection on [`student_t_cdf`]: the CDF is monotone, so bisection cannot fail, and
/// reports call this a handful of times, so its ~100 CDF evaluations are of no concern.
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    if p.is_nan() || p <= 0.0 || p >= 1.0 || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if p == 0.5 {
        return 0.0;
    }
    // The distribution is symmetric: solve in the upper half, where the bracket grows upwards.
    let (target, sign) = if p > 0.5 { (p, 1.0) } else { (1.0 - p, -1.0) };
    let mut lo = 0.0;
    let mut hi = 1.0;
    while student_t_cdf(hi, df) < target {
        lo = hi;
        hi *= 2.0;
        if hi > 1e300 {
            return sign * f64::INFINITY;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if student_t_cdf(mid, df) < target {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-14 * hi {
            break;
        }
    }
    sign * 0.5 * (lo + hi)
}

/// Φ(z), the standard normal CDF: Φ(z) = (1 + erf(z/√2)) / 2 with erf(x) = P(1/2, x²).
pub fn normal_cdf(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    let x = z * z / 2.0;
    if z >= 0.0 {
        0.5 + 0.5 * gamma_inc_lower(0.5, x)
    } else {
        // In the lower tail take the upper incomplete gamma directly: no cancellation.
        0.5 * gamma_inc_upper(0.5, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64, tol: f64) {
        assert!((got - want).abs() <= tol, "got {got}, want {want}");
    }

    #[test]
    fn t_quantiles_match_printed_tables() {
        // Two-sided 95% critical values, as printed in every t table.
        close(student_t_quantile(0.975, 1.0), 12.706205, 1e-6);
        close(student_t_quantile(0.975, 4.0), 2.776445, 1e-6);
        close(student_t_quantile(0.975, 7.0), 2.364624, 1e-6);
        close(student_t_quantile(0.975, 9.0), 2.262157, 1e-6);
        close(student_t_quantile(0.975, 29.0), 2.045230, 1e-6);
        close(student_t_quantile(0.995, 10.0), 3.169273, 1e-6);
        close(student_t_quantile(0.025, 9.0), -2.262157, 1e-6);
        // Large df approaches the normal 1.959964.
        close(student_t_quantile(0.975, 1e6), 1.959966, 1e-5);
        assert_eq!(student_t_quantile(0.5, 3.0), 0.0);
        assert!(student_t_quantile(1.0, 3.0).is_nan() && student_t_quantile(0.9, 0.0).is_nan());
    }

    #[test]
    fn t_cdf_matches_closed_forms() {
        // df = 1 is the Cauchy distribution: F(t) = 1/2 + atan(t)/π, so F(1) = 3/4.
        close(student_t_cdf(1.0, 1.0), 0.75, 1e-14);
        close(student_t_cdf(-3.0, 1.0), 0.5 + (-3.0f64).atan() / std::f64::consts::PI, 1e-14);
        // df = 2: F(t) = 1/2 + t / (2 √(2 + t²)).
        for t in [-4.0, -0.3, 0.0, 0.8, 2.5] {
            close(student_t_cdf(t, 2.0), 0.5 + t / (2.0 * (2.0 + t * t).sqrt()), 1e-14);
        }
        // df = 4: F(t) = 1/2 + (3/4) α (1 − α²/3) with α = t / √(4 + t²).
        for t in [-2.0, 0.5, 3.7] {
            let a = t / (4.0f64 + t * t).sqrt();
            close(student_t_cdf(t, 4.0), 0.5 + 0.75 * a * (1.0 - a * a / 3.0), 1e-14);
        }
        assert_eq!(student_t_two_sided_p(f64::INFINITY, 3.0), 0.0);
        assert_eq!(student_t_two_sided_p(0.0, 3.0), 1.0);
    }

    #[test]
    fn normal_cdf_matches_tables() {
        close(normal_cdf(0.0), 0.5, 1e-15);
        close(normal_cdf(1.959963984540054), 0.975, 1e-12);
        close(normal_cdf(-1.0), 0.158655253931457, 1e-12);
        // Far tail: Φ(−8) = 6.22096057427178e−16, kept to relative precision.
        let tail = normal_cdf(-8.0);
        assert!((tail / 6.22096057427178e-16 - 1.0).abs() < 1e-9, "{tail}");
    }
}
