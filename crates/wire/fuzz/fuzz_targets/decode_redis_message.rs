//! Fuzz target: any bytes a Redis channel can deliver go through every sio-wire decoder. None
//! may panic; whatever decodes must re-encode and decode again to the same value (no decoder
//! accepts something its encoder cannot write back).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sio_wire::{BroadcastMessage, ClusterMessage, Request, Response, msgpack};

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = msgpack::decode(data) {
        let again = msgpack::encode(&v);
        assert!(msgpack::decode(&again).is_ok(), "own encoding must decode");
    }
    if let Ok(m) = BroadcastMessage::decode(data) {
        let again = BroadcastMessage::decode(&m.encode()).expect("own broadcast encoding decodes");
        assert_eq!(again.uid, m.uid);
        let _ = sio_wire::into_placeholder_json(m.packet.data);
    }
    if let Ok(r) = Request::decode(data) {
        if let Ok(bytes) = r.encode() {
            assert!(Request::decode(&bytes).is_ok(), "own request encoding decodes");
        }
    }
    if let Ok(r) = Response::decode(data) {
        if let Ok(bytes) = r.encode() {
            assert!(Response::decode(&bytes).is_ok(), "own response encoding decodes");
        }
    }
    if let Ok(m) = ClusterMessage::decode(data) {
        if let Ok(bytes) = m.encode() {
            assert!(ClusterMessage::decode(&bytes).is_ok(), "own cluster encoding decodes");
        }
    }
    let _ = sio_wire::decode_py_message(data);
});
