//! The `Host` rule, against DNS rebinding: a web page on `evil.example` whose name is made to
//! resolve to this machine can make a browser send requests here, with `Host: evil.example`,
//! and to the browser they are same-origin with that page. Refusing every `Host` name we do not
//! know closes that door for every route, API, dashboard and `/healthz` alike.
//!
//! A request passes when its `Host` (the port is not part of the rule) is
//!
//! - an IP address, v4 or `[v6]`: rebinding needs a name, and a browser only sends an address
//!   it connected to itself, so the page's origin is then this server (or whatever forwards to
//!   it: a NAT or container port mapping, a load balancer's address). This covers loopback,
//!   the bound address and, when serving on `0.0.0.0` / `::`, each of the machine's addresses;
//! - `localhost` (browsers resolve it to loopback themselves);
//! - a name given with `decsweep serve --allowed-host NAME` ([`AllowedHosts::new`]), e.g. a
//!   Kubernetes Service or compose service name, or the machine's DNS name;
//! - absent: an HTTP/1.0 request from a non-browser client (every browser sends `Host`, so a
//!   request without one is not a page's).
//!
//! Anything else is answered 421 Misdirected Request, naming the rule and the flag.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use decsweep_api::wire::ApiError;

/// The `Host` names a coordinator answers to besides IP addresses and `localhost`.
#[derive(Clone, Debug, Default)]
pub struct AllowedHosts {
    /// Lower case, without a trailing dot or a port.
    names: Vec<String>,
}

/// Why a `Host` was refused: the value, for the message.
#[derive(Debug, PartialEq, Eq)]
pub struct MisdirectedHost(pub String);

impl AllowedHosts {
    /// `names` as given to `--allowed-host` (case, a trailing dot and a `:port` are ignored).
    pub fn new<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> AllowedHosts {
        let names = names.into_iter().map(|n| normalise(strip_port(n.as_ref().trim()))).filter(|n| !n.is_empty());
        AllowedHosts { names: names.collect() }
    }

    /// Whether a request with this `Host` value (`None`: no `Host`) may be served.
    pub fn check(&self, host: Option<&str>) -> Result<(), MisdirectedHost> {
        let Some(value) = host else { return Ok(()) };
        let name = strip_port(value.trim());
        let bracketed_v6 = name.strip_prefix('[').and_then(|n| n.strip_suffix(']'));
        if let Some(v6) = bracketed_v6 {
            return v6.parse::<std::net::Ipv6Addr>().map(|_| ()).map_err(|_| MisdirectedHost(value.to_string()));
        }
        if name.parse::<std::net::Ipv4Addr>().is_ok() {
            return Ok(());
        }
        let name = normalise(name);
        if name == "localhost" || self.names.contains(&name) {
            return Ok(());
        }
        Err(MisdirectedHost(value.to_string()))
    }
}

/// `host:port` → `host`; `[v6]:port` → `[v6]`; a bare name stays.
fn strip_port(value: &str) -> &str {
    if value.starts_with('[') {
        return value.find(']').map_or(value, |end| &value[..=end]);
    }
    match value.rsplit_once(':') {
        // One colon: a port. More (an unbracketed IPv6 address, not valid in Host) stays whole.
        Some((name, _)) if !name.contains(':') => name,
        _ => value,
    }
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The rule as a layer over every route (see [`crate::Server::serve_with`]).
pub(crate) async fn require_known_host(State(allowed): State<AllowedHosts>, req: Request, next: Next) -> Response {
    // HTTP/1.1 puts it in `Host`; an absolute-form request line may carry it instead.
    let host = match req.headers().get(header::HOST) {
        Some(v) => Some(v.to_str().unwrap_or("\u{fffd}").to_string()),
        None => req.uri().authority().map(|a| a.as_str().to_string()),
    };
    match allowed.check(host.as_deref()) {
        Ok(()) => next.run(req).await,
        Err(MisdirectedHost(host)) => {
            tracing::info!(%host, path = %req.uri().path(), "refused a request for an unknown Host");
            let error = format!(
                "Host `{host}` is not a name this coordinator answers to (DNS rebinding protection): a request's \
                 Host must be an IP address, `localhost`, or a name given with `decsweep serve --allowed-host NAME`"
            );
            (StatusCode::MISDIRECTED_REQUEST, Json(ApiError { error, details: Vec::new() })).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_localhost_pass_with_or_without_a_port() {
        let none = AllowedHosts::default();
        for host in [
            "127.0.0.1",
            "127.0.0.1:8320",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:8320",
            "10.20.0.1:8320",
            "localhost",
            "LocalHost:8320",
            "localhost.:8320",
        ] {
            assert_eq!(none.check(Some(host)), Ok(()), "{host}");
        }
        assert_eq!(none.check(None), Ok(()), "no Host (HTTP/1.0) is not a browser's request");
    }

    #[test]
    fn unknown_names_are_refused_whatever_their_port() {
        let none = AllowedHosts::default();
        for host in [
            "evil.example",
            "evil.example:8320",
            "127.0.0.1.evil.example:8320",
            "localhost.evil.example",
            "[evil]:8320",
            "[::1",
            "",
        ] {
            assert_eq!(none.check(Some(host)), Err(MisdirectedHost(host.into())), "{host}");
        }
    }

    #[test]
    fn allowed_names_pass_ignoring_case_port_and_trailing_dot() {
        let allowed = AllowedHosts::new(["Decsweep-Coordinator", "coord.lab.example.:8320", ""]);
        assert_eq!(allowed.check(Some("decsweep-coordinator:8320")), Ok(()));
        assert_eq!(allowed.check(Some("COORD.lab.example")), Ok(()));
        assert_eq!(allowed.check(Some("coord.lab.example.:9000")), Ok(()));
        assert!(allowed.check(Some("lab.example")).is_err(), "a parent domain is another name");
        assert!(allowed.check(Some("x.coord.lab.example")).is_err(), "so is a subdomain");
    }
}
