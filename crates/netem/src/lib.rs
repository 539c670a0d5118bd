//! What happens to each packet: dropped with probability `loss`, otherwise released after
//! `delay ± jitter` (uniform), each packet drawn independently, as `tc netem delay D J loss L`
//! does (so jitter reorders packets, as netem's does without a rate).
//!
//! Kept apart from the NFQUEUE plumbing in `main.rs` so the arithmetic is tested without root.

use std::time::Duration;

/// A link's impairment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Impairment {
    pub delay: Duration,
    pub jitter: Duration,
    /// Probability in [0, 1] that a packet is dropped.
    pub loss: f64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    #[error("`{0}` is not a duration: write e.g. 200ms, 1.5s or 0")]
    Duration(String),
    #[error("`{0}` is not a loss: write a percentage (5%) or a fraction in [0, 1] (0.05)")]
    Loss(String),
    #[error("jitter {jitter:?} exceeds delay {delay:?}: a packet cannot leave before it arrived")]
    JitterAboveDelay { delay: Duration, jitter: Duration },
}

/// `200ms`, `1.5s`, `50us` or `0`.
pub fn parse_duration(text: &str) -> Result<Duration, ParseError> {
    let bad = || ParseError::Duration(text.to_string());
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let (number, scale) = [("us", 1e-6), ("ms", 1e-3), ("s", 1.0)]
        .iter()
        .find_map(|(unit, scale)| t.strip_suffix(unit).map(|n| (n, *scale)))
        .ok_or_else(bad)?;
    let value: f64 = number.trim().parse().map_err(|_| bad())?;
    if !value.is_finite() || value < 0.0 || value * scale > 3600.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(value * scale))
}

/// `5%` or `0.05`.
pub fn parse_loss(text: &str) -> Result<f64, ParseError> {
    let bad = || ParseError::Loss(text.to_string());
    let t = text.trim();
    let value: f64 = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map_err(|_| bad())? / 100.0,
        None => t.parse().map_err(|_| bad())?,
    };
    if !(0.0..=1.0).contains(&value) {
        return Err(bad());
    }
    Ok(value)
}

impl Impairment {
    pub fn new(delay: Duration, jitter: Duration, loss: f64) -> Result<Impairment, ParseError> {
        if jitter > delay {
            return Err(ParseError::JitterAboveDelay { delay, jitter });
        }
        Ok(Impairment { delay, jitter, loss })
    }
}

/// Draws each packet's fate from a seeded generator, so a run can be repeated.
pub struct Fates {
    impairment: Impairment,
    state: u64,
}

impl Fates {
    pub fn new(impairment: Impairment, seed: u64) -> Fates {
        Fates { impairment, state: seed }
    }

    /// `None`: drop the packet; `Some(d)`: release it `d` after it was queued.
    pub fn draw(&mut self) -> Option<Duration> {
        let Impairment { delay, jitter, loss } = self.impairment;
        if loss > 0.0 && self.uniform() < loss {
            return None;
        }
        let offset = (2.0 * self.uniform() - 1.0) * jitter.as_secs_f64();
        Some(Duration::from_secs_f64((delay.as_secs_f64() + offset).max(0.0)))
    }

    /// Uniform in [0, 1) from splitmix64: plenty for packet fates, and no dependency.
    fn uniform(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations_and_losses_and_names_what_it_refuses() {
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("50us"), Ok(Duration::from_micros(50)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["200", "ms", "-1ms", "nanms", "2h", "7200s"] {
            assert_eq!(parse_duration(bad), Err(ParseError::Duration(bad.into())), "{bad}");
        }
        assert_eq!(parse_loss("5%"), Ok(0.05));
        assert_eq!(parse_loss("0.05"), Ok(0.05));
        for bad in ["105%", "-1%", "1.5", "five"] {
            assert_eq!(parse_loss(bad), Err(ParseError::Loss(bad.into())), "{bad}");
        }
        assert!(Impairment::new(Duration::from_millis(10), Duration::from_millis(20), 0.0).is_err());
    }

    #[test]
    fn fates_follow_the_impairment() {
        let imp = Impairment::new(Duration::from_millis(200), Duration::from_millis(50), 0.05).unwrap();
        let mut fates = Fates::new(imp, 7);
        let n = 200_000;
        let drawn: Vec<Option<Duration>> = (0..n).map(|_| fates.draw()).collect();
        let dropped = drawn.iter().filter(|f| f.is_none()).count() as f64 / n as f64;
        assert!((dropped - 0.05).abs() < 0.003, "dropped {dropped}");
        let delays: Vec<f64> = drawn.iter().flatten().map(|d| d.as_secs_f64()).collect();
        assert!(delays.iter().all(|&d| (0.150..=0.250).contains(&d)));
        let mean = delays.iter().sum::<f64>() / delays.len() as f64;
        assert!((mean - 0.200).abs() < 0.001, "mean delay {mean}");
        // Uniform: about a fifth of the packets in each 20 ms band.
        let low = delays.iter().filter(|&&d| d < 0.170).count() as f64 / delays.len() as f64;
        assert!((low - 0.2).abs() < 0.01, "share below 170 ms: {low}");
        // Same seed, same fates.
        let mut again = Fates::new(imp, 7);
        assert!(drawn.iter().take(1000).all(|f| *f == again.draw()));
    }

    #[test]
    fn no_impairment_passes_everything_at_once() {
        let mut fates = Fates::new(Impairment::new(Duration::ZERO, Duration::ZERO, 0.0).unwrap(), 1);
        assert!((0..1000).all(|_| fates.draw() == Some(Duration::ZERO)));
    }
}
