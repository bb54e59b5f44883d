//! Redis channel names of the classic adapter protocol, and parsing them back.
//!
//! | channel | use |
//! |---|---|
//! | `key#nsp#` | broadcasts to several rooms or to all |
//! | `key#nsp#room#` | broadcast to exactly one room |
//! | `key-request#nsp#` | requests |
//! | `key-response#nsp#` | responses |
//! | `key-response#nsp#uid#` | responses on the requester's own channel |
//!
//! [`NamespaceChannels`] precomputes the fixed names of one namespace once, so the broadcast
//! path only appends a room name to a prefix.

/// The default channel key of `@socket.io/redis-adapter` and `@socket.io/redis-emitter`.
pub const DEFAULT_KEY: &str = "socket.io";

/// What a received channel is, relative to one namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind<'a> {
    /// `key#nsp#`: a broadcast to several rooms or everyone.
    Broadcast,
    /// `key#nsp#room#`: a broadcast to exactly this room.
    Room(&'a str),
    /// `key-request#nsp#`.
    Request,
    /// `key-response#nsp#`.
    Response,
    /// `key-response#nsp#uid#`: a response addressed to the node `uid`.
    SpecificResponse(&'a str),
}

/// The channel names of one namespace under one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceChannels {
    nsp: String,
    broadcast: String,
    request: String,
    response: String,
}

impl NamespaceChannels {
    /// Channels for namespace `nsp` (e.g. `/` or `/admin`) under `key` (e.g. [`DEFAULT_KEY`]).
    pub fn new(key: &str, nsp: &str) -> Self {
        Self {
            nsp: nsp.to_owned(),
            broadcast: format!("{key}#{nsp}#"),
            request: format!("{key}-request#{nsp}#"),
            response: format!("{key}-response#{nsp}#"),
        }
    }

    /// The namespace these channels belong to.
    pub fn nsp(&self) -> &str {
        &self.nsp
    }

    /// `key#nsp#`: also the prefix of every room channel.
    pub fn broadcast(&self) -> &str {
        &self.broadcast
    }

    /// `key#nsp#*`: the pattern Node nodes PSUBSCRIBE to.
    pub fn broadcast_pattern(&self) -> String {
        format!("{}*", self.broadcast)
    }

    /// `key#nsp#room#`.
    pub fn room(&self, room: &str) -> String {
        let mut s = String::with_capacity(self.broadcast.len() + room.len() + 1);
        self.room_into(room, &mut s);
        s
    }

    /// Write `key#nsp#room#` into `buf` (cleared first), reusing its allocation.
    pub fn room_into(&self, room: &str, buf: &mut String) {
        buf.clear();
        buf.push_str(&self.broadcast);
        buf.push_str(room);
        buf.push('#');
    }

    /// The channel a broadcast to `rooms` is published on: the room channel when there is
    /// exactly one room, else the namespace channel (as the Node adapter and emitter do).
    pub fn broadcast_channel<S: AsRef<str>>(&self, rooms: &[S]) -> String {
        match rooms {
            [one] => self.room(one.as_ref()),
            _ => self.broadcast.clone(),
        }
    }

    /// `key-request#nsp#`.
    pub fn request(&self) -> &str {
        &self.request
    }

    /// `key-response#nsp#`.
    pub fn response(&self) -> &str {
        &self.response
    }

    /// `key-response#nsp#uid#`.
    pub fn specific_response(&self, uid: &str) -> String {
        format!("{}{uid}#", self.response)
    }

    /// Classify a channel received on a subscription of this namespace; `None` when it does
    /// not belong to this namespace.
    pub fn classify<'c>(&self, channel: &'c str) -> Option<ChannelKind<'c>> {
        if let Some(rest) = channel.strip_prefix(self.broadcast.as_str()) {
            return match rest {
                "" => Some(ChannelKind::Broadcast),
                _ => rest.strip_suffix('#').map(ChannelKind::Room),
            };
        }
        if channel == self.request {
            return Some(ChannelKind::Request);
        }
        if let Some(rest) = channel.strip_prefix(self.response.as_str()) {
            return match rest {
                "" => Some(ChannelKind::Response),
                _ => rest.strip_suffix('#').map(ChannelKind::SpecificResponse),
            };
        }
        None
    }
}

/// `key-probe#id#`: a channel a sio-gateway adapter publishes to itself to prove its subscriber
/// connection is alive. Not part of the Node protocol, and outside every Node pattern
/// (`key#nsp#*`), so Node peers never receive it.
pub fn probe_channel(key: &str, id: &str) -> String {
    format!("{key}-probe#{id}#")
}

/// A channel parsed without knowing the namespace beforehand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedChannel<'a> {
    /// The namespace (e.g. `/`).
    pub nsp: &'a str,
    /// What the channel is within that namespace.
    pub kind: ChannelKind<'a>,
}

/// Parse any channel of `key`. The namespace is taken up to the first `#` after the prefix,
/// so namespaces containing `#` are not supported here (use [`NamespaceChannels::classify`]).
pub fn parse_channel<'a>(key: &str, channel: &'a str) -> Option<ParsedChannel<'a>> {
    let rest = channel.strip_prefix(key)?;
    let (kind_tag, rest) = if let Some(r) = rest.strip_prefix('#') {
        (0, r)
    } else if let Some(r) = rest.strip_prefix("-request#") {
        (1, r)
    } else if let Some(r) = rest.strip_prefix("-response#") {
        (2, r)
    } else {
        return None;
    };
    let (nsp, tail) = rest.split_once('#')?;
    let sub = if tail.is_empty() {
        None
    } else {
        Some(tail.strip_suffix('#')?)
    };
    let kind = match (kind_tag, sub) {
        (0, None) => ChannelKind::Broadcast,
        (0, Some(room)) => ChannelKind::Room(room),
        (1, None) => ChannelKind::Request,
        (2, None) => ChannelKind::Response,
        (2, Some(uid)) => ChannelKind::SpecificResponse(uid),
        _ => return None,
    };
    Some(ParsedChannel { nsp, kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let c = NamespaceChannels::new(DEFAULT_KEY, "/");
        assert_eq!(c.broadcast(), "socket.io#/#");
        assert_eq!(c.room("room1"), "socket.io#/#room1#");
        assert_eq!(c.request(), "socket.io-request#/#");
        assert_eq!(c.response(), "socket.io-response#/#");
        assert_eq!(
            c.specific_response("abc123"),
            "socket.io-response#/#abc123#"
        );
        assert_eq!(c.broadcast_pattern(), "socket.io#/#*");
        assert_eq!(c.broadcast_channel(&["a"]), "socket.io#/#a#");
        assert_eq!(c.broadcast_channel(&["a", "b"]), "socket.io#/#");
        assert_eq!(c.broadcast_channel::<&str>(&[]), "socket.io#/#");
    }

    #[test]
    fn classify_and_parse() {
        let c = NamespaceChannels::new("k", "/admin");
        assert_eq!(c.classify("k#/admin#"), Some(ChannelKind::Broadcast));
        assert_eq!(c.classify("k#/admin#r#1#"), Some(ChannelKind::Room("r#1")));
        assert_eq!(c.classify("k-request#/admin#"), Some(ChannelKind::Request));
        assert_eq!(
            c.classify("k-response#/admin#"),
            Some(ChannelKind::Response)
        );
        assert_eq!(
            c.classify("k-response#/admin#u1#"),
            Some(ChannelKind::SpecificResponse("u1"))
        );
        assert_eq!(c.classify("k#/other#"), None);
        assert_eq!(c.classify("k#/admin#norm"), None);
        let p = parse_channel("k", "k#/admin#room#").unwrap();
        assert_eq!((p.nsp, p.kind), ("/admin", ChannelKind::Room("room")));
        assert_eq!(
            parse_channel("k", "k-request#/#").unwrap().kind,
            ChannelKind::Request
        );
        assert_eq!(parse_channel("k", "k-request#/#x#"), None);
        assert_eq!(parse_channel("k", "other#/#"), None);
        assert_eq!(parse_channel("k", "k#/"), None);
        let probe = probe_channel("k", "n1");
        assert_eq!(probe, "k-probe#n1#");
        assert_eq!(parse_channel("k", &probe), None);
        assert_eq!(NamespaceChannels::new("k", "/").classify(&probe), None);
    }
}
