//! The shape of socket ids on the wire. Node.js peers and emitters address a single socket as
//! the room named after its id, so a room name with this shape may be a socket's private
//! channel: socketioxide ids are 16 url-safe base64 characters, Node's (`base64id`) 20.

/// Length of a socketioxide socket id.
pub const SOCKETIOXIDE_ID_LEN: usize = 16;
/// Length of a Node.js socket.io socket id.
pub const NODE_ID_LEN: usize = 20;

/// Could `s` be a socket id (of a socketioxide or a Node.js node)?
pub fn is_socket_id_shaped(s: &str) -> bool {
    (s.len() == SOCKETIOXIDE_ID_LEN || s.len() == NODE_ID_LEN)
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert!(is_socket_id_shaped("AAAAAAAAAAAAAAA1"));
        assert!(is_socket_id_shaped("Xz3_k9-abcdefghijklm"));
        assert!(!is_socket_id_shaped("chat:general"));
        assert!(!is_socket_id_shaped("AAAAAAAAAAAAAA#1"));
        assert!(!is_socket_id_shaped("AAAAAAAAAAAAAAAAA"));
        assert!(!is_socket_id_shaped(""));
    }
}
