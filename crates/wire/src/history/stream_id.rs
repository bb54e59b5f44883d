//! A Redis Stream id (`<ms>-<seq>`), the offset of a message in cluster mode. Ordered as
//! Redis orders them; `0-0` is the position before the first message.
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const ZERO: StreamId = StreamId { ms: 0, seq: 0 };

    /// `<ms>-<seq>`, both decimal u64; a bare `<ms>` means `<ms>-0` (as Redis reads it).
    pub fn parse(s: &str) -> Option<StreamId> {
        let digits = |p: &str| {
            (!p.is_empty() && p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse::<u64>().ok())
                .flatten()
        };
        match s.split_once('-') {
            Some((ms, seq)) => Some(StreamId {
                ms: digits(ms)?,
                seq: digits(seq)?,
            }),
            None => Some(StreamId {
                ms: digits(s)?,
                seq: 0,
            }),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_order_print() {
        let a = StreamId::parse("1733400000000-0").unwrap();
        let b = StreamId::parse("1733400000000-1").unwrap();
        let c = StreamId::parse("1733400000001-0").unwrap();
        assert!(StreamId::ZERO < a && a < b && b < c);
        assert_eq!(b.to_string(), "1733400000000-1");
        assert_eq!(StreamId::parse("5"), Some(StreamId { ms: 5, seq: 0 }));
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "a-1",
            "1-2-3",
            "99999999999999999999999-0",
            "1 -2",
        ] {
            assert_eq!(StreamId::parse(bad), None, "{bad:?}");
        }
    }
}
