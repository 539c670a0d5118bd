//! Failed dashboard logins counted per client address, so a token cannot be guessed through the
//! login form: after [`MAX_FAILED_LOGINS`] failures within [`LOGIN_WINDOW`] an address is refused
//! (429 with `Retry-After`) until its window ends, even with the right token.
//!
//! IPv6 clients are counted by their /64, which one machine usually holds whole. The table is
//! bounded ([`MAX_TRACKED_CLIENTS`]): windows that ended are dropped first, then the oldest.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins an address may make per [`LOGIN_WINDOW`].
pub const MAX_FAILED_LOGINS: u32 = 5;

/// The window failed logins are counted in, from an address's first failure.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);

/// The most addresses whose failures are remembered at once.
pub const MAX_TRACKED_CLIENTS: usize = 10_000;

#[derive(Debug, Default)]
pub(crate) struct LoginLimiter {
    failures: Mutex<HashMap<IpAddr, Window>>,
}

#[derive(Clone, Copy, Debug)]
struct Window {
    started: Instant,
    failed: u32,
}

/// The key an address is counted under: IPv4 as is (an IPv4-mapped IPv6 address as IPv4), IPv6
/// by its /64. `None` (a peer address the server does not know) shares one key.
fn client_key(peer: Option<IpAddr>) -> IpAddr {
    match peer.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        Some(v4) => v4,
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

impl LoginLimiter {
    /// How long `peer` must wait before it may try again; `None` when it may try now.
    pub(crate) fn retry_after(&self, peer: Option<IpAddr>, now: Instant) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let window = failures.get(&client_key(peer))?;
        let ends = window.started + LOGIN_WINDOW;
        (window.failed >= MAX_FAILED_LOGINS && now < ends).then(|| ends - now)
    }

    /// Counts a failed login of `peer`.
    pub(crate) fn failed(&self, peer: Option<IpAddr>, now: Instant) {
        let key = client_key(peer);
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if !failures.contains_key(&key) && failures.len() >= MAX_TRACKED_CLIENTS {
            failures.retain(|_, w| now < w.started + LOGIN_WINDOW);
            if failures.len() >= MAX_TRACKED_CLIENTS {
                let oldest = failures.iter().min_by_key(|(_, w)| w.started).map(|(k, _)| *k);
                if let Some(oldest) = oldest {
                    failures.remove(&oldest);
                }
            }
        }
        let window = failures.entry(key).or_insert(Window { started: now, failed: 0 });
        if now >= window.started + LOGIN_WINDOW {
            *window = Window { started: now, failed: 0 };
        }
        window.failed += 1;
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.failures.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn an_address_is_held_back_after_five_failures_until_its_window_ends() {
        let limiter = LoginLimiter::default();
        let t0 = Instant::now();
        for i in 0..MAX_FAILED_LOGINS {
            assert_eq!(limiter.retry_after(ip("192.0.2.7"), t0), None, "failure {i} is still allowed");
            limiter.failed(ip("192.0.2.7"), t0);
        }
        let wait = limiter.retry_after(ip("192.0.2.7"), t0 + Duration::from_secs(10)).unwrap();
        assert_eq!(wait, Duration::from_secs(50));
        assert_eq!(limiter.retry_after(ip("192.0.2.8"), t0), None, "another address is not held back");
        assert_eq!(
            limiter.retry_after(ip("::ffff:192.0.2.7"), t0).map(|_| ()),
            Some(()),
            "the mapped form is the same"
        );
        assert_eq!(limiter.retry_after(ip("192.0.2.7"), t0 + LOGIN_WINDOW), None, "the window ended");
        limiter.failed(ip("192.0.2.7"), t0 + LOGIN_WINDOW);
        assert_eq!(limiter.retry_after(ip("192.0.2.7"), t0 + LOGIN_WINDOW), None, "a new window counts from one");
    }

    #[test]
    fn ipv6_is_counted_by_its_64() {
        let limiter = LoginLimiter::default();
        let t0 = Instant::now();
        for i in 0..MAX_FAILED_LOGINS {
            limiter.failed(ip(&format!("2001:db8:1:2::{i:x}")), t0);
        }
        assert!(limiter.retry_after(ip("2001:db8:1:2::ffff"), t0).is_some());
        assert!(limiter.retry_after(ip("2001:db8:1:3::1"), t0).is_none());
    }

    #[test]
    fn the_table_stays_bounded() {
        let limiter = LoginLimiter::default();
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED_CLIENTS as u32 + 50) {
            limiter.failed(Some(IpAddr::V4(i.into())), t0 + Duration::from_millis(u64::from(i)));
        }
        assert_eq!(limiter.tracked(), MAX_TRACKED_CLIENTS);
    }
}
