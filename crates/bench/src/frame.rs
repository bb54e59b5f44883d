//! Engine.IO v4 / Socket.IO v5 text-frame classification and timestamp extraction.
//!
//! The receive path of the generator must stay cheap enough for >1M frames/s on
//! one core, so nothing here allocates or parses JSON: a frame is classified by
//! its first bytes (`2` ping, `40` connect, `42` event, ...) and the send
//! timestamp is found by searching a fixed marker in the raw bytes and reading
//! the digits after it. The marker is a JSON *string* (`"bts":"<ns>"`) so it
//! survives every hop unchanged: msgpack in Redis, JavaScript numbers (which
//! would round a 19-digit integer) and re-serialisation by either server.

use std::sync::LazyLock;

use memchr::memmem::Finder;

/// The key under which every generated payload carries its send time.
pub const TS_KEY: &str = "bts";

/// Bytes that precede the timestamp digits in a JSON-serialised payload.
const TS_MARKER: &[u8] = b"\"bts\":\"";

static TS_FINDER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(TS_MARKER));

/// What one Engine.IO text frame is, as far as the generator cares.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound<'a> {
    /// `0{...}`: the Engine.IO handshake (sid, pingInterval, ...).
    EioOpen(&'a [u8]),
    /// `1`: the server closes the Engine.IO session.
    EioClose,
    /// `2`: heartbeat, must be answered with `3`.
    EioPing,
    /// `40[/nsp,]{...}`: namespace connect accepted.
    SioConnect { nsp: &'a [u8], body: &'a [u8] },
    /// `41[/nsp,]`: namespace disconnect.
    SioDisconnect { nsp: &'a [u8] },
    /// `42[/nsp,][id][...]`: an event.
    SioEvent {
        nsp: &'a [u8],
        ack: Option<u64>,
        body: &'a [u8],
    },
    /// `43[/nsp,]id[...]`: an acknowledgement of one of our events.
    SioAck {
        nsp: &'a [u8],
        id: u64,
        body: &'a [u8],
    },
    /// `44[/nsp,]{...}`: namespace connect refused.
    SioConnectError { nsp: &'a [u8], body: &'a [u8] },
    /// Anything else (noop `6`, upgrade probes, binary placeholders, garbage).
    Other,
}

/// Classify one Engine.IO text frame.
pub fn classify(frame: &[u8]) -> Inbound<'_> {
    match frame.first() {
        Some(b'0') => Inbound::EioOpen(&frame[1..]),
        Some(b'1') => Inbound::EioClose,
        Some(b'2') => Inbound::EioPing,
        Some(b'4') => classify_sio(&frame[1..]),
        _ => Inbound::Other,
    }
}

fn classify_sio(p: &[u8]) -> Inbound<'_> {
    let Some((&kind, rest)) = p.split_first() else {
        return Inbound::Other;
    };
    // Optional namespace: `/name,` (the default namespace `/` is omitted).
    let (nsp, rest) = if rest.first() == Some(&b'/') {
        match memchr::memchr(b',', rest) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        }
    } else {
        (&b"/"[..], rest)
    };
    // Optional ack id: leading ASCII digits.
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let id = parse_u64(&rest[..digits]);
    let body = &rest[digits..];
    match kind {
        b'0' => Inbound::SioConnect { nsp, body: rest },
        b'1' => Inbound::SioDisconnect { nsp },
        b'2' => Inbound::SioEvent { nsp, ack: id, body },
        b'3' => match id {
            Some(id) => Inbound::SioAck { nsp, id, body },
            None => Inbound::Other,
        },
        b'4' => Inbound::SioConnectError { nsp, body: rest },
        _ => Inbound::Other,
    }
}

/// Parse ASCII digits as u64; `None` if empty, non-digit or overflowing.
pub fn parse_u64(d: &[u8]) -> Option<u64> {
    if d.is_empty() || d.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in d {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// Find the send timestamp (ns since the Unix epoch) in a frame, if it carries one.
pub fn extract_ts(frame: &[u8]) -> Option<u64> {
    let at = TS_FINDER.find(frame)? + TS_MARKER.len();
    let rest = &frame[at..];
    let end = rest.iter().position(|b| !b.is_ascii_digit())?;
    parse_u64(&rest[..end])
}

/// Append the JSON payload object the generator sends: `{"bts":"<ns>","seq":N[,"pad":"xx.."]}`.
/// Written by hand into a reused buffer so the sender does not allocate per message either.
pub fn write_payload(out: &mut Vec<u8>, ts_ns: u64, seq: u64, pad: usize) {
    use std::io::Write;
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{{\"{TS_KEY}\":\"{ts_ns}\",\"seq\":{seq}");
    if pad > 0 {
        out.extend_from_slice(b",\"pad\":\"");
        out.resize(out.len() + pad, b'x');
        out.push(b'"');
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_engine_io_frames() {
        assert_eq!(classify(b"2"), Inbound::EioPing);
        assert_eq!(classify(b"1"), Inbound::EioClose);
        assert_eq!(
            classify(br#"0{"sid":"abc","pingInterval":25000}"#),
            Inbound::EioOpen(br#"{"sid":"abc","pingInterval":25000}"#)
        );
        assert_eq!(classify(b""), Inbound::Other);
        assert_eq!(classify(b"6"), Inbound::Other);
    }

    #[test]
    fn classifies_socket_io_packets() {
        assert_eq!(
            classify(br#"40{"sid":"x"}"#),
            Inbound::SioConnect {
                nsp: b"/",
                body: br#"{"sid":"x"}"#
            }
        );
        assert_eq!(
            classify(br#"40/chat,{"sid":"x"}"#),
            Inbound::SioConnect {
                nsp: b"/chat",
                body: br#"{"sid":"x"}"#
            }
        );
        assert_eq!(
            classify(br#"42["ev",1]"#),
            Inbound::SioEvent {
                nsp: b"/",
                ack: None,
                body: br#"["ev",1]"#
            }
        );
        assert_eq!(
            classify(br#"42/a,17["ev"]"#),
            Inbound::SioEvent {
                nsp: b"/a",
                ack: Some(17),
                body: br#"["ev"]"#
            }
        );
        assert_eq!(
            classify(br#"4312[{"ok":true}]"#),
            Inbound::SioAck {
                nsp: b"/",
                id: 12,
                body: br#"[{"ok":true}]"#
            }
        );
        assert_eq!(classify(b"43[]"), Inbound::Other, "ack without id");
        assert_eq!(
            classify(br#"44{"message":"nope"}"#),
            Inbound::SioConnectError {
                nsp: b"/",
                body: br#"{"message":"nope"}"#
            }
        );
        assert_eq!(classify(b"41"), Inbound::SioDisconnect { nsp: b"/" });
        assert_eq!(classify(b"4"), Inbound::Other);
    }

    #[test]
    fn extracts_timestamp_after_marker() {
        let f = br#"42["bench",{"bts":"1763784000123456789","seq":5}]"#;
        assert_eq!(extract_ts(f), Some(1_763_784_000_123_456_789));
        assert_eq!(extract_ts(br#"42["bench",{"seq":5}]"#), None);
        assert_eq!(extract_ts(br#"42["bench",{"bts":"12"#), None, "truncated");
        assert_eq!(extract_ts(br#"42["bench",{"bts":"","x":1}]"#), None);
        assert_eq!(
            extract_ts(br#"42["bench",{"bts":"99999999999999999999999"}]"#),
            None,
            "overflow"
        );
    }

    #[test]
    fn payload_round_trips_through_json_and_the_extractor() {
        let mut buf = Vec::new();
        write_payload(&mut buf, 1_700_000_000_000_000_001, 42, 8);
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["bts"], "1700000000000000001");
        assert_eq!(v["seq"], 42);
        assert_eq!(v["pad"], "xxxxxxxx");
        // As a server would re-serialise it inside an event frame.
        let frame = format!("42{}", serde_json::json!(["bench", v]));
        assert_eq!(
            extract_ts(frame.as_bytes()),
            Some(1_700_000_000_000_000_001)
        );
    }
}
