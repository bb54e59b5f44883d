//! The argument of a client's `join`: a room name (unchanged), or `{room, since?}` where
//! `since` is `{offset, epoch}` as last received, to recover what was missed.
//!
//! Everything is checked here, before the join is applied: a malformed argument gets an
//! error ack and leaves the socket's rooms as they were. A malformed `since` alone is not an
//! error: the position is the client's memory of a message, which another client may have
//! forged (review 8), so the join goes ahead without recovery and is answered
//! `recovered:false, reason:"invalid"` ([`JoinArg::Tracked`] carries the problem).
use serde_json::Value;

use sio_wire::history::StreamId;

use super::epoch::Epoch;

/// Longest offset string accepted (a u64 has 20 digits; a Redis Stream id 41 characters).
const MAX_OFFSET_LEN: usize = 41;

/// Where a client left a history room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    /// As sent: decimal digits (single node) or a stream id `<ms>-<seq>` (cluster mode).
    pub offset: String,
    pub epoch: Epoch,
}

impl Since {
    /// The offset as a single node's sequence number.
    pub fn seq(&self) -> Option<u64> {
        parse_offset(&self.offset)
    }

    /// The offset as a stream id (cluster mode).
    pub fn stream_id(&self) -> Option<StreamId> {
        StreamId::parse(&self.offset)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinArg {
    /// `join "room"`: the plain join, acked `{ok:true}`.
    Plain(String),
    /// `join {room, since?}`: the ack tells the history's position (and the recovery).
    /// `since` is `Some(Err(_))` when it was given but is not a position of any history:
    /// the room is joined without recovery.
    Tracked {
        room: String,
        since: Option<Result<Since, JoinArgError>>,
    },
}

impl JoinArg {
    pub fn room(&self) -> &str {
        match self {
            JoinArg::Plain(r) | JoinArg::Tracked { room: r, .. } => r,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinArgError {
    #[error("join expects a room name (1-256 bytes) or {{room, since?: {{offset, epoch}}}}")]
    Shape,
    #[error("join: unknown key `{0}` (expected room, since)")]
    UnknownKey(String),
    #[error("join: `since` must be {{offset, epoch}} as received with the last message")]
    SinceShape,
    #[error(
        "join: `since.offset` must be the offset string of a received message (digits, or <ms>-<seq> in cluster mode)"
    )]
    BadOffset,
    #[error("join: `since.epoch` must be the epoch string received (1-64 of A-Z a-z 0-9 _ -)")]
    BadEpoch,
}

/// Parse the join argument (the room name's length is checked by the relay, as before).
pub fn parse(v: Value) -> Result<JoinArg, JoinArgError> {
    let mut obj = match v {
        Value::String(room) => return Ok(JoinArg::Plain(room)),
        Value::Object(o) => o,
        _ => return Err(JoinArgError::Shape),
    };
    if let Some(k) = obj.keys().find(|k| *k != "room" && *k != "since") {
        return Err(JoinArgError::UnknownKey(k.chars().take(64).collect()));
    }
    let room = match obj.remove("room") {
        Some(Value::String(r)) => r,
        _ => return Err(JoinArgError::Shape),
    };
    let since = match obj.remove("since") {
        None | Some(Value::Null) => None,
        Some(Value::Object(s)) => Some(parse_since(&s)),
        Some(_) => Some(Err(JoinArgError::SinceShape)),
    };
    Ok(JoinArg::Tracked { room, since })
}

fn parse_since(s: &serde_json::Map<String, Value>) -> Result<Since, JoinArgError> {
    if s.len() != 2 {
        return Err(JoinArgError::SinceShape);
    }
    let offset = match s.get("offset") {
        Some(Value::String(o)) if parse_offset(o).is_some() || StreamId::parse(o).is_some() => {
            o.clone()
        }
        Some(_) => return Err(JoinArgError::BadOffset),
        None => return Err(JoinArgError::SinceShape),
    };
    let epoch = match s.get("epoch") {
        Some(Value::String(e)) => Epoch::parse(e).ok_or(JoinArgError::BadEpoch)?,
        Some(_) => return Err(JoinArgError::BadEpoch),
        None => return Err(JoinArgError::SinceShape),
    };
    Ok(Since { offset, epoch })
}

/// A single-node offset: decimal digits that fit a u64.
pub fn parse_offset(o: &str) -> Option<u64> {
    if o.is_empty() || o.len() > MAX_OFFSET_LEN || !o.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    o.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_and_tracked() {
        assert_eq!(parse(json!("lobby")), Ok(JoinArg::Plain("lobby".into())));
        assert_eq!(
            parse(json!({"room": "chat:a"})),
            Ok(JoinArg::Tracked {
                room: "chat:a".into(),
                since: None
            })
        );
        assert_eq!(
            parse(json!({"room": "chat:a", "since": {"offset": "7", "epoch": "ab12"}})),
            Ok(JoinArg::Tracked {
                room: "chat:a".into(),
                since: Some(Ok(Since {
                    offset: "7".into(),
                    epoch: Epoch::parse("ab12").unwrap()
                }))
            })
        );
    }

    #[test]
    fn malformed_is_refused_with_a_reason() {
        use JoinArgError::*;
        for (v, e) in [
            (json!(42), Shape),
            (json!(null), Shape),
            (json!(["a"]), Shape),
            (json!({"since": {"offset": "1", "epoch": "e"}}), Shape),
            (json!({"room": 5}), Shape),
            (json!({"room": "r", "x": 1}), UnknownKey("x".into())),
        ] {
            assert_eq!(parse(v.clone()), Err(e), "{v}");
        }
    }

    /// A bad position is carried, not refused: the join goes ahead without recovery.
    #[test]
    fn malformed_since_is_carried_with_its_reason() {
        use JoinArgError::*;
        for (since, e) in [
            (json!("1"), SinceShape),
            (json!({"offset": "1"}), SinceShape),
            (json!({"offset": "1", "epoch": "e", "z": 0}), SinceShape),
            (json!({"offset": 1, "epoch": "e"}), BadOffset),
            (json!({"offset": "-1", "epoch": "e"}), BadOffset),
            (json!({"offset": "1e3", "epoch": "e"}), BadOffset),
            (json!({"offset": "zz", "epoch": "e"}), BadOffset),
            (
                json!({"offset": "99999999999999999999999", "epoch": "e"}),
                BadOffset,
            ),
            (json!({"offset": "", "epoch": "e"}), BadOffset),
            (json!({"offset": "1", "epoch": 3}), BadEpoch),
            (json!({"offset": "1", "epoch": ""}), BadEpoch),
            (json!({"offset": "1", "epoch": "!"}), BadEpoch),
            (json!({"offset": "1", "epoch": "x".repeat(65)}), BadEpoch),
        ] {
            let v = json!({"room": "r", "since": since});
            assert_eq!(
                parse(v.clone()),
                Ok(JoinArg::Tracked {
                    room: "r".into(),
                    since: Some(Err(e))
                }),
                "{v}"
            );
        }
    }
}
