//! What a hostile client or web page puts around an HTTP request: `Host`, `Origin` and `Cookie`
//! headers, and query strings with long lists, repeated keys and huge values (issue 18).
//!
//! Header values come back as bytes that `http::HeaderValue::from_bytes` accepts (visible ASCII,
//! space, tab and obs-text `0x80..=0xff`), so every case reaches the server; the odd ones are
//! odd in what they say, not in whether they can be sent.

use crate::{weird_string, FuzzRng, Rng, SliceRandom};

/// Keeps only the bytes a header value may hold.
fn header_bytes(bytes: impl IntoIterator<Item = u8>) -> Vec<u8> {
    bytes.into_iter().filter(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f)).collect()
}

fn long(rng: &mut FuzzRng, unit: &str) -> String {
    unit.repeat(rng.gen_range(100..20_000))
}

/// A `Host` value: loopback names and addresses (with and without ports), other hosts (DNS
/// rebinding), look-alikes, IPv6 literals, user info, an empty, very long or non-ASCII value.
pub fn host_header(rng: &mut FuzzRng) -> Vec<u8> {
    const HOSTS: &[&str] = &[
        "127.0.0.1",
        "127.0.0.1:8320",
        "localhost",
        "localhost:1",
        "LOCALHOST",
        "[::1]",
        "[::1]:8320",
        "::1",
        "127.1",
        "0.0.0.0",
        "2130706433",
        "evil.example",
        "evil.example:8320",
        "localhost.evil.example",
        "127.0.0.1.nip.io",
        "127.0.0.1@evil.example",
        "evil.example#@127.0.0.1",
        "127.0.0.1:99999",
        "127.0.0.1:-1",
        "127.0.0.1:",
        ":8320",
        "[::ffff:127.0.0.1]",
        "[fe80::1%25eth0]",
        "",
        " ",
        "localhost.",
        "xn--nxasmq6b",
    ];
    match rng.gen_range(0..6) {
        0 => header_bytes(weird_string(rng).into_bytes()),
        1 => long(rng, "a.").into_bytes(),
        2 => format!("{}:{}", HOSTS.choose(rng).unwrap_or(&""), rng.gen::<u16>()).into_bytes(),
        _ => HOSTS.choose(rng).unwrap_or(&"").as_bytes().to_vec(),
    }
}

/// An `Origin` value: the server's own (`http://` + `host`), another site, `null`, other
/// schemes, a path where none belongs, or junk.
pub fn origin_header(rng: &mut FuzzRng, host: &str) -> Vec<u8> {
    const OTHERS: &[&str] = &[
        "null",
        "https://evil.example",
        "http://evil.example:8320",
        "http://localhost.evil.example",
        "file://",
        "chrome-extension://abcdef",
        "http://127.0.0.1.evil.example",
        "http://[::1]",
        "*",
        "",
    ];
    match rng.gen_range(0..6) {
        0 => format!("http://{host}").into_bytes(),
        1 => format!("https://{host}").into_bytes(),
        2 => format!("http://{host}/studies/a?x=1").into_bytes(),
        3 => header_bytes(weird_string(rng).into_bytes()),
        4 => format!("http://{}", long(rng, "o")).into_bytes(),
        _ => OTHERS.choose(rng).unwrap_or(&"").as_bytes().to_vec(),
    }
}

/// A `Cookie` value around `name` (the session cookie's): made-up session ids, the name
/// repeated, many cookies, a huge value, no `=`, separators in odd places, obs-text bytes.
pub fn cookie_header(rng: &mut FuzzRng, name: &str) -> Vec<u8> {
    let id = |rng: &mut FuzzRng| -> String { (0..rng.gen_range(0..80)).map(|_| rng.gen_range('!'..='~')).collect() };
    match rng.gen_range(0..7) {
        0 => format!("{name}={}", id(rng)).into_bytes(),
        1 => format!("{name}={}; {name}={}", id(rng), id(rng)).into_bytes(),
        2 => (0..rng.gen_range(10..3000))
            .map(|i| format!("c{i}={}", id(rng)))
            .collect::<Vec<_>>()
            .join("; ")
            .into_bytes(),
        3 => format!("{name}={}", long(rng, "A")).into_bytes(),
        4 => format!("{name}; =; ;;{name}=").into_bytes(),
        5 => header_bytes(format!("{name}=\u{ff}{}", weird_string(rng)).into_bytes()),
        _ => header_bytes(weird_string(rng).into_bytes()),
    }
}

/// The longest query [`query_string`] makes: with a path, still under the 64 KiB an
/// `http::Uri` holds (and far past what any route reads).
pub const MAX_QUERY_BYTES: usize = 56 << 10;

/// A query string (without the `?`) over `keys` and made-up ones: long lists of pairs, repeated
/// keys, comma lists, huge values, empty keys and values, stray `&`/`=`, percent-encoded junk;
/// at most [`MAX_QUERY_BYTES`].
pub fn query_string(rng: &mut FuzzRng, keys: &[&str]) -> String {
    const ODD_KEYS: &[&str] = &["", "%00", "%ZZ", "ids%5B%5D", "a[0]", "..", "%F0%9F%A6%80", "%3D"];
    let pairs = match rng.gen_range(0..4) {
        0 => rng.gen_range(100..5_000),
        _ => rng.gen_range(1..6),
    };
    // Long lists take short values (huge ones come in short lists, so both fit the cap), and no
    // `weird_string`, which builds strings of up to 70 000 characters.
    let few = pairs < 100;
    let mut out = Vec::with_capacity(pairs);
    let mut bytes = 0;
    for _ in 0..pairs {
        let key = match rng.gen_range(0..6) {
            0 => ODD_KEYS.choose(rng).copied().unwrap_or(""),
            _ => keys.choose(rng).copied().unwrap_or("k"),
        };
        let value = match (few, rng.gen_range(0..8)) {
            (_, 0) => String::new(),
            (true, 1) => (0..rng.gen_range(100..20_000)).map(|i| i.to_string()).collect::<Vec<_>>().join(","),
            (true, 2) => long(rng, "9"),
            (_, 3) => "%".into(),
            (_, 4) => "%zz%00%ff".into(),
            (true, 5) => encode(&weird_string(rng).chars().take(200).collect::<String>()),
            _ => rng.gen::<i64>().to_string(),
        };
        let pair = match rng.gen_range(0..10) {
            0 => key.to_string(),
            1 => String::new(),
            2 => "==".into(),
            _ => format!("{key}={value}"),
        };
        bytes += pair.len() + 1;
        out.push(pair);
        if bytes > MAX_QUERY_BYTES {
            break;
        }
    }
    let mut query = out.join("&");
    // Only ASCII is left after encoding, so any cut is a character boundary.
    query.truncate(MAX_QUERY_BYTES);
    query
}

/// Percent-encodes everything but unreserved characters, so any string can sit in a path or
/// a query.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn sendable(value: &[u8]) -> bool {
        value.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
    }

    #[test]
    fn every_header_value_can_be_sent() {
        let mut rng = FuzzRng::seed_from_u64(7);
        for _ in 0..2000 {
            let host = host_header(&mut rng);
            assert!(sendable(&host), "{host:?}");
            let origin = origin_header(&mut rng, "127.0.0.1:1");
            assert!(sendable(&origin), "{origin:?}");
            let cookie = cookie_header(&mut rng, "decsweep_session");
            assert!(sendable(&cookie), "{cookie:?}");
        }
    }

    #[test]
    fn queries_are_sometimes_long_and_repeat_keys() {
        let mut rng = FuzzRng::seed_from_u64(7);
        let queries: Vec<String> = (0..400).map(|_| query_string(&mut rng, &["status", "ids"])).collect();
        assert!(queries.iter().all(|q| q.bytes().all(|b| b.is_ascii_graphic())), "URI-safe");
        assert!(queries.iter().any(|q| q.matches('&').count() >= 100), "long lists");
        assert!(queries.iter().any(|q| q.len() >= 50_000), "huge values");
        assert!(queries.iter().all(|q| q.len() <= MAX_QUERY_BYTES));
        assert!(queries.iter().any(|q| q.matches("status=").count() >= 2), "repeated keys");
    }
}
