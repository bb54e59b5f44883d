//! Event and room names given by clients (the relay) and backends (the HTTP API): one set of
//! rules for both. A name is 1-[`MAX_NAME_LEN`] bytes; an event must not be one of
//! [`RESERVED_EVENTS`], which receivers treat as lifecycle events.

/// Longest room or event name accepted.
pub const MAX_NAME_LEN: usize = 256;

/// Event names nobody may emit to clients: Socket.IO's own list ([`sio_wire::RESERVED_EVENTS`])
/// plus `error`, `ping` and `pong`, which Socket.IO 2 clients still treat as lifecycle events
/// (the relay has always refused them).
pub const RESERVED_EVENTS: &[&str] = &{
    const EXTRA: [&str; 3] = ["error", "ping", "pong"];
    const WIRE: &[&str] = &sio_wire::RESERVED_EVENTS;
    let mut all = [""; WIRE.len() + EXTRA.len()];
    let mut i = 0;
    while i < all.len() {
        all[i] = if i < WIRE.len() {
            WIRE[i]
        } else {
            EXTRA[i - WIRE.len()]
        };
        i += 1;
    }
    all
};

/// Is `name` 1-[`MAX_NAME_LEN`] bytes long?
pub fn valid_len(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN
}

/// Is `event` reserved (see [`RESERVED_EVENTS`])?
pub fn is_reserved(event: &str) -> bool {
    RESERVED_EVENTS.contains(&event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        assert!(!valid_len(""));
        assert!(valid_len("a"));
        assert!(valid_len(&"x".repeat(MAX_NAME_LEN)));
        assert!(!valid_len(&"x".repeat(MAX_NAME_LEN + 1)));
    }

    #[test]
    fn reserved_are_socketio_s_and_the_legacy_three() {
        for e in ["connect", "disconnect", "error", "ping", "pong"] {
            assert!(is_reserved(e), "{e}");
        }
        assert!(!is_reserved("chat"));
        assert_eq!(RESERVED_EVENTS.len(), sio_wire::RESERVED_EVENTS.len() + 3);
    }
}
