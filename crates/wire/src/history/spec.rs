//! One history rule, `GLOB=SIZE[/TTL]`: which rooms keep a history, how many messages it
//! holds and how long one is kept (e.g. `chat:*=200/10m`). The gateway (`--history`) and the
//! emitter (`EmitterOptions::history`, `sio-emit --history`) read the same rules with this.
//!
//! Parsed and checked once, at start-up; matching allocates nothing.
use std::{fmt, time::Duration};

use serde::Serialize;

use crate::{
    duration::{format_duration, parse_duration},
    room_glob::Pattern,
};

/// Largest SIZE: a history is kept in memory (one ring per room) or in one Redis Stream.
pub const MAX_SIZE: usize = 100_000;

/// Shortest TTL accepted.
pub const MIN_TTL: Duration = Duration::from_secs(1);

/// Longest TTL accepted (30 days).
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// A compiled history rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySpec {
    pub glob: Pattern,
    /// Messages kept per room; older ones are trimmed.
    pub size: usize,
    /// How long one message is kept, and how long an idle history lives; `None` = no expiry by
    /// age (in Redis the keys still expire after [`super::stream::IDLE_EXPIRY_WITHOUT_TTL`]
    /// without a write; in a node's memory the budget may evict it).
    pub ttl: Option<Duration>,
}

impl HistorySpec {
    /// Parse `GLOB=SIZE[/TTL]`; the error names what is wrong.
    pub fn parse(src: &str) -> Result<HistorySpec, String> {
        let src = src.trim();
        let (glob, rest) = src
            .rsplit_once('=')
            .ok_or_else(|| format!("`{src}`: expected GLOB=SIZE[/TTL], e.g. chat:*=200/10m"))?;
        let glob = glob.trim();
        if glob.is_empty() {
            return Err(format!("`{src}`: empty room glob"));
        }
        if glob.contains('{') || glob.contains('}') {
            return Err(format!(
                "`{src}`: a history glob cannot hold `{{...}}` placeholders (`*` and `?` only)"
            ));
        }
        let glob = Pattern::parse(glob).map_err(|e| format!("`{src}`: {e}"))?;
        let (size, ttl) = match rest.split_once('/') {
            Some((s, t)) => (s.trim(), Some(t.trim())),
            None => (rest.trim(), None),
        };
        let size: usize = size
            .parse()
            .map_err(|_| format!("`{src}`: SIZE `{size}` is not a whole number"))?;
        if size == 0 || size > MAX_SIZE {
            return Err(format!("`{src}`: SIZE must be 1-{MAX_SIZE}"));
        }
        let ttl = match ttl {
            None => None,
            Some(t) => {
                let d = parse_duration(t).map_err(|e| format!("`{src}`: TTL {e}"))?;
                if !(MIN_TTL..=MAX_TTL).contains(&d) {
                    return Err(format!("`{src}`: TTL must be between 1s and 30 days"));
                }
                Some(d)
            }
        };
        Ok(HistorySpec { glob, size, ttl })
    }

    /// Does `room` fall under this rule? (Personal rooms, `user:<sub>`, only for a glob
    /// written with that prefix; see [`crate::room_glob`].)
    pub fn matches(&self, room: &str) -> bool {
        self.glob.matches(room, None)
    }
}

/// Written back as parsed (`chat:*=200/600000ms`), so `check-config`'s output parses again.
impl fmt::Display for HistorySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.glob.as_str(), self.size)?;
        if let Some(t) = self.ttl {
            write!(f, "/{}", format_duration(t))?;
        }
        Ok(())
    }
}

impl Serialize for HistorySpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_back() {
        let s = HistorySpec::parse("chat:*=200/10m").unwrap();
        assert_eq!(s.size, 200);
        assert_eq!(s.ttl, Some(Duration::from_secs(600)));
        assert!(s.matches("chat:lobby") && !s.matches("news"));
        let again = HistorySpec::parse(&s.to_string()).unwrap();
        assert_eq!(again, s);
        let no_ttl = HistorySpec::parse("news=5").unwrap();
        assert_eq!((no_ttl.size, no_ttl.ttl), (5, None));
        assert_eq!(no_ttl.to_string(), "news=5");
    }

    #[test]
    fn bad_rules_say_why() {
        for (bad, why) in [
            ("chat:*", "expected GLOB=SIZE"),
            ("=10", "empty room glob"),
            ("a=0", "SIZE must be"),
            ("a=100001", "SIZE must be"),
            ("a=ten", "not a whole number"),
            ("a=-1", "not a whole number"),
            ("a=10/soon", "TTL"),
            ("a=10/0s", "between 1s"),
            ("a=10/999999999s", "between 1s"),
            ("user:{sub}=10", "placeholders"),
        ] {
            let e = HistorySpec::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
