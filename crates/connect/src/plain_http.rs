//! A client's token crosses the network in clear text when its coordinator is `http://` on
//! another machine: the worker says so once at start-up.

use std::net::IpAddr;

/// The warning for `url`, or `None` when it is `https://`, on a loopback host, or not a URL at
/// all (connecting reports that).
pub fn clear_text_warning(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    if parsed.scheme() != "http" {
        return None;
    }
    let host = parsed.host_str()?;
    if is_loopback(host) {
        return None;
    }
    Some(format!(
        "the coordinator {url} is plain http:// to {host}, another machine: the token and every trial's \
         parameters and results cross the network in clear text, readable and alterable on the way. Serve it \
         over https (decsweep serve --tls-cert/--tls-key) and give the worker --ca-cert for a private CA"
    ))
}

fn is_loopback(host: &str) -> bool {
    let lower = host.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return true;
    }
    // host_str() keeps an IPv6 address's brackets.
    match lower.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => a.is_loopback(),
        Ok(IpAddr::V6(a)) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_beyond_loopback_is_warned_about() {
        for url in ["http://10.0.0.5:8320", "http://coordinator.lab:8320/", "http://[2001:db8::1]:8320"] {
            let warning = clear_text_warning(url).unwrap_or_else(|| panic!("{url}: no warning"));
            assert!(warning.contains("clear text") && warning.contains("--ca-cert"), "{warning}");
        }
        for url in [
            "https://10.0.0.5:8320",
            "http://127.0.0.1:8320",
            "http://127.3.2.1:1",
            "http://localhost:8320",
            "http://LOCALHOST",
            "http://[::1]:8320",
            "http://[::ffff:127.0.0.1]:8320",
            "not a url",
        ] {
            assert_eq!(clear_text_warning(url), None, "{url}");
        }
    }
}
