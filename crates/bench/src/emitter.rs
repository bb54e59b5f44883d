//! The `@socket.io/redis-emitter` broadcast, encoded by hand for the emitter origin.
//!
//! A backend that publishes through Redis sends msgpack
//! `["emitter", {type:2, data:[event, ...args], nsp}, {rooms, flags:{}, except:[]}]`
//! on `socket.io#<nsp>#` (or `socket.io#<nsp>#<room>#` for exactly one room).
//! The generator writes these few bytes itself instead of using the project's
//! `sio-wire` crate on purpose: the benchmark must drive sio-gateway and the
//! Node.js servers as an outside backend would, and must not share a bug with
//! the code it measures. The unit test pins the bytes to the Node emitter's
//! own output (the byte vector in WIRE.md).

use rmp::encode;

/// The Redis channel a redis-emitter uses for a broadcast to `rooms` of `nsp`.
pub fn channel(nsp: &str, rooms: &[String]) -> String {
    match rooms {
        [one] => format!("socket.io#{nsp}#{one}#"),
        _ => format!("socket.io#{nsp}#"),
    }
}

fn str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = encode::write_str(out, s);
}

/// The body of a Socket.IO EVENT packet map (its map header written by the caller):
/// `type: 2, data: [event, ...args], nsp`.
fn packet(out: &mut Vec<u8>, nsp: &str, event: &str, nargs: u32, args: impl FnOnce(&mut Vec<u8>)) {
    str(out, "type");
    let _ = encode::write_uint(out, 2);
    str(out, "data");
    let _ = encode::write_array_len(out, 1 + nargs);
    str(out, event);
    args(out);
    str(out, "nsp");
    str(out, nsp);
}

/// Encode one emitter broadcast of `event` with `nargs` arguments written by `args`.
pub fn encode_broadcast(
    out: &mut Vec<u8>,
    nsp: &str,
    rooms: &[String],
    event: &str,
    nargs: u32,
    args: impl FnOnce(&mut Vec<u8>),
) {
    let _ = encode::write_array_len(out, 3);
    str(out, "emitter");
    let _ = encode::write_map_len(out, 3);
    packet(out, nsp, event, nargs, args);
    let _ = encode::write_map_len(out, 3);
    str(out, "rooms");
    let _ = encode::write_array_len(out, rooms.len() as u32);
    for r in rooms {
        str(out, r);
    }
    str(out, "flags");
    let _ = encode::write_map_len(out, 0);
    str(out, "except");
    let _ = encode::write_array_len(out, 0);
}

/// The same broadcast as the sharded adapter reads it (socket.io-adapter ClusterAdapter message,
/// msgpack: its decoders take msgpack when the first byte is not `{`):
/// `{type:3, data:{packet:{type:2, data:[event, ...args], nsp}, opts:{rooms, except:[], flags:{}}}, uid:"emitter", nsp}`.
/// The channel is the same as [`channel`] (`dynamic` subscription mode, room names that do not
/// look like Node socket ids).
pub fn encode_sharded_broadcast(
    out: &mut Vec<u8>,
    nsp: &str,
    rooms: &[String],
    event: &str,
    nargs: u32,
    args: impl FnOnce(&mut Vec<u8>),
) {
    let _ = encode::write_map_len(out, 4);
    str(out, "type");
    let _ = encode::write_uint(out, 3);
    str(out, "data");
    let _ = encode::write_map_len(out, 2);
    str(out, "packet");
    let _ = encode::write_map_len(out, 3);
    packet(out, nsp, event, nargs, args);
    str(out, "opts");
    let _ = encode::write_map_len(out, 3);
    str(out, "rooms");
    let _ = encode::write_array_len(out, rooms.len() as u32);
    for r in rooms {
        str(out, r);
    }
    str(out, "except");
    let _ = encode::write_array_len(out, 0);
    str(out, "flags");
    let _ = encode::write_map_len(out, 0);
    str(out, "uid");
    str(out, "emitter");
    str(out, "nsp");
    str(out, nsp);
}

/// The benchmark payload as a msgpack map: the same fields as [`crate::frame::write_payload`],
/// so the gateway re-serialises it to `{"bts":"<ns>","seq":N,...}` for the clients.
pub fn write_payload(out: &mut Vec<u8>, ts_ns: u64, seq: u64, pad: usize) {
    let _ = encode::write_map_len(out, if pad > 0 { 3 } else { 2 });
    str(out, crate::frame::TS_KEY);
    str(out, itoa_buf(ts_ns).as_str());
    str(out, "seq");
    let _ = encode::write_uint(out, seq);
    if pad > 0 {
        str(out, "pad");
        let _ = encode::write_str_len(out, pad as u32);
        out.resize(out.len() + pad, b'x');
    }
}

/// Small stack formatter for a u64 (no allocation).
struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn as_str(&self) -> &str {
        // Only ASCII digits are ever written.
        std::str::from_utf8(&self.buf[self.start..]).unwrap_or("0")
    }
}

fn itoa_buf(mut v: u64) -> Digits {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    Digits { buf, start: i }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `emitter.to("room1").emit("hello","world")` as written by @socket.io/redis-emitter 5.1.
    #[test]
    fn matches_the_node_emitter_bytes() {
        let mut out = Vec::new();
        let rooms = vec!["room1".to_string()];
        encode_broadcast(&mut out, "/", &rooms, "hello", 1, |o| str(o, "world"));
        let mut want = vec![0x93, 0xa7];
        want.extend_from_slice(b"emitter");
        want.extend_from_slice(&[0x83, 0xa4]);
        want.extend_from_slice(b"type");
        want.extend_from_slice(&[0x02, 0xa4]);
        want.extend_from_slice(b"data");
        want.extend_from_slice(&[0x92, 0xa5]);
        want.extend_from_slice(b"hello");
        want.push(0xa5);
        want.extend_from_slice(b"world");
        want.push(0xa3);
        want.extend_from_slice(b"nsp");
        want.extend_from_slice(&[0xa1, b'/', 0x83, 0xa5]);
        want.extend_from_slice(b"rooms");
        want.extend_from_slice(&[0x91, 0xa5]);
        want.extend_from_slice(b"room1");
        want.push(0xa5);
        want.extend_from_slice(b"flags");
        want.extend_from_slice(&[0x80, 0xa6]);
        want.extend_from_slice(b"except");
        want.push(0x90);
        assert_eq!(out, want);
        assert_eq!(channel("/", &rooms), "socket.io#/#room1#");
        assert_eq!(channel("/", &[]), "socket.io#/#");
    }

    #[test]
    fn payload_decodes_to_the_json_the_clients_see() {
        let mut out = Vec::new();
        encode_broadcast(&mut out, "/", &[], "bench", 1, |o| {
            write_payload(o, 1_763_784_000_123_456_789, 7, 3)
        });
        let v: rmpv::Value = rmpv::decode::read_value(&mut &out[..]).unwrap();
        let json = serde_json::to_string(&v[1]["data"]).unwrap();
        assert_eq!(
            json,
            r#"["bench",{"bts":"1763784000123456789","seq":7,"pad":"xxx"}]"#
        );
        assert_eq!(
            crate::frame::extract_ts(json.as_bytes()),
            Some(1_763_784_000_123_456_789)
        );
        assert_eq!(v[2]["rooms"].as_array().map(Vec::len), Some(0));
    }

    #[test]
    fn digits() {
        assert_eq!(itoa_buf(0).as_str(), "0");
        assert_eq!(itoa_buf(u64::MAX).as_str(), "18446744073709551615");
    }

    /// The sharded form decodes (rmpv) to the ClusterAdapter message Node's sharded adapter reads.
    #[test]
    fn sharded_broadcast_is_a_cluster_message() {
        let mut out = Vec::new();
        let rooms = vec!["room1".to_string()];
        encode_sharded_broadcast(&mut out, "/", &rooms, "hello", 1, |o| str(o, "world"));
        assert_ne!(out[0], b'{', "msgpack, not JSON");
        let v = rmpv::decode::read_value(&mut out.as_slice()).expect("msgpack");
        let get = |v: &rmpv::Value, k: &str| -> rmpv::Value {
            v.as_map()
                .and_then(|m| m.iter().find(|(key, _)| key.as_str() == Some(k)))
                .map(|(_, v)| v.clone())
                .unwrap_or(rmpv::Value::Nil)
        };
        assert_eq!(get(&v, "type").as_u64(), Some(3));
        assert_eq!(get(&v, "uid").as_str(), Some("emitter"));
        assert_eq!(get(&v, "nsp").as_str(), Some("/"));
        let data = get(&v, "data");
        let packet = get(&data, "packet");
        assert_eq!(get(&packet, "type").as_u64(), Some(2));
        assert_eq!(
            get(&packet, "data"),
            rmpv::Value::Array(vec!["hello".into(), "world".into()])
        );
        assert_eq!(
            get(&get(&data, "opts"), "rooms"),
            rmpv::Value::Array(vec!["room1".into()])
        );
    }
}
