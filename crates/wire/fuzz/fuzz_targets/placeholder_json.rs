//! Fuzz target: socketioxide's event form (JSON text with `_placeholder` objects + attachments)
//! converted to the Node packet data and back must never panic and must round trip (compared
//! through msgpack, which normalises numbers the way JS sees them: `2.0` is `2`).
#![no_main]

use std::collections::VecDeque;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sio_wire::msgpack;

fuzz_target!(|data: &[u8]| {
    // Input: JSON text, a NUL byte, then attachment bytes cut in 7-byte pieces.
    let (text, rest) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let att: VecDeque<Bytes> = rest.chunks(7).map(Bytes::copy_from_slice).collect();
    if let Ok(v) = sio_wire::from_placeholder_json(text, &att) {
        let Ok(pj) = sio_wire::to_placeholder_json(&v) else { return };
        let back = sio_wire::from_placeholder_json(&pj.text, &pj.attachments).expect("own output parses");
        assert_eq!(msgpack::encode(&back), msgpack::encode(&v));
    }
});
