//! The shape of a Socket.IO attachment reference (`{"_placeholder":true,"num":N}`), defined
//! once for the JSON and the event-data conversions (see [`crate::event_data`], "Placeholder-
//! shaped objects in data", for why the widest reading is the one used).
use rmpv::Value;

/// The key every Socket.IO parser looks for to find an attachment reference.
pub const PLACEHOLDER_KEY: &str = "_placeholder";

/// Is `k` the `_placeholder` key? A binary key counts too: notepack turns a msgpack bin key
/// into a JS object key by its text.
pub fn is_placeholder_key(k: &Value) -> bool {
    match k {
        Value::String(s) => s.as_bytes() == PLACEHOLDER_KEY.as_bytes(),
        Value::Binary(b) => b.as_slice() == PLACEHOLDER_KEY.as_bytes(),
        _ => false,
    }
}

/// Would a Socket.IO parser read this object as an attachment reference? Yes when it has a
/// `_placeholder` key, whatever the value (see the module doc for why this wide reading).
pub fn is_placeholder_shaped(entries: &[(Value, Value)]) -> bool {
    entries.iter().any(|(k, _)| is_placeholder_key(k))
}
