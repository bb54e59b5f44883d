//! The epoch of a history: a random name given to it when it is created. Offsets are only
//! comparable within one epoch; a history that was lost (idle past its TTL, node restarted,
//! Redis flushed) comes back with a new epoch, so an old offset is never replayed into the
//! wrong sequence.
use std::fmt;

/// Longest epoch a client may send back (ours are 16 hex digits).
pub const MAX_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Epoch(String);

impl Epoch {
    /// A fresh epoch from 64 random bits (the caller draws them): 16 hex digits.
    pub fn from_bits(bits: u64) -> Epoch {
        Epoch(format!("{bits:016x}"))
    }

    /// An epoch as a client sent it back: 1-64 characters of `[A-Za-z0-9_-]`.
    pub fn parse(s: &str) -> Option<Epoch> {
        let ok = (1..=MAX_LEN).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Epoch(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_parse_back() {
        let a = Epoch::from_bits(0x1234);
        assert_eq!(a.as_str(), "0000000000001234");
        assert_ne!(a, Epoch::from_bits(0x1235));
        assert_eq!(Epoch::parse(a.as_str()), Some(a));
        for bad in ["", "a b", "é", &"x".repeat(65), "{\"x\":1}"] {
            assert_eq!(Epoch::parse(bad), None, "{bad:?}");
        }
    }
}
