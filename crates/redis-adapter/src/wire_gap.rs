//! TEMPORARY home of the format pieces `sio-wire` does not provide (yet). By the project rule
//! "one concept, one place" they belong in `sio-wire`; they are kept here, small and marked,
//! so the move is mechanical. See the crate report.

/// Private channel an adapter publishes to itself to prove its subscriber connection works
/// (`<key>-probe#<id>#`). Not part of the Node protocol: Node peers never subscribe to it (their
/// `PSUBSCRIBE key#nsp#*` does not match it).
pub(crate) fn probe_channel(key: &str, id: &str) -> String {
    format!("{key}-probe#{id}#")
}

/// A dynamic wire value as `serde_json::Value` (for the serverSideEmit handler API). Binary
/// becomes what Node's JSON.stringify makes of a Buffer.
pub(crate) fn to_serde(v: &sio_wire::Value) -> serde_json::Value {
    sio_wire::json::to_json_string(v)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// The uid of a broadcast `[uid, packet, opts]`, read without decoding the rest, so a node
/// drops its own broadcasts (they come back on the namespace channel) without paying for a
/// full decode. `None` when the bytes do not start like a broadcast.
pub(crate) fn peek_broadcast_uid(b: &[u8]) -> Option<&[u8]> {
    let rest = match *b.first()? {
        0x93 => b.get(1..)?,                           // fixarray(3)
        0xdc if b.get(1..3)? == [0, 3] => b.get(3..)?, // array16(3)
        _ => return None,
    };
    let (len, start): (usize, usize) = match *rest.first()? {
        m @ 0xa0..=0xbf => (usize::from(m & 0x1f), 1), // fixstr
        0xd9 => (usize::from(*rest.get(1)?), 2),       // str8
        0xda => (
            usize::from(u16::from_be_bytes([*rest.get(1)?, *rest.get(2)?])),
            3,
        ), // str16
        _ => return None,
    };
    rest.get(start..start.checked_add(len)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_uid_of_broadcasts() {
        let msg = sio_wire::BroadcastMessage {
            uid: "AAAAAAAAAAAAAAA1".into(),
            packet: sio_wire::Packet::event("/", "ev", vec![]),
            opts: Default::default(),
        }
        .encode();
        assert_eq!(peek_broadcast_uid(&msg), Some(&b"AAAAAAAAAAAAAAA1"[..]));
        let long = "x".repeat(40);
        let msg = sio_wire::BroadcastMessage {
            uid: long.clone(),
            packet: sio_wire::Packet::event("/", "ev", vec![]),
            opts: Default::default(),
        }
        .encode();
        assert_eq!(peek_broadcast_uid(&msg), Some(long.as_bytes()));
        for bad in [
            &b""[..],
            b"\x93",
            b"\x93\xa5ab",
            b"\x92\xa1a",
            b"\xdc\x00",
            b"{}",
        ] {
            assert_eq!(peek_broadcast_uid(bad), None);
        }
    }

    #[test]
    fn probe_channel_is_outside_node_patterns() {
        let c = probe_channel("socket.io", "abc");
        assert_eq!(c, "socket.io-probe#abc#");
        assert!(!c.starts_with("socket.io#"));
    }

    #[test]
    fn to_serde_keeps_structure() {
        let v = sio_wire::json::from_serde(&serde_json::json!({"a": [1, "x", null]}));
        assert_eq!(to_serde(&v), serde_json::json!({"a": [1, "x", null]}));
    }
}
