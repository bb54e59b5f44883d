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

#[cfg(test)]
mod tests {
    use super::*;

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
