//! Room rules: which rooms a client may join or publish to.
//!
//! A rule is a glob over the room name: `*` matches any run of characters, `?` exactly one,
//! and `{sub}` is replaced by the connection's authenticated subject (so `user:{sub}` lets a
//! user into their own room only). A rule that mentions `{sub}` never matches an anonymous
//! connection. Patterns are parsed once at start-up; matching allocates nothing.
//!
//! Personal rooms: every authenticated socket is in `user:<sub>` (see `auth`), where backends
//! reach a user's devices. A rule reaches a room under [`PERSONAL_PREFIX`] only when the rule
//! itself is written with that prefix (`user:{sub}`, or an explicit `user:*`): a wildcard such as
//! `*` or `u*` never admits a client to `user:<someone else>`.
use serde::Serialize;

/// The globs live in sio-wire (the emitter matches `--history` rules with them too).
pub use sio_wire::room_glob::{PERSONAL_PREFIX, Pattern};

/// A list of patterns; a room is allowed if any matches. Empty = nothing allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet(Vec<Pattern>);

impl RuleSet {
    pub fn new(patterns: Vec<Pattern>) -> RuleSet {
        RuleSet(patterns)
    }

    pub fn allows(&self, room: &str, sub: Option<&str>) -> bool {
        self.0.iter().any(|p| p.matches(room, sub))
    }

    /// Does the set hold the catch-all `*` (the demo rules)?
    pub fn is_open(&self) -> bool {
        self.0.iter().any(Pattern::is_catch_all)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The globs as written, comma-separated (as on the command line).
impl std::fmt::Display for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(p.as_str())?;
        }
        Ok(())
    }
}

impl Serialize for RuleSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(Pattern::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).unwrap()
    }

    #[test]
    fn the_catch_all_set_keeps_personal_rooms_out() {
        let rs = RuleSet::new(vec![p("*")]);
        assert!(rs.is_open() && !rs.allows("user:bob", Some("alice")));
        assert!(!RuleSet::new(vec![p("public:*")]).is_open());
    }

    #[test]
    fn rule_sets() {
        let rs = RuleSet::new(vec![p("public:*"), p("user:{sub}")]);
        assert!(rs.allows("public:a", None));
        assert!(rs.allows("user:u1", Some("u1")));
        assert!(!rs.allows("admin", Some("u1")));
        assert!(!RuleSet::default().allows("x", None));
    }
}
