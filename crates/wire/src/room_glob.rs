//! Room globs: the patterns of the gateway's room rules (`--can-join`, `--can-publish`) and of
//! the history rules (`--history`, see [`crate::history`]), here so that the gateway and the
//! emitter match rooms the same way.
//!
//! A glob matches the room name: `*` any run of characters, `?` exactly one, and `{sub}` is
//! replaced by the connection's authenticated subject (so `user:{sub}` lets a user into their
//! own room only). A pattern that mentions `{sub}` never matches without a subject. Patterns
//! are parsed once; matching allocates nothing.
//!
//! Personal rooms: a pattern reaches a room under [`PERSONAL_PREFIX`] (`user:<sub>`, where the
//! gateway puts every authenticated socket) only when it is itself written with that prefix:
//! a wildcard such as `*` or `u*` never matches `user:<someone>`.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(String),
    Star,
    One,
    Sub,
}

/// Prefix of the personal rooms (`user:<sub>`); see the module doc.
pub const PERSONAL_PREFIX: &str = "user:";

/// One compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    src: String,
    toks: Vec<Tok>,
    /// Written with the personal prefix, so it may match personal rooms.
    personal: bool,
}

impl Pattern {
    /// Compile a glob. Errors on an unknown `{placeholder}` or an unclosed brace.
    pub fn parse(src: &str) -> Result<Pattern, String> {
        let mut toks = Vec::new();
        let mut lit = String::new();
        let mut rest = src;
        while let Some(c) = rest.chars().next() {
            match c {
                '*' | '?' | '{' => {
                    if !lit.is_empty() {
                        toks.push(Tok::Lit(std::mem::take(&mut lit)));
                    }
                    if c == '{' {
                        let end = rest
                            .find('}')
                            .ok_or_else(|| format!("rule `{src}`: unclosed `{{`"))?;
                        match &rest[1..end] {
                            "sub" => toks.push(Tok::Sub),
                            other => {
                                return Err(format!(
                                    "rule `{src}`: unknown placeholder `{{{other}}}` (only {{sub}})"
                                ));
                            }
                        }
                        rest = &rest[end + 1..];
                        continue;
                    }
                    // Collapse runs of `*`: they match the same set and keep matching linear.
                    if c == '*' {
                        if toks.last() != Some(&Tok::Star) {
                            toks.push(Tok::Star);
                        }
                    } else {
                        toks.push(Tok::One);
                    }
                }
                _ => lit.push(c),
            }
            rest = &rest[c.len_utf8()..];
        }
        if !lit.is_empty() {
            toks.push(Tok::Lit(lit));
        }
        let personal = matches!(toks.first(), Some(Tok::Lit(l)) if l.starts_with(PERSONAL_PREFIX));
        Ok(Pattern {
            src: src.to_owned(),
            toks,
            personal,
        })
    }

    /// The catch-all `*` (matches every room but the personal ones).
    pub fn is_catch_all(&self) -> bool {
        self.toks == [Tok::Star]
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.src
    }

    /// Does `room` match, with `{sub}` bound to `sub`?
    pub fn matches(&self, room: &str, sub: Option<&str>) -> bool {
        if sub.is_none() && self.toks.contains(&Tok::Sub) {
            return false;
        }
        if !self.personal && room.starts_with(PERSONAL_PREFIX) {
            return false;
        }
        match_toks(&self.toks, room, sub.unwrap_or(""))
    }
}

/// Glob match in O(len(room) × tokens), whatever the number of `*`.
///
/// The classic wildcard walk: tokens are matched left to right, and on a mismatch only the
/// last `*` seen takes one more character. Earlier stars never need to move: what follows the
/// last star is matched at the earliest place it can be, and any match further right is also
/// reachable from there. (It was a recursive backtracking over every split point of every
/// `*`, exponential in the stars: `team:*:*:*:*:chat` against `team:` + 245 `:` + `x` took
/// 0.6 s of a worker per refused join; review 6.)
fn match_toks(toks: &[Tok], s: &str, sub: &str) -> bool {
    let (mut t, mut i) = (0, 0);
    // The token after the last `*`, and where in `s` that star's run ends now.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if let Some(tok) = toks.get(t) {
            let rest = &s[i..];
            let step = match tok {
                Tok::Star => {
                    star = Some((t + 1, i));
                    t += 1;
                    continue;
                }
                Tok::Lit(l) => rest.starts_with(l.as_str()).then_some(l.len()),
                Tok::Sub => rest.starts_with(sub).then_some(sub.len()),
                Tok::One => rest.chars().next().map(char::len_utf8),
            };
            if let Some(n) = step {
                t += 1;
                i += n;
                continue;
            }
        } else if i == s.len() {
            return true;
        }
        // A mismatch, or tokens used up before the room: the last star takes one more char.
        match star {
            Some((after, end)) => match s[end..].chars().next() {
                Some(c) => {
                    let end = end + c.len_utf8();
                    star = Some((after, end));
                    t = after;
                    i = end;
                }
                None => return false,
            },
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).unwrap()
    }

    #[test]
    fn globs() {
        assert!(p("*").matches("", None));
        assert!(p("*").matches("anything:at/all", None));
        assert!(p("public:*").matches("public:lobby", None));
        assert!(!p("public:*").matches("private:lobby", None));
        assert!(p("a?c").matches("abc", None));
        assert!(!p("a?c").matches("ac", None));
        assert!(p("*:*:end").matches("x:y:z:end", None));
        assert!(!p("*:end").matches("x:ending", None));
        assert!(p("exact").matches("exact", None));
        assert!(!p("exact").matches("exactly", None));
        assert!(p("é*").matches("été", None));
        assert!(p("**x**").matches("aaxbb", None));
    }

    #[test]
    fn sub_substitution() {
        let r = p("user:{sub}");
        assert!(r.matches("user:alice", Some("alice")));
        assert!(!r.matches("user:bob", Some("alice")));
        assert!(
            !r.matches("user:", None),
            "anonymous never matches a {{sub}} rule"
        );
        assert!(p("team:*:{sub}").matches("team:x:bob", Some("bob")));
    }

    #[test]
    fn personal_rooms_need_a_personal_rule() {
        for wild in ["*", "u*", "*:*", "user*", "?ser:*", "*{sub}"] {
            assert!(
                !p(wild).matches("user:u2", Some("u2")),
                "`{wild}` must not reach a personal room"
            );
        }
        assert!(
            p("*").matches("users", None),
            "only the `user:` prefix is personal"
        );
        assert!(p("user:{sub}").matches("user:u1", Some("u1")));
        assert!(!p("user:{sub}").matches("user:u2", Some("u1")));
        assert!(
            p("user:*").matches("user:u2", Some("u1")),
            "explicitly written"
        );
        assert!(p("user:*").matches("user:u2", None));
        assert!(p("*").is_catch_all() && !p("public:*").is_catch_all());
    }

    #[test]
    fn bad_patterns() {
        assert!(Pattern::parse("user:{id}").is_err());
        assert!(Pattern::parse("user:{sub").is_err());
    }

    /// Many stars against a long room that almost matches: linear in the room per token (the
    /// recursive matcher took 0.6 s for 4 stars and 245 separators, and would not finish this).
    #[test]
    fn many_stars_stay_linear() {
        let rule = p("team:*:*:*:*:*:*:chat");
        let near = format!("team:{}x", ":".repeat(20_000));
        assert!(!rule.matches(&near, None));
        let hit = format!("team:{}chat", ":".repeat(20_000));
        assert!(rule.matches(&hit, None));
    }

    /// The walk agrees with a plain recursive definition of the same globs.
    #[test]
    fn agrees_with_the_definition() {
        fn reference(toks: &[Tok], s: &str, sub: &str) -> bool {
            match toks.split_first() {
                None => s.is_empty(),
                Some((Tok::Lit(l), rest)) => s
                    .strip_prefix(l.as_str())
                    .is_some_and(|s| reference(rest, s, sub)),
                Some((Tok::Sub, rest)) => {
                    s.strip_prefix(sub).is_some_and(|s| reference(rest, s, sub))
                }
                Some((Tok::One, rest)) => {
                    let mut it = s.chars();
                    it.next().is_some() && reference(rest, it.as_str(), sub)
                }
                Some((Tok::Star, rest)) => s
                    .char_indices()
                    .map(|(i, _)| i)
                    .chain(std::iter::once(s.len()))
                    .any(|i| reference(rest, &s[i..], sub)),
            }
        }
        // Every pattern over a small alphabet against every room up to 6 characters.
        let alphabet = ['a', 'b', 'é'];
        let pieces = ["a", "b", "ab", "*", "?", "{sub}", "é"];
        let mut patterns = vec![String::new()];
        for _ in 0..4 {
            let next: Vec<String> = patterns
                .iter()
                .flat_map(|p| pieces.iter().map(move |x| format!("{p}{x}")))
                .collect();
            patterns.extend(next);
        }
        patterns.sort();
        patterns.dedup();
        let mut rooms = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..6 {
            last = last
                .iter()
                .flat_map(|r| alphabet.iter().map(move |c| format!("{r}{c}")))
                .collect();
            rooms.extend(last.iter().cloned());
        }
        let mut checked = 0;
        for src in &patterns {
            let pat = p(src);
            for room in &rooms {
                for sub in ["a", "ab", ""] {
                    assert_eq!(
                        match_toks(&pat.toks, room, sub),
                        reference(&pat.toks, room, sub),
                        "`{src}` against `{room}` with sub `{sub}`"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 1_000_000, "{checked} cases");
    }
}
