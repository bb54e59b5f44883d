//! The one rule an advertise URL (`--advertise`, and every node's entry in the registry) must
//! follow: `http://` or `https://`, a host, an optional port, and nothing after (an empty path or
//! `/` only: no other path, no query, no fragment, no userinfo).
//!
//! Peers build a forwarding target as `<advertise><path?query of the client's request>`
//! ([`crate::cluster::forward`]). An advertise URL with a path or a query of its own (e.g.
//! `http://127.0.0.1:31420/internal/admin/secrets?x=`) would turn a client's poll into a request
//! for any URL the node can reach, its answer handed back to the client (SSRF). The same rule is
//! applied where the URL is configured ([`super::resolve`], refused at start-up) and wherever a
//! node reads it from Redis ([`crate::cluster::registry`]: such an entry is ignored), so a URL that passes
//! here can only ever name an origin.
use std::fmt;

/// Why an advertise URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadAdvertise(&'static str);

impl fmt::Display for BadAdvertise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for BadAdvertise {}

/// What the rule requires, for error messages.
pub const RULE: &str =
    "must be http://HOST[:PORT] or https://HOST[:PORT] with no path, query, fragment or userinfo";

/// `url` in its canonical form (no trailing `/`) if it names an origin only, else why not.
pub fn normalize(url: &str) -> Result<String, BadAdvertise> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or(BadAdvertise("the scheme must be http:// or https://"))?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() {
        return Err(BadAdvertise("no host"));
    }
    if authority.contains('@') {
        return Err(BadAdvertise("userinfo (user@) is not allowed"));
    }
    if authority.contains(['/', '?', '#']) {
        return Err(BadAdvertise(
            "a path, query or fragment is not allowed (host and port only)",
        ));
    }
    let (host, port) = split_host_port(authority)?;
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    };
    if !host_ok {
        return Err(BadAdvertise("the host is not a valid name or address"));
    }
    if let Some(p) = port
        && !(!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok())
    {
        return Err(BadAdvertise("the port must be a number from 0 to 65535"));
    }
    Ok(url.strip_suffix('/').unwrap_or(url).to_owned())
}

/// `host[:port]`, with a bracketed IPv6 host.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), BadAdvertise> {
    if authority.starts_with('[') {
        let end = authority
            .find(']')
            .ok_or(BadAdvertise("unterminated [IPv6] host"))?;
        let (host, after) = authority.split_at(end + 1);
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(p) => Ok((host, Some(p))),
                None => Err(BadAdvertise("unexpected characters after the [IPv6] host")),
            },
        };
    }
    Ok(match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_accepted_and_canonical() {
        for (url, canon) in [
            ("http://gw-1.internal:3000", "http://gw-1.internal:3000"),
            ("http://gw-1.internal:3000/", "http://gw-1.internal:3000"),
            ("https://gw_2.example.com", "https://gw_2.example.com"),
            ("http://127.0.0.1:4001", "http://127.0.0.1:4001"),
            ("http://[::1]:3000/", "http://[::1]:3000"),
            ("http://[fe80::1]", "http://[fe80::1]"),
        ] {
            assert_eq!(normalize(url).as_deref(), Ok(canon), "{url}");
        }
    }

    #[test]
    fn anything_but_an_origin_is_refused() {
        for url in [
            // The attack: a path and an open query the client's path?query is appended to.
            "http://127.0.0.1:31420/internal/admin/secrets?x=",
            "http://127.0.0.1:31420/internal",
            "http://127.0.0.1:31420?x=",
            "http://127.0.0.1:31420/?x=",
            "http://127.0.0.1:31420#frag",
            "http://127.0.0.1:31420//",
            "http://user:pass@127.0.0.1:3000",
            "http://evil.com@127.0.0.1:3000",
            "ftp://127.0.0.1:3000",
            "HTTP://127.0.0.1:3000",
            "127.0.0.1:3000",
            "http://",
            "http:///",
            "http://:3000",
            "http://host:",
            "http://host:99999",
            "http://host:80x",
            "http://host:3000:1",
            "http://ho st:3000",
            "http://host\r\nx:1",
            "http://[::1",
            "http://[nothex]:1",
            "http://[::1]x",
            "http://host%2f:1",
            "",
        ] {
            assert!(normalize(url).is_err(), "{url:?} accepted");
        }
    }
}
